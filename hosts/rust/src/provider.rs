//! The OpenFeature provider: typed resolution over a [`Client`].
//!
//! Mapping: value, variant, reason (the engine's string), error code (the
//! engine's OpenFeature code), error message, and flag metadata (the
//! evaluation's `metadata` object: string, number and boolean entries as
//! is, lists and objects as their JSON text, since OpenFeature metadata
//! values are scalars). On an engine error the provider returns the
//! OpenFeature error and the SDK hands the caller its default.
//!
//! Gaps of the `open-feature` 0.3 crate: it has no provider events and no
//! shutdown hook. [`FeatureProvider::status`] reports READY / STALE / ERROR /
//! NOT_READY from the client; subscribe to events with
//! [`Client::subscribe`] and call [`Client::close`] on shutdown.

use async_trait::async_trait;
use bunting_core::{ErrorCode, Evaluation, FlagType, Reason};
use open_feature::provider::{
    FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails,
};
use open_feature::{
    EvaluationContext, EvaluationError, EvaluationErrorCode, EvaluationReason, EvaluationResult,
    FlagMetadata, StructValue,
};
use serde_json::Value;

use crate::client::Client;
use crate::context::{context_to_json, json_to_value};
use crate::status::Status;

/// An OpenFeature provider backed by a bunting [`Client`].
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use bunting_server_sdk::{BuntingProvider, Client};
/// let client = Client::builder("bsk_server_key").edge("https://flags.example.com").build().await?;
/// let mut api = open_feature::OpenFeature::singleton_mut().await;
/// api.set_provider(BuntingProvider::new(client.clone())).await;
/// let of = api.create_client();
/// let on = of.get_bool_value("new-checkout", None, None).await.unwrap_or(false);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct BuntingProvider {
    client: Client,
    metadata: ProviderMetadata,
}

impl BuntingProvider {
    /// Wraps `client`.
    pub fn new(client: Client) -> BuntingProvider {
        BuntingProvider {
            client,
            metadata: ProviderMetadata::new("bunting"),
        }
    }

    /// The client, for health, track, events and close.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn resolve<T>(
        &self,
        flag: &str,
        expected: FlagType,
        ctx: &EvaluationContext,
        convert: impl FnOnce(&Value) -> Option<T>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let context = context_to_json(ctx);
        let eval = self
            .client
            .evaluate(flag, Some(expected), &context)
            .map_err(|e| {
                EvaluationError::builder()
                    .code(EvaluationErrorCode::ProviderNotReady)
                    .message(e.to_string())
                    .build()
            })?;
        details(eval, convert)
    }
}

/// An evaluation as OpenFeature resolution details (or its error).
pub(crate) fn details<T>(
    eval: Evaluation<'static>,
    convert: impl FnOnce(&Value) -> Option<T>,
) -> EvaluationResult<ResolutionDetails<T>> {
    if let Some(code) = eval.error_code {
        return Err(EvaluationError {
            code: error_code(code),
            message: eval.error_message,
        });
    }
    let Some(value) = eval.value.as_deref() else {
        return Err(EvaluationError {
            code: EvaluationErrorCode::General("GENERAL".into()),
            message: Some("the engine served no value".into()),
        });
    };
    let value = convert(value).ok_or_else(|| EvaluationError {
        code: EvaluationErrorCode::TypeMismatch,
        message: Some(format!(
            "flag {:?} served {value}, not of the requested type",
            eval.key
        )),
    })?;
    Ok(ResolutionDetails {
        value,
        variant: eval.variant.map(|v| v.into_owned()),
        reason: Some(reason(eval.reason)),
        flag_metadata: eval.metadata.map(|m| metadata(&m)),
    })
}

fn reason(r: Reason) -> EvaluationReason {
    match r {
        Reason::Static => EvaluationReason::Static,
        Reason::TargetingMatch => EvaluationReason::TargetingMatch,
        Reason::Split => EvaluationReason::Split,
        Reason::Disabled => EvaluationReason::Disabled,
        Reason::Default => EvaluationReason::Default,
        Reason::Error => EvaluationReason::Error,
    }
}

/// The engine's error code as the SDK's (`GENERAL` carries its name).
pub fn error_code(code: ErrorCode) -> EvaluationErrorCode {
    match code {
        ErrorCode::FlagNotFound => EvaluationErrorCode::FlagNotFound,
        ErrorCode::TypeMismatch => EvaluationErrorCode::TypeMismatch,
        ErrorCode::ParseError => EvaluationErrorCode::ParseError,
        ErrorCode::TargetingKeyMissing => EvaluationErrorCode::TargetingKeyMissing,
        ErrorCode::InvalidContext => EvaluationErrorCode::InvalidContext,
        ErrorCode::General => EvaluationErrorCode::General("GENERAL".into()),
    }
}

fn metadata(m: &bunting_core::FlagMetadata) -> FlagMetadata {
    let mut out = FlagMetadata::default();
    if let Ok(Value::Object(map)) = serde_json::to_value(m) {
        for (k, v) in map {
            match v {
                Value::Null => {}
                Value::Bool(b) => out.add_value(k, b),
                Value::String(s) => out.add_value(k, s),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => out.add_value(k, i),
                    None => out.add_value(k, n.as_f64().unwrap_or_default()),
                },
                other => out.add_value(k, other.to_string()),
            }
        }
    }
    out
}

#[async_trait]
impl FeatureProvider for BuntingProvider {
    async fn initialize(&mut self, _context: &EvaluationContext) {}

    fn status(&self) -> ProviderStatus {
        match self.client.status() {
            Status::NotReady => ProviderStatus::NotReady,
            Status::Ready => ProviderStatus::Ready,
            Status::Stale => ProviderStatus::STALE,
            Status::Error => ProviderStatus::Error,
        }
    }

    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        self.resolve(flag_key, FlagType::Boolean, ctx, Value::as_bool)
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.resolve(flag_key, FlagType::Number, ctx, |v| {
            v.as_i64().or_else(|| {
                let f = v.as_f64()?;
                (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
            })
        })
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.resolve(flag_key, FlagType::Number, ctx, Value::as_f64)
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.resolve(flag_key, FlagType::String, ctx, |v| {
            v.as_str().map(String::from)
        })
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.resolve(flag_key, FlagType::Object, ctx, |v| {
            match json_to_value(v)? {
                open_feature::Value::Struct(s) => Some(s),
                _ => None,
            }
        })
    }
}
