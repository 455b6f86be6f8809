//! Request and reply shapes shared by the WASM boundaries (the `abi` module
//! used by wasmtime hosts, and the `js` bindings) and by their hosts.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::FlagType;
use crate::result::Evaluation;
use crate::snapshot::{LoadError, Problem};

/// Evaluate one flag (`flag` set) or all flags (`flag` absent).
///
/// ```
/// use bunting_core::protocol::EvalRequest;
/// let r: EvalRequest = serde_json::from_str(r#"{"flag": "x", "context": {}, "nowMs": 5}"#).unwrap();
/// assert_eq!(r.now_ms, 5);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvalRequest {
    /// Flag key; absent means evaluate all flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
    /// The evaluation context.
    pub context: Value,
    /// Evaluation time, Unix milliseconds.
    pub now_ms: i64,
    /// The type the caller expects, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_type: Option<FlagType>,
}

/// The outcome of loading a snapshot across a WASM boundary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LoadReply {
    /// Loaded; `problems` lists what a lenient load skipped.
    Ok {
        /// Engine handle for later calls.
        handle: u32,
        /// Problems (always empty for strict loads).
        problems: Vec<Problem>,
    },
    /// Not loaded.
    Error(LoadErrorReply),
}

/// A [`LoadError`] as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadErrorReply {
    /// Human summary.
    pub message: String,
    /// Every validation problem (empty for syntax errors).
    pub problems: Vec<Problem>,
}

impl From<&LoadError> for LoadErrorReply {
    fn from(e: &LoadError) -> Self {
        LoadErrorReply {
            message: e.to_string(),
            problems: match e {
                LoadError::Invalid(p) => p.clone(),
                LoadError::Syntax { .. } => Vec::new(),
            },
        }
    }
}

/// Reply to an [`EvalRequest`].
// Built once per request and serialized at once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EvalReply<'a> {
    /// One flag's result.
    One(Evaluation<'a>),
    /// Every flag's result.
    All(Vec<Evaluation<'a>>),
    /// The request itself was malformed.
    BadRequest(String),
}

/// Hash targeting keys with a secret (see [`crate::keyhash::KeyHasher`]):
/// how hosts in other languages hash the keys of the exposures and metric
/// events they report, with the same code as the edge.
///
/// ```
/// use bunting_core::protocol::{HashReply, HashRequest};
/// let req: HashRequest = serde_json::from_str(r#"{"secret": "s", "keys": ["u1", 7, null]}"#).unwrap();
/// let reply = req.answer();
/// assert_eq!(reply.hashes.len(), 3);
/// assert!(reply.hashes[2].is_none());
/// assert_eq!(serde_json::to_value(&reply).unwrap()["hashes"][2], serde_json::Value::Null);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HashRequest {
    /// The hashing secret.
    pub secret: String,
    /// `targetingKey` values: strings or numbers (anything else hashes to null).
    pub keys: Vec<Value>,
}

/// Reply to a [`HashRequest`]: one hash (32 hex characters) or `null` per key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HashReply {
    /// The hashes, in the order of the keys.
    pub hashes: Vec<Option<String>>,
}

impl HashRequest {
    /// Hashes every key.
    pub fn answer(&self) -> HashReply {
        let hasher = crate::keyhash::KeyHasher::new(&self.secret);
        HashReply {
            hashes: self.keys.iter().map(|k| hasher.hash_value(k)).collect(),
        }
    }
}

impl crate::Engine {
    /// Answers an [`EvalRequest`].
    pub fn answer(&self, req: &EvalRequest) -> EvalReply<'_> {
        match &req.flag {
            Some(flag) => EvalReply::One(self.evaluate_typed(
                flag,
                req.expected_type,
                &req.context,
                req.now_ms,
            )),
            None => EvalReply::All(self.evaluate_all(&req.context, req.now_ms)),
        }
    }
}
