//! # bunting-wasm-host
//!
//! Runs the bunting rule engine — `bunting-core` compiled to
//! `wasm32-unknown-unknown` with its `abi` feature — inside any Rust host
//! through [wasmtime]. Every host of bunting evaluates with that one `.wasm`
//! (or the same source compiled natively), so results are identical
//! everywhere; this crate never evaluates natively itself and uses
//! `bunting-core` only for its serde types.
//!
//! Build the module once with `cargo xtask wasm`, which writes
//! `target/wasm/bunting_core_abi.wasm`; [`WasmRuntime::locate`] finds it there
//! (or wherever the `BUNTING_CORE_WASM` environment variable points).
//!
//! ```no_run
//! use bunting_wasm_host::WasmRuntime;
//! use serde_json::json;
//!
//! # fn main() -> Result<(), bunting_wasm_host::HostError> {
//! let runtime = WasmRuntime::locate()?; // compiles the module once
//! let mut engine = runtime.load_snapshot(r#"{"schemaVersion": 1, "environment": "dev",
//!   "version": 1, "generatedAt": "2026-11-25T00:00:00Z",
//!   "flags": [{"key": "dark-mode", "type": "boolean", "variants": {"on": true, "off": false},
//!     "offVariant": "off", "fallthrough": {"variant": "on"}}]}"#)?;
//! let r = engine.evaluate("dark-mode", &json!({"targetingKey": "user-1"}), 0)?;
//! assert_eq!(r.value.as_deref(), Some(&json!(true)));
//! assert_eq!(r.reason.as_str(), "STATIC");
//! # Ok(())
//! # }
//! ```
//!
//! ## Memory protocol
//!
//! Each call writes its JSON input into a buffer from `bunting_alloc(len)`,
//! calls the export, reads the reply designated by the returned packed `u64`
//! (`ptr << 32 | len`), and releases both buffers with `bunting_free`. The
//! shapes are those of [`bunting_core::protocol`]. Typed evaluations go
//! through `bunting_eval_into` instead: a binary request (the context in
//! the binary form of [`bunting_core::compact::write_context`], sent only
//! when it changed) into a request buffer reused across calls, and a
//! compact reply the module keeps until the next call (see
//! [`bunting_core::compact`]). A flag the catalog has is named by its
//! catalog position, not its key; a [`PreparedContext`] is encoded once
//! and known to an instance by its identity, so one the instance holds
//! costs neither an encoding nor a comparison. An evaluate-all read with
//! [`WasmEngine::evaluate_all_view`] stays in the module's memory, checked
//! once, and each result is decoded only as far as it is read
//! ([`Evaluations`]).
//!
//! [wasmtime]: https://docs.rs/wasmtime

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bunting_core::compact::{self, Catalog, CompactError};
use bunting_core::protocol::{EvalReply, EvalRequest, LoadReply};
use bunting_core::{Evaluation, FlagType, Problem};
use serde::Serialize;
use serde_json::Value;
use wasmtime::{Engine, Instance, Memory, Module, Store, TypedFunc};

mod all;
mod options;
mod pool;

use all::Checked;
pub use all::{EvaluationRef, Evaluations, Iter};
pub use options::RuntimeOptions;
pub use pool::{PooledEngine, WasmPool};

/// Environment variable naming the `.wasm` file [`WasmRuntime::locate`] loads.
pub const MODULE_ENV: &str = "BUNTING_CORE_WASM";

/// Where `cargo xtask wasm` writes the module, relative to the target directory.
pub const MODULE_IN_TARGET: &str = "wasm/bunting_core_abi.wasm";

/// The exports the host calls, with their core WASM signatures.
const EXPORTS: &[(&str, &[&str], &[&str])] = &[
    ("bunting_alloc", &["i32"], &["i32"]),
    ("bunting_free", &["i32", "i32"], &[]),
    ("bunting_load", &["i32", "i32", "i32"], &["i64"]),
    ("bunting_eval", &["i32", "i32", "i32"], &["i64"]),
    ("bunting_unload", &["i32"], &[]),
    ("bunting_hash_keys", &["i32", "i32"], &["i64"]),
    ("bunting_schema_version", &[], &["i32"]),
    ("bunting_catalog", &["i32"], &["i64"]),
    ("bunting_eval_into", &["i32", "i32", "i32"], &["i64"]),
    // Only required: a module without it cannot read requests by position.
    ("bunting_compact_version", &[], &["i32"]),
];

/// Everything that can go wrong while hosting the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// [`WasmRuntime::locate`] found no module.
    #[error(
        "the bunting-core WASM module was not found (looked at {}); \
         build it with `cargo xtask wasm` (or point {MODULE_ENV} at an existing module)",
        .tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    ModuleNotFound {
        /// Every path that was tried.
        tried: Vec<PathBuf>,
    },
    /// The module file exists but could not be read.
    #[error("cannot read the WASM module {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// wasmtime rejected the module (not WASM, or invalid).
    #[error("cannot compile the WASM module: {source}")]
    Compile {
        /// wasmtime's error.
        source: wasmtime::Error,
    },
    /// The module imports functions or memories this host does not provide:
    /// it was built with the `js` feature (wasm-bindgen) or without `abi`.
    #[error(
        "the WASM module imports {}, which this host does not provide; \
         build bunting-core with `--features abi` and without `js` (`cargo xtask wasm`)",
        .imports.join(", ")
    )]
    UnexpectedImports {
        /// `module::name` of every import.
        imports: Vec<String>,
    },
    /// The module lacks an export of the ABI, or exports it with another type.
    #[error(
        "the WASM module does not export `{name}` as {expected} ({found}); \
         is it bunting-core built with `--features abi`, and as new as this host? \
         (`cargo xtask wasm` rebuilds it)"
    )]
    MissingExport {
        /// Export name.
        name: String,
        /// The expected signature.
        expected: String,
        /// What the module has instead.
        found: String,
    },
    /// Instantiating the module failed.
    #[error("cannot instantiate the WASM module: {source}")]
    Instantiate {
        /// wasmtime's error.
        source: wasmtime::Error,
    },
    /// A call into the module trapped (for example a panic inside the engine,
    /// which aborts). The instance is unusable afterwards.
    #[error("the WASM call `{call}` trapped: {source}")]
    Trap {
        /// The export that was called.
        call: &'static str,
        /// wasmtime's error, usually a [`wasmtime::Trap`].
        source: wasmtime::Error,
    },
    /// A call ran past its time budget ([`RuntimeOptions::call_budget`] or
    /// [`RuntimeOptions::load_budget`]) and was interrupted. Like a trap, it
    /// poisons only the instance that ran it.
    #[error("the WASM call `{call}` exceeded its budget of {budget:?} and was interrupted")]
    Timeout {
        /// The export that was called.
        call: &'static str,
        /// The budget it exceeded.
        budget: Duration,
    },
    /// The compilation cache directory could not be set up.
    #[error("cannot use the compilation cache at {}: {source}", .dir.display())]
    Cache {
        /// The cache directory.
        dir: PathBuf,
        /// wasmtime's error.
        source: wasmtime::Error,
    },
    /// The instance trapped earlier and can no longer be used; load the
    /// snapshot again.
    #[error(
        "this WASM instance trapped earlier and can no longer be used; load the snapshot again"
    )]
    Poisoned,
    /// The engine rejected the snapshot. `problems` lists every validation
    /// problem (empty for JSON syntax errors, which `message` describes).
    #[error("the snapshot was rejected: {message}")]
    Load {
        /// The engine's summary.
        message: String,
        /// Every validation problem.
        problems: Vec<Problem>,
    },
    /// The engine rejected an evaluation request (unknown handle, malformed
    /// request).
    #[error("the engine rejected the request: {0}")]
    BadRequest(String),
    /// The module broke the memory protocol or replied with unexpected JSON.
    #[error("protocol error talking to the WASM module: {0}")]
    Protocol(String),
}

