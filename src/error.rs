//! The crate's error type and the exit status each kind of failure maps to.
//!
//! Errors are created where the context is known (a path, a script position, a SQLSTATE) and
//! printed once, by `crate::run`, with an `error:` prefix. Messages are lowercase, name the thing
//! that went wrong in backticks, and never contain a secret.

use std::fmt;

/// Exit statuses (PRODUCT.md §5). An interrupt exits 128 + the signal: 130 for Ctrl-C
/// (EXIT_INTERRUPTED), 143 for SIGTERM.
pub const EXIT_OK: i32 = 0;
pub const EXIT_RUNTIME: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_THRESHOLD: i32 = 3;
pub const EXIT_INTERRUPTED: i32 = 130;

/// A database error as scripts see it: `#{sqlstate, message, retryable}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    /// The five-character SQLSTATE; client-side failures use the closest class-08 code.
    pub sqlstate: String,
    pub message: String,
    /// True for conflicts that succeed when the whole transaction is run again.
    pub retryable: bool,
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.sqlstate)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line or script name: exit 2.
    #[error("{0}")]
    Usage(String),
    /// Missing or contradictory configuration: exit 1.
    #[error("{0}")]
    Config(String),
    /// The local PostgreSQL behind `--local`.
    #[error("local server: {0}")]
    Local(String),
    /// Could not open a connection; `sqlstate` is the server's (28P01 for a rejected token) or
    /// 08001 for client-side failures.
    #[error("cannot connect to {target}: {message}")]
    Connect {
        target: String,
        message: String,
        sqlstate: String,
    },
    /// IAM token generation.
    #[error("token: {0}")]
    Auth(String),
    /// A statement failed outside a script.
    #[error("database error: {0}")]
    Database(DbError),
    /// A script failed; the message already carries `script:line:column` and the caret block.
    #[error("{0}")]
    Script(String),
    #[error("`{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A stress or bench threshold was breached (the report was already printed): exit 3.
    #[error("{0}")]
    Threshold(String),
    /// Ctrl-C or SIGTERM: exit 130.
    #[error("interrupted")]
    Interrupted,
    /// The script asked for this exit status with `exit(n)`; nothing to print.
    #[error("exit {0}")]
    Exit(i32),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::Threshold(_) => EXIT_THRESHOLD,
            Error::Interrupted => crate::runtime::interrupted_status(),
            Error::Exit(code) => *code,
            _ => EXIT_RUNTIME,
        }
    }

    pub fn io(path: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
