//! Splitting one CSV line into fields as univocity's parser does with Spark's settings.
//!
//! With `multiLine=false` Spark hands univocity one line at a time, so a quote never spans
//! lines (an unterminated quote just ends at the line end) — unlike a whole-buffer CSV reader,
//! which would swallow the following lines into one field. Univocity also reports whether a
//! field was quoted, which decides between `nullValue` (empty unquoted field) and `emptyValue`
//! (`""`), and trims whitespace only outside quotes. Hence this small dedicated tokenizer.

/// A separator, quote or escape character, matched as its UTF-8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Special {
    bytes: [u8; 4],
    len: usize,
}

impl Special {
    /// The special character `c`.
    pub(crate) fn new(c: char) -> Self {
        let mut bytes = [0; 4];
        let len = c.encode_utf8(&mut bytes).len();
        Self { bytes, len }
    }

    /// True if the character occurs at byte `i` of `b`.
    fn at(&self, b: &[u8], i: usize) -> bool {
        b.get(i) == Some(&self.bytes[0]) && (self.len == 1 || b.get(i..i + self.len) == Some(&self.bytes[..self.len]))
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

/// The CSV dialect options that shape tokenizing.
#[derive(Debug, Clone)]
pub(crate) struct Dialect {
    /// `sep`: the field separator.
    pub(crate) sep: Special,
    /// `None` when quoting is off (Spark's `quote` set to the empty string).
    pub(crate) quote: Option<Special>,
    /// `escape`: makes a following quote literal inside quoted fields.
    pub(crate) escape: Option<Special>,
    /// `ignoreLeadingWhiteSpace`.
    pub(crate) trim_leading: bool,
    /// `ignoreTrailingWhiteSpace` (applies to unquoted fields only).
    pub(crate) trim_trailing: bool,
}

/// Splits lines into fields, reusing its buffers from line to line.
pub(crate) struct Tokenizer {
    dialect: Dialect,
    text: String,
    /// Per field: byte range in `text` and whether it was quoted.
    fields: Vec<(usize, usize, bool)>,
}

/// Univocity's notion of whitespace.
fn is_space(c: u8) -> bool {
    c <= b' '
}

impl Tokenizer {
    /// A tokenizer for `dialect`.
    pub(crate) fn new(dialect: Dialect) -> Self {
        Self { dialect, text: String::new(), fields: Vec::new() }
    }

    /// Number of fields in the last line.
    pub(crate) fn len(&self) -> usize {
        self.fields.len()
    }

    /// Field `i` of the last line and whether it was quoted.
    pub(crate) fn field(&self, i: usize) -> Option<(&str, bool)> {
        let &(a, b, quoted) = self.fields.get(i)?;
        Some((self.text.get(a..b)?, quoted))
    }

    /// Splits `line` (without its line terminator).
    pub(crate) fn tokenize(&mut self, line: &str) {
        self.text.clear();
        self.fields.clear();
        let b = line.as_bytes();
        let d = &self.dialect;
        let mut i = 0;
        loop {
            if d.trim_leading {
                while i < b.len() && is_space(b[i]) && !d.sep.at(b, i) {
                    i += 1;
                }
            }
            let start = self.text.len();
            let quoted = d.quote.is_some_and(|q| q.at(b, i));
            i = match d.quote {
                Some(q) if quoted => quoted_field(line, i + q.len, q, d, &mut self.text),
                _ => unquoted_field(line, i, d, &mut self.text),
            };
            self.fields.push((start, self.text.len(), quoted));
            if i < b.len() && d.sep.at(b, i) {
                i += d.sep.len;
            } else {
                return;
            }
        }
    }
}

/// Copies an unquoted field starting at `i` (everything literal up to the separator) and
/// returns where it ended.
fn unquoted_field(line: &str, mut i: usize, d: &Dialect, out: &mut String) -> usize {
    let b = line.as_bytes();
    let start = i;
    while i < b.len() && !d.sep.at(b, i) {
        i += 1;
    }
    let mut end = i;
    if d.trim_trailing {
        while end > start && is_space(b[end - 1]) {
            end -= 1;
        }
    }
    out.push_str(line.get(start..end).unwrap_or_default());
    i
}

/// Copies the content of a quoted field whose opening quote ends at `i` and returns where the
/// field ended. Inside quotes `escape quote` and `quote quote` are a quote and `escape escape`
/// is one escape; an unterminated quote ends at the line end; text after the closing quote
/// (other than whitespace) makes the quote part of the value, as univocity's default
/// `STOP_AT_DELIMITER` handling does.
fn quoted_field(line: &str, mut i: usize, q: Special, d: &Dialect, out: &mut String) -> usize {
    let b = line.as_bytes();
    let escape = d.escape.filter(|e| *e != q);
    let mut run = i;
    let flush = |out: &mut String, from: usize, to: usize| out.push_str(line.get(from..to).unwrap_or_default());
    loop {
        if i >= b.len() {
            flush(out, run, i);
            return i;
        }
        if let Some(e) = escape {
            if e.at(b, i) && (q.at(b, i + e.len) || e.at(b, i + e.len)) {
                flush(out, run, i);
                let escaped = if q.at(b, i + e.len) { q } else { e };
                out.push_str(escaped.as_str());
                i += e.len + escaped.len;
                run = i;
                continue;
            }
        }
        if q.at(b, i) {
            flush(out, run, i);
            if q.at(b, i + q.len) {
                out.push_str(q.as_str());
                i += 2 * q.len;
                run = i;
                continue;
            }
            i += q.len;
            let mut k = i;
            while k < b.len() && is_space(b[k]) && !d.sep.at(b, k) {
                k += 1;
            }
            if k >= b.len() || d.sep.at(b, k) {
                return k;
            }
            // An unescaped quote inside the value: keep it and read on to the separator.
            out.push_str(q.as_str());
            return unquoted_field(line, i, d, out);
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialect() -> Dialect {
        Dialect {
            sep: Special::new(','),
            quote: Some(Special::new('"')),
            escape: Some(Special::new('\\')),
            trim_leading: false,
            trim_trailing: false,
        }
    }

    fn split(d: Dialect, line: &str) -> Vec<(String, bool)> {
        let mut t = Tokenizer::new(d);
        t.tokenize(line);
        (0..t.len()).filter_map(|i| t.field(i)).map(|(s, q)| (s.to_string(), q)).collect()
    }

    fn texts(d: Dialect, line: &str) -> Vec<String> {
        split(d, line).into_iter().map(|(s, _)| s).collect()
    }

    #[test]
    fn splits_quotes_and_escapes() {
        assert_eq!(texts(dialect(), "a,b,,c"), ["a", "b", "", "c"]);
        assert_eq!(texts(dialect(), "a,"), ["a", ""]);
        assert_eq!(texts(dialect(), r#""x,y","say \"hi\"","a""b","c\\d","e\n""#), ["x,y", "say \"hi\"", "a\"b", "c\\d", "e\\n"]);
        assert_eq!(split(dialect(), r#""",x"#), [(String::new(), true), ("x".into(), false)]);
        assert_eq!(texts(dialect(), r#"a"b,"unterminated"#), ["a\"b", "unterminated"]);
        assert_eq!(texts(dialect(), r#""a" ,"b"x,c"#), ["a", "b\"x", "c"]);
    }

    #[test]
    fn whitespace_is_kept_unless_trimming_and_never_inside_quotes() {
        assert_eq!(texts(dialect(), " a , \" b \" "), [" a ", " \" b \" "]);
        let trim = Dialect { trim_leading: true, trim_trailing: true, ..dialect() };
        assert_eq!(texts(trim, " a , \" b \" "), ["a", " b "]);
    }

    #[test]
    fn other_separators_and_no_quoting() {
        let tab = Dialect { sep: Special::new('\t'), ..dialect() };
        assert_eq!(texts(tab, "a b\tc"), ["a b", "c"]);
        let fancy = Dialect { sep: Special::new('§'), ..dialect() };
        assert_eq!(texts(fancy, "é§\"§\""), ["é", "§"]);
        let bare = Dialect { quote: None, ..dialect() };
        assert_eq!(texts(bare, "\"a,b\""), ["\"a", "b\""]);
    }
}
