//! `Dataset.showString(numRows, truncate, vertical = false)` from Spark 3.5/4.0, byte for byte.
//!
//! The console sink prints every micro-batch through `Dataset.show`, and people diff that
//! output against Spark's. Every detail below mirrors Spark's `Dataset.getRows`/`showString`:
//! cells come from `ToPrettyString`, control characters are escaped so a value cannot break the
//! grid, long cells (never headers) are cut at `truncate` UTF-16 units, widths are measured with
//! `Utils.stringHalfWidth` (East Asian wide characters take two columns), the minimum column
//! width is 3, and `truncate > 0` right-aligns every cell while `truncate == 0` left-aligns.

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;

use super::spark_string::value_to_spark_string;

/// What Spark prints for a null cell.
const NULL_CELL: &str = "NULL";

/// Spark never pads a column narrower than this.
const MIN_COLUMN_WIDTH: usize = 3;

/// Spark clamps `numRows` to `ByteArrayMethods.MAX_ROUNDED_ARRAY_LENGTH - 1`
/// (`Integer.MAX_VALUE - 15 - 1`); the clamped value is what the footer reports.
const MAX_SHOW_ROWS: usize = 2_147_483_631;

/// Renders the first `num_rows` rows of `batches` as Spark's `Dataset.showString` does, ending
/// with `only showing top N row(s)` when more rows exist. `truncate == 0` disables truncation
/// and left-aligns cells; any other value truncates cells to that many characters and
/// right-aligns. Columns are taken by position from each batch; a batch lacking a column shows
/// `NULL` there instead of failing.
pub fn show_string(batches: &[RecordBatch], schema: &Schema, num_rows: usize, truncate: usize) -> String {
    let num_rows = num_rows.min(MAX_SHOW_ROWS);
    let total_rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let num_cols = schema.fields().len();

    let header: Vec<String> = schema.fields().iter().map(|f| escape_meta_characters(f.name())).collect();
    let mut rows = vec![header];
    for batch in batches {
        for row in 0..batch.num_rows() {
            if rows.len() > num_rows {
                break;
            }
            let cells = (0..num_cols)
                .map(|col| {
                    let value = batch.columns().get(col).and_then(|c| value_to_spark_string(c.as_ref(), row));
                    let text = escape_meta_characters(value.as_deref().unwrap_or(NULL_CELL));
                    truncate_cell(text, truncate)
                })
                .collect();
            rows.push(cells);
        }
    }

    let widths: Vec<usize> =
        (0..num_cols).map(|col| rows.iter().map(|row| half_width(&row[col])).fold(MIN_COLUMN_WIDTH, usize::max)).collect();
    let separator = separator_line(&widths);

    let mut out = String::new();
    out.push_str(&separator);
    for (i, row) in rows.iter().enumerate() {
        push_row(&mut out, row, &widths, truncate > 0);
        if i == 0 {
            out.push_str(&separator);
        }
    }
    out.push_str(&separator);
    if total_rows > num_rows {
        let noun = if num_rows == 1 { "row" } else { "rows" };
        out.push_str(&format!("only showing top {num_rows} {noun}\n"));
    }
    out
}

/// `+---+-----+` with one dash per unit of column width. Like Scala's `addString(start, sep,
/// end)` it always writes both ends, so zero columns give `++`.
fn separator_line(widths: &[usize]) -> String {
    let dashes: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
    format!("+{}+\n", dashes.join("+"))
}

/// Appends `|a|b|` with each cell padded to its column's width: spaces before the cell when
/// right-aligning (Spark's `StringUtils.leftPad`), after it otherwise. Zero cells give `||`.
fn push_row(out: &mut String, cells: &[String], widths: &[usize], right_align: bool) {
    out.push('|');
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            out.push('|');
        }
        let padding = " ".repeat(width.saturating_sub(half_width(cell)));
        if right_align {
            out.push_str(&padding);
            out.push_str(cell);
        } else {
            out.push_str(cell);
            out.push_str(&padding);
        }
    }
    out.push_str("|\n");
}

/// Spark's `SchemaUtils.escapeMetaCharacters`: control characters that would break the grid
/// are shown as their Java escape sequences.
fn escape_meta_characters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0C}' => out.push_str("\\f"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0B}' => out.push_str("\\v"),
            '\u{07}' => out.push_str("\\a"),
            other => out.push(other),
        }
    }
    out
}

/// Spark's cell truncation: longer than `truncate` UTF-16 units becomes the first
/// `truncate - 3` units plus `...`, or just the first `truncate` units when `truncate < 4`.
fn truncate_cell(text: String, truncate: usize) -> String {
    if truncate == 0 || utf16_len(&text) <= truncate {
        return text;
    }
    if truncate < 4 {
        utf16_prefix(&text, truncate)
    } else {
        utf16_prefix(&text, truncate - 3) + "..."
    }
}

/// Length as Java's `String.length()` counts it (characters outside the BMP count twice).
fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// Java's `substring(0, units)`. A cut through a surrogate pair leaves Java a lone surrogate,
/// which the console encoder prints as `?`; that is what we emit in its place.
fn utf16_prefix(text: &str, units: usize) -> String {
    let mut out = String::new();
    let mut taken = 0;
    for c in text.chars() {
        let len = c.len_utf16();
        if taken + len > units {
            if taken < units {
                out.push('?');
            }
            break;
        }
        out.push(c);
        taken += len;
    }
    out
}

/// Spark's `Utils.stringHalfWidth`: the UTF-16 length plus one for every character in the
/// ranges Spark treats as full width (Hangul Jamo, CJK, Hangul syllables, CJK compatibility,
/// vertical and small forms, full-width forms).
fn half_width(text: &str) -> usize {
    text.chars().map(|c| c.len_utf16() + usize::from(is_full_width(c))).sum()
}

/// The character classes of Spark's `fullWidthRegex`.
fn is_full_width(c: char) -> bool {
    matches!(
        c,
        '\u{1100}'..='\u{115F}'
            | '\u{2E80}'..='\u{A4CF}'
            | '\u{AC00}'..='\u{D7A3}'
            | '\u{F900}'..='\u{FAFF}'
            | '\u{FE10}'..='\u{FE19}'
            | '\u{FE30}'..='\u{FE6F}'
            | '\u{FF00}'..='\u{FF60}'
            | '\u{FFE0}'..='\u{FFE6}'
    )
}

#[cfg(test)]
#[path = "show_tests.rs"]
mod tests;
