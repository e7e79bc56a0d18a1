//! Typed errors of policy loading, with the file and line that regorus reports.

use std::fmt;
use std::path::PathBuf;

/// A position in a policy source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    /// The policy file (as passed to the loader: a path for a directory load, the given name for
    /// in-memory sources).
    pub file: PathBuf,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Why a policy set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A policy file or directory could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The directory holds no `.rego` file, which would deny everything silently.
    #[error("no .rego files in {}", dir.display())]
    NoPolicies {
        /// The directory searched.
        dir: PathBuf,
    },
    /// A policy file does not parse.
    #[error("syntax error at {location}: {message}")]
    Syntax {
        /// Where.
        location: SourceLocation,
        /// What regorus reported.
        message: String,
    },
    /// A policy file could not be added, for a reason regorus did not locate.
    #[error("cannot load {}: {message}", file.display())]
    Load {
        /// The file.
        file: PathBuf,
        /// What regorus reported.
        message: String,
    },
    /// The policies parse but do not compile together (or lack the entry point).
    #[error("cannot compile the policies{}: {message}", location.as_ref().map(|l| format!(" at {l}")).unwrap_or_default())]
    Compile {
        /// Where, when regorus reports it.
        location: Option<SourceLocation>,
        /// What regorus reported.
        message: String,
    },
}

impl PolicyError {
    /// The source location of the error, if it has one.
    pub fn location(&self) -> Option<&SourceLocation> {
        match self {
            Self::Syntax { location, .. } => Some(location),
            Self::Compile { location, .. } => location.as_ref(),
            Self::Io { .. } | Self::NoPolicies { .. } | Self::Load { .. } => None,
        }
    }
}

/// A regorus diagnostic, split into its location and message.
///
/// regorus renders located errors as
/// ```text
/// --> policies/bad.rego:6:1
/// 6 | }
/// error: expecting expression
/// ```
/// and that text is all its error type offers, so the parts are recovered from it here. The
/// parser takes the rendered text (`format!("{error:#}")`) so it does not depend on the error
/// type regorus uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Diagnostic {
    pub(crate) location: Option<SourceLocation>,
    pub(crate) message: String,
}

impl Diagnostic {
    pub(crate) fn parse(text: &str) -> Self {
        let location = text.lines().find_map(|line| {
            let spec = line.trim_start().strip_prefix("--> ")?;
            // The file name may itself contain ':'; line and column are the last two fields.
            let mut parts = spec.rsplitn(3, ':');
            let column = parts.next()?.trim().parse().ok()?;
            let line = parts.next()?.trim().parse().ok()?;
            let file = parts.next()?;
            Some(SourceLocation {
                file: PathBuf::from(file),
                line,
                column,
            })
        });
        let message = text
            .lines()
            .find_map(|line| line.trim_start().strip_prefix("error: "))
            .map_or_else(
                || text.trim().to_owned(),
                |message| message.trim().to_owned(),
            );
        Self { location, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Diagnostic {
        Diagnostic::parse(text)
    }

    #[test]
    fn parses_located_errors() {
        let diagnostic = parse("\n--> dir/bad.rego:6:1\n6 | }\nerror: expecting expression");
        assert_eq!(
            diagnostic,
            Diagnostic {
                location: Some(SourceLocation {
                    file: PathBuf::from("dir/bad.rego"),
                    line: 6,
                    column: 1,
                }),
                message: "expecting expression".to_owned(),
            }
        );
    }

    #[test]
    fn keeps_colons_in_file_names() {
        let diagnostic = parse("--> C:\\policies\\a.rego:12:22\n12 | x\nerror: divide by zero");
        let location = diagnostic.location.expect("located");
        assert_eq!(location.file, PathBuf::from("C:\\policies\\a.rego"));
        assert_eq!((location.line, location.column), (12, 22));
        assert_eq!(location.to_string(), "C:\\policies\\a.rego:12:22");
    }

    #[test]
    fn unlocated_errors_keep_their_text() {
        let diagnostic = parse("not a valid rule path");
        assert_eq!(diagnostic.location, None);
        assert_eq!(diagnostic.message, "not a valid rule path");
    }
}