/// A context encoded once for the module, to evaluate many flags or
/// calls with: an instance that last evaluated this very context knows it
/// by its identity and sends nothing, where a `&Value` is encoded again on
/// every call to be compared with the last one sent.
///
/// Like a LaunchDarkly `Context` (built once, immutable, passed to every
/// evaluation), it cannot change after it is made; clones share the
/// encoded bytes and the identity. Any engine of any runtime takes it.
///
/// ```no_run
/// # use bunting_wasm_host::{PreparedContext, WasmRuntime};
/// # use serde_json::json;
/// # let mut engine = WasmRuntime::locate()?.load_snapshot("")?;
/// let ctx = PreparedContext::new(&json!({"targetingKey": "user-1", "plan": "pro"}));
/// let checkout = engine.flag("new-checkout")?.expect("in the snapshot");
/// let r = engine.evaluate_prepared(checkout, None, &ctx, 0)?;
/// let all = engine.evaluate_all_prepared(&ctx, 0)?;
/// # Ok::<(), bunting_wasm_host::HostError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PreparedContext {
    /// Unique in the process: equal identities mean equal bytes.
    id: u64,
    /// The request's context part: the binary form of
    /// [`compact::write_context`], or JSON.
    bytes: Arc<[u8]>,
}

/// Identities of prepared contexts and loaded engines.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

impl PreparedContext {
    /// Prepares a JSON context; it evaluates as `context` does with
    /// [`WasmEngine::evaluate`].
    pub fn new(context: &Value) -> PreparedContext {
        let mut bytes = Vec::new();
        compact::write_context(context, &mut bytes);
        PreparedContext {
            id: next_id(),
            bytes: bytes.into(),
        }
    }

    /// Prepares any context that serializes to a JSON object, e.g. a
    /// [`bunting_core::Context`]; it evaluates as its JSON form does.
    pub fn serialized<C: Serialize + ?Sized>(context: &C) -> Result<PreparedContext, HostError> {
        let bytes = serde_json::to_vec(context)
            .map_err(|e| HostError::Protocol(format!("cannot serialize the context: {e}")))?;
        if bytes.is_empty() {
            return Err(HostError::Protocol(
                "the context serialized to nothing".into(),
            ));
        }
        Ok(PreparedContext {
            id: next_id(),
            bytes: bytes.into(),
        })
    }
}

/// A flag of one loaded snapshot, found by key once
/// ([`WasmEngine::flag`]): evaluating through it sends no key and the
/// module looks none up. It belongs to the engine that made it; another
/// engine refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlagHandle {
    engine: u64,
    position: u32,
}

/// The context part of a compact request, as the caller has it.
enum Sending<'v, C: ?Sized> {
    /// Encoded in the binary form on every call.
    Value(&'v Value),
    /// Serialized as JSON on every call.
    Serialized(&'v C),
    /// Encoded once; sent unless the instance holds it.
    Prepared(&'v PreparedContext),
}

/// What the module holds from the last compact call.
#[derive(Debug)]
enum LastContext {
    /// The bytes of a context encoded for that call.
    Bytes(Vec<u8>),
    /// A prepared context.
    Prepared(u64, Arc<[u8]>),
}

impl LastContext {
    fn bytes(&self) -> &[u8] {
        match self {
            LastContext::Bytes(b) => b,
            LastContext::Prepared(_, b) => b,
        }
    }
}

/// One flag, as a [`WasmEngine`] caller names it.
#[derive(Debug, Clone, Copy)]
enum Pick<'k> {
    Key(&'k str),
    /// A catalog position, from a [`FlagHandle`].
    At(u32),
}

/// What a compact call answers with: every result, or the one of a
/// one-flag call without a vector.
trait Answers<'c>: Sized {
    /// From a compact reply.
    fn decode(catalog: &'c Catalog, reply: &[u8], key: Option<&str>) -> Result<Self, CompactError>;
    /// From a JSON reply (`one`: of a one-flag call); `None` for the
    /// wrong kind.
    fn from_json(reply: EvalReply<'static>, one: bool) -> Option<Self>;
    /// The number of results.
    fn count(&self) -> usize;
}

impl<'c> Answers<'c> for Vec<Evaluation<'c>> {
    fn decode(catalog: &'c Catalog, reply: &[u8], key: Option<&str>) -> Result<Self, CompactError> {
        compact::decode(catalog, reply, key)
    }
    fn from_json(reply: EvalReply<'static>, one: bool) -> Option<Self> {
        match reply {
            EvalReply::One(e) if one => Some(vec![e]),
            EvalReply::All(all) if !one => Some(all),
            _ => None,
        }
    }
    fn count(&self) -> usize {
        self.len()
    }
}

impl<'c> Answers<'c> for Evaluation<'c> {
    fn decode(catalog: &'c Catalog, reply: &[u8], key: Option<&str>) -> Result<Self, CompactError> {
        compact::decode_one(catalog, reply, key)
    }
    fn from_json(reply: EvalReply<'static>, one: bool) -> Option<Self> {
        match reply {
            EvalReply::One(e) if one => Some(e),
            _ => None,
        }
    }
    fn count(&self) -> usize {
        1
    }
}

/// Which flags a compact call evaluates.
#[derive(Debug, Clone, Copy)]
enum Which<'k> {
    All,
    /// By key.
    Key(&'k str),
    /// By catalog position, with the key there.
    At(u32, &'k str),
}

/// A compiled bunting-core module, ready to instantiate.
///
/// Compiling is the expensive step (the module is JIT-compiled by Cranelift);
/// do it once and load as many snapshots from it as needed. Cloning is cheap
/// and the runtime is `Send + Sync`.
#[derive(Clone)]
pub struct WasmRuntime {
    engine: Engine,
    module: Module,
    options: RuntimeOptions,
    cache: Option<wasmtime::Cache>,
}

impl std::fmt::Debug for WasmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRuntime")
            .field("module", &self.module.name())
            .finish_non_exhaustive()
    }
}

impl WasmRuntime {
    /// Compiles the module in `bytes` and checks it speaks the bunting ABI.
    ///
    /// ```
    /// use bunting_wasm_host::{HostError, WasmRuntime};
    /// let err = WasmRuntime::from_bytes(b"not wasm").unwrap_err();
    /// assert!(matches!(err, HostError::Compile { .. }));
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<WasmRuntime, HostError> {
        WasmRuntime::from_bytes_with(bytes, &RuntimeOptions::default())
    }

    /// Compiles the module in `bytes` with `options`: a compilation cache
    /// directory (a later process with the same module and wasmtime version
    /// loads the compiled code instead of compiling), and the time budgets
    /// that bound every call.
    ///
    /// ```
    /// use bunting_wasm_host::{HostError, RuntimeOptions, WasmRuntime};
    /// let options = RuntimeOptions::default().cache_dir(std::env::temp_dir().join("bunting-doc"));
    /// let err = WasmRuntime::from_bytes_with(b"not wasm", &options).unwrap_err();
    /// assert!(matches!(err, HostError::Compile { .. }));
    /// ```
    pub fn from_bytes_with(
        bytes: &[u8],
        options: &RuntimeOptions,
    ) -> Result<WasmRuntime, HostError> {
        let mut config = wasmtime::Config::new();
        let bounded = options.call_budget.is_some() || options.load_budget.is_some();
        config.epoch_interruption(bounded);
        let cache = match &options.cache_dir {
            None => None,
            Some(dir) => {
                let mut cc = wasmtime::CacheConfig::new();
                cc.with_directory(dir);
                let cache = wasmtime::Cache::new(cc).map_err(|source| HostError::Cache {
                    dir: dir.clone(),
                    source,
                })?;
                config.cache(Some(cache.clone()));
                Some(cache)
            }
        };
        let engine = Engine::new(&config).map_err(|source| HostError::Compile { source })?;
        let module =
            Module::from_binary(&engine, bytes).map_err(|source| HostError::Compile { source })?;
        check_module(&module)?;
        if bounded {
            options::start_ticker(&engine);
        }
        Ok(WasmRuntime {
            engine,
            module,
            options: options.clone(),
            cache,
        })
    }

