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

/// A member's key, as [`Lexer::next_key_expecting`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key<'a> {
    /// The key the caller expected.
    Expected,
    /// Another key, unescaped.
    Other(&'a str),
}

/// Whether `name` can be matched against a key's raw bytes: it holds no quote, backslash or
/// control character, so no escape sequence can spell it differently in place.
pub(crate) fn plain_key(name: &str) -> bool {
    name.bytes().all(|c| c >= 0x20 && c != b'"' && c != b'\'' && c != b'\\')
}

/// `a == b` for a key's bytes: 4 to 16 bytes are compared as two overlapping words, in place,
/// instead of through a call to libc's `memcmp`, which took as much time as the rest of matching
/// a row's keys (each row compares every key it has against the field the schema expects).
#[inline(always)]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    match a.len() {
        4..=8 => a.first_chunk::<4>() == b.first_chunk::<4>() && a.last_chunk::<4>() == b.last_chunk::<4>(),
        9..=16 => a.first_chunk::<8>() == b.first_chunk::<8>() && a.last_chunk::<8>() == b.last_chunk::<8>(),
        _ => a == b,
    }
}

/// Jackson's default `StreamReadConstraints.maxNestingDepth`.
const MAX_DEPTH: usize = 1000;

/// Scans JSON text: one `from_json` input, or the lines of a JSON-lines range.
pub(crate) struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    non_numeric: bool,
    /// A `\n` ends the text instead of being whitespace (see [`Self::lines`]).
    line_ends: bool,
    scratch: String,
}

impl<'a> Lexer<'a> {
    /// A scanner over the JSON text `src`; `non_numeric` enables Spark's `allowNonNumericNumbers`.
    pub(crate) fn new(src: &'a str, non_numeric: bool) -> Self {
        Self { src, b: src.as_bytes(), pos: 0, non_numeric, line_ends: false, scratch: String::new() }
    }

    /// A scanner over many JSON lines, to [`Self::seek`] to the start of each: a `\n` is not
    /// whitespace here but the end of the text, as it is to a scanner over that line alone.
    ///
    /// Whitespace is the only place JSON allows a raw `\n` (strings end at control characters,
    /// other tokens are printable), so a value is read, or fails, exactly as in the line alone,
    /// and a value that was read ends before the line's `\n`. That spares finding every line's
    /// end before decoding it: after a decoded record, its `\n` is next or close.
    pub(crate) fn lines(src: &'a str, non_numeric: bool) -> Self {
        Self { line_ends: true, ..Self::new(src, non_numeric) }
    }

    /// The current byte offset, to rescan a value later with [`Self::seek`].
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Moves to an offset: back to one returned by [`Self::pos`], or to the start of a line.
    pub(crate) fn seek(&mut self, pos: usize) {
        self.pos = pos;
    }

    #[inline]
    fn skip_ws(&mut self) {
        loop {
            match self.b.get(self.pos) {
                Some(b' ' | b'\t' | b'\r') => self.pos += 1,
                Some(b'\n') if !self.line_ends => self.pos += 1,
                _ => return,
            }
        }
    }

    #[inline]
    fn next_byte(&mut self) -> Step<u8> {
        self.skip_ws();
        self.b.get(self.pos).copied().ok_or(Fail::Syntax)
    }

    /// True if only whitespace is left (Jackson returns no token for blank input).
    pub(crate) fn at_end(&mut self) -> bool {
        self.skip_ws();
        // Whitespace skipping stops at a `\n` only where it ends the text.
        matches!(self.b.get(self.pos), None | Some(b'\n'))
    }

    /// Classifies the next value without consuming it.
    #[inline]
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

