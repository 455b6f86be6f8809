//! The three engines behind one small interface, each used through its
//! public API as its documentation shows: load the native document, build
//! a context from a [`User`], evaluate one flag, evaluate every flag.

use std::collections::HashMap;

use bunting_core::{Context, Engine};
use launchdarkly_server_sdk_evaluation::{
    self as ld, AttributeValue, ContextBuilder, Flag, FlagValue, Segment, Store,
};
use serde_json::{Value, json};
use unleash_yggdrasil::{ClientFeatures, EngineState, UpdateMessage};

use crate::spec::User;

/// The evaluation time given to bunting (the peers read the clock
/// themselves where they need it).
pub const NOW_MS: i64 = 1_764_547_200_000;

/// Why an engine refused a document or a context.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// bunting refused the snapshot.
    #[error("bunting: {0}")]
    Bunting(#[from] bunting_core::LoadError),
    /// A peer's document did not deserialize.
    #[error("{engine}: the document does not deserialize: {source}")]
    Json {
        /// The engine.
        engine: &'static str,
        /// serde's error.
        source: serde_json::Error,
    },
    /// Unleash compiled the features with warnings (a strategy it could not
    /// compile evaluates to false, so the comparison would be meaningless).
    #[error("unleash: {0}")]
    UnleashWarnings(String),
    /// LaunchDarkly refused to build a context.
    #[error("launchdarkly: context: {0}")]
    Context(String),
}

/// The operations the agreement check needs from every engine.
pub trait Peer: Sized {
    /// The engine's name in reports.
    const NAME: &'static str;
    /// The engine's own context type (it may borrow from the user).
    type Context<'u>;
    /// Loads the engine's native document (see [`crate::render`]).
    fn load(json: &str) -> Result<Self, PeerError>;
    /// Builds the engine's context for `user`.
    fn context(user: &User) -> Result<Self::Context<'_>, PeerError>;
    /// The value served for flag `key` (every value is a variant name).
    fn value(&self, key: &str, context: &Self::Context<'_>) -> Option<String>;
}

/// bunting-core's [`Engine`].
#[derive(Debug)]
pub struct Bunting(pub Engine);

impl Peer for Bunting {
    const NAME: &'static str = "bunting";
    type Context<'u> = Context<'u>;

    fn load(json: &str) -> Result<Self, PeerError> {
        Ok(Bunting(Engine::from_json(json)?))
    }

    fn context(user: &User) -> Result<Context<'_>, PeerError> {
        Ok(bunting_context(user))
    }

    fn value(&self, key: &str, context: &Context<'_>) -> Option<String> {
        let evaluation = self.0.evaluate(key, context, NOW_MS);
        evaluation.value?.as_str().map(str::to_string)
    }
}

/// bunting's own context for `user`: attribute names and values borrowed
/// from it (`app` a nested context), as a Rust service builds one.
pub fn bunting_context(user: &User) -> Context<'_> {
    let mut context = Context::new()
        .with_targeting_key(user.key.as_str())
        .with("plan", &user.plan);
    let optional = [
        ("email", &user.email),
        ("country", &user.country),
        ("department", &user.department),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            context.set(name, value);
        }
    }
    if let Some(version) = &user.app_version {
        context.set_object("app", |app| {
            app.set("version", version);
        });
    }
    context
}

/// bunting's context for `user` as JSON (the OFREP evaluation context), as
/// the hosts and the edge receive it.
pub fn bunting_json_context(user: &User) -> Value {
    let mut context = serde_json::Map::new();
    context.insert("targetingKey".into(), json!(user.key));
    context.insert("plan".into(), json!(user.plan));
    let optional = [
        ("email", &user.email),
        ("country", &user.country),
        ("department", &user.department),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            context.insert(name.into(), json!(value));
        }
    }
    if let Some(version) = &user.app_version {
        context.insert("app".into(), json!({"version": version}));
    }
    Value::Object(context)
}

