//! The one error type of the library, split by whose fault it is.
//!
//! A nightly scheduler acts on the exit code, so every error says whether the
//! user can fix it (a rule file, the data, a path: exit 2) or whether strata
//! itself is wrong (exit 3, "please report it"). Each user-facing variant
//! carries what went wrong, where, and what to do.

use std::path::{Path, PathBuf};

/// Where in a text file something is, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The line and column of byte `offset` in `text`.
    pub fn of_offset(text: &str, offset: usize) -> Position {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A mistake in a rule file or a code list it names.
    #[error("{}: {message}{}", location(file, *at), help_suffix(help))]
    Rules {
        file: PathBuf,
        at: Option<Position>,
        message: String,
        help: Option<String>,
    },

    /// Input data that does not meet the data contract.
    #[error("{}: {message}{}", file.display(), help_suffix(help))]
    Data {
        file: PathBuf,
        message: String,
        help: Option<String>,
    },

    /// A bad command-line value (a date, a thread count, ...).
    #[error("{message}{}", help_suffix(help))]
    Usage {
        message: String,
        help: Option<String>,
    },

    /// A file system operation on a user-given path failed; without a help
    /// of its own, the help says what to do about that kind of failure.
    #[error("{}: {action}: {source}{}", path.display(), io_help(help, source))]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
        help: Option<String>,
    },

    /// Something that should not happen whatever the input: a bug.
    #[error("internal error: {0}. This is likely a bug in strata, please report it")]
    Internal(String),
}

fn location(file: &Path, at: Option<Position>) -> String {
    match at {
        Some(p) => format!("{}:{}:{}", file.display(), p.line, p.column),
        None => file.display().to_string(),
    }
}

fn io_help(help: &Option<String>, source: &std::io::Error) -> String {
    use std::io::ErrorKind;
    if help.is_some() {
        return help_suffix(help);
    }
    let what = match source.kind() {
        ErrorKind::StorageFull | ErrorKind::FileTooLarge | ErrorKind::QuotaExceeded => {
            "the disk is full (or a size limit was reached): free some space or write --out to another disk, and run again; the previous output is untouched"
        }
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            "strata is not allowed to read or write this path: check its permissions (for the output, give an --out folder strata can write to)"
        }
        ErrorKind::NotFound => "check that the path exists",
        _ => "check the path and the disk, and run again",
    };
    format!("\n  help: {what}")
}

fn help_suffix(help: &Option<String>) -> String {
    help.as_ref()
        .map(|h| format!("\n  help: {h}"))
        .unwrap_or_default()
}

impl Error {
    /// True when the user can fix the cause (exit code 2); false for bugs (3).
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Error::Internal(_))
    }

    pub fn rules(file: &Path, at: Option<Position>, message: impl Into<String>) -> Error {
        Error::Rules {
            file: file.to_path_buf(),
            at,
            message: message.into(),
            help: None,
        }
    }

    pub fn data(file: &Path, message: impl Into<String>) -> Error {
        Error::Data {
            file: file.to_path_buf(),
            message: message.into(),
            help: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            help: None,
        }
    }

    pub fn io(path: &Path, action: &'static str, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            action,
            source,
            help: None,
        }
    }

    /// The error as shown to a person: for a rule-file error, the offending
    /// line with the text at fault marked, as rustc does:
    ///
    /// ```text
    /// error: models/hiu.toml:56:34: unknown name `ae_attendence_12m` (did you mean `ae_attendances_12m`?)
    ///    |
    /// 56 | when = "age >= hiu_age_floor and ae_attendence_12m >= hiu_threshold"
    ///    |                                  ^^^^^^^^^^^^^^^^^
    /// ```
    pub fn render(&self) -> String {
        self.render_as("error")
    }

    /// [`Error::render`] with another label, e.g. `warning`.
    pub fn render_as(&self, label: &str) -> String {
        let plain = format!("{label}: {self}");
        let Error::Rules {
            file,
            at: Some(at),
            message,
            help,
        } = self
        else {
            return plain;
        };
        let Some(line) = crate::bundled::read(file)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| text.lines().nth(at.line - 1).map(str::to_string))
        else {
            return plain;
        };
        let number = at.line.to_string();
        let pad = " ".repeat(number.len());
        let before: String = line
            .chars()
            .take(at.column - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        // Mark the word (or the one character) the position points at.
        let rest: Vec<char> = line.chars().skip(at.column - 1).collect();
        let word = rest
            .iter()
            .take_while(|c| c.is_alphanumeric() || **c == '_')
            .count();
        let marks = "^".repeat(word.max(1).min(rest.len().max(1)));
        let mut out = format!(
            "{label}: {}:{}:{}: {message}\n{pad} |\n{number} | {line}\n{pad} | {before}{marks}",
            file.display(),
            at.line,
            at.column
        );
        if let Some(h) = help {
            out.push_str(&format!("\n  help: {h}"));
        }
        out
    }

    /// Adds "what to do" to a user error.
    pub fn with_help(mut self, text: impl Into<String>) -> Error {
        match &mut self {
            Error::Rules { help, .. }
            | Error::Data { help, .. }
            | Error::Usage { help, .. }
            | Error::Io { help, .. } => *help = Some(text.into()),
            Error::Internal(_) => {}
        }
        self
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_counts_lines_and_chars_from_one() {
        let text = "ab\ncdé\nf";
        assert_eq!(
            Position::of_offset(text, 0),
            Position { line: 1, column: 1 }
        );
        assert_eq!(
            Position::of_offset(text, 3),
            Position { line: 2, column: 1 }
        );
        // 'f' sits after a two-byte 'é'.
        assert_eq!(
            Position::of_offset(text, 8),
            Position { line: 3, column: 1 }
        );
        assert_eq!(
            Position::of_offset(text, 5),
            Position { line: 2, column: 3 }
        );
    }

    #[test]
    fn render_marks_the_offending_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "[cohorts.x]\nwhen = \"age >= agee\"\n").unwrap();
        let e = Error::rules(
            &path,
            Some(Position {
                line: 2,
                column: 16,
            }),
            "unknown name `agee`",
        )
        .with_help("fix it");
        let shown = e.render();
        let lines: Vec<&str> = shown.lines().collect();
        assert!(
            lines[0].ends_with("m.toml:2:16: unknown name `agee`"),
            "{shown}"
        );
        assert_eq!(lines[2], "2 | when = \"age >= agee\"");
        assert_eq!(lines[3], "  |                ^^^^");
        assert_eq!(lines[4], "  help: fix it");
        // Without a readable file, the plain form.
        let e = Error::rules(
            Path::new("/nonexistent.toml"),
            Some(Position { line: 1, column: 1 }),
            "x",
        );
        assert_eq!(e.render(), "error: /nonexistent.toml:1:1: x");
    }

    #[test]
    fn rules_error_names_file_line_column_and_help() {
        let e = Error::rules(
            Path::new("m.toml"),
            Some(Position { line: 4, column: 7 }),
            "bad",
        )
        .with_help("fix it");
        assert_eq!(e.to_string(), "m.toml:4:7: bad\n  help: fix it");
        assert!(e.is_user_error());
        assert!(!Error::Internal("x".into()).is_user_error());
    }
}