    /// The next value if it is a double-quoted string without escapes (as machine-written
    /// strings nearly always are), borrowed from the source; otherwise `None`, with at most
    /// whitespace consumed, for [`Self::read_string`] or the value's general decoding to handle.
    #[inline]
    pub(crate) fn plain_string(&mut self) -> Option<&'a str> {
        self.skip_ws();
        if self.b.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos + 1;
        let end = start + string_run(self.b.get(start..)?, b'"');
        if self.b.get(end) != Some(&b'"') {
            return None;
        }
        // Both ends are next to an ASCII quote, so they are character boundaries.
        let text = self.src.get(start..end)?;
        self.pos = end + 1;
        Some(text)
    }

    /// The next value if it is a double-quoted string whose text `parse` reads whole in place:
    /// `parse` gets the bytes after the opening quote and returns its value and how many bytes
    /// it read, which must be followed by the closing quote. `parse` must read only bytes a
    /// string holds as they are (no quote, backslash or control byte), so that those bytes are
    /// the string's text. Otherwise `None`, with at most whitespace consumed, as
    /// [`Self::plain_string`].
    #[inline]
    pub(crate) fn plain_quoted<T>(&mut self, parse: impl FnOnce(&[u8]) -> Option<(T, usize)>) -> Option<T> {
        self.skip_ws();
        if self.b.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos + 1;
        let (value, len) = parse(self.b.get(start..)?)?;
        let end = start + len;
        if self.b.get(end) != Some(&b'"') {
            return None;
        }
        self.pos = end + 1;
        Some(value)
    }

    /// The next value if it is an integer token of at most 18 digits (so it fits a long) in
    /// Jackson's grammar: an optional `-`, no leading zero, no fraction or exponent. Otherwise
    /// `None`, with at most whitespace consumed, for [`Self::read_number`] to scan and judge
    /// exactly.
    #[inline]
    pub(crate) fn plain_long(&mut self) -> Option<i64> {
        self.skip_ws();
        let negative = self.b.get(self.pos) == Some(&b'-');
        let start = self.pos + usize::from(negative);
        let mut end = start;
        let mut value: i64 = 0;
        while let Some(digit) = self.b.get(end).map(|c| c.wrapping_sub(b'0')).filter(|d| *d < 10) {
            value = value.wrapping_mul(10).wrapping_add(i64::from(digit));
            end += 1;
        }
        let digits = end - start;
        if digits == 0 || digits > 18 || (digits > 1 && self.b[start] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.b.get(end) {
            return None;
        }
        self.pos = end;
        Some(if negative { -value } else { value })
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
        self.pos = start + string_run(&self.b[start..], quote);
        match self.b.get(self.pos) {
            None => return Err(Fail::Syntax),
            Some(&c) if c == quote => {
                self.pos += 1;
                return Ok(Span::Source(start, self.pos - 1));
            }
            Some(b'\\') => {}
            Some(_) => return Err(Fail::Syntax),
        }
        // Slow path: the string has escapes.
        self.scratch.clear();
        self.scratch.push_str(self.src.get(start..self.pos).ok_or(Fail::Syntax)?);
        loop {
            let run = self.pos;
            self.pos += string_run(&self.b[run..], quote);
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
        match self.next_key_expecting(first, None)? {
            Some(Key::Other(key)) => Ok(Some(key)),
            // Nothing was expected, so every key is another.
            Some(Key::Expected) | None => Ok(None),
        }
    }

    /// [`Self::next_key`], checking first whether the key is `expected` written plainly: a
    /// member's key is nearly always the field the schema lists next, and comparing it in
    /// place skips scanning and unescaping it. `expected` must hold no quote, backslash or
    /// control character ([`plain_key`]): then bytes equal to it, between quotes, can only be
    /// that very key.
    #[inline]
    pub(crate) fn next_key_expecting(&mut self, first: &mut bool, expected: Option<&str>) -> Step<Option<Key<'_>>> {
        if let Some(name) = expected {
            if self.eat_key(*first, name.as_bytes()) {
                *first = false;
                return Ok(Some(Key::Expected));
            }
        }
        self.next_key_scanned(first)
    }

    /// Consumes `,"name":` (without the comma for the first member; single quotes and
    /// whitespace between tokens allowed) if that is what comes next; otherwise nothing.
    #[inline]
    fn eat_key(&mut self, first: bool, name: &[u8]) -> bool {
        let start = self.pos;
        if (first || self.eat(b',')) && self.eat_quoted(name) && self.eat(b':') {
            return true;
        }
        self.pos = start;
        false
    }

    /// Consumes `byte` if it comes next after whitespace.
    #[inline]
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_ws();
        let found = self.b.get(self.pos) == Some(&byte);
        self.pos += usize::from(found);
        found
    }

    /// Consumes `name` between matching quotes if it comes next after whitespace.
    #[inline]
    fn eat_quoted(&mut self, name: &[u8]) -> bool {
        self.skip_ws();
        let quote = self.b.get(self.pos).copied();
        let end = self.pos + 1 + name.len();
        let found = matches!(quote, Some(b'"' | b'\''))
            && self.b.get(self.pos + 1..end).is_some_and(|key| short_eq(key, name))
            && self.b.get(end).copied() == quote;
        if found {
            self.pos = end + 1;
        }
        found
    }

    /// The general step of [`Self::next_key_expecting`]: the next key scanned and unescaped.
    fn next_key_scanned(&mut self, first: &mut bool) -> Step<Option<Key<'_>>> {
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
        self.expect_colon()?;
        Ok(Some(Key::Other(self.text(span))))
    }

    #[inline]
    fn expect_colon(&mut self) -> Step<()> {
        if self.next_byte()? != b':' {
            return Err(Fail::Syntax);
        }
        self.pos += 1;
        Ok(())
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
        self.expect_colon()?;
        if let Some(o) = out.as_deref_mut() {
            write_string(o, self.text(span));
            o.push(b':');
        }
        Ok(())
    }
}