    /// The options this runtime was built with.
    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// Compilation-cache hits and misses of this runtime (`(0, 0)` without
    /// a cache directory): a hit means the module was loaded precompiled.
    pub fn cache_stats(&self) -> (usize, usize) {
        self.cache
            .as_ref()
            .map_or((0, 0), |c| (c.cache_hits(), c.cache_misses()))
    }

    /// Reads and compiles the module at `path`.
    ///
    /// ```no_run
    /// # use bunting_wasm_host::WasmRuntime;
    /// let runtime = WasmRuntime::from_file("target/wasm/bunting_core_abi.wasm")?;
    /// # Ok::<(), bunting_wasm_host::HostError>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<WasmRuntime, HostError> {
        WasmRuntime::from_file_with(path, &RuntimeOptions::default())
    }

    /// Reads and compiles the module at `path` with `options`.
    pub fn from_file_with(
        path: impl AsRef<Path>,
        options: &RuntimeOptions,
    ) -> Result<WasmRuntime, HostError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| HostError::Read {
            path: path.to_owned(),
            source,
        })?;
        WasmRuntime::from_bytes_with(&bytes, options)
    }

    /// Finds and compiles the module: the file named by `BUNTING_CORE_WASM`
    /// if set, else `wasm/bunting_core_abi.wasm` under `CARGO_TARGET_DIR` (if
    /// set) or under this workspace's `target/` directory. The error names
    /// every path tried and tells how to build the module.
    ///
    /// ```no_run
    /// # use bunting_wasm_host::WasmRuntime;
    /// let runtime = WasmRuntime::locate()?;
    /// # Ok::<(), bunting_wasm_host::HostError>(())
    /// ```
    pub fn locate() -> Result<WasmRuntime, HostError> {
        WasmRuntime::from_file(WasmRuntime::module_path()?)
    }

    /// Like [`WasmRuntime::locate`], with `options`.
    pub fn locate_with(options: &RuntimeOptions) -> Result<WasmRuntime, HostError> {
        WasmRuntime::from_file_with(WasmRuntime::module_path()?, options)
    }

    /// The path [`WasmRuntime::locate`] would load, if the file exists.
    pub fn module_path() -> Result<PathBuf, HostError> {
        let tried = match std::env::var_os(MODULE_ENV) {
            Some(p) if !p.is_empty() => vec![PathBuf::from(p)],
            _ => {
                let mut dirs = Vec::new();
                if let Some(t) = std::env::var_os("CARGO_TARGET_DIR").filter(|t| !t.is_empty()) {
                    dirs.push(PathBuf::from(t));
                }
                dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
                dirs.into_iter().map(|d| d.join(MODULE_IN_TARGET)).collect()
            }
        };
        match tried.iter().find(|p| p.is_file()) {
            Some(p) => Ok(p.clone()),
            None => Err(HostError::ModuleNotFound { tried }),
        }
    }

    /// Instantiates the module in a fresh store, for direct use of the ABI.
    /// Most callers want [`WasmRuntime::load_snapshot`] instead.
    pub fn instantiate(&self) -> Result<WasmInstance, HostError> {
        WasmInstance::new(self)
    }

    /// Loads a snapshot strictly: any validation problem rejects it with
    /// [`HostError::Load`], which lists every problem. The engine gets its own
    /// store and instance.
    ///
    /// ```no_run
    /// # use bunting_wasm_host::{HostError, WasmRuntime};
    /// let runtime = WasmRuntime::locate()?;
    /// match runtime.load_snapshot("{") {
    ///     Err(HostError::Load { message, problems }) => assert!(message.contains("line 1")),
    ///     _ => unreachable!(),
    /// }
    /// # Ok::<(), HostError>(())
    /// ```
    pub fn load_snapshot(&self, json: &str) -> Result<WasmEngine, HostError> {
        let mut instance = self.instantiate()?;
        let (handle, _) = instance.load(json, false)?;
        Ok(WasmEngine::new(instance, handle))
    }

    /// Loads a snapshot leniently: broken flags evaluate to errors instead of
    /// rejecting the whole snapshot; the problems found are returned. Only a
    /// document that does not parse at all is rejected.
    pub fn load_snapshot_lenient(
        &self,
        json: &str,
    ) -> Result<(WasmEngine, Vec<Problem>), HostError> {
        let mut instance = self.instantiate()?;
        let (handle, problems) = instance.load(json, true)?;
        Ok((WasmEngine::new(instance, handle), problems))
    }
}

fn signature(params: &[String], results: &[String]) -> String {
    format!("({}) -> ({})", params.join(", "), results.join(", "))
}

fn check_module(module: &Module) -> Result<(), HostError> {
    let imports: Vec<String> = module
        .imports()
        .map(|i| format!("{}::{}", i.module(), i.name()))
        .collect();
    if !imports.is_empty() {
        return Err(HostError::UnexpectedImports { imports });
    }
    let mut wanted: Vec<(&str, String)> = EXPORTS
        .iter()
        .map(|(name, params, results)| {
            let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            (*name, signature(&own(params), &own(results)))
        })
        .collect();
    wanted.push(("memory", "a memory".into()));
    for (name, expected) in wanted {
        let found = match module.get_export(name) {
            None => "it is missing".to_string(),
            Some(wasmtime::ExternType::Memory(_)) if name == "memory" => continue,
            Some(wasmtime::ExternType::Func(ft)) => {
                let params: Vec<String> = ft.params().map(|t| t.to_string()).collect();
                let results: Vec<String> = ft.results().map(|t| t.to_string()).collect();
                let got = signature(&params, &results);
                if got == expected {
                    continue;
                }
                format!("it has {got}")
            }
            Some(other) => format!("it is {other:?}"),
        };
        return Err(HostError::MissingExport {
            name: name.into(),
            expected,
            found,
        });
    }
    Ok(())
}

/// One instance of the module in its own wasmtime store: the raw ABI, with
/// any number of loaded snapshots addressed by handle.
///
/// [`WasmEngine`] wraps an instance holding one snapshot and is what most
/// callers want. An instance is `Send` but not `Sync`; calls take `&mut self`.
///
/// ```no_run
/// # use bunting_wasm_host::{HostError, WasmRuntime};
/// use bunting_core::protocol::EvalRequest;
/// let mut instance = WasmRuntime::locate()?.instantiate()?;
/// let (handle, _problems) = instance.load(r#"{"schemaVersion": 1, "environment": "dev",
///   "version": 1, "generatedAt": "2026-11-25T00:00:00Z", "flags": []}"#, false)?;
/// let req = EvalRequest { flag: None, context: serde_json::json!({}), now_ms: 0, expected_type: None };
/// assert_eq!(instance.answer(handle, &req)?, serde_json::json!([]));
/// instance.unload(handle)?;
/// assert!(matches!(instance.answer(handle, &req), Err(HostError::BadRequest(_))));
/// # Ok::<(), HostError>(())
/// ```
pub struct WasmInstance {
    store: Store<()>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    free: TypedFunc<(i32, i32), ()>,
    load: TypedFunc<(i32, i32, i32), i64>,
    eval: TypedFunc<(i32, i32, i32), i64>,
    unload: TypedFunc<i32, ()>,
    hash_keys: TypedFunc<(i32, i32), i64>,
    schema_version: TypedFunc<(), i32>,
    catalog: TypedFunc<i32, i64>,
    eval_into: TypedFunc<(i32, i32, i32), i64>,
    poisoned: bool,
    /// A request buffer inside the module, reused across calls:
    /// `(ptr, capacity)`. Saves an alloc and a free per evaluation.
    scratch: Option<(i32, i32)>,
    /// The host-side request bytes, reused across calls.
    request: Vec<u8>,
    /// The context the module holds from the last compact call, if known
    /// (`None` after a failed call).
    last_context: Option<LastContext>,
    options: RuntimeOptions,
    /// The budget of the call in progress.
    armed: Option<Duration>,
}

