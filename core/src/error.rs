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

impl Error {
    /// The category bindings map to their own error classes: io, format, data, option,
    /// numeric or cancelled.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Format { .. } => "format",
            Error::Data(_) => "data",
            Error::Config { .. } => "option",
            Error::Torch(_) | Error::Numeric(_) => "numeric",
            Error::Cancelled => "cancelled",
        }
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
        match self {
            Error::Io { .. } => 3,
            Error::Format { .. } => 4,
            Error::Data(_) => 5,
            Error::Config { .. } => 2,
            Error::Torch(_) | Error::Numeric(_) => 6,
            Error::Cancelled => 130,
        }
    }
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
