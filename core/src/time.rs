//! RFC 3339 times as Unix milliseconds.
//!
//! Written by hand rather than through the `time` crate, whose general
//! parsing and formatting machinery was ≈ 12 KB of the edge worker's wasm
//! for these two functions. They accept, reject and produce exactly what
//! `time` 0.3's `Rfc3339` does (`OffsetDateTime::parse` / `format`), which
//! the tests below check against `time` itself on every shape of input:
//! any single byte between date and time, `z`/`Z`, 1 to any number of
//! fraction digits (those after the ninth ignored), offsets up to ±23:59, a
//! second of 60 only where it stands for a leap second (the last second of a
//! month in UTC, read as 23:59:59.999999999), years 0000–9999.

const NANOS_PER_MS: i64 = 1_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// Days in `month` (1–12) of `year`, proleptic Gregorian.
fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // In range by construction: 1–31 and 1–12.
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `N` ASCII digits at the start of `s` as a number, and the rest.
fn digits<const N: usize>(s: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = s.split_at_checked(N)?;
    let mut v = 0;
    for &b in head {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(b - b'0');
    }
    Some((v, rest))
}

/// `b` at the start of `s`, and the rest.
fn lit(s: &[u8], b: u8) -> Option<&[u8]> {
    s.split_first().filter(|(c, _)| **c == b).map(|(_, r)| r)
}