impl std::fmt::Debug for WasmInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmInstance")
            .field("memory_bytes", &self.memory.data_size(&self.store))
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl WasmInstance {
    fn new(runtime: &WasmRuntime) -> Result<WasmInstance, HostError> {
        let mut store = Store::new(&runtime.engine, ());
        let instance = Instance::new(&mut store, &runtime.module, &[])
            .map_err(|source| HostError::Instantiate { source })?;
        let missing = |name: &str, e: wasmtime::Error| HostError::MissingExport {
            name: name.into(),
            expected: "a function of the bunting ABI".into(),
            found: e.to_string(),
        };
        macro_rules! func {
            ($name:literal) => {
                instance
                    .get_typed_func(&mut store, $name)
                    .map_err(|e| missing($name, e))?
            };
        }
        let memory =
            instance
                .get_memory(&mut store, "memory")
                .ok_or_else(|| HostError::MissingExport {
                    name: "memory".into(),
                    expected: "a memory".into(),
                    found: "it is missing".into(),
                })?;
        Ok(WasmInstance {
            alloc: func!("bunting_alloc"),
            free: func!("bunting_free"),
            load: func!("bunting_load"),
            eval: func!("bunting_eval"),
            unload: func!("bunting_unload"),
            hash_keys: func!("bunting_hash_keys"),
            schema_version: func!("bunting_schema_version"),
            catalog: func!("bunting_catalog"),
            eval_into: func!("bunting_eval_into"),
            memory,
            store,
            poisoned: false,
            scratch: None,
            request: Vec::new(),
            last_context: None,
            options: runtime.options.clone(),
            armed: None,
        })
    }

    /// Whether a call trapped; every later call fails with [`HostError::Poisoned`].
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    fn guard<T>(
        &mut self,
        call: &'static str,
        r: Result<T, wasmtime::Error>,
    ) -> Result<T, HostError> {
        r.map_err(|source| {
            self.poisoned = true;
            if source.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
                return HostError::Timeout {
                    call,
                    budget: self.armed.unwrap_or_default(),
                };
            }
            HostError::Trap { call, source }
        })
    }

    /// Arms the epoch deadline for the next call (a no-op without budgets).
    fn arm(&mut self, budget: Option<Duration>) {
        self.armed = budget;
        if self.options.call_budget.is_some() || self.options.load_budget.is_some() {
            self.store
                .set_epoch_deadline(budget.map_or(u64::MAX / 2, options::ticks));
        }
    }

    /// Copies `bytes` into the reused request buffer, growing it (to a power
    /// of two) when too small: `(ptr, len)`.
    fn write_scratch(&mut self, bytes: &[u8]) -> Result<(i32, i32), HostError> {
        if self.poisoned {
            return Err(HostError::Poisoned);
        }
        let len = i32::try_from(bytes.len())
            .map_err(|_| HostError::Protocol(format!("{} bytes are too many", bytes.len())))?;
        let ptr = match self.scratch {
            Some((ptr, cap)) if cap >= len => ptr,
            old => {
                if let Some(region) = old {
                    self.scratch = None;
                    self.arm(self.options.call_budget);
                    let r = self.free.call(&mut self.store, region);
                    self.guard("bunting_free", r)?;
                }
                let cap = i32::try_from((bytes.len().max(256)).next_power_of_two())
                    .map_err(|_| HostError::Protocol(format!("{len} bytes are too many")))?;
                self.arm(self.options.call_budget);
                let r = self.alloc.call(&mut self.store, cap);
                let ptr = self.guard("bunting_alloc", r)?;
                self.scratch = Some((ptr, cap));
                ptr
            }
        };
        self.memory
            .write(&mut self.store, ptr as u32 as usize, bytes)
            .map_err(|e| {
                HostError::Protocol(format!(
                    "the request buffer at {ptr:#x} lies outside memory: {e}"
                ))
            })?;
        Ok((ptr, len))
    }

    /// Calls `bunting_eval` with the request in `self.request`, hands the
    /// reply (still inside the module's memory, not copied) to `read`, then
    /// frees it.
    fn eval_with<T>(&mut self, handle: u32, read: impl FnOnce(&[u8]) -> T) -> Result<T, HostError> {
        let request = std::mem::take(&mut self.request);
        let written = self.write_scratch(&request);
        self.request = request;
        let (ptr, len) = written?;
        self.arm(self.options.call_budget);
        let r = self.eval.call(&mut self.store, (handle as i32, ptr, len));
        let packed = self.guard("bunting_eval", r)? as u64;
        let (rptr, rlen) = ((packed >> 32) as u32, packed as u32);
        let start = rptr as usize;
        let out = match self
            .memory
            .data(&self.store)
            .get(start..start.saturating_add(rlen as usize))
        {
            Some(reply) => read(reply),
            None => {
                return Err(HostError::Protocol(format!(
                    "reply of {rlen} bytes at {rptr:#x} lies outside memory"
                )));
            }
        };
        let r = self.free.call(&mut self.store, (rptr as i32, rlen as i32));
        self.guard("bunting_free", r)?;
        Ok(out)
    }

    /// Serializes a request into the reused request buffer.
    fn encode(
        &mut self,
        flag: Option<&str>,
        context: &Value,
        now_ms: i64,
        expected_type: Option<FlagType>,
    ) -> Result<(), HostError> {
        self.request.clear();
        let req = RequestRef {
            flag,
            context,
            now_ms,
            expected_type,
        };
        serde_json::to_writer(&mut self.request, &req)
            .map_err(|e| HostError::Protocol(format!("cannot serialize the request: {e}")))
    }

    /// Evaluates one flag (`flag` set) or all flags and appends the raw
    /// reply — `{"one": evaluation}` or `{"all": [evaluation…]}`, the
    /// [`EvalReply`] JSON — to `out`, without parsing it: the fastest path
    /// for a caller that forwards JSON (an OFREP bulk answer, a bootstrap
    /// payload for a browser).
    pub fn evaluate_raw_into(
        &mut self,
        handle: u32,
        flag: Option<&str>,
        context: &Value,
        now_ms: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), HostError> {
        self.encode(flag, context, now_ms, None)?;
        self.eval_with(handle, |reply| out.extend_from_slice(reply))
    }

    /// Evaluates one flag (`flag` set) or every flag and parses the reply
    /// straight out of the module's memory (no copy, no request clone).
    pub fn evaluate_ref(
        &mut self,
        handle: u32,
        flag: Option<&str>,
        expected: Option<FlagType>,
        context: &Value,
        now_ms: i64,
    ) -> Result<Vec<Evaluation<'static>>, HostError> {
        self.encode(flag, context, now_ms, expected)?;
        let parsed = self.eval_with(handle, |reply| {
            serde_json::from_slice::<EvalReply<'static>>(reply)
                .map_err(|e| bad_reply("bunting_eval", e, reply))
        })??;
        match parsed {
            EvalReply::One(e) if flag.is_some() => Ok(vec![e]),
            EvalReply::All(all) if flag.is_none() => Ok(all),
            EvalReply::BadRequest(m) => Err(HostError::BadRequest(m)),
            _ => Err(HostError::Protocol(
                "unexpected reply from bunting_eval (wrong reply kind)".into(),
            )),
        }
    }

    /// Copies `bytes` into a fresh module buffer: `(ptr, len)`.
    fn write(&mut self, bytes: &[u8], budget: Option<Duration>) -> Result<(i32, i32), HostError> {
        if self.poisoned {
            return Err(HostError::Poisoned);
        }
        let len = i32::try_from(bytes.len())
            .map_err(|_| HostError::Protocol(format!("{} bytes are too many", bytes.len())))?;
        self.arm(budget);
        let r = self.alloc.call(&mut self.store, len);
        let ptr = self.guard("bunting_alloc", r)?;
        self.memory
            .write(&mut self.store, ptr as u32 as usize, bytes)
            .map_err(|e| {
                HostError::Protocol(format!(
                    "bunting_alloc({len}) returned {ptr:#x}, outside memory: {e}"
                ))
            })?;
        Ok((ptr, len))
    }

    /// Copies out and frees the reply a call returned, then frees the request.
    fn take_reply(
        &mut self,
        packed: i64,
        request: (i32, i32),
        budget: Option<Duration>,
    ) -> Result<Vec<u8>, HostError> {
        let packed = packed as u64;
        let (ptr, len) = ((packed >> 32) as u32, packed as u32);
        let start = ptr as usize;
        let bytes = self
            .memory
            .data(&self.store)
            .get(start..start.saturating_add(len as usize))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                HostError::Protocol(format!(
                    "reply of {len} bytes at {ptr:#x} lies outside memory"
                ))
            })?;
        self.arm(budget);
        let r = self.free.call(&mut self.store, (ptr as i32, len as i32));
        self.guard("bunting_free", r)?;
        let r = self.free.call(&mut self.store, request);
        self.guard("bunting_free", r)?;
        Ok(bytes)
    }

    /// Calls `bunting_load`: loads a snapshot and returns its handle and, for
    /// lenient loads, the problems skipped. A rejected snapshot is
    /// [`HostError::Load`].
    pub fn load(&mut self, json: &str, lenient: bool) -> Result<(u32, Vec<Problem>), HostError> {
        let budget = self.options.load_budget;
        let (ptr, len) = self.write(json.as_bytes(), budget)?;
        self.arm(self.options.load_budget);
        let r = self
            .load
            .call(&mut self.store, (ptr, len, i32::from(lenient)));
        let packed = self.guard("bunting_load", r)?;
        let reply = self.take_reply(packed, (ptr, len), budget)?;
        match serde_json::from_slice::<LoadReply>(&reply) {
            Ok(LoadReply::Ok { handle, problems }) => Ok((handle, problems)),
            Ok(LoadReply::Error(e)) => Err(HostError::Load {
                message: e.message,
                problems: e.problems,
            }),
            Err(e) => Err(bad_reply("bunting_load", e, &reply)),
        }
    }

    /// Calls `bunting_eval` with raw request bytes and returns the raw reply
    /// bytes (an `EvalReply` document), for testing the boundary itself.
    pub fn eval_raw(&mut self, handle: u32, request: &[u8]) -> Result<Vec<u8>, HostError> {
        let budget = self.options.call_budget;
        let (ptr, len) = self.write(request, budget)?;
        self.arm(self.options.call_budget);
        let r = self.eval.call(&mut self.store, (handle as i32, ptr, len));
        let packed = self.guard("bunting_eval", r)?;
        self.take_reply(packed, (ptr, len), budget)
    }

    /// Answers `req` against snapshot `handle`, returning the result JSON: an
    /// evaluation object when `req.flag` is set, else an array of them (the
    /// shape [`bunting_core::conformance::Case::check`] takes). An unknown
    /// handle or a malformed request is [`HostError::BadRequest`].
    pub fn answer(&mut self, handle: u32, req: &EvalRequest) -> Result<Value, HostError> {
        let reply = self.request(handle, req)?;
        let parsed = serde_json::from_slice::<Value>(&reply)
            .map_err(|e| bad_reply("bunting_eval", e, &reply))?;
        let Value::Object(map) = parsed else {
            return Err(bad_reply("bunting_eval", "not an object", &reply));
        };
        let mut entries = map.into_iter();
        match (entries.next(), entries.next()) {
            (Some((tag, body)), None) => match (tag.as_str(), body) {
                ("one", v @ Value::Object(_)) | ("all", v @ Value::Array(_)) => Ok(v),
                ("badRequest", Value::String(m)) => Err(HostError::BadRequest(m)),
                _ => Err(bad_reply("bunting_eval", "unknown reply", &reply)),
            },
            _ => Err(bad_reply("bunting_eval", "not a single-key object", &reply)),
        }
    }

    fn request(&mut self, handle: u32, req: &EvalRequest) -> Result<Vec<u8>, HostError> {
        let bytes = serde_json::to_vec(req)
            .map_err(|e| HostError::Protocol(format!("cannot serialize the request: {e}")))?;
        self.eval_raw(handle, &bytes)
    }

    /// Answers `req` against snapshot `handle` as typed evaluations.
    pub fn evaluate(
        &mut self,
        handle: u32,
        req: &EvalRequest,
    ) -> Result<Vec<Evaluation<'static>>, HostError> {
        let reply = self.request(handle, req)?;
        match serde_json::from_slice::<EvalReply<'static>>(&reply) {
            Ok(EvalReply::One(e)) if req.flag.is_some() => Ok(vec![e]),
            Ok(EvalReply::All(all)) if req.flag.is_none() => Ok(all),
            Ok(EvalReply::BadRequest(m)) => Err(HostError::BadRequest(m)),
            Ok(_) => Err(bad_reply("bunting_eval", "wrong reply kind", &reply)),
            Err(e) => Err(bad_reply("bunting_eval", e, &reply)),
        }
    }

    /// Calls `bunting_catalog`: what the compact replies of snapshot
    /// `handle` index (every flag's key, variants, rule ids and metadata).
    /// An unknown handle is [`HostError::BadRequest`].
    pub fn catalog(&mut self, handle: u32) -> Result<Catalog, HostError> {
        if self.poisoned {
            return Err(HostError::Poisoned);
        }
        self.arm(self.options.load_budget);
        let r = self.catalog.call(&mut self.store, handle as i32);
        let packed = self.guard("bunting_catalog", r)? as u64;
        let (ptr, len) = ((packed >> 32) as u32, packed as u32);
        let parsed = match self
            .memory
            .data(&self.store)
            .get(ptr as usize..(ptr as usize).saturating_add(len as usize))
        {
            Some(reply) => serde_json::from_slice::<Option<Catalog>>(reply)
                .map_err(|e| bad_reply("bunting_catalog", e, reply)),
            None => Err(HostError::Protocol(format!(
                "reply of {len} bytes at {ptr:#x} lies outside memory"
            ))),
        };
        let r = self.free.call(&mut self.store, (ptr as i32, len as i32));
        self.guard("bunting_free", r)?;
        parsed?.ok_or_else(|| HostError::BadRequest(format!("no engine with handle {handle}")))
    }

    /// Evaluates one flag (`flag` set) or every flag of snapshot `handle`
    /// through `bunting_eval_into`: the module answers with fixed-size
    /// records indexing `catalog` (its [`WasmInstance::catalog`]), and the
    /// evaluations borrow their values, variants, rule ids and metadata from
    /// it — no JSON per result on either side (see
    /// [`bunting_core::compact`]).
    pub fn evaluate_compact<'c>(
        &mut self,
        handle: u32,
        catalog: &'c Catalog,
        flag: Option<&str>,
        expected: Option<FlagType>,
        context: &Value,
        now_ms: i64,
    ) -> Result<Vec<Evaluation<'c>>, HostError> {
        let which = flag.map_or(Which::All, Which::Key);
        self.compact_call::<Value, Vec<Evaluation<'c>>>(
            handle,
            catalog,
            which,
            expected,
            Sending::Value(context),
            now_ms,
        )
    }

    /// [`WasmInstance::evaluate_compact`] for any context that serializes
    /// to a JSON object, e.g. a [`bunting_core::Context`]: it travels as
    /// JSON (a `Value` context travels in the binary form of
    /// [`compact::write_context`]).
    pub fn evaluate_compact_serialized<'c, C: Serialize + ?Sized>(
        &mut self,
        handle: u32,
        catalog: &'c Catalog,
        flag: Option<&str>,
        expected: Option<FlagType>,
        context: &C,
        now_ms: i64,
    ) -> Result<Vec<Evaluation<'c>>, HostError> {
        let which = flag.map_or(Which::All, Which::Key);
        let context = Sending::Serialized(context);
        self.compact_call(handle, catalog, which, expected, context, now_ms)
    }

    /// [`WasmInstance::evaluate_compact`] with a [`PreparedContext`], sent
    /// only when this instance does not hold it already.
    pub fn evaluate_compact_prepared<'c>(
        &mut self,
        handle: u32,
        catalog: &'c Catalog,
        flag: Option<&str>,
        expected: Option<FlagType>,
        context: &PreparedContext,
        now_ms: i64,
    ) -> Result<Vec<Evaluation<'c>>, HostError> {
        let which = flag.map_or(Which::All, Which::Key);
        let context = Sending::<Value>::Prepared(context);
        self.compact_call(handle, catalog, which, expected, context, now_ms)
    }

    /// The compact call. The module keeps the last context, so one the
    /// instance holds is not sent again: a prepared context known by its
    /// identity, any other by its encoded bytes.
    fn compact_call<'c, C: Serialize + ?Sized, A: Answers<'c>>(
        &mut self,
        handle: u32,
        catalog: &'c Catalog,
        which: Which<'_>,
        expected: Option<FlagType>,
        context: Sending<'_, C>,
        now_ms: i64,
    ) -> Result<A, HostError> {
        let (flag, one) = match which {
            Which::All => (None, false),
            Which::Key(k) | Which::At(_, k) => (Some(k), true),
        };
        let (sent, at) = self.compact_send(handle, which, expected, context, now_ms)?;
        let reply = &self.memory.data(&self.store)[at];
        let parsed = if reply.starts_with(&compact::MAGIC.to_le_bytes()) {
            A::decode(catalog, reply, flag).map_err(|e| bad_reply("bunting_eval_into", e, &[]))
        } else {
            // A result the catalog cannot express, or a bad request: JSON.
            match serde_json::from_slice::<EvalReply<'static>>(reply) {
                Ok(EvalReply::BadRequest(m)) => Err(HostError::BadRequest(m)),
                Ok(r) => A::from_json(r, one)
                    .ok_or_else(|| bad_reply("bunting_eval_into", "wrong reply kind", reply)),
                Err(e) => Err(bad_reply("bunting_eval_into", e, reply)),
            }
        };
        self.answered(parsed.is_ok(), sent);
        let parsed = parsed?;
        match (one, A::count(&parsed)) {
            (true, 1) | (false, _) => Ok(parsed),
            (true, n) => Err(HostError::Protocol(format!(
                "bunting_eval_into answered {n} results for one flag"
            ))),
        }
    }

    /// An evaluate-all through the compact boundary, its reply left in the
    /// module's memory and decoded on access ([`Evaluations`]): checked
    /// here, in one pass that builds nothing.
    fn compact_all<'c, C: Serialize + ?Sized>(
        &'c mut self,
        handle: u32,
        indexed: &'c Indexed,
        context: Sending<'_, C>,
        now_ms: i64,
    ) -> Result<Evaluations<'c>, HostError> {
        let (sent, at) = self.compact_send(handle, Which::All, None, context, now_ms)?;
        let reply = &self.memory.data(&self.store)[at.clone()];
        let checked = if reply.starts_with(&compact::MAGIC.to_le_bytes()) {
            all::check(&indexed.catalog, reply)
                .map(Checked::Compact)
                .map_err(|e| bad_reply("bunting_eval_into", e, &[]))
        } else {
            match serde_json::from_slice::<EvalReply<'static>>(reply) {
                Ok(EvalReply::BadRequest(m)) => Err(HostError::BadRequest(m)),
                Ok(EvalReply::All(all)) => Ok(Checked::Json(all)),
                Ok(_) => Err(bad_reply("bunting_eval_into", "wrong reply kind", reply)),
                Err(e) => Err(bad_reply("bunting_eval_into", e, reply)),
            }
        };
        self.answered(checked.is_ok(), sent);
        let checked = checked?;
        let this: &'c WasmInstance = self;
        let reply = &this.memory.data(&this.store)[at];
        Ok(Evaluations::new(indexed, reply, checked))
    }

    /// After a compact call: only a call that answered tells that the
    /// module holds the context it sent.
    fn answered(&mut self, ok: bool, sent: Option<LastContext>) {
        match sent {
            Some(sent) if ok => self.last_context = Some(sent),
            _ if ok => {}
            _ => self.last_context = None,
        }
    }

    /// Writes a compact request and calls `bunting_eval_into`: the context
    /// the module will hold if the call answers (`None`: unchanged), and
    /// where the reply lies in the module's memory (checked).
    fn compact_send<C: Serialize + ?Sized>(
        &mut self,
        handle: u32,
        which: Which<'_>,
        expected: Option<FlagType>,
        context: Sending<'_, C>,
        now_ms: i64,
    ) -> Result<(Option<LastContext>, std::ops::Range<usize>), HostError> {
        self.request.clear();
        match which {
            Which::All => compact::Request::write_head(None, expected, now_ms, &mut self.request),
            Which::Key(k) => {
                compact::Request::write_head(Some(k), expected, now_ms, &mut self.request)
            }
            Which::At(p, _) => {
                compact::Request::write_head_at(p, expected, now_ms, &mut self.request)
            }
        }
        let head = self.request.len();
        let sent = match context {
            Sending::Prepared(p) => match &self.last_context {
                Some(LastContext::Prepared(id, _)) if *id == p.id => None,
                _ => {
                    self.request.extend_from_slice(&p.bytes);
                    Some(LastContext::Prepared(p.id, p.bytes.clone()))
                }
            },
            Sending::Value(v) => {
                compact::write_context(v, &mut self.request);
                self.changed(head)
            }
            Sending::Serialized(c) => {
                serde_json::to_writer(&mut self.request, c).map_err(|e| {
                    HostError::Protocol(format!("cannot serialize the context: {e}"))
                })?;
                if self.request.len() == head {
                    return Err(HostError::Protocol(
                        "the context serialized to nothing".into(),
                    ));
                }
                self.changed(head)
            }
        };
        let request = std::mem::take(&mut self.request);
        let written = self.write_scratch(&request);
        self.request = request;
        let (ptr, len) = match written {
            Ok(w) => w,
            Err(e) => {
                self.last_context = None;
                return Err(e);
            }
        };
        self.arm(self.options.call_budget);
        let r = self
            .eval_into
            .call(&mut self.store, (handle as i32, ptr, len));
        let packed = match self.guard("bunting_eval_into", r) {
            Ok(p) => p as u64,
            Err(e) => {
                self.last_context = None;
                return Err(e);
            }
        };
        let (rptr, rlen) = ((packed >> 32) as u32, packed as u32);
        let start = rptr as usize;
        let at = start..start.saturating_add(rlen as usize);
        if self.memory.data(&self.store).get(at.clone()).is_none() {
            self.last_context = None;
            return Err(HostError::Protocol(format!(
                "reply of {rlen} bytes at {rptr:#x} lies outside memory"
            )));
        }
        Ok((sent, at))
    }

    /// After a context was encoded into `self.request[head..]`: what the
    /// module will hold once the call answers, if that changes it; else
    /// the context is cut from the request (the module has those bytes).
    fn changed(&mut self, head: usize) -> Option<LastContext> {
        let encoded = &self.request[head..];
        if self.last_context.as_ref().map(LastContext::bytes) == Some(encoded) {
            self.request.truncate(head);
            return None;
        }
        // Keep the buffer of the context sent before, for this one.
        let mut bytes = match self.last_context.take() {
            Some(LastContext::Bytes(b)) => b,
            _ => Vec::new(),
        };
        bytes.clear();
        bytes.extend_from_slice(encoded);
        Some(LastContext::Bytes(bytes))
    }

    /// Calls `bunting_schema_version`: the snapshot schema version the
    /// module reads ([`bunting_core::model::SCHEMA_VERSION`] of its build).
    pub fn schema_version(&mut self) -> Result<u32, HostError> {
        if self.poisoned {
            return Err(HostError::Poisoned);
        }
        self.arm(self.options.call_budget);
        let r = self.schema_version.call(&mut self.store, ());
        let v = self.guard("bunting_schema_version", r)?;
        u32::try_from(v).map_err(|_| HostError::Protocol(format!("schema version {v}")))
    }

    /// Calls `bunting_hash_keys`: the keyed hash of each `targetingKey`
    /// value (see [`bunting_core::keyhash::KeyHasher`]), `None` for values
    /// that are neither strings nor numbers.
    pub fn hash_keys(
        &mut self,
        secret: &str,
        keys: &[Value],
    ) -> Result<Vec<Option<String>>, HostError> {
        let req = bunting_core::protocol::HashRequest {
            secret: secret.to_owned(),
            keys: keys.to_vec(),
        };
        let bytes = serde_json::to_vec(&req)
            .map_err(|e| HostError::Protocol(format!("cannot serialize the request: {e}")))?;
        let budget = self.options.call_budget;
        let (ptr, len) = self.write(&bytes, budget)?;
        self.arm(self.options.call_budget);
        let r = self.hash_keys.call(&mut self.store, (ptr, len));
        let packed = self.guard("bunting_hash_keys", r)?;
        let reply = self.take_reply(packed, (ptr, len), budget)?;
        match serde_json::from_slice::<bunting_core::protocol::HashReply>(&reply) {
            Ok(r) if r.hashes.len() == keys.len() => Ok(r.hashes),
            Ok(_) => Err(bad_reply(
                "bunting_hash_keys",
                "wrong number of hashes",
                &reply,
            )),
            Err(_) => match serde_json::from_slice::<EvalReply<'_>>(&reply) {
                Ok(EvalReply::BadRequest(m)) => Err(HostError::BadRequest(m)),
                _ => Err(bad_reply("bunting_hash_keys", "unknown reply", &reply)),
            },
        }
    }

    /// Calls `bunting_unload`: drops snapshot `handle` inside the instance.
    /// Unknown handles are ignored.
    pub fn unload(&mut self, handle: u32) -> Result<(), HostError> {
        if self.poisoned {
            return Err(HostError::Poisoned);
        }
        self.arm(self.options.call_budget);
        let r = self.unload.call(&mut self.store, handle as i32);
        self.guard("bunting_unload", r)
    }
}

