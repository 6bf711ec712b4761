//! Java's `Integer.parseInt` / `Double.parseDouble` family, as Spark's CSV reader calls them.
//!
//! The two languages disagree at the edges: Java trims whitespace and accepts `1.5f`/`2d`
//! suffixes for floats but not `inf`/`nan`; Rust accepts `inf` and `NaN` in any case. A CSV
//! value that Spark reads as null-and-malformed must not silently become a number here.

/// Java's `Long.parseLong`: optional sign, ASCII digits, no whitespace.
pub(crate) fn parse_long(s: &str) -> Option<i64> {
    // Rust's integer grammar is the same: `[+-]?[0-9]+`.
    s.parse().ok()
}

/// Java's `Double.parseDouble`.
pub(crate) fn parse_double(s: &str) -> Option<f64> {
    java_float_text(s)?.parse().ok()
}

/// Java's `Float.parseFloat` (rounded once, directly to `f32`).
pub(crate) fn parse_float(s: &str) -> Option<f32> {
    java_float_text(s)?.parse().ok()
}

/// Validates `s` against Java's `FloatingDecimal` grammar and returns the part Rust's parser
/// should read: trimmed, without a type suffix, with `Infinity` spelled the way Rust accepts.
fn java_float_text(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    let t = s.trim_matches(|c: char| c <= ' ');
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    if body == "NaN" || body == "Infinity" {
        return Some(t.into());
    }
    let body = body.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(body);
    let b = body.as_bytes();
    let mut i = 0;
    let mut digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    let sign_len = t.len() - t.trim_start_matches(['+', '-']).len();
    Some(t.get(..sign_len + body.len())?.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs_follow_java() {
        assert_eq!(parse_long("+12"), Some(12));
        assert_eq!(parse_long("-0"), Some(0));
        for bad in ["", " 1", "1 ", "1.0", "0x10", "+", "9223372036854775808"] {
            assert_eq!(parse_long(bad), None, "{bad}");
        }
    }

    #[test]
    fn doubles_follow_java() {
        assert_eq!(parse_double(" 1.5 "), Some(1.5));
        assert_eq!(parse_double("1.5f"), Some(1.5));
        assert_eq!(parse_double("-2D"), Some(-2.0));
        assert_eq!(parse_double("1."), Some(1.0));
        assert_eq!(parse_double(".5e1"), Some(5.0));
        assert_eq!(parse_double("-Infinity"), Some(f64::NEG_INFINITY));
        assert!(parse_double("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_float("0.1"), Some(0.1f32));
        for bad in ["", "inf", "nan", "infinity", "1e", "e5", ".", "1.5ff", "1_0", "Infinityf"] {
            assert_eq!(parse_double(bad), None, "{bad}");
        }
    }
}
