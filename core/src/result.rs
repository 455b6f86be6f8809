//! Evaluation results in OpenFeature terms.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::FlagMetadata;

/// Why a value was served (OpenFeature resolution reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// The flag has no targeting: everybody gets the fallthrough variant.
    Static,
    /// A targeting rule matched and served a fixed variant.
    TargetingMatch,
    /// A pseudorandom assignment: a weighted rollout or a scheduled ramp.
    Split,
    /// The flag is switched off (kill switch): the off variant is served.
    Disabled,
    /// A pre-configured value: no rule matched, a prerequisite failed, or the
    /// user is outside the flag's experiment layer range.
    Default,
    /// Evaluation failed; see the error code.
    Error,
}

impl Reason {
    /// Every reason, in declaration order (`ALL[r as usize] == r`).
    pub const ALL: [Reason; 6] = [
        Reason::Static,
        Reason::TargetingMatch,
        Reason::Split,
        Reason::Disabled,
        Reason::Default,
        Reason::Error,
    ];

    /// The OpenFeature spelling, e.g. `TARGETING_MATCH`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Split => "SPLIT",
            Reason::Disabled => "DISABLED",
            Reason::Default => "DEFAULT",
            Reason::Error => "ERROR",
        }
    }
}

/// Why an evaluation failed (OpenFeature error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// No flag with that key in the snapshot.
    FlagNotFound,
    /// The caller expected another type than the flag's.
    TypeMismatch,
    /// The flag's configuration could not be parsed (lenient loads only).
    ParseError,
    /// Bucketing was needed but the bucketing attribute is missing.
    TargetingKeyMissing,
    /// The context is not an object, or an attribute used by the engine has
    /// an unusable type.
    InvalidContext,
    /// Anything else, e.g. a broken prerequisite chain.
    General,
}

impl ErrorCode {
    /// Every error code, in declaration order (`ALL[c as usize] == c`).
    pub const ALL: [ErrorCode; 6] = [
        ErrorCode::FlagNotFound,
        ErrorCode::TypeMismatch,
        ErrorCode::ParseError,
        ErrorCode::TargetingKeyMissing,
        ErrorCode::InvalidContext,
        ErrorCode::General,
    ];

    /// The OpenFeature spelling, e.g. `FLAG_NOT_FOUND`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorCode::TypeMismatch => "TYPE_MISMATCH",
            ErrorCode::ParseError => "PARSE_ERROR",
            ErrorCode::TargetingKeyMissing => "TARGETING_KEY_MISSING",
            ErrorCode::InvalidContext => "INVALID_CONTEXT",
            ErrorCode::General => "GENERAL",
        }
    }
}

/// The result of evaluating one flag for one context.
///
/// Borrows from the engine where it can; [`Evaluation::into_owned`] detaches it.
/// On error `value` and `variant` are absent: the caller's default applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation<'a> {
    /// Flag key.
    pub key: Cow<'a, str>,
    /// Served value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Cow<'a, Value>>,
    /// Served variant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<Cow<'a, str>>,
    /// Why this value was served.
    pub reason: Reason,
    /// Set when `reason` is `ERROR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<ErrorCode>,
    /// Human explanation of the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The matched targeting rule's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<Cow<'a, str>>,
    /// The prerequisite flag that did not serve its required variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prerequisite_failed: Option<Cow<'a, str>>,
    /// The flag's metadata (absent for unknown flags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Cow<'a, FlagMetadata>>,
}

impl Evaluation<'_> {
    /// An error result for `key`.
    pub fn error(
        key: impl Into<String>,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Evaluation<'static> {
        Evaluation {
            key: Cow::Owned(key.into()),
            value: None,
            variant: None,
            reason: Reason::Error,
            error_code: Some(code),
            error_message: Some(message.into()),
            rule_id: None,
            prerequisite_failed: None,
            metadata: None,
        }
    }

    /// The `FLAG_NOT_FOUND` result for `key`: what evaluating a key the
    /// snapshot does not have answers, word for word (hosts that hide a
    /// flag from some callers answer this, so hidden and missing flags
    /// cannot be told apart).
    ///
    /// ```
    /// use bunting_core::{Engine, Evaluation};
    /// let engine = Engine::from_json(r#"{"schemaVersion": 1, "environment": "t", "version": 1,
    ///   "generatedAt": "2026-11-25T00:00:00Z", "flags": []}"#).unwrap();
    /// assert_eq!(engine.evaluate("x", &serde_json::json!({}), 0), Evaluation::not_found("x"));
    /// ```
    pub fn not_found(key: &str) -> Evaluation<'static> {
        Evaluation::error(
            key,
            ErrorCode::FlagNotFound,
            format!("flag {key:?} not found"),
        )
    }

    /// Detaches the result from the engine it borrows from.
    pub fn into_owned(self) -> Evaluation<'static> {
        fn own<T: ToOwned + ?Sized>(c: Cow<'_, T>) -> Cow<'static, T> {
            Cow::Owned(c.into_owned())
        }
        Evaluation {
            key: own(self.key),
            value: self.value.map(own),
            variant: self.variant.map(own),
            reason: self.reason,
            error_code: self.error_code,
            error_message: self.error_message,
            rule_id: self.rule_id.map(own),
            prerequisite_failed: self.prerequisite_failed.map(own),
            metadata: self.metadata.map(own),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_of_every_reason_and_code_are_in_declaration_order() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
        for (i, c) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{c:?}");
        }
    }
}