/// [`EvalRequest`] borrowing its context: no clone per evaluation.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestRef<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    flag: Option<&'a str>,
    context: &'a Value,
    now_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected_type: Option<FlagType>,
}

fn bad_reply(call: &str, why: impl std::fmt::Display, reply: &[u8]) -> HostError {
    let text = String::from_utf8_lossy(reply);
    let shown: String = text.chars().take(200).collect();
    HostError::Protocol(format!("unexpected reply from {call} ({why}): {shown}"))
}

/// A snapshot loaded into its own WASM instance: the engine as a host sees it.
///
/// Methods take `&mut self` (the wasmtime store is mutated by every call); the
/// engine is `Send`, so wrap it in a `Mutex` or keep one per thread to share.
///
/// ```no_run
/// # use bunting_wasm_host::WasmRuntime;
/// # use serde_json::json;
/// # let runtime = WasmRuntime::locate()?;
/// # let snapshot = "";
/// let mut engine = runtime.load_snapshot(snapshot)?;
/// for e in engine.evaluate_all(&json!({"targetingKey": "user-1"}), 1_764_000_000_000)? {
///     println!("{} = {:?} ({})", e.key, e.value, e.reason.as_str());
/// }
/// # Ok::<(), bunting_wasm_host::HostError>(())
/// ```
#[derive(Debug)]
pub struct WasmEngine {
    instance: WasmInstance,
    handle: u32,
    /// What compact replies index, fetched on the first typed evaluation.
    catalog: Option<Indexed>,
    /// Unique in the process, for the [`FlagHandle`]s this engine makes.
    id: u64,
}

