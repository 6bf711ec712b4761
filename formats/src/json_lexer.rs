//! A pull scanner for JSON in the dialect Spark configures Jackson with.
//!
//! Spark's reader accepts single-quoted strings (`allowSingleQuotes` defaults to true) and the
//! `NaN`/`Infinity`/`+INF`/`-INF` tokens (`allowNonNumericNumbers`), reads DECIMAL values from the
//! exact number text, and turns non-string values in STRING columns into regenerated JSON text.
//! serde_json offers none of that without a process-wide `arbitrary_precision` feature, so the
//! reader scans bytes itself: values are decoded straight into column builders, strings are
//! borrowed from the line unless they contain escapes, and nothing is allocated per row.

use super::json_text::{write_double, write_string};

/// Why a value could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fail {
    /// The text is not JSON (Jackson throws): the whole record is lost.
    Syntax,
    /// Valid JSON that does not fit the target type: Spark nulls just the root field.
    Convert,
}

/// The result of one scanning or decoding step.
pub(crate) type Step<T> = std::result::Result<T, Fail>;

/// What the next value is, judged from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Object,
    Array,
    String,
    Number,
    True,
    False,
    Null,
}

/// Jackson's number token types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumKind {
    /// `VALUE_NUMBER_INT`: no fraction or exponent.
    Int,
    /// `VALUE_NUMBER_FLOAT`.
    Float,
    NaN,
    PosInf,
    NegInf,
}

/// A number token and its exact source text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Number<'a> {
    /// The token as written (DECIMAL columns parse it exactly).
    pub(crate) text: &'a str,
    /// Integer, floating-point or non-numeric token.
    pub(crate) kind: NumKind,
}

/// Where a scanned string's text is.
#[derive(Clone, Copy)]
enum Span {
    Source(usize, usize),
    Scratch,
}

/// Jackson's default `StreamReadConstraints.maxNestingDepth`.
const MAX_DEPTH: usize = 1000;

/// Scans one JSON text (a line, or a `from_json` input).
pub(crate) struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    non_numeric: bool,
    scratch: String,
}

impl<'a> Lexer<'a> {
    /// A scanner over `src`; `non_numeric` enables Spark's `allowNonNumericNumbers`.
    pub(crate) fn new(src: &'a str, non_numeric: bool) -> Self {
        Self { src, b: src.as_bytes(), pos: 0, non_numeric, scratch: String::new() }
    }

    /// The current byte offset, to rescan a value later with [`Self::seek`].
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Moves back to an offset returned by [`Self::pos`].
    pub(crate) fn seek(&mut self, pos: usize) {
        self.pos = pos;
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    fn next_byte(&mut self) -> Step<u8> {
        self.skip_ws();
        self.b.get(self.pos).copied().ok_or(Fail::Syntax)
    }

    /// True if only whitespace is left (Jackson returns no token for blank input).
    pub(crate) fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos >= self.b.len()
    }

    /// Classifies the next value without consuming it.
    pub(crate) fn peek_kind(&mut self) -> Step<Kind> {
        Ok(match self.next_byte()? {
            b'{' => Kind::Object,
            b'[' => Kind::Array,
            b'"' | b'\'' => Kind::String,
            b't' => Kind::True,
            b'f' => Kind::False,
            b'n' => Kind::Null,
            b'-' | b'0'..=b'9' => Kind::Number,
            b'N' | b'I' | b'+' if self.non_numeric => Kind::Number,
            _ => return Err(Fail::Syntax),
        })
    }

    /// Consumes `true`, `false` or `null` (the caller peeked which).
    pub(crate) fn read_literal(&mut self, kind: Kind) -> Step<()> {
        let word: &[u8] = match kind {
            Kind::True => b"true",
            Kind::False => b"false",
            _ => b"null",
        };
        self.expect_word(word)
    }

    fn expect_word(&mut self, word: &[u8]) -> Step<()> {
        if self.b.get(self.pos..self.pos + word.len()) != Some(word) {
            return Err(Fail::Syntax);
        }
        self.pos += word.len();
        // Jackson rejects `truex` as one unrecognized token.
        match self.b.get(self.pos) {
            Some(c) if c.is_ascii_alphanumeric() || *c == b'_' => Err(Fail::Syntax),
            _ => Ok(()),
        }
    }