/// `unleash-yggdrasil`'s [`EngineState`].
pub struct Unleash(pub EngineState);

impl Peer for Unleash {
    const NAME: &'static str = "unleash-yggdrasil";
    type Context<'u> = unleash_yggdrasil::Context;

    fn load(json: &str) -> Result<Self, PeerError> {
        let features: ClientFeatures =
            serde_json::from_str(json).map_err(|source| PeerError::Json {
                engine: Self::NAME,
                source,
            })?;
        let engine = EngineState::default();
        match engine.take_state(UpdateMessage::FullResponse(features)) {
            Some(warnings) if !warnings.is_empty() => {
                Err(PeerError::UnleashWarnings(format!("{warnings:?}")))
            }
            _ => Ok(Unleash(engine)),
        }
    }

    fn context(user: &User) -> Result<Self::Context<'_>, PeerError> {
        Ok(unleash_context(user))
    }

    fn value(&self, key: &str, context: &Self::Context<'_>) -> Option<String> {
        let variant = self.0.get_variant(key, context, &None);
        variant.enabled.then_some(variant.name)
    }
}

/// Unleash's context for `user` (flat string properties).
pub fn unleash_context(user: &User) -> unleash_yggdrasil::Context {
    let optional = [
        ("email", &user.email),
        ("country", &user.country),
        ("appVersion", &user.app_version),
        ("department", &user.department),
    ];
    let mut properties = HashMap::from([("plan".to_string(), user.plan.clone())]);
    for (name, value) in optional {
        if let Some(value) = value {
            properties.insert(name.to_string(), value.clone());
        }
    }
    unleash_yggdrasil::Context {
        user_id: Some(user.key.clone()),
        properties: Some(properties),
        ..Default::default()
    }
}

/// `launchdarkly-server-sdk-evaluation`'s flags and segments in the
/// in-memory [`Store`] an SDK keeps.
#[derive(Debug, serde::Deserialize)]
pub struct LaunchDarkly {
    /// Flags by key.
    pub flags: HashMap<String, Flag>,
    /// Segments by key.
    pub segments: HashMap<String, Segment>,
}

impl Store for LaunchDarkly {
    fn flag(&self, flag_key: &str) -> Option<Flag> {
        self.flags.get(flag_key).cloned()
    }

    fn segment(&self, segment_key: &str) -> Option<Segment> {
        self.segments.get(segment_key).cloned()
    }
}

impl Peer for LaunchDarkly {
    const NAME: &'static str = "launchdarkly";
    type Context<'u> = ld::Context;

    fn load(json: &str) -> Result<Self, PeerError> {
        serde_json::from_str(json).map_err(|source| PeerError::Json {
            engine: Self::NAME,
            source,
        })
    }

    fn context(user: &User) -> Result<Self::Context<'_>, PeerError> {
        launchdarkly_context(user)
    }

    fn value(&self, key: &str, context: &Self::Context<'_>) -> Option<String> {
        let flag = self.flags.get(key)?;
        match ld::evaluate(self, flag, context, None).value? {
            FlagValue::Str(value) => Some(value.clone()),
            _ => None,
        }
    }
}

/// LaunchDarkly's context for `user` (`app` is an object attribute, read
/// through the reference `/app/version`).
pub fn launchdarkly_context(user: &User) -> Result<ld::Context, PeerError> {
    let mut builder = ContextBuilder::new(user.key.as_str());
    builder.set_string("plan", user.plan.as_str());
    let optional = [
        ("email", &user.email),
        ("country", &user.country),
        ("department", &user.department),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            builder.set_string(name, value.as_str());
        }
    }
    if let Some(version) = &user.app_version {
        let app = HashMap::from([(
            "version".to_string(),
            AttributeValue::String(version.clone()),
        )]);
        builder.set_value("app", AttributeValue::Object(app));
    }
    builder.build().map_err(PeerError::Context)
}