/// A catalog and the catalog position of each key.
#[derive(Debug)]
struct Indexed {
    catalog: Catalog,
    /// A key the catalog has twice (never, but a module could answer so)
    /// is left out: it is sent by key.
    positions: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
}

impl Indexed {
    fn new(catalog: Catalog) -> Indexed {
        let mut positions: HashMap<Box<str>, Option<u32>, _> = HashMap::with_capacity_and_hasher(
            catalog.flags.len(),
            foldhash::fast::RandomState::default(),
        );
        for (i, f) in catalog.flags.iter().enumerate() {
            positions
                .entry(f.key.as_str().into())
                .and_modify(|seen| *seen = None)
                .or_insert(u32::try_from(i).ok());
        }
        let positions = positions
            .into_iter()
            .filter_map(|(k, p)| Some((k, p?)))
            .collect();
        Indexed { catalog, positions }
    }
}

impl WasmEngine {
    fn new(instance: WasmInstance, handle: u32) -> WasmEngine {
        WasmEngine {
            instance,
            handle,
            catalog: None,
            id: next_id(),
        }
    }
}

impl WasmEngine {
    /// The handle of the snapshot inside the instance.
    pub fn handle(&self) -> u32 {
        self.handle
    }

    /// The underlying instance, e.g. to load more snapshots into it.
    pub fn instance(&mut self) -> &mut WasmInstance {
        &mut self.instance
    }