/// Parses an RFC 3339 time (e.g. `2026-12-01T00:00:00Z`) to Unix milliseconds.
///
/// ```
/// use bunting_core::time::parse_rfc3339_ms;
/// assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
/// assert_eq!(parse_rfc3339_ms("2026-12-01T01:00:00+01:00"), parse_rfc3339_ms("2026-12-01T00:00:00Z"));
/// assert_eq!(parse_rfc3339_ms("yesterday"), None);
/// ```
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let s = s.as_bytes();
    let (year, s) = digits::<4>(s)?;
    let (month, s) = digits::<2>(lit(s, b'-')?)?;
    let (day, s) = digits::<2>(lit(s, b'-')?)?;
    // Any one byte separates the date from the time, as in `time`.
    let (hour, s) = digits::<2>(s.get(1..)?)?;
    let (minute, s) = digits::<2>(lit(s, b':')?)?;
    let (mut second, mut s) = digits::<2>(lit(s, b':')?)?;
    let mut nanos = 0;
    if let Some(rest) = lit(s, b'.') {
        let mut mult = 100_000_000;
        let mut n = 0;
        for &b in rest.iter().take_while(|b| b.is_ascii_digit()) {
            nanos += u32::from(b - b'0') * mult;
            mult /= 10;
            n += 1;
        }
        if n == 0 {
            return None;
        }
        s = &rest[n..];
    }
    let offset_secs = match s.split_first()? {
        (b'Z' | b'z', rest) => {
            s = rest;
            0
        }
        (&sign @ (b'+' | b'-'), rest) => {
            let (oh, rest) = digits::<2>(rest)?;
            let (om, rest) = digits::<2>(lit(rest, b':')?)?;
            if oh > 23 || om > 59 {
                return None;
            }
            s = rest;
            let secs = i64::from(oh * 3600 + om * 60);
            if sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    if !s.is_empty() {
        return None;
    }
    let year = i64::from(year);
    let leap_second = second == 60;
    if leap_second {
        second = 59;
        nanos = 999_999_999;
    }
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let secs = days_from_civil(year, month, day) * SECS_PER_DAY
        + i64::from(hour * 3600 + minute * 60 + second)
        - offset_secs;
    if leap_second {
        // Valid only as the last second of a month in UTC, in `time`'s
        // range of years.
        let (y, m, d) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
        if secs.rem_euclid(SECS_PER_DAY) != SECS_PER_DAY - 1
            || !(-9999..=9999).contains(&y)
            || d != days_in_month(y, m)
        {
            return None;
        }
    }
    // `time`'s nanoseconds divided by 10^6, truncated toward zero.
    let nanos = i64::from(nanos);
    let toward_zero = i64::from(secs < 0 && nanos % NANOS_PER_MS != 0);
    Some(secs * 1000 + nanos / NANOS_PER_MS + toward_zero)
}

/// Formats Unix milliseconds as RFC 3339 in UTC.
///
/// ```
/// use bunting_core::time::format_rfc3339_ms;
/// assert_eq!(format_rfc3339_ms(1500).unwrap(), "1970-01-01T00:00:01.5Z");
/// ```
pub fn format_rfc3339_ms(ms: i64) -> Option<String> {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000) as u32;
    let (year, month, day) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
    if !(0..10_000).contains(&year) {
        return None;
    }
    let tod = secs.rem_euclid(SECS_PER_DAY) as u32;
    let mut out = Vec::with_capacity(24);
    let two = |out: &mut Vec<u8>, v: u32| {
        out.extend_from_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8])
    };
    let year = year as u32;
    two(&mut out, year / 100);
    two(&mut out, year % 100);
    out.push(b'-');
    two(&mut out, month);
    out.push(b'-');
    two(&mut out, day);
    out.push(b'T');
    two(&mut out, tod / 3600);
    out.push(b':');
    two(&mut out, tod / 60 % 60);
    out.push(b':');
    two(&mut out, tod % 60);
    if milli != 0 {
        out.push(b'.');
        let d = [milli / 100, milli / 10 % 10, milli % 10];
        let n = if d[2] != 0 {
            3
        } else if d[1] != 0 {
            2
        } else {
            1
        };
        out.extend(d[..n].iter().map(|&v| b'0' + v as u8));
    }
    out.push(b'Z');
    // Only ASCII digits and separators were written.
    String::from_utf8(out).ok()
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::{format_rfc3339_ms, parse_rfc3339_ms};
    use proptest::prelude::*;
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    /// What `time` 0.3 answers (the implementation before this module's).
    fn reference_parse(s: &str) -> Option<i64> {
        let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
    }

    fn reference_format(ms: i64) -> Option<String> {
        let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
        t.format(&Rfc3339).ok()
    }

    fn same(s: &str) {
        assert_eq!(parse_rfc3339_ms(s), reference_parse(s), "{s:?}");
    }

    #[test]
    fn parse_matches_time_on_edge_cases() {
        for s in [
            "",
            "yesterday",
            "1970-01-01T00:00:00Z",
            "1970-01-01t00:00:00z",
            "1970-01-01 00:00:00Z",
            "1970-01-01é00:00:00Z",
            "1970-01-01T00:00:00",
            "1970-01-01T00:00:00.Z",
            "1970-01-01T00:00:00.5Z",
            "1970-01-01T00:00:00.123456789Z",
            "1970-01-01T00:00:00.1234567891234Z",
            "1969-12-31T23:59:59.9995Z",
            "1969-12-31T23:59:59.0000001Z",
            "1969-12-31T23:59:59Z",
            "0000-01-01T00:00:00Z",
            "0000-01-01T00:00:00+00:01",
            "0000-01-01T00:00:00-23:59",
            "9999-12-31T23:59:59.999999999Z",
            "9999-12-31T23:59:59-23:59",
            "2026-12-01T01:00:00+01:00",
            "2026-12-01T01:00:00+24:00",
            "2026-12-01T01:00:00+23:60",
            "2026-12-01T01:00:00-00:00",
            "2026-12-01T01:00:00+0100",
            "2026-12-01T01:00:00+01:00 ",
            "2026-12-01T01:00:00ZZ",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2024-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2000-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-04-00T00:00:00Z",
            "2026-04-01T24:00:00Z",
            "2026-04-01T23:60:00Z",
            "2026-04-01T23:59:60Z",
            "2026-04-30T23:59:60Z",
            "2026-04-30T23:59:60.5Z",
            "2026-12-31T23:59:60Z",
            "2026-12-31T22:59:60-01:00",
            "2027-01-01T00:59:60+01:00",
            "2026-12-31T23:59:60+01:00",
            "9999-12-31T23:59:60Z",
            "9999-12-31T22:59:60-01:00",
            "9999-12-31T23:59:60+00:01",
            "0000-01-01T00:59:60+01:00",
            "0000-01-01T00:00:60+00:01",
            "+2026-12-01T00:00:00Z",
            "2026-1-01T00:00:00Z",
            "2026-12-01T00:00:00.5",
            "2026-12-01",
            "2026-12-01T",
            "2026-12-01T00:00",
        ] {
            same(s);
        }
        // Not only agreement on rejection: leap seconds and fractions parse.
        assert_eq!(
            parse_rfc3339_ms("2026-12-31T23:59:60Z"),
            Some(1_798_761_599_999)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-12-31T22:59:60-01:00"),
            Some(1_798_761_599_999)
        );
        assert_eq!(parse_rfc3339_ms("2026-04-01T23:59:60Z"), None);
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59.9995Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("1969-12-31t23:59:59.1234z"), Some(-876));
    }

    #[test]
    fn format_matches_time_on_edge_cases() {
        for ms in [
            0,
            1,
            -1,
            1500,
            10,
            100,
            120,
            -999,
            -1000,
            -1001,
            1_800_000_000_000,
            253_402_300_799_999,
            253_402_300_800_000,
            -62_167_219_200_000,
            -62_167_219_200_001,
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(format_rfc3339_ms(ms), reference_format(ms), "{ms}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn parse_matches_time_on_valid_shapes(
            y in 0u32..10_000, mo in 0u32..14, d in 0u32..33, sep in prop::sample::select(vec!['T', 't', ' ', 'x']),
            h in 0u32..25, mi in 0u32..61, s in 0u32..62,
            frac in prop::option::of("[0-9]{1,12}"),
            off in prop::option::of((prop::sample::select(vec!['+', '-']), 0u32..25, 0u32..61)),
            z in prop::sample::select(vec!['Z', 'z']),
        ) {
            let mut t = format!("{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}");
            if let Some(f) = frac {
                t.push('.');
                t.push_str(&f);
            }
            match off {
                Some((sign, oh, om)) => t.push_str(&format!("{sign}{oh:02}:{om:02}")),
                None => t.push(z),
            }
            same(&t);
        }

        #[test]
        fn parse_matches_time_on_leap_seconds(
            y in prop::sample::select(vec![0u32, 1, 1969, 1970, 2000, 2024, 2100, 9998, 9999]),
            mo in 1u32..13, d in 27u32..32, h in 0u32..24, mi in 0u32..60,
            frac in prop::option::of("[0-9]{1,3}"),
            off in prop::option::of((prop::sample::select(vec!['+', '-']), 0u32..24, 0u32..60)),
        ) {
            let mut t = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:60");
            if let Some(f) = frac {
                t.push('.');
                t.push_str(&f);
            }
            match off {
                Some((sign, oh, om)) => t.push_str(&format!("{sign}{oh:02}:{om:02}")),
                None => t.push('Z'),
            }
            same(&t);
        }

        #[test]
        fn parse_matches_time_on_arbitrary_text(s in "[0-9Tt:.+\\-Zz ]{0,40}") {
            same(&s);
        }

        #[test]
        fn parse_matches_time_on_edits(
            base in prop::sample::select(vec![
                "2026-12-01T01:00:00.123+01:00", "1969-12-31T23:59:59.9995Z", "2026-12-31T23:59:60Z",
            ]),
            at in 0usize..40, c in any::<char>(),
        ) {
            let mut t: Vec<char> = base.chars().collect();
            let at = at.min(t.len());
            if at < t.len() && at % 2 == 0 { t[at] = c } else { t.insert(at, c) }
            same(&t.into_iter().collect::<String>());
        }

        #[test]
        fn format_matches_time(ms in any::<i64>()) {
            prop_assert_eq!(format_rfc3339_ms(ms), reference_format(ms));
        }

        #[test]
        fn format_matches_time_in_range(ms in -62_167_219_200_000i64..253_402_300_800_000) {
            prop_assert_eq!(format_rfc3339_ms(ms), reference_format(ms));
            let text = format_rfc3339_ms(ms).unwrap();
            prop_assert_eq!(parse_rfc3339_ms(&text), Some(ms));
        }
    }
}