    /// Consumes a string value and returns its unescaped text.
    pub(crate) fn read_string(&mut self) -> Step<&str> {
        let span = self.scan_string()?;
        Ok(self.text(span))
    }

    fn text(&self, span: Span) -> &str {
        match span {
            Span::Source(a, b) => self.src.get(a..b).unwrap_or_default(),
            Span::Scratch => &self.scratch,
        }
    }

    fn scan_string(&mut self) -> Step<Span> {
        let quote = self.next_byte()?;
        if quote != b'"' && quote != b'\'' {
            return Err(Fail::Syntax);
        }
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.b.get(self.pos) {
                None => return Err(Fail::Syntax),
                Some(&c) if c == quote => {
                    self.pos += 1;
                    return Ok(Span::Source(start, self.pos - 1));
                }
                Some(b'\\') => break,
                Some(&c) if c < 0x20 => return Err(Fail::Syntax),
                Some(_) => self.pos += 1,
            }
        }
        // Slow path: the string has escapes.
        self.scratch.clear();
        self.scratch.push_str(self.src.get(start..self.pos).ok_or(Fail::Syntax)?);
        loop {
            let run = self.pos;
            while let Some(&c) = self.b.get(self.pos) {
                if c == quote || c == b'\\' || c < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            self.scratch.push_str(self.src.get(run..self.pos).ok_or(Fail::Syntax)?);
            match self.b.get(self.pos) {
                Some(&c) if c == quote => {
                    self.pos += 1;
                    return Ok(Span::Scratch);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let ch = self.unescape()?;
                    self.scratch.push(ch);
                }
                _ => return Err(Fail::Syntax),
            }
        }
    }