    /// Evaluates `flag` for `context` at `now_ms` (Unix milliseconds).
    /// Evaluation problems (unknown flag, bad context…) are reported inside the
    /// [`Evaluation`] with reason `ERROR`, as natively; `Err` means the host
    /// itself failed.
    ///
    /// ```no_run
    /// # use bunting_wasm_host::WasmRuntime;
    /// # use serde_json::json;
    /// # let mut engine = WasmRuntime::locate()?.load_snapshot("")?;
    /// let r = engine.evaluate("no-such-flag", &json!({}), 0)?;
    /// assert_eq!(r.error_code.map(|c| c.as_str()), Some("FLAG_NOT_FOUND"));
    /// # Ok::<(), bunting_wasm_host::HostError>(())
    /// ```
    pub fn evaluate(
        &mut self,
        flag: &str,
        context: &Value,
        now_ms: i64,
    ) -> Result<Evaluation<'_>, HostError> {
        self.evaluate_typed(flag, None, context, now_ms)
    }

    /// Like [`WasmEngine::evaluate`], failing with `TYPE_MISMATCH` when the
    /// flag is not of type `expected`.
    pub fn evaluate_typed(
        &mut self,
        flag: &str,
        expected: Option<FlagType>,
        context: &Value,
        now_ms: i64,
    ) -> Result<Evaluation<'_>, HostError> {
        self.compact(
            Some(Pick::Key(flag)),
            expected,
            Sending::<Value>::Value(context),
            now_ms,
        )
    }

    /// Evaluates every flag, in snapshot order: the batch call. Results
    /// borrow their values, variants, rule ids and metadata from the
    /// engine ([`Evaluation::into_owned`] detaches one).
    pub fn evaluate_all(
        &mut self,
        context: &Value,
        now_ms: i64,
    ) -> Result<Vec<Evaluation<'_>>, HostError> {
        self.compact(None, None, Sending::<Value>::Value(context), now_ms)
    }

    /// [`WasmEngine::evaluate_typed`] for any context that serializes to a
    /// JSON object, e.g. a [`bunting_core::Context`]: it evaluates as its
    /// JSON form does.
    ///
    /// ```no_run
    /// # use bunting_wasm_host::WasmRuntime;
    /// # let mut engine = WasmRuntime::locate()?.load_snapshot("")?;
    /// let ctx = bunting_core::Context::new().with_targeting_key("user-1").with("plan", "pro");
    /// let r = engine.evaluate_typed_serialized("new-checkout", None, &ctx, 0)?;
    /// # Ok::<(), bunting_wasm_host::HostError>(())
    /// ```
    pub fn evaluate_typed_serialized<C: Serialize + ?Sized>(
        &mut self,
        flag: &str,
        expected: Option<FlagType>,
        context: &C,
        now_ms: i64,
    ) -> Result<Evaluation<'_>, HostError> {
        self.compact(
            Some(Pick::Key(flag)),
            expected,
            Sending::Serialized(context),
            now_ms,
        )
    }

    /// [`WasmEngine::evaluate_all`] for any context that serializes to a
    /// JSON object, e.g. a [`bunting_core::Context`].
    pub fn evaluate_all_serialized<C: Serialize + ?Sized>(
        &mut self,
        context: &C,
        now_ms: i64,
    ) -> Result<Vec<Evaluation<'_>>, HostError> {
        self.compact(None, None, Sending::Serialized(context), now_ms)
    }

    /// Finds flag `key` once, for [`WasmEngine::evaluate_prepared`]
    /// (`None`: the snapshot has no such flag, which
    /// [`WasmEngine::evaluate`] answers with `FLAG_NOT_FOUND`).
    pub fn flag(&mut self, key: &str) -> Result<Option<FlagHandle>, HostError> {
        let id = self.id;
        Ok(self
            .indexed()?
            .positions
            .get(key)
            .map(|&position| FlagHandle {
                engine: id,
                position,
            }))
    }

    /// Evaluates `flag` for a [`PreparedContext`]: the fastest one-flag
    /// call, with no key sent or looked up and the context sent only when
    /// this engine's instance does not hold it already. As
    /// [`WasmEngine::evaluate_typed`] answers for the same key and context.
    /// A handle of another engine is [`HostError::BadRequest`].
    pub fn evaluate_prepared(
        &mut self,
        flag: FlagHandle,
        expected: Option<FlagType>,
        context: &PreparedContext,
        now_ms: i64,
    ) -> Result<Evaluation<'_>, HostError> {
        if flag.engine != self.id {
            return Err(HostError::BadRequest(
                "a flag handle of another engine".into(),
            ));
        }
        let sending = Sending::<Value>::Prepared(context);
        self.compact(Some(Pick::At(flag.position)), expected, sending, now_ms)
    }

    /// [`WasmEngine::evaluate_all`] for a [`PreparedContext`], sent only
    /// when this engine's instance does not hold it already.
    pub fn evaluate_all_prepared(
        &mut self,
        context: &PreparedContext,
        now_ms: i64,
    ) -> Result<Vec<Evaluation<'_>>, HostError> {
        self.compact(None, None, Sending::<Value>::Prepared(context), now_ms)
    }

    /// [`WasmEngine::evaluate_all`] read in place: the batch call for a
    /// caller that reads some of the results, or some of their fields. The
    /// module's reply is checked in one pass and left where it is; a
    /// result's fields are decoded only when read ([`Evaluations::find`],
    /// [`Evaluations::get`], [`Evaluations::iter`]), and are those of the
    /// result `evaluate_all` returns at the same index.
    pub fn evaluate_all_view(
        &mut self,
        context: &Value,
        now_ms: i64,
    ) -> Result<Evaluations<'_>, HostError> {
        self.all_view(Sending::<Value>::Value(context), now_ms)
    }

    /// [`WasmEngine::evaluate_all_view`] for a [`PreparedContext`], sent
    /// only when this engine's instance does not hold it already.
    pub fn evaluate_all_prepared_view(
        &mut self,
        context: &PreparedContext,
        now_ms: i64,
    ) -> Result<Evaluations<'_>, HostError> {
        self.all_view(Sending::<Value>::Prepared(context), now_ms)
    }

    /// [`WasmEngine::evaluate_all_view`] for any context that serializes
    /// to a JSON object, e.g. a [`bunting_core::Context`].
    pub fn evaluate_all_serialized_view<C: Serialize + ?Sized>(
        &mut self,
        context: &C,
        now_ms: i64,
    ) -> Result<Evaluations<'_>, HostError> {
        self.all_view(Sending::Serialized(context), now_ms)
    }

    fn all_view<C: Serialize + ?Sized>(
        &mut self,
        context: Sending<'_, C>,
        now_ms: i64,
    ) -> Result<Evaluations<'_>, HostError> {
        self.indexed()?;
        let WasmEngine {
            instance,
            handle,
            catalog,
            ..
        } = self;
        let indexed = catalog.as_ref().expect("fetched above");
        instance.compact_all(*handle, indexed, context, now_ms)
    }

    /// The catalog, fetched on first use.
    fn indexed(&mut self) -> Result<&Indexed, HostError> {
        if self.catalog.is_none() {
            self.catalog = Some(Indexed::new(self.instance.catalog(self.handle)?));
        }
        Ok(self.catalog.as_ref().expect("fetched above"))
    }

    /// Evaluates through the compact boundary (`flag` `None`: every flag),
    /// fetching the catalog first if this is the first call. A key the
    /// catalog has is sent as its position.
    fn compact<'s, C: Serialize + ?Sized, A: Answers<'s>>(
        &'s mut self,
        flag: Option<Pick<'_>>,
        expected: Option<FlagType>,
        context: Sending<'_, C>,
        now_ms: i64,
    ) -> Result<A, HostError> {
        self.indexed()?;
        let WasmEngine {
            instance,
            handle,
            catalog,
            ..
        } = self;
        let Indexed { catalog, positions } = catalog.as_ref().expect("fetched above");
        let which = match flag {
            None => Which::All,
            Some(Pick::Key(key)) => match positions.get(key) {
                Some(&p) => Which::At(p, key),
                None => Which::Key(key),
            },
            Some(Pick::At(p)) => match catalog.flags.get(p as usize) {
                Some(f) => Which::At(p, &f.key),
                None => return Err(HostError::BadRequest(format!("no flag at {p}"))),
            },
        };
        instance.compact_call(*handle, catalog, which, expected, context, now_ms)
    }

    /// Evaluates every flag and appends the raw `{"all": [evaluation…]}`
    /// reply to `out` without parsing it (see
    /// [`WasmInstance::evaluate_raw_into`]): the batch call for callers that
    /// forward JSON.
    pub fn evaluate_all_raw(
        &mut self,
        context: &Value,
        now_ms: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), HostError> {
        self.instance
            .evaluate_raw_into(self.handle, None, context, now_ms, out)
    }

    /// Whether the instance trapped or timed out; a poisoned engine only
    /// returns errors and should be replaced.
    pub fn is_poisoned(&self) -> bool {
        self.instance.is_poisoned()
    }

    /// Answers a protocol request with the raw result JSON: an evaluation
    /// object for one flag, an array for all flags — what
    /// [`bunting_core::conformance::Case::check`] takes.
    ///
    /// ```no_run
    /// # use bunting_wasm_host::WasmRuntime;
    /// # let mut engine = WasmRuntime::locate()?.load_snapshot("")?;
    /// # let case: bunting_core::conformance::Case = todo!();
    /// let got = engine.answer(&case.request().unwrap())?;
    /// case.check(&got).unwrap();
    /// # Ok::<(), bunting_wasm_host::HostError>(())
    /// ```
    pub fn answer(&mut self, req: &EvalRequest) -> Result<Value, HostError> {
        self.instance.answer(self.handle, req)
    }
}
