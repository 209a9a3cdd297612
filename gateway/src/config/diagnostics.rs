//! What `check-config` and `run` print: each problem at its place in the file, in the
//! `FILE:LINE:COL: key: message (hint: ...)` form of compilers.

use std::fmt;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line and column of the offending key or value (0 when not tied to a place).
    pub line: usize,
    pub column: usize,
    /// Dotted key path, e.g. `device[2].baud`.
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

/// `LINE:COL: key: message (hint: ...)`, the form compilers use, so that an editor or a CI log
/// viewer can jump to the place; [`ConfigErrors`] puts the file name in front.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: ", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

/// One `FILE:LINE:COL: ...` line (`FILE: ...` for a problem not tied to a place).
fn write_located(f: &mut fmt::Formatter<'_>, file: &str, e: &ConfigError, tag: &str) -> fmt::Result {
    let sep = if e.line > 0 { "" } else { " " };
    write!(f, "{file}:{sep}")?;
    if e.line > 0 {
        write!(f, "{}:{}: ", e.line, e.column)?;
    }
    f.write_str(tag)?;
    let unplaced = ConfigError { line: 0, column: 0, ..e.clone() };
    write!(f, "{unplaced}")
}

/// All problems of a file; `Display` prints one per line as `FILE:LINE:COL: key: message (hint: ...)`.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write_located(f, &self.file, e, "")?;
        }
        Ok(())
    }
}

/// The warnings of an accepted file, printed like errors with `warning: ` before the key.
pub struct ConfigWarnings<'a> {
    pub file: &'a str,
    pub warnings: &'a [ConfigError],
}

impl fmt::Display for ConfigWarnings<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.warnings.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write_located(f, self.file, e, "warning: ")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
