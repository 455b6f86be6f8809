//! Numbers in messages, written without `core::fmt`'s float formatter.
//!
//! `<f64 as Display>` brings the standard library's Grisu and Dragon
//! digit generators (≈ 22 KB of the edge worker's wasm) into every build
//! that formats a float, and the engine's messages were the worker's last
//! users. [`plain`] writes a number as `Display` does — plain decimal
//! notation, never an exponent, the shortest digits that read back as the
//! same `f64` — from the shortest digits of the `zmij` crate, which
//! serde_json already puts in every build for JSON numbers (the same
//! digits as Ryū's, which this module used before serde_json moved to
//! zmij: a second float writer in the bundle otherwise).
//!
//! Both algorithms give the shortest digits that read back exactly; where
//! two such digit strings of the same length exist, each picks one by its
//! own rule, so the last digit may differ from `Display`'s (about 3 in
//! 10,000 random bit patterns, none of the percentages with up to three
//! decimals the messages mostly carry). Either reads back as the same
//! number.

/// `x` in plain decimal notation: `100` for `100.0`, `0.0000001` for
/// `1e-7`, `-0` for `-0.0`, `NaN`, `inf` and `-inf` as `Display` writes
/// them.
pub(crate) fn plain(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let mut buf = zmij::Buffer::new();
    let text = buf.format_finite(x);
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exp) = match text.split_once('e') {
        Some((m, e)) => (
            m,
            e.parse::<i32>().expect("zmij writes an integer exponent"),
        ),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The number is 0.`digits` × 10^`point`.
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    let mut point = int.len() as i32 + exp;
    let lead = digits.iter().take_while(|&&d| d == b'0').count();
    digits.drain(..lead);
    point -= lead as i32;
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if digits.is_empty() {
        out.push('0');
        return out;
    }
    let digits = std::str::from_utf8(&digits).expect("ASCII digits");
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(digits);
    } else if point as usize >= digits.len() {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', point as usize - digits.len()));
    } else {
        let (a, b) = digits.split_at(point as usize);
        out.push_str(a);
        out.push('.');
        out.push_str(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn writes_what_display_writes() {
        let cases = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            100.0,
            100.5,
            33.333,
            0.001,
            0.1 + 0.2,
            1e-7,
            -2.5e-12,
            1e21,
            1.5e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            123456789.125,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for x in cases {
            assert_eq!(plain(x), format!("{x}"), "{x:e}");
        }
        for thousandths in 0..=200_000u32 {
            let x = f64::from(thousandths) / 1000.0;
            assert_eq!(plain(x), format!("{x}"));
            assert_eq!(plain(-x), format!("{}", -x));
        }
    }

    /// Random bit patterns: the same number of digits as `Display` (both
    /// shortest), reading back as the same `f64`, and the same text but
    /// for a rare tie in the last digit.
    #[test]
    fn random_numbers_read_back_and_match_display() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut differ = 0;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = f64::from_bits(state);
            if !x.is_finite() {
                continue;
            }
            let (ours, std) = (plain(x), format!("{x}"));
            assert_eq!(
                ours.parse::<f64>().unwrap().to_bits(),
                x.to_bits(),
                "{ours}"
            );
            assert_eq!(ours.len(), std.len(), "{ours} against {std}");
            if ours != std {
                let common = ours.len() - 1;
                assert_eq!(ours[..common], std[..common], "{ours} against {std}");
                differ += 1;
            }
        }
        // 65 of 200,000 with this generator.
        assert!(differ < 200, "{differ} last-digit ties");
    }

    /// zmij's digits are Ryū's (what [`plain`] was written from first):
    /// the same texts on random bit patterns, the messages' percentages
    /// and the subnormal and largest numbers.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn the_same_digits_as_ryu() {
        let same = |x: f64| {
            let (mut z, mut r) = (zmij::Buffer::new(), ryu::Buffer::new());
            let (z, r) = (z.format_finite(x), r.format_finite(x));
            let read = |t: &str| t.parse::<f64>().map(f64::to_bits);
            // The same number and the same digits (the exponent may be
            // written differently).
            assert_eq!(read(z), read(r), "{z} against {r}");
            let digits = |t: &str| {
                let m = t.split(['e', 'E']).next().unwrap_or(t);
                let d: String = m.chars().filter(char::is_ascii_digit).collect();
                d.trim_matches('0').to_string()
            };
            assert_eq!(digits(z), digits(r), "{z} against {r}");
        };
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..1_000_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = f64::from_bits(state);
            if x.is_finite() {
                same(x);
            }
        }
        for i in 0..=200_000u32 {
            same(f64::from(i) / 1000.0);
            same(-f64::from(i) / 1000.0);
            same(f64::from(i) / 3.0);
        }
        for i in 0..100_000u64 {
            same(f64::from_bits(i));
            same(f64::from_bits(0x7fef_ffff_ffff_ffff - i));
        }
    }
}
