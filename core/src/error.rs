//! The one error type of scdeep-core. Every message names what is wrong: the file,
//! the field and the offending value, so front ends can show it unchanged.

use std::path::Path;

#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{path}: {msg}")]
    Io { path: String, msg: String },
    /// A file was readable but its content is malformed or of an unknown format.
    #[error("{path}: {msg}")]
    Format { path: String, msg: String },
    /// The data is well-formed but unusable (NaN counts, all-zero matrix, k > cells, ...).
    #[error("invalid data: {0}")]
    Data(String),
    /// A configuration option is unknown or out of range.
    #[error("invalid option `{field}` = {value}: {msg}")]
    Config { field: String, value: String, msg: String },
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(String),
    /// Training diverged or another numeric failure happened.
    #[error("numeric failure: {0}")]
    Numeric(String),
    /// The run was cancelled through the progress callback.
    #[error("cancelled")]
    Cancelled,
}

pub type Result<T> = std::result::Result<T, Error>;

/// What each door calls one kind of error: the CLI's exit code, the C status, the Python
/// exception class and the R condition class. This table is the only place they are
/// written; every door's tests check that it maps each kind as the table says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ErrorKind {
    /// The name bindings receive with the message (`Error::kind`).
    pub kind: &'static str,
    pub exit_code: i32,
    /// `ScdeepStatus` in c-include/scdeep.h, whose value is the exit code.
    pub c_status: &'static str,
    /// In `scdeep` (Python); KeyboardInterrupt is the builtin.
    pub python_class: &'static str,
    /// The condition's first class (then scdeep_error, error, condition).
    pub r_class: &'static str,
    pub meaning: &'static str,
}

const fn kind(
    kind: &'static str,
    exit_code: i32,
    c_status: &'static str,
    python_class: &'static str,
    r_class: &'static str,
    meaning: &'static str,
) -> ErrorKind {
    ErrorKind { kind, exit_code, c_status, python_class, r_class, meaning }
}

/// Every kind of error, in `Error`'s order. A C status has the value of the CLI's exit code.
pub const ERROR_KINDS: [ErrorKind; 6] = [
    kind(
        "io",
        3,
        "SCDEEP_STATUS_ERR_IO",
        "ScdeepIOError",
        "scdeep_error_io",
        "file missing or unreadable/unwritable (also an existing output folder scdeep did not write)",
    ),
    kind("format", 4, "SCDEEP_STATUS_ERR_FORMAT", "FileFormatError", "scdeep_error_format", "malformed or unknown file format"),
    kind(
        "data",
        5,
        "SCDEEP_STATUS_ERR_DATA",
        "DataError",
        "scdeep_error_data",
        "unusable data (NaN/negative counts, all zeros, NUL in names, more memory than the machine has)",
    ),
    kind(
        "option",
        2,
        "SCDEEP_STATUS_ERR_ARGUMENT",
        "InvalidOptionError",
        "scdeep_error_option",
        "invalid option or config (also k > cells, an output that would replace an input)",
    ),
    kind(
        "numeric",
        6,
        "SCDEEP_STATUS_ERR_NUMERIC",
        "NumericError",
        "scdeep_error_numeric",
        "libtorch or numeric failure (out of memory, a diverging training)",
    ),
    kind(
        "cancelled",
        130,
        "SCDEEP_STATUS_ERR_CANCELLED",
        "KeyboardInterrupt",
        "scdeep_error_cancelled",
        "cancelled (the CLI exits 143 after SIGTERM)",
    ),
];

impl Error {
    /// This error's row of `ERROR_KINDS`.
    pub fn kind_row(&self) -> &'static ErrorKind {
        &ERROR_KINDS[match self {
            Error::Io { .. } => 0,
            Error::Format { .. } => 1,
            Error::Data(_) => 2,
            Error::Config { .. } => 3,
            Error::Torch(_) | Error::Numeric(_) => 4,
            Error::Cancelled => 5,
        }]
    }

    /// The category bindings map to their own error classes (`ERROR_KINDS`).
    pub fn kind(&self) -> &'static str {
        self.kind_row().kind
    }

    pub fn io(path: &Path, err: impl std::fmt::Display) -> Self {
        Error::Io { path: path.display().to_string(), msg: err.to_string() }
    }
    pub fn format(path: &Path, msg: impl Into<String>) -> Self {
        Error::Format { path: path.display().to_string(), msg: msg.into() }
    }
    pub fn config(field: &str, value: impl std::fmt::Display, msg: impl Into<String>) -> Self {
        Error::Config { field: field.into(), value: value.to_string(), msg: msg.into() }
    }
    pub fn data(msg: impl Into<String>) -> Self {
        Error::Data(msg.into())
    }
    /// Stable exit code for the CLI (documented in its --help).
    pub fn exit_code(&self) -> i32 {
        self.kind_row().exit_code
    }
}

/// "0 ok, 2 ..., 130 cancelled": the exit codes for help texts.
pub fn exit_codes_text() -> String {
    let mut rows: Vec<&ErrorKind> = ERROR_KINDS.iter().collect();
    rows.sort_by_key(|r| r.exit_code);
    let list: Vec<String> = rows.iter().map(|r| format!("{} {}", r.exit_code, r.meaning)).collect();
    format!("0 ok, {}", list.join(", "))
}

impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        Error::Torch(e.to_string())
    }
}

/// `bail!(Error::data(...))`-style early return.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $err:expr) => {
        if !$cond {
            return Err($err);
        }
    };
}

/// Deserialize `v` (the value of the config section `prefix`, "" for the whole
/// config); an error names the dotted field that is wrong and its value, e.g.
/// `train.epochs` = true.
pub fn from_json_at<T: serde::de::DeserializeOwned>(prefix: &str, v: serde_json::Value) -> Result<T> {
    let copy = v.clone();
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let at = if path == "." { String::new() } else { path.clone() };
        let field = match (prefix.is_empty(), at.is_empty()) {
            (true, true) => "config".to_string(),
            (true, false) => at.clone(),
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}.{at}"),
        };
        let pointer = format!("/{}", at.replace('.', "/"));
        let value = if at.is_empty() {
            copy.to_string()
        } else {
            copy.pointer(&pointer).map(|x| x.to_string()).unwrap_or_else(|| "(missing)".into())
        };
        let shown: String = value.chars().take(200).collect();
        Error::config(&field, shown, inner)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind, exit code and class appears once; every variant has its row.
    #[test]
    fn the_error_table_is_one_to_one() {
        let distinct =
            |f: fn(&ErrorKind) -> String| ERROR_KINDS.iter().map(f).collect::<std::collections::HashSet<_>>().len() == ERROR_KINDS.len();
        assert!(distinct(|k| k.kind.into()) && distinct(|k| k.exit_code.to_string()) && distinct(|k| k.c_status.into()));
        assert!(distinct(|k| k.python_class.into()) && distinct(|k| k.r_class.into()));
        let all = [
            Error::io(Path::new("f"), "x"),
            Error::format(Path::new("f"), "x"),
            Error::data("x"),
            Error::config("f", 1, "x"),
            Error::Numeric("x".into()),
            Error::Cancelled,
        ];
        for (e, k) in all.iter().zip(&ERROR_KINDS) {
            assert_eq!(e.kind_row(), k);
        }
        assert_eq!(Error::Torch("x".into()).kind(), "numeric");
        assert!(exit_codes_text().starts_with("0 ok, 2 invalid option"));
    }
}
