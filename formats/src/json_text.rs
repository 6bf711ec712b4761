//! JSON text as Jackson's generator writes it, shared by the writer and by the reader (which
//! regenerates non-string values read into STRING columns).
//!
//! Jackson escapes only `"`, `\` and control characters (`\n`-style where one exists, otherwise
//! `\u00XX` in upper-case hex), leaves `/` and non-ASCII alone, and writes NaN and infinities as
//! quoted strings (its default `QUOTE_NON_NUMERIC_NUMBERS`).

use super::java_fmt::{double_to_string, float_to_string};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `s` as a quoted, escaped JSON string.
pub(crate) fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let short = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            0..=0x1f => 0,
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        if short == 0 {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(c >> 4)]);
            out.push(HEX[usize::from(c & 0xf)]);
        } else {
            out.push(b'\\');
            out.push(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// Appends a DOUBLE as Jackson's `writeNumber(double)`: Java digits, non-finite values quoted.
pub(crate) fn write_double(out: &mut Vec<u8>, v: f64) {
    let text = double_to_string(v);
    if v.is_finite() {
        out.extend_from_slice(text.as_bytes());
    } else {
        write_string(out, &text);
    }
}

/// Appends a FLOAT as Jackson's `writeNumber(float)`.
pub(crate) fn write_float(out: &mut Vec<u8>, v: f32) {
    let text = float_to_string(v);
    if v.is_finite() {
        out.extend_from_slice(text.as_bytes());
    } else {
        write_string(out, &text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_jackson() {
        let mut out = Vec::new();
        write_string(&mut out, "a\"b\\c/d\n\u{1}é\u{7f}");
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\"b\\c/d\n\u0001é""#.replace('é', "é\u{7f}"));
    }

    #[test]
    fn numbers_like_jackson() {
        let mut out = Vec::new();
        write_double(&mut out, 1e10);
        out.push(b' ');
        write_double(&mut out, f64::NAN);
        out.push(b' ');
        write_float(&mut out, f32::NEG_INFINITY);
        out.push(b' ');
        write_float(&mut out, 0.1);
        assert_eq!(String::from_utf8(out).unwrap(), r#"1.0E10 "NaN" "-Infinity" 0.1"#);
    }
}