/// How many bytes at the start of `b` a string's text can take as they are: the length up to the
/// first closing `quote`, backslash or control character (or all of `b`).
///
/// Strings are most of a JSON line, so this looks at eight bytes per step (SWAR: the classic
/// "has a zero byte" and "has a byte less than n" word tricks). Each test can misfire only in
/// bytes *above* a true match, so the lowest flagged byte is always the first real one.
#[inline]
fn string_run(b: &[u8], quote: u8) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else { break };
        let word = u64::from_le_bytes(bytes);
        let quotes = zero_byte(word ^ (ONES * u64::from(quote)));
        let backslashes = zero_byte(word ^ (ONES * u64::from(b'\\')));
        let controls = word.wrapping_sub(ONES * 0x20) & !word;
        let hits = (quotes | backslashes | controls) & HIGH;
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + b[i..].iter().position(|&c| c == quote || c == b'\\' || c < 0x20).unwrap_or(b.len() - i)
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
    fn short_eq_is_byte_equality_at_every_length() {
        let base: Vec<u8> = (b'a'..=b'z').collect();
        for len in 0..=base.len() {
            let a = &base[..len];
            assert!(short_eq(a, a), "equal, {len} bytes");
            assert!(!short_eq(a, &base[..len.saturating_sub(1)]) || len == 0, "shorter, {len} bytes");
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] = b'_';
                assert!(!short_eq(a, &b), "{len} bytes differing at {at}");
            }
        }
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

    /// The shortcuts claim a value only where the general scan reads the same value and ends
    /// in the same place, and leave the lexer untouched everywhere else.
    #[test]
    fn plain_values_are_what_the_general_scan_reads() {
        for text in [
            r#""abc","#,
            r#""""#,
            r#" "x" "#,
            r#""é😀"}"#,
            r#""a\"b""#,
            r#""a\nb""#,
            "\"tab\there\"",
            "'single'",
            r#""unterminated"#,
            r#""long enough to take three words of eight""#,
            "12",
            "null",
        ] {
            let mut plain = Lexer::new(text, true);
            let mut general = Lexer::new(text, true);
            match plain.plain_string() {
                Some(s) => {
                    assert_eq!(general.read_string(), Ok(s), "{text}");
                    assert_eq!(plain.pos(), general.pos(), "{text}");
                }
                None => assert_eq!(plain.pos(), 0, "{text}"),
            }
        }
        for text in [
            "0",
            "-0",
            "7,",
            "-42}",
            " 123 ",
            "999999999999999999",
            "-999999999999999999",
            "1000000000000000000",
            "9223372036854775807",
            "007",
            "-",
            "+1",
            "1.5",
            "1e3",
            "2E-1",
            "12abc",
            "NaN",
            "-INF",
            "\"1\"",
        ] {
            let mut plain = Lexer::new(text, true);
            match plain.plain_long() {
                Some(v) => {
                    let mut general = Lexer::new(text, true);
                    let n = general.read_number().unwrap();
                    assert_eq!(n.kind, NumKind::Int, "{text}");
                    assert_eq!(crate::java_num::parse_long(n.text), Some(v), "{text}");
                    assert_eq!(plain.pos(), general.pos(), "{text}");
                }
                None => assert_eq!(plain.pos(), 0, "{text}"),
            }
        }
        // What the shortcuts take is what machine-written rows hold.
        assert_eq!(Lexer::new(r#""u42","#, true).plain_string(), Some("u42"));
        assert_eq!(Lexer::new("-17,", true).plain_long(), Some(-17));
        assert_eq!(Lexer::new("999999999999999999", true).plain_long(), Some(999_999_999_999_999_999));
        assert_eq!(Lexer::new("1000000000000000000", true).plain_long(), None);
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
    fn string_runs_stop_at_the_first_quote_backslash_or_control_byte() {
        // Every position of every stop byte, after runs of plain ASCII and of multi-byte UTF-8
        // (bytes >= 0x80 must never count as control bytes), against a byte-by-byte scan.
        for filler in ["abcdefghijklmnopqrstu", "éàü€😀ñ"] {
            for stop in [b'"', b'\'', b'\\', b'\n', b'\t', 0x1f, 0x00] {
                for quote in [b'"', b'\''] {
                    let base = filler.as_bytes();
                    for at in 0..=base.len() {
                        let mut text = base[..at].to_vec();
                        text.push(stop);
                        text.extend_from_slice(base);
                        let expected = text.iter().position(|&c| c == quote || c == b'\\' || c < 0x20).unwrap_or(text.len());
                        assert_eq!(string_run(&text, quote), expected, "{text:?} quote {quote}");
                    }
                }
            }
            assert_eq!(string_run(filler.as_bytes(), b'"'), filler.len());
        }
    }

    #[test]
    fn expected_keys_match_in_place_and_anything_else_is_scanned() {
        let keys = |text: &str, expected: Option<&str>| {
            let mut lx = Lexer::new(text, true);
            lx.begin_object();
            let mut first = true;
            let mut out = Vec::new();
            while let Some(key) = lx.next_key_expecting(&mut first, expected)? {
                out.push(match key {
                    Key::Expected => "<expected>".to_string(),
                    Key::Other(k) => k.to_string(),
                });
                lx.skip_value(None)?;
            }
            Ok::<_, Fail>(out)
        };
        assert_eq!(
            keys(r#"{"id": 1, 'id':2, "idx":3, "i\u0064":4, "id" : 5}"#, Some("id")).unwrap(),
            ["<expected>", "<expected>", "idx", "id", "<expected>"]
        );
        // A prefix of the key, or of another key, is no match; neither is a key whose closing
        // quote differs from its opening one.
        assert_eq!(keys(r#"{"i":1,"idd":2}"#, Some("id")).unwrap(), ["i", "idd"]);
        assert_eq!(keys(r#"{"id':1}"#, Some("id")), Err(Fail::Syntax));
        assert_eq!(keys(r#"{"id" 1}"#, Some("id")), Err(Fail::Syntax));
        assert_eq!(keys(r#"{"id":1 "id":2}"#, Some("id")), Err(Fail::Syntax));
        assert!(plain_key("event_time") && plain_key("a b.c"));
        assert!(!plain_key("a\"b") && !plain_key("it's") && !plain_key("a\\b") && !plain_key("a\tb"));
    }

    #[test]
    fn nesting_deeper_than_jackson_allows_is_rejected() {
        let deep = "[".repeat(1001) + &"]".repeat(1001);
        assert_eq!(regen(&deep), Err(Fail::Syntax));
        let ok = "[".repeat(1000) + &"]".repeat(1000);
        assert!(regen(&ok).is_ok());
    }
}
