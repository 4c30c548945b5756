//! Positions in an open document: the compiler's (1-based lines, 1-based columns counted in
//! characters) and the protocol's (0-based lines, columns counted in UTF-16 code units).
//!
//! Lines end at `\n`, `\r\n` or a lone `\r`, as both YAML and the protocol say. The compiler
//! checks the text without a leading byte-order mark; an editor may keep it, as one UTF-16 unit
//! on the first line.

use crate::diag::Pos;
use lsp_types::Position;

/// Where each line of a text starts, for converting positions.
#[derive(Debug, Clone)]
pub struct LineIndex {
    /// Byte offset of each line's first character, and of its end (the line break excluded).
    lines: Vec<(usize, usize)>,
    /// The text starts with a byte-order mark.
    bom: bool,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut lines = Vec::new();
        let bytes = text.as_bytes();
        let (mut start, mut i) = (0, 0);
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => {
                    lines.push((start, i));
                    start = i + 1;
                }
                b'\r' => {
                    lines.push((start, i));
                    if bytes.get(i + 1) == Some(&b'\n') {
                        i += 1;
                    }
                    start = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
        lines.push((start, bytes.len()));
        LineIndex {
            lines,
            bom: text.starts_with('\u{feff}'),
        }
    }

    /// The text of 0-based line `line`, without its line break (and without the byte-order
    /// mark on the first line); `""` past the end.
    pub fn line<'t>(&self, text: &'t str, line: usize) -> &'t str {
        let Some(&(start, end)) = self.lines.get(line) else {
            return "";
        };
        let s = text.get(start..end).unwrap_or("");
        if line == 0 && self.bom {
            s.strip_prefix('\u{feff}').unwrap_or(s)
        } else {
            s
        }
    }

    /// The protocol's position of the compiler's `pos`; past the end of a line, the line's
    /// end; past the last line, the end of the text.
    pub fn to_lsp(&self, text: &str, pos: Pos) -> Position {
        let last = self.lines.len() - 1;
        let line0 = pos.line.saturating_sub(1);
        if line0 > last {
            let end = self.line(text, last);
            return Position::new(last as u32, self.lead(last) + utf16_len(end));
        }
        let chars = pos.col.saturating_sub(1);
        let units: usize = self
            .line(text, line0)
            .chars()
            .take(chars)
            .map(char::len_utf16)
            .sum();
        Position::new(line0 as u32, self.lead(line0) + units as u32)
    }

    /// The compiler's position of the protocol's `p`: a column between the halves of a
    /// surrogate pair counts as after the character; past the end of a line, the line's end.
    pub fn to_pos(&self, text: &str, p: Position) -> Pos {
        let line0 = (p.line as usize).min(self.lines.len() - 1);
        let mut units = (p.character).saturating_sub(self.lead(line0)) as usize;
        let mut col = 0;
        for c in self.line(text, line0).chars() {
            if units == 0 {
                break;
            }
            units = units.saturating_sub(c.len_utf16());
            col += 1;
        }
        Pos {
            line: line0 + 1,
            col: col + 1,
        }
    }

    /// The byte offset in `text` of the protocol's `p` (clamped like `to_pos`), for applying
    /// an edit.
    pub fn offset(&self, text: &str, p: Position) -> usize {
        let line0 = (p.line as usize).min(self.lines.len() - 1);
        let (start, end) = self.lines[line0];
        let mut units = p.character as usize;
        let mut at = start;
        for (i, c) in text.get(start..end).unwrap_or("").char_indices() {
            if units == 0 {
                return start + i;
            }
            units = units.saturating_sub(c.len_utf16());
            at = start + i + c.len_utf8();
        }
        at
    }

    /// The UTF-16 units before the compiler's first column of `line`: the byte-order mark.
    fn lead(&self, line: usize) -> u32 {
        u32::from(line == 0 && self.bom)
    }
}

fn utf16_len(s: &str) -> u32 {
    s.chars().map(char::len_utf16).sum::<usize>() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_characters_for_the_compiler_and_utf16_units_for_the_protocol() {
        let text = "a: 1\nname: \"Café 📺\" x\r\nlast";
        let ix = LineIndex::new(text);
        // `x` is character 16 of line 2 (1-based), after `é` (1 unit) and `📺` (2 units).
        let x = Pos { line: 2, col: 16 };
        assert_eq!(ix.to_lsp(text, x), Position::new(1, 16));
        assert_eq!(ix.to_pos(text, Position::new(1, 16)), x);
        assert_eq!(ix.line(text, 1), "name: \"Café 📺\" x");
        assert_eq!(ix.line(text, 2), "last");
    }

    #[test]
    fn positions_past_the_end_are_clamped() {
        let text = "ab\ncd";
        let ix = LineIndex::new(text);
        assert_eq!(
            ix.to_lsp(text, Pos { line: 1, col: 9 }),
            Position::new(0, 2)
        );
        assert_eq!(
            ix.to_lsp(text, Pos { line: 7, col: 1 }),
            Position::new(1, 2)
        );
        assert_eq!(
            ix.to_pos(text, Position::new(9, 9)),
            Pos { line: 2, col: 3 }
        );
    }

    #[test]
    fn offsets_are_bytes() {
        let text = "é📺x\ny";
        let ix = LineIndex::new(text);
        assert_eq!(ix.offset(text, Position::new(0, 3)), 6);
        assert_eq!(ix.offset(text, Position::new(0, 9)), 7);
        assert_eq!(ix.offset(text, Position::new(1, 0)), 8);
        assert_eq!(ix.offset(text, Position::new(1, 1)), 9);
    }

    #[test]
    fn a_byte_order_mark_is_one_unit_before_the_first_column() {
        let text = "\u{feff}provider: x";
        let ix = LineIndex::new(text);
        assert_eq!(
            ix.to_lsp(text, Pos { line: 1, col: 1 }),
            Position::new(0, 1)
        );
        assert_eq!(
            ix.to_pos(text, Position::new(0, 1)),
            Pos { line: 1, col: 1 }
        );
        assert_eq!(ix.line(text, 0), "provider: x");
    }
}
