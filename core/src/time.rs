//! RFC 3339 times as Unix milliseconds.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses an RFC 3339 time (e.g. `2026-12-01T00:00:00Z`) to Unix milliseconds.
///
/// ```
/// use bunting_core::time::parse_rfc3339_ms;
/// assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
/// assert_eq!(parse_rfc3339_ms("2026-12-01T01:00:00+01:00"), parse_rfc3339_ms("2026-12-01T00:00:00Z"));
/// assert_eq!(parse_rfc3339_ms("yesterday"), None);
/// ```
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Formats Unix milliseconds as RFC 3339 in UTC.
///
/// ```
/// use bunting_core::time::format_rfc3339_ms;
/// assert_eq!(format_rfc3339_ms(1500).unwrap(), "1970-01-01T00:00:01.5Z");
/// ```
pub fn format_rfc3339_ms(ms: i64) -> Option<String> {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    t.format(&Rfc3339).ok()
}
