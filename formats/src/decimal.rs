//! Java `BigDecimal` text semantics for DECIMAL values.
//!
//! Spark reads decimals through `new java.math.BigDecimal(text)` followed by
//! `setScale(scale, HALF_UP)` and a precision check, and writes them with `BigDecimal.toString`
//! (which switches to scientific notation for small magnitudes, e.g. `0E-8`). Going through `f64`
//! would lose digits, so both directions work on the decimal digits directly.

/// Parses `text` with Java's `BigDecimal(String)` grammar and rescales it to `scale` with
/// HALF_UP rounding; `None` if the text is not a number or does not fit `precision` digits.
pub fn parse_big_decimal(text: &str, precision: u8, scale: i8) -> Option<i128> {
    let b = text.as_bytes();
    let mut i = 0;
    let negative = match b.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = &b[int_start..i];
    let mut frac_digits: &[u8] = &[];
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = &b[frac_start..i];
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return None;
    }
    let mut exponent: i64 = 0;
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let exp_text = text.get(i + 1..)?;
        let digits = exp_text.strip_prefix(['+', '-']).unwrap_or(exp_text);
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        // Java requires the exponent to fit an int.
        exponent = i64::from(exp_text.parse::<i32>().ok()?);
        i = b.len();
    }
    if i != b.len() {
        return None;
    }
    let digits: Vec<u8> = int_digits.iter().chain(frac_digits).copied().skip_while(|&d| d == b'0').collect();
    let unscaled = rescale(&digits, exponent - frac_digits.len() as i64 + i64::from(scale), precision)?;
    Some(if negative { -unscaled } else { unscaled })
}

/// `digits × 10^shift`, rounded HALF_UP to an integer, if it has at most `precision` digits.
fn rescale(digits: &[u8], shift: i64, precision: u8) -> Option<i128> {
    if digits.is_empty() {
        return Some(0);
    }
    let precision = usize::from(precision.min(38));
    let limit = 10i128.pow(precision as u32);
    let (kept, round_up) = if shift >= 0 {
        if digits.len() as i64 + shift > precision as i64 {
            return None;
        }
        (digits, false)
    } else {
        let drop = usize::try_from(-shift).unwrap_or(usize::MAX);
        if drop >= digits.len() {
            // Everything is dropped; only a first dropped digit of 5+ rounds up to one unit.
            (&digits[..0], drop == digits.len() && digits[0] >= b'5')
        } else {
            let keep = digits.len() - drop;
            (&digits[..keep], digits[keep] >= b'5')
        }
    };
    if kept.len() > precision {
        return None;
    }
    let mut v: i128 = 0;
    for &d in kept {
        v = v * 10 + i128::from(d - b'0');
    }
    if shift > 0 {
        v *= 10i128.pow(shift as u32);
    }
    if round_up {
        v += 1;
    }
    (v < limit).then_some(v)
}

/// Renders an unscaled value and scale exactly as Java's `BigDecimal.toString`.
pub fn big_decimal_to_string(unscaled: i128, scale: i8) -> String {
    let coefficient = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    let scale = i64::from(scale);
    let adjusted = -scale + coefficient.len() as i64 - 1;
    if scale == 0 {
        return format!("{sign}{coefficient}");
    }
    if scale > 0 && adjusted >= -6 {
        let scale = scale as usize;
        return if coefficient.len() > scale {
            let (int, frac) = coefficient.split_at(coefficient.len() - scale);
            format!("{sign}{int}.{frac}")
        } else {
            format!("{sign}0.{}{coefficient}", "0".repeat(scale - coefficient.len()))
        };
    }
    let (first, rest) = coefficient.split_at(1);
    let point = if rest.is_empty() { String::new() } else { format!(".{rest}") };
    let exp_sign = if adjusted >= 0 { "+" } else { "" };
    format!("{sign}{first}{point}E{exp_sign}{adjusted}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rounds_half_up_like_set_scale() {
        assert_eq!(parse_big_decimal("12.5", 10, 2), Some(1250));
        assert_eq!(parse_big_decimal("12.345", 10, 2), Some(1235));
        assert_eq!(parse_big_decimal("-12.345", 10, 2), Some(-1235));
        assert_eq!(parse_big_decimal("12.344", 10, 2), Some(1234));
        assert_eq!(parse_big_decimal("1e2", 10, 0), Some(100));
        assert_eq!(parse_big_decimal("1.5E-1", 5, 2), Some(15));
        assert_eq!(parse_big_decimal("0.005", 5, 2), Some(1));
        assert_eq!(parse_big_decimal("0.0049", 5, 2), Some(0));
        assert_eq!(parse_big_decimal(".5", 5, 0), Some(1));
        assert_eq!(parse_big_decimal("+7.", 5, 1), Some(70));
        assert_eq!(parse_big_decimal("000.000", 1, 0), Some(0));
    }

    #[test]
    fn rejects_overflow_and_non_numbers() {
        assert_eq!(parse_big_decimal("1000", 3, 0), None);
        assert_eq!(parse_big_decimal("99.995", 4, 2), None); // rounds to 100.00
        assert_eq!(parse_big_decimal("1e400", 38, 0), None);
        for bad in ["", "-", ".", "1,0", " 1", "1e", "1e+", "abc", "1.2.3", "NaN"] {
            assert_eq!(parse_big_decimal(bad, 10, 2), None, "{bad}");
        }
    }

    #[test]
    fn renders_like_java_big_decimal() {
        assert_eq!(big_decimal_to_string(1250, 2), "12.50");
        assert_eq!(big_decimal_to_string(-5, 2), "-0.05");
        assert_eq!(big_decimal_to_string(42, 0), "42");
        assert_eq!(big_decimal_to_string(1, 6), "0.000001");
        assert_eq!(big_decimal_to_string(1, 8), "1E-8");
        assert_eq!(big_decimal_to_string(0, 8), "0E-8");
        assert_eq!(big_decimal_to_string(123, 10), "1.23E-8");
        assert_eq!(big_decimal_to_string(1, -2), "1E+2");
    }
}
