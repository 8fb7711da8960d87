//! Errors for people: what is wrong, where (file, line, column, with the line and a caret),
//! and what to do.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a flow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    /// Byte range in the file; `None` when the problem is the file as a whole.
    pub span: Option<Range<usize>>,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Diagnostic {
            message: message.into(),
            span,
            help: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Every problem found in one flow file, with the text needed to show where.
#[derive(Debug, Clone, thiserror::Error)]
pub struct FlowError {
    pub file: PathBuf,
    text: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl FlowError {
    /// Problems in `file`, whose contents are `text` (used to show the lines).
    pub fn new(file: &Path, text: &str, diagnostics: Vec<Diagnostic>) -> Self {
        FlowError {
            file: file.to_owned(),
            text: text.to_owned(),
            diagnostics,
        }
    }

    /// Line and column (both from 1, columns in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.text, offset)
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..offset].chars().count() + 1)
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "error: {}", d.message)?;
            match &d.span {
                Some(span) => {
                    let (line, col) = line_col(&self.text, span.start);
                    let source = self.text.lines().nth(line - 1).unwrap_or("");
                    let width = line.to_string().len();
                    // The caret covers the span on its first line, at least one character.
                    let line_end = self.text[span.start.min(self.text.len())..]
                        .find('\n')
                        .map_or(self.text.len(), |i| span.start + i);
                    let end = span.end.min(line_end).max(span.start);
                    let carets = self
                        .text
                        .get(span.start..end)
                        .map_or(1, |s| s.chars().count())
                        .max(1);
                    writeln!(f, "{:width$}--> {}:{line}:{col}", "", self.file.display())?;
                    writeln!(f, "{:width$} |", "")?;
                    writeln!(f, "{line} | {source}")?;
                    writeln!(
                        f,
                        "{:width$} | {}{}",
                        "",
                        " ".repeat(col - 1),
                        "^".repeat(carets)
                    )?;
                    if let Some(help) = &d.help {
                        writeln!(f, "{:width$} = help: {help}", "")?;
                    }
                }
                None => {
                    writeln!(f, "  --> {}", self.file.display())?;
                    if let Some(help) = &d.help {
                        writeln!(f, "  = help: {help}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters_from_one() {
        assert_eq!(line_col("ab\ncdé f", 9), (2, 6));
        assert_eq!(line_col("x", 0), (1, 1));
    }

    #[test]
    fn suggests_only_near_misses() {
        assert_eq!(closest("strem", ["stream", "connection"]), Some("stream"));
        assert_eq!(closest("banana", ["stream", "connection"]), None);
    }
}
