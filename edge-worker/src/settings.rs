//! The Worker's configuration (`[vars]` in `wrangler.toml`, secrets).

use crate::cache::{DEFAULT_TTL_SECONDS, DEFAULT_WHOLE_CHECK_SECONDS};
use crate::cookie::SameSite;
use bunting_core::rules::ast::parse_f64;

/// Default name of the anonymous-id cookie.
pub const DEFAULT_ANON_COOKIE: &str = "bunting_anon";

/// Settings read from the environment on every request (cheap: a few
/// string bindings).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `SNAPSHOT_TTL_SECONDS`: seconds between KV checks of a snapshot.
    pub snapshot_ttl_ms: i64,
    /// `SNAPSHOT_WHOLE_CHECK_SECONDS` (default 60, at most a day): while a
    /// snapshot's tables alone serve (`snapshot-tables:<env>`), seconds
    /// between reads of its whole KV value, which tell tables left behind
    /// by an origin of an earlier release
    /// ([`crate::cache::SnapshotCache::apply_tables`]).
    pub whole_check_ms: i64,
    /// `ALLOWED_ORIGINS`: `*` or comma-separated origins; empty: no CORS.
    pub allowed_origins: String,
    /// `ANON_COOKIE`: cookie holding the anonymous targeting key.
    pub anon_cookie: String,
    /// `ANON_COOKIE_SAMESITE` (`Lax` by default, `Strict` or `None`): the
    /// cookie's `SameSite`; `None` for a Worker on another site than the app.
    pub anon_cookie_same_site: SameSite,
    /// `INGEST_URL`: where exposures and events are sent; unset: not sent.
    pub ingest_url: Option<String>,
    /// `INGEST_FLUSH_SECONDS` (default 2): waiting exposures are sent after
    /// this long (or as soon as 100 wait).
    pub ingest_flush_ms: i64,
    /// `EXPOSURE_DEDUP_SECONDS` (default 600; `0`: off): an exposure of the
    /// same user, flag and variant within this window counts once per isolate.
    pub exposure_dedup_ms: i64,
    /// `ALLOW_TIME_OVERRIDE` = `"1"`: honour `X-Bunting-Now` (tests only).
    pub allow_time_override: bool,
    /// `EDGE_ATTRIBUTES` (default `"1"`): add `geo` and `device` to the
    /// context and give anonymous visitors a cookie id. `"0"` evaluates the
    /// client's context as sent (server-side callers, conformance tests).
    pub edge_attributes: bool,
    /// `RATE_LIMIT_PERIOD_SECONDS` (`10` or `60`, the default): the period
    /// of the `RATE_LIMITER` binding, sent as `Retry-After` with a 429.
    pub rate_limit_period_secs: u32,
    /// `POINTER_CHECK_SECONDS` (default 0.5): at most one question per
    /// environment and isolate to the environment's pointer (a Durable
    /// Object, [`crate::pointer`]) in this long.
    pub pointer_check_ms: i64,
}

impl Settings {
    /// Settings from a variable lookup.
    ///
    /// ```
    /// use bunting_edge_worker::settings::Settings;
    /// let s = Settings::from_lookup(|k| (k == "SNAPSHOT_TTL_SECONDS").then(|| "0".to_string()));
    /// assert_eq!(s.snapshot_ttl_ms, 0);
    /// assert_eq!(s.anon_cookie, "bunting_anon");
    /// assert_eq!(s.anon_cookie_same_site, bunting_edge_worker::cookie::SameSite::Lax);
    /// assert!(!s.allow_time_override);
    /// assert_eq!(s.exposure_dedup_ms, 600_000);
    /// let s = Settings::from_lookup(|k| (k == "EXPOSURE_DEDUP_SECONDS").then(|| "1e9".to_string()));
    /// assert_eq!(s.exposure_dedup_ms, 600_000); // out of range (at most a day): the default
    /// assert_eq!(s.pointer_check_ms, 500);
    /// assert_eq!(s.whole_check_ms, 60_000);
    /// let s = Settings::from_lookup(|k| (k == "SNAPSHOT_WHOLE_CHECK_SECONDS").then(|| "0.5".to_string()));
    /// assert_eq!(s.whole_check_ms, 500);
    /// let s = Settings::from_lookup(|k| (k == "POINTER_CHECK_SECONDS").then(|| "-1".to_string()));
    /// assert_eq!(s.pointer_check_ms, 500, "out of range: the default");
    /// ```
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Settings {
        let nonempty = |k: &str| {
            var(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        // A number of seconds in `0..=max` as ms, else `default_ms`: one
        // function for the five durations (not five inlined copies).
        let ms = |k: &str, max: f64, default_ms: i64| {
            nonempty(k)
                .and_then(|v| parse_f64(&v))
                .filter(|v| v.is_finite() && (0.0..=max).contains(v))
                .map_or(default_ms, |s| (s * 1000.0) as i64)
        };
        Settings {
            snapshot_ttl_ms: ms(
                "SNAPSHOT_TTL_SECONDS",
                f64::INFINITY,
                DEFAULT_TTL_SECONDS as i64 * 1000,
            ),
            whole_check_ms: ms(
                "SNAPSHOT_WHOLE_CHECK_SECONDS",
                86_400.0,
                DEFAULT_WHOLE_CHECK_SECONDS as i64 * 1000,
            ),
            allowed_origins: nonempty("ALLOWED_ORIGINS").unwrap_or_default(),
            anon_cookie: nonempty("ANON_COOKIE").unwrap_or_else(|| DEFAULT_ANON_COOKIE.into()),
            anon_cookie_same_site: nonempty("ANON_COOKIE_SAMESITE")
                .and_then(|v| SameSite::parse(&v))
                .unwrap_or(SameSite::Lax),
            ingest_url: nonempty("INGEST_URL"),
            ingest_flush_ms: ms(
                "INGEST_FLUSH_SECONDS",
                f64::INFINITY,
                (crate::ingest::DEFAULT_FLUSH_SECONDS * 1000.0) as i64,
            ),
            exposure_dedup_ms: ms(
                "EXPOSURE_DEDUP_SECONDS",
                86_400.0,
                (crate::dedup::DEFAULT_WINDOW_SECONDS * 1000.0) as i64,
            ),
            allow_time_override: nonempty("ALLOW_TIME_OVERRIDE").as_deref() == Some("1"),
            edge_attributes: nonempty("EDGE_ATTRIBUTES").as_deref() != Some("0"),
            rate_limit_period_secs: crate::ratelimit::period_seconds(
                nonempty("RATE_LIMIT_PERIOD_SECONDS").as_deref(),
            ),
            pointer_check_ms: ms(
                "POINTER_CHECK_SECONDS",
                3600.0,
                (crate::pointer::DEFAULT_CHECK_SECONDS * 1000.0) as i64,
            ),
        }
    }
}