    /// Decodes the escape after a backslash. Unpaired surrogates become `?`, as Java's UTF-8
    /// encoder (used by Spark's `UTF8String.fromString`) does.
    fn unescape(&mut self) -> Step<char> {
        let c = *self.b.get(self.pos).ok_or(Fail::Syntax)?;
        self.pos += 1;
        Ok(match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'\'' => '\'',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                if (0xd800..0xdc00).contains(&unit) && self.b.get(self.pos..self.pos + 2) == Some(b"\\u") {
                    let save = self.pos;
                    self.pos += 2;
                    let low = self.hex4()?;
                    if (0xdc00..0xe000).contains(&low) {
                        let code = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
                        return Ok(char::from_u32(code).unwrap_or('?'));
                    }
                    self.pos = save;
                }
                char::from_u32(unit).unwrap_or('?')
            }
            _ => return Err(Fail::Syntax),
        })
    }

    fn hex4(&mut self) -> Step<u32> {
        let digits = self.src.get(self.pos..self.pos + 4).ok_or(Fail::Syntax)?;
        if !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(Fail::Syntax);
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16).map_err(|_| Fail::Syntax)
    }

    /// Consumes a number (or a non-numeric token when allowed), validating Jackson's grammar:
    /// no leading zeros, no leading `+`, digits after `.` and `e`.
    pub(crate) fn read_number(&mut self) -> Step<Number<'a>> {
        let start = {
            self.skip_ws();
            self.pos
        };
        let negative = self.b.get(self.pos) == Some(&b'-');
        let signed = negative || self.b.get(self.pos) == Some(&b'+');
        if signed {
            self.pos += 1;
        }
        let special = |this: &mut Self, word: &[u8], kind| -> Step<Number<'a>> {
            if !this.non_numeric {
                return Err(Fail::Syntax);
            }
            this.expect_word(word)?;
            Ok(Number { text: this.src.get(start..this.pos).unwrap_or_default(), kind })
        };
        let inf = if negative { NumKind::NegInf } else { NumKind::PosInf };
        match self.b.get(self.pos) {
            Some(b'N') if !signed => return special(self, b"NaN", NumKind::NaN),
            Some(b'I') if self.b.get(self.pos + 1..self.pos + 3) == Some(b"NF") && signed => {
                return special(self, b"INF", inf);
            }
            Some(b'I') => return special(self, b"Infinity", inf),
            _ if self.b.get(start) == Some(&b'+') => return Err(Fail::Syntax),
            _ => {}
        }
        match self.b.get(self.pos) {
            Some(b'0') => {
                self.pos += 1;
                if self.b.get(self.pos).is_some_and(u8::is_ascii_digit) {
                    return Err(Fail::Syntax);
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(Fail::Syntax),
        }
        let mut kind = NumKind::Int;
        if self.b.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !self.b.get(self.pos).is_some_and(u8::is_ascii_digit) {
                return Err(Fail::Syntax);
            }
            self.digits();
            kind = NumKind::Float;
        }
        if let Some(b'e' | b'E') = self.b.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.b.get(self.pos) {
                self.pos += 1;
            }
            if !self.b.get(self.pos).is_some_and(u8::is_ascii_digit) {
                return Err(Fail::Syntax);
            }
            self.digits();
            kind = NumKind::Float;
        }
        Ok(Number { text: self.src.get(start..self.pos).ok_or(Fail::Syntax)?, kind })
    }

    fn digits(&mut self) {
        while self.b.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
    }

    /// Consumes the `{` of an object (the caller peeked it).
    pub(crate) fn begin_object(&mut self) {
        self.pos += 1;
    }

    /// Consumes the `[` of an array (the caller peeked it).
    pub(crate) fn begin_array(&mut self) {
        self.pos += 1;
    }

    /// Advances to the next member of the current object and returns its key (the `:` is
    /// consumed), or `None` after the closing `}`. `first` tracks whether a `,` is due.
    pub(crate) fn next_key(&mut self, first: &mut bool) -> Step<Option<&str>> {
        let c = self.next_byte()?;
        if c == b'}' {
            self.pos += 1;
            return Ok(None);
        }
        if !std::mem::replace(first, false) {
            if c != b',' {
                return Err(Fail::Syntax);
            }
            self.pos += 1;
        }
        let span = self.scan_string()?;
        if self.next_byte()? != b':' {
            return Err(Fail::Syntax);
        }
        self.pos += 1;
        Ok(Some(self.text(span)))
    }

    /// Advances to the next element of the current array; `false` after the closing `]`.
    pub(crate) fn next_element(&mut self, first: &mut bool) -> Step<bool> {
        let c = self.next_byte()?;
        if c == b']' {
            self.pos += 1;
            return Ok(false);
        }
        if !std::mem::replace(first, false) {
            if c != b',' {
                return Err(Fail::Syntax);
            }
            self.pos += 1;
        }
        Ok(true)
    }

    /// Consumes one value of any shape, validating it. With `out`, the value is also written
    /// there as Jackson's `copyCurrentStructure` would regenerate it: compact, strings
    /// re-escaped, floating-point numbers as Java doubles.
    pub(crate) fn skip_value(&mut self, mut out: Option<&mut Vec<u8>>) -> Step<()> {
        // Open containers, innermost last: true for objects.
        let mut open: Vec<bool> = Vec::new();
        loop {
            // A value is due.
            match self.peek_kind()? {
                Kind::Object | Kind::Array => {
                    let is_object = self.b[self.pos] == b'{';
                    self.pos += 1;
                    emit(&mut out, if is_object { b"{" } else { b"[" });
                    if open.len() >= MAX_DEPTH {
                        return Err(Fail::Syntax);
                    }
                    let close = if is_object { b'}' } else { b']' };
                    if self.next_byte()? == close {
                        self.pos += 1;
                        emit(&mut out, &[close]);
                    } else {
                        open.push(is_object);
                        if is_object {
                            self.copy_key(&mut out)?;
                        }
                        continue;
                    }
                }
                Kind::String => {
                    let span = self.scan_string()?;
                    if let Some(o) = out.as_deref_mut() {
                        write_string(o, self.text(span));
                    }
                }
                Kind::Number => {
                    let n = self.read_number()?;
                    if let Some(o) = out.as_deref_mut() {
                        write_number(o, n);
                    }
                }
                kind => {
                    self.read_literal(kind)?;
                    let word: &[u8] = match kind {
                        Kind::True => b"true",
                        Kind::False => b"false",
                        _ => b"null",
                    };
                    emit(&mut out, word);
                }
            }
            // After a value: close finished containers, or find the next member.
            loop {
                let Some(&is_object) = open.last() else { return Ok(()) };
                let c = self.next_byte()?;
                self.pos += 1;
                if c == b',' {
                    emit(&mut out, b",");
                    if is_object {
                        self.copy_key(&mut out)?;
                    }
                    break;
                }
                if c != if is_object { b'}' } else { b']' } {
                    return Err(Fail::Syntax);
                }
                emit(&mut out, &[c]);
                open.pop();
            }
        }
    }

    fn copy_key(&mut self, out: &mut Option<&mut Vec<u8>>) -> Step<()> {
        let span = self.scan_string()?;
        if self.next_byte()? != b':' {
            return Err(Fail::Syntax);
        }
        self.pos += 1;
        if let Some(o) = out.as_deref_mut() {
            write_string(o, self.text(span));
            o.push(b':');
        }
        Ok(())
    }
}

