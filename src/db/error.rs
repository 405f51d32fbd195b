//! sqlx errors to `DbError` (`#{sqlstate, message, retryable}`), and which ones are conflicts.
//!
//! Client-side failures get the closest standard SQLSTATE so scripts can branch on one field:
//! 08006 for a lost connection, 08001 for one that could not be opened, 07001 for a parameter
//! count mismatch, 42804 for a value of the wrong type.

use std::time::Duration;

use rand::Rng;
use sqlx::error::DatabaseError;
use sqlx::postgres::PgDatabaseError;

use crate::error::DbError;

/// Serialization failure: PostgreSQL's REPEATABLE READ conflicts and DSQL's OCC (OC000/OC001).
pub const SERIALIZATION_FAILURE: &str = "40001";
pub const DEADLOCK_DETECTED: &str = "40P01";

/// True for errors that succeed when the whole transaction is retried from BEGIN.
/// 54000 (limits), 0A000 (unsupported) and 23xxx (constraints) are never conflicts.
pub fn is_retryable(sqlstate: &str, message: &str) -> bool {
    // The OC codes only count inside class 40: a constraint error quoting a value that happens
    // to contain "OC000" is not a conflict.
    sqlstate == SERIALIZATION_FAILURE
        || sqlstate == DEADLOCK_DETECTED
        || (sqlstate.starts_with("40") && (message.contains("OC000") || message.contains("OC001")))
}

/// Exponential backoff with full jitter: up to 10 ms, 20 ms, 40 ms ... capped at 1 s.
pub fn backoff(attempt: i64) -> Duration {
    let cap = (10u64 << attempt.clamp(0, 7) as u64).min(1000);
    Duration::from_millis(rand::rng().random_range(1..=cap))
}

pub fn client_error(sqlstate: &str, message: impl Into<String>) -> DbError {
    DbError {
        sqlstate: sqlstate.into(),
        message: message.into(),
        retryable: false,
    }
}

/// Map any sqlx error. Never includes connection options (they may hold a password).
pub fn from_sqlx(err: sqlx::Error) -> DbError {
    match err {
        sqlx::Error::Database(e) => from_database(e.as_ref()),
        sqlx::Error::Io(e) => client_error("08006", format!("connection lost: {}", io_reason(&e))),
        sqlx::Error::Tls(e) => client_error("08006", format!("TLS error: {e}")),
        sqlx::Error::PoolTimedOut => client_error(
            "08001",
            "timed out waiting for a connection from the pool (all connections are busy or the server does not answer)",
        ),
        sqlx::Error::PoolClosed => client_error("08003", "the connection pool is closed"),
        sqlx::Error::Protocol(m) if m.contains("CopyInResponse") || m.contains("CopyOutResponse") => {
            // 08P01: the connection is mid-COPY and is dropped, like any protocol violation.
            client_error(
                "08P01",
                "COPY ... FROM STDIN / TO STDOUT is not supported here; use INSERT (with array \
                 parameters for bulk loads) or psql's \\copy",
            )
        }
        sqlx::Error::Protocol(m) => client_error("08P01", format!("protocol error: {m}")),
        sqlx::Error::ColumnDecode { index, source } => {
            client_error("22000", format!("cannot decode column {index}: {source}"))
        }
        other => client_error("XX000", other.to_string()),
    }
}

pub fn from_database(e: &dyn DatabaseError) -> DbError {
    let sqlstate = e
        .code()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "XX000".into());
    let mut message = e.message().to_string();
    if let Some(pg) = e.try_downcast_ref::<PgDatabaseError>() {
        if let Some(detail) = pg.detail() {
            message.push_str(&format!(" (detail: {detail})"));
        }
        if let Some(hint) = pg.hint() {
            message.push_str(&format!(" (hint: {hint})"));
        }
    }
    DbError {
        retryable: is_retryable(&sqlstate, &message),
        sqlstate,
        message,
    }
}

/// A short reason for an I/O error, without the "(os error N)" noise.
pub fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset by the server".into(),
        ConnectionAborted => "connection aborted".into(),
        TimedOut => "timed out".into(),
        NotFound => "no such socket or host".into(),
        UnexpectedEof => "the server closed the connection".into(),
        BrokenPipe => "the server closed the connection".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_lowercase(),
                None => s,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_retryable;

    #[test]
    fn conflicts_are_retryable_and_limits_are_not() {
        assert!(is_retryable("40001", "could not serialize access"));
        assert!(is_retryable(
            "40001",
            "change conflicts with another transaction, please retry: (OC000)"
        ));
        assert!(is_retryable("40P01", "deadlock detected"));
        assert!(!is_retryable("54000", "transaction row limit exceeded"));
        assert!(!is_retryable(
            "23505",
            "duplicate key value violates unique constraint"
        ));
        assert!(!is_retryable("0A000", "feature not supported"));
        assert!(!is_retryable(
            "23505",
            "Key (email)=(OC000@example.com) already exists"
        ));
    }
}
