//! Java's `Double.toString` / `Float.toString`, which Spark uses when it turns a floating-point
//! value into text (casts to string, `show()`, the JSON and CSV writers).
//!
//! Rust prints `1e10` as `10000000000`; Spark prints `1.0E10`. Users diff outputs across the two
//! systems, so sluice renders floats the Java way: shortest round-tripping digits, plain notation
//! for magnitudes in [1e-3, 1e7), otherwise `d.dddE±n`, and always at least one fractional digit.

/// Formats an `f64` exactly as Java's `Double.toString`.
pub fn double_to_string(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    // Rust's `{:e}` yields the shortest digits that round-trip, like Java (JDK 19+).
    java_style(&format!("{v:e}"), v == 0.0, v.abs())
}

/// Formats an `f32` exactly as Java's `Float.toString`.
pub fn float_to_string(v: f32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    java_style(&format!("{v:e}"), v == 0.0, v.abs() as f64)
}

fn java_style(sci: &str, is_zero: bool, abs: f64) -> String {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if negative { "-" } else { "" };
    if is_zero {
        return format!("{sign}0.0");
    }
    if (1e-3..1e7).contains(&abs) {
        // Plain notation: place the decimal point `exp + 1` digits into the digit string.
        let point = exp + 1;
        let (int_part, frac_part) = if point <= 0 {
            ("0".to_string(), format!("{}{}", "0".repeat((-point) as usize), digits))
        } else if point as usize >= digits.len() {
            (format!("{digits}{}", "0".repeat(point as usize - digits.len())), String::new())
        } else {
            (digits[..point as usize].to_string(), digits[point as usize..].to_string())
        };
        let frac_part = if frac_part.is_empty() { "0".to_string() } else { frac_part };
        format!("{sign}{int_part}.{frac_part}")
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{sign}{first}.{rest}E{exp}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_java_double_to_string() {
        let cases = [
            (1.0, "1.0"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (100.0, "100.0"),
            (1234567.0, "1234567.0"),
            (1.0e7, "1.0E7"),
            (1.0e10, "1.0E10"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (1.2345e-5, "1.2345E-5"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (12.0 / 5.0, "2.4"),
            (1.0 / 3.0, "0.3333333333333333"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (v, want) in cases {
            assert_eq!(double_to_string(v), want, "{v}");
        }
        assert_eq!(float_to_string(0.1f32), "0.1");
        assert_eq!(float_to_string(3.0e9f32), "3.0E9");
    }
}