fn emit(out: &mut Option<&mut Vec<u8>>, bytes: &[u8]) {
    if let Some(o) = out.as_deref_mut() {
        o.extend_from_slice(bytes);
    }
}

/// Jackson's regeneration of a number: integers keep their digits (`-0` is `0`), other
/// numbers go through `double`.
fn write_number(out: &mut Vec<u8>, n: Number<'_>) {
    match n.kind {
        NumKind::Int if n.text == "-0" => out.push(b'0'),
        NumKind::Int => out.extend_from_slice(n.text.as_bytes()),
        NumKind::Float => write_double(out, n.text.parse().unwrap_or(f64::NAN)),
        NumKind::NaN => write_double(out, f64::NAN),
        NumKind::PosInf => write_double(out, f64::INFINITY),
        NumKind::NegInf => write_double(out, f64::NEG_INFINITY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regen(s: &str) -> Step<String> {
        let mut lx = Lexer::new(s, true);
        let mut out = Vec::new();
        lx.skip_value(Some(&mut out))?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn regenerates_values_compactly_like_jackson() {
        assert_eq!(
            regen(r#" { "a" : [1, 2.50, -0, 1e2, true, null], 'b': {"c": "x\/y"} } "#).unwrap(),
            r#"{"a":[1,2.5,0,100.0,true,null],"b":{"c":"x/y"}}"#
        );
        assert_eq!(regen("NaN").unwrap(), "\"NaN\"");
        assert_eq!(regen("-INF").unwrap(), "\"-Infinity\"");
        assert_eq!(regen("[]").unwrap(), "[]");
        assert_eq!(regen("{}").unwrap(), "{}");
    }

    #[test]
    fn rejects_what_jackson_rejects() {
        for bad in [
            "01",
            "1.",
            ".5",
            "+1",
            "-",
            "1e",
            "[1,]",
            "{\"a\":1,}",
            "{a:1}",
            "\"a\tb\"",
            "\"\\x\"",
            "[1 2]",
            "{\"a\" 1}",
            "tru",
            "nul",
            "\"abc",
            "[",
            "{\"a\":1]",
            "/* c */ 1",
            "truex",
        ] {
            assert_eq!(regen(bad), Err(Fail::Syntax), "{bad}");
        }
        let mut lx = Lexer::new("NaN", false);
        assert_eq!(lx.skip_value(None), Err(Fail::Syntax));
    }

    #[test]
    fn strings_unescape_with_java_surrogate_rules() {
        let mut lx = Lexer::new(r#""a\u00e9\ud83d\ude00\ud800x\'""#, true);
        assert_eq!(lx.read_string().unwrap(), "aé😀?x'");
        let mut lx = Lexer::new("'it''", true);
        assert_eq!(lx.read_string().unwrap(), "it");
    }

    #[test]
    fn numbers_keep_their_text_and_kind() {
        for (text, kind) in [
            ("12", NumKind::Int),
            ("-1.5e3", NumKind::Float),
            ("+Infinity", NumKind::PosInf),
            ("-INF", NumKind::NegInf),
            ("+INF", NumKind::PosInf),
            ("NaN", NumKind::NaN),
            ("Infinity", NumKind::PosInf),
        ] {
            let mut lx = Lexer::new(text, true);
            let n = lx.read_number().unwrap();
            assert_eq!((n.text, n.kind), (text, kind));
        }
    }

    #[test]
    fn nesting_deeper_than_jackson_allows_is_rejected() {
        let deep = "[".repeat(1001) + &"]".repeat(1001);
        assert_eq!(regen(&deep), Err(Fail::Syntax));
        let ok = "[".repeat(1000) + &"]".repeat(1000);
        assert!(regen(&ok).is_ok());
    }
}
