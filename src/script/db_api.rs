//! `connect`, `query`, `query_one`, `execute`, `transaction` and the `Connection` handle.
//!
//! A session keeps one connection per database it has used (as psql keeps one), so a sequence
//! of statements costs no pool traffic and a transaction is simply that connection between
//! BEGIN and COMMIT. Connections older than the pool's recycle age are replaced between
//! statements, and one that failed with a connection error is dropped, so the next call starts
//! clean.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Engine, FnPtr, Map, NativeCallContext};
use sqlx::pool::PoolConnection;
use sqlx::{Executor, Postgres};

use super::{db_error, host_error, rhai_db_error, script_error, Host, RhaiResult, Session};
use crate::cli::ConnectionArgs;
use crate::config::{self, ProcessEnv};
use crate::db::exec::{self, ResultSet};
use crate::db::{error::client_error, Database, Flavor, PoolSettings};
use crate::error::DbError;

/// Replace a session's connection after this long (DSQL closes connections at 60 minutes).
const SESSION_CONNECTION_MAX_AGE: Duration = Duration::from_secs(45 * 60);

/// Default number of retries of a transaction closure on a serialization conflict.
pub const DEFAULT_TX_RETRIES: i64 = 5;

/// A connection handle in scripts (`let c = connect(#{...}); c.query(...)`).
#[derive(Clone)]
pub struct Conn(pub Arc<Database>);

impl std::fmt::Display for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connection({})", self.0.label())
    }
}

/// How a value of a type dsqlsh registers prints outside the engine (eval's result, JSON),
/// where Rhai itself would only give the Rust type name.
pub fn host_value_text(v: &Dynamic) -> Option<String> {
    v.read_lock::<Conn>().map(|c| c.to_string())
}

/// What `run_transaction` did: the closure's value or the error, and how many retries it took.
pub struct TxOutcome {
    pub result: RhaiResult<Dynamic>,
    pub retries: u32,
}

/// A session's connection to one database.
pub(crate) struct Held {
    pub db: Arc<Database>,
    pub conn: PoolConnection<Postgres>,
    /// The server process behind `conn`, when the server tells (for cancelling).
    backend_pid: Option<i32>,
    acquired: Instant,
    /// Between BEGIN and COMMIT/ROLLBACK.
    pub in_tx: bool,
    /// First statement error inside the transaction (the server has aborted it).
    pub failed: Option<DbError>,
    /// A BEGIN sent ahead with the previous COMMIT (`run_transaction` with `chain`): the next
    /// transaction is open but has run nothing yet.
    pub begun_ahead: bool,
    /// A transaction the script (or REPL) opened with its own `BEGIN` statement.
    pub manual_tx: bool,
}

fn nested_in_manual_tx() -> DbError {
    client_error(
        "25001",
        "transaction: a transaction opened with BEGIN is still open on this connection; end it \
         with COMMIT or ROLLBACK first (transactions do not nest)",
    )
}

/// Whether a transaction opened by SQL text is open after `sql` ran, given whether one was
/// before: BEGIN/START open one; COMMIT, END, ROLLBACK (not ROLLBACK TO), ABORT and PREPARE
/// TRANSACTION end it, unless `AND CHAIN` opens the next at once. Comments are skipped.
fn manual_tx_after(sql: &str, mut open: bool) -> bool {
    let (mut statements, rest) = crate::sql_lex::split_statements(sql);
    statements.push(rest);
    for statement in &statements {
        let words: Vec<String> = crate::sql_lex::after_leading_comments(statement)
            .split(|c: char| c.is_whitespace() || c == ';')
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_uppercase)
            .collect();
        let chained = words.windows(2).any(|w| w[0] == "AND" && w[1] == "CHAIN");
        match (
            words.first().map(String::as_str),
            words.get(1).map(String::as_str),
        ) {
            (Some("BEGIN" | "START"), _) => open = true,
            (Some("ROLLBACK"), Some("TO")) => {}
            (Some("COMMIT" | "END" | "ROLLBACK" | "ABORT"), _) => open = chained,
            (Some("PREPARE"), Some("TRANSACTION")) => open = false,
            _ => {}
        }
    }
    open
}

/// Does `sql` end a transaction (COMMIT, ROLLBACK, ...), whatever the server answered? A
/// failed COMMIT ends it too: the server rolls back.
fn ends_transaction(sql: &str) -> bool {
    let (statements, rest) = crate::sql_lex::split_statements(sql);
    statements.len() + usize::from(!rest.trim().is_empty()) == 1 && !manual_tx_after(sql, true)
}

impl Held {
    /// Past the pool's connection lifetime (or 45 minutes): replace before the next statement.
    fn too_old(&self) -> bool {
        let limit = self
            .db
            .max_connection_age()
            .map_or(SESSION_CONNECTION_MAX_AGE, |l| {
                l.min(SESSION_CONNECTION_MAX_AGE)
            });
        self.acquired.elapsed() >= limit
    }
}

impl Session {
    fn lost_tx_on(&self, db: &Arc<Database>) -> bool {
        self.lost_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|d| Arc::ptr_eq(d, db))
    }

    fn clear_lost_tx(&self) {
        self.lost_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    /// The next statement runs on a new connection: say once that session state is gone.
    /// `lost`: the old one just failed (the statement's own error follows this note).
    fn note_reconnect(&self, lost: bool) {
        let why = if lost {
            "the connection was lost; the next statement will use a new one"
        } else {
            "continuing on a new connection (the old one reached its lifetime)"
        };
        eprintln!(
            "dsqlsh: note: {why}; settings made with SET and temporary tables of the old one \
             are gone"
        );
    }

    /// Which database a call without an explicit handle goes to: the open transaction's,
    /// else the default.
    fn pick_db(&self, explicit: Option<Arc<Database>>) -> RhaiResult<Arc<Database>> {
        if let Some(db) = explicit {
            return Ok(db);
        }
        let in_tx = self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|h| h.in_tx)
            .map(|h| h.db.clone());
        match in_tx {
            Some(db) => Ok(db),
            None => self.default_db().map_err(host_error),
        }
    }

    /// Run `f` on this session's connection to `db`, acquiring one if needed.
    pub(crate) fn with_conn<T>(
        &self,
        db: &Arc<Database>,
        f: impl AsyncFnOnce(&Database, &mut sqlx::PgConnection) -> Result<T, DbError>,
    ) -> RhaiResult<T> {
        let host = &self.host;
        if self.lost_tx_on(db) {
            // The transaction's connection died: nothing may run until the transaction ends,
            // or later statements would commit on their own on a fresh connection.
            return Err(db_error(client_error(
                "08006",
                "the connection was lost inside the transaction; it was not committed, and \
                 statements cannot continue it",
            )));
        }
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let idx = conns.iter().position(|h| Arc::ptr_eq(&h.db, db));
        let idx = match idx {
            Some(i) if conns[i].in_tx || !conns[i].too_old() => i,
            stale => {
                if let Some(i) = stale {
                    conns.remove(i);
                    self.note_reconnect(false);
                }
                let (conn, backend_pid) = self
                    .rt()
                    .block_on(async {
                        let mut conn = db.acquire().await?;
                        // Remembered so Ctrl-C can cancel a running statement on the server.
                        let pid: Option<i32> = sqlx::query_scalar("SELECT pg_backend_pid()")
                            .fetch_one(&mut *conn)
                            .await
                            .ok();
                        Ok::<_, DbError>((conn, pid))
                    })
                    .map_err(host_error)?
                    .map_err(db_error)?;
                conns.push(Held {
                    db: db.clone(),
                    conn,
                    backend_pid,
                    acquired: Instant::now(),
                    in_tx: false,
                    failed: None,
                    begun_ahead: false,
                    manual_tx: false,
                });
                conns.len() - 1
            }
        };
        let held = &mut conns[idx];
        let outcome = self.rt().block_on(f(&held.db, &mut held.conn));
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if held.in_tx && held.failed.is_none() {
                    held.failed = Some(e.clone());
                }
                if crate::db::is_connection_error(&e) {
                    let mut dead = conns.remove(idx);
                    dead.conn.close_on_drop();
                    if dead.in_tx {
                        *self.lost_tx.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(dead.db.clone());
                    } else if dead.manual_tx {
                        *self
                            .lost_manual_tx
                            .lock()
                            .unwrap_or_else(|e| e.into_inner()) = Some(dead.db.clone());
                    }
                    self.note_reconnect(true);
                }
                Err(db_error(e))
            }
            Err(interrupted) => {
                // The statement was abandoned mid-protocol: this connection cannot be reused, and
                // closing it does not stop the server's work, so cancel that explicitly.
                let mut dead = conns.remove(idx);
                dead.conn.close_on_drop();
                if dead.in_tx {
                    *self.lost_tx.lock().unwrap_or_else(|e| e.into_inner()) = Some(dead.db.clone());
                } else if dead.manual_tx {
                    *self
                        .lost_manual_tx
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(dead.db.clone());
                }
                if let Some(pid) = dead.backend_pid {
                    cancel_backend(host, &dead.db, pid);
                }
                Err(host_error(interrupted))
            }
        }
    }

    pub(crate) fn run_query(
        &self,
        db: Option<Arc<Database>>,
        sql: &str,
        params: Vec<Dynamic>,
    ) -> RhaiResult<ResultSet> {
        let db = self.pick_db(db)?;
        if self.settle_lost_manual_tx(&db, sql)? {
            return Ok(ResultSet {
                columns: Arc::from(Vec::new()),
                rows: Vec::new(),
                rows_affected: 0,
            });
        }
        let result = self.with_conn(&db, async |db, conn| {
            exec::query(db, conn, sql, &params).await
        });
        self.track_manual_tx(&db, sql, result.is_ok());
        result
    }

    /// After the connection of a transaction opened with BEGIN was lost: refuse statements
    /// until the script ends that transaction. Its ROLLBACK is then done (true: nothing to
    /// send); its COMMIT fails, since nothing was committed.
    fn settle_lost_manual_tx(&self, db: &Arc<Database>, sql: &str) -> RhaiResult<bool> {
        let mut lost = self
            .lost_manual_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !lost.as_ref().is_some_and(|d| Arc::ptr_eq(d, db)) {
            return Ok(false);
        }
        if !ends_transaction(sql) {
            return Err(db_error(client_error(
                "08006",
                "the connection was lost inside the transaction opened with BEGIN, which was \
                 not committed; end it with ROLLBACK before running more statements",
            )));
        }
        *lost = None;
        let word = crate::sql_lex::after_leading_comments(sql)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        if matches!(word.trim_end_matches(';'), "COMMIT" | "END") {
            return Err(db_error(client_error(
                "08006",
                "the connection was lost inside the transaction, so it was not committed",
            )));
        }
        Ok(true)
    }

    /// Follow BEGIN/COMMIT statements the script sends itself (see `manual_tx_after`). Of a
    /// statement that failed only a transaction end counts (a failed COMMIT rolls back).
    fn track_manual_tx(&self, db: &Arc<Database>, sql: &str, succeeded: bool) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = conns
            .iter_mut()
            .find(|h| Arc::ptr_eq(&h.db, db) && !h.in_tx)
        {
            if succeeded {
                h.manual_tx = manual_tx_after(sql, h.manual_tx);
            } else if ends_transaction(sql) {
                h.manual_tx = false;
            }
        }
    }

    fn mark_manual_tx(&self, db: &Arc<Database>) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = conns.iter_mut().find(|h| Arc::ptr_eq(&h.db, db)) {
            h.manual_tx = true;
        }
    }

    /// Did the script open a transaction with its own BEGIN on `db`'s connection?
    fn manual_tx_open(&self, db: &Arc<Database>) -> bool {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|h| Arc::ptr_eq(&h.db, db) && h.manual_tx)
    }

    fn run_execute(
        &self,
        db: Option<Arc<Database>>,
        sql: &str,
        params: Vec<Dynamic>,
    ) -> RhaiResult<u64> {
        let db = self.pick_db(db)?;
        if self.settle_lost_manual_tx(&db, sql)? {
            return Ok(0);
        }
        let result = self.with_conn(&db, async |db, conn| {
            exec::execute(db, conn, sql, &params).await
        });
        self.track_manual_tx(&db, sql, result.is_ok());
        result
    }

    fn in_transaction(&self) -> bool {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|h| h.in_tx)
    }

    /// End the open transaction with ROLLBACK, if there is one (used after an escaped error).
    pub(crate) fn abandon_transaction(&self) {
        self.clear_lost_tx();
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = conns.iter().position(|h| h.in_tx) {
            let held = &mut conns[i];
            held.in_tx = false;
            held.failed = None;
            held.begun_ahead = false;
            if !rollback(self.rt(), &mut held.conn) {
                let mut dead = conns.remove(i);
                dead.conn.close_on_drop();
            }
        }
    }

    /// Return every held connection to its pool (before the pools close). A session with a
    /// runtime of its own closes them instead: their sockets belong to that runtime, which
    /// ends with the session.
    pub fn release_connections(&self) {
        self.abandon_transaction();
        let held: Vec<Held> =
            std::mem::take(&mut *self.conns.lock().unwrap_or_else(|e| e.into_inner()));
        if self.local_rt.is_some() {
            self.rt().block_on_uninterruptible(async {
                for h in held {
                    let _ = h.conn.close().await;
                }
            });
        } else {
            let _enter = self.rt().enter();
            drop(held);
        }
    }

    /// `transaction(opts, || ...)`: run the closure between BEGIN and COMMIT on one connection,
    /// and run it again from BEGIN on a serialization conflict.
    fn transaction(
        &self,
        ctx: &NativeCallContext,
        db: Option<Arc<Database>>,
        opts: &Map,
        body: &FnPtr,
    ) -> RhaiResult<Dynamic> {
        for key in opts.keys() {
            if key.as_str() != "retries" {
                return Err(script_error(format!(
                    "transaction: unknown option `{key}` (known: retries)"
                )));
            }
        }
        let retries = match opts.get("retries") {
            None => DEFAULT_TX_RETRIES,
            Some(v) => v.as_int().ok().filter(|n| *n >= 0).ok_or_else(|| {
                script_error("transaction: `retries` must be a non-negative integer")
            })?,
        };
        if self.in_transaction() {
            return Err(script_error(
                "transaction: a transaction is already open; transactions do not nest \
                 (DSQL has no SAVEPOINT)",
            ));
        }
        let db = self.pick_db(db)?;
        let mut call = || body.call_within_context::<Dynamic>(ctx, ());
        self.run_transaction(&db, retries as u32, false, &mut call)
            .result
    }

    /// BEGIN, `body`, COMMIT on this session's connection to `db`; on a serialization
    /// conflict, ROLLBACK and run everything again after a backoff, up to `retries` times.
    ///
    /// With `chain` (back-to-back bench calls), a successful COMMIT carries the next BEGIN in
    /// the same round trip, so a one-statement call costs two round trips instead of three.
    /// PostgreSQL takes a REPEATABLE READ snapshot at the first statement, not at BEGIN, so the
    /// early BEGIN changes nothing the next call can see.
    pub(crate) fn run_transaction(
        &self,
        db: &Arc<Database>,
        retries: u32,
        chain: bool,
        body: &mut dyn FnMut() -> RhaiResult<Dynamic>,
    ) -> TxOutcome {
        let begin = match db.flavor {
            // DSQL rejects isolation clauses; its only level is snapshot isolation.
            Flavor::Dsql => "BEGIN",
            Flavor::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ",
        };
        let commit_and_begin = match db.flavor {
            Flavor::Dsql => "COMMIT; BEGIN",
            Flavor::Postgres => "COMMIT; BEGIN ISOLATION LEVEL REPEATABLE READ",
        };
        let mut attempt: u32 = 0;
        let done = |result, retries| TxOutcome { result, retries };
        if self.manual_tx_open(db) {
            // BEGIN inside it would only warn, and our COMMIT would commit the script's own
            // transaction along with ours.
            return done(Err(db_error(nested_in_manual_tx())), 0);
        }
        loop {
            if !self.take_begun_ahead(db) {
                let (began, notices) = crate::output::capture_notices(|| {
                    self.with_conn(db, async |_, conn| {
                        conn.execute(begin)
                            .await
                            .map(|_| ())
                            .map_err(crate::db::error::from_sqlx)
                    })
                });
                if let Err(e) = began {
                    return done(Err(e), attempt);
                }
                if notices
                    .iter()
                    .any(|n| n.contains("there is already a transaction in progress"))
                {
                    // A transaction the script opened some way the text did not show (a DO
                    // block, a function): our BEGIN changed nothing, and COMMIT would end the
                    // script's own transaction. Nothing ran; say so.
                    self.mark_manual_tx(db);
                    return done(Err(db_error(nested_in_manual_tx())), 0);
                }
            }
            self.mark_tx(db, true);
            let result = body();
            let failed = self.take_tx_failure(db);
            let outcome: Result<(), DbError> = match (result, failed) {
                (Ok(value), None) => {
                    let verb = if chain { commit_and_begin } else { "COMMIT" };
                    match self.finish(db, verb) {
                        Ok(()) => {
                            if chain {
                                self.set_begun_ahead(db);
                            }
                            return done(Ok(value), attempt);
                        }
                        Err(e) => Err(e),
                    }
                }
                (Ok(_), Some(failure)) => {
                    // The script caught an error, but the server aborted the transaction:
                    // committing now would silently roll back.
                    self.finish(db, "ROLLBACK").ok();
                    Err(DbError {
                        message: format!(
                            "the transaction was aborted by an earlier error that the script caught: {}",
                            failure.message
                        ),
                        ..failure
                    })
                }
                (Err(err), failure) => {
                    self.finish(db, "ROLLBACK").ok();
                    match failure {
                        Some(f) if f.retryable => Err(f),
                        _ => return done(Err(err), attempt),
                    }
                }
            };
            let e = outcome.expect_err("success returned above");
            if !e.retryable || attempt >= retries {
                return done(Err(db_error(e)), attempt);
            }
            attempt += 1;
            let backoff = crate::db::error::backoff(attempt as i64);
            if let Err(e) = self.rt().block_on(tokio::time::sleep(backoff)) {
                return done(Err(host_error(e)), attempt);
            }
        }
    }

    /// Consume a BEGIN sent ahead on `db`'s connection; true when there was one.
    fn take_begun_ahead(&self, db: &Arc<Database>) -> bool {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        match conns.iter_mut().find(|h| Arc::ptr_eq(&h.db, db)) {
            Some(h) if h.begun_ahead => {
                h.begun_ahead = false;
                true
            }
            _ => false,
        }
    }

    /// After COMMIT; BEGIN: the connection is in a transaction that has run nothing yet.
    fn set_begun_ahead(&self, db: &Arc<Database>) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = conns.iter_mut().find(|h| Arc::ptr_eq(&h.db, db)) {
            h.in_tx = true;
            h.begun_ahead = true;
        }
    }

    fn mark_tx(&self, db: &Arc<Database>, open: bool) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = conns.iter_mut().find(|h| Arc::ptr_eq(&h.db, db)) {
            h.in_tx = open;
            h.failed = None;
        }
    }

    /// The transaction's recorded failure; a vanished connection counts as one.
    fn take_tx_failure(&self, db: &Arc<Database>) -> Option<DbError> {
        self.clear_lost_tx();
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        match conns.iter_mut().find(|h| Arc::ptr_eq(&h.db, db) && h.in_tx) {
            Some(h) => h.failed.take(),
            None => Some(client_error(
                "08006",
                "the connection was lost inside the transaction; it was not committed",
            )),
        }
    }

    /// COMMIT or ROLLBACK, then leave transaction mode. A lost connection during COMMIT is
    /// reported as such: the outcome is unknown and must not be retried blindly.
    fn finish(&self, db: &Arc<Database>, verb: &'static str) -> Result<(), DbError> {
        let present = self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|h| Arc::ptr_eq(&h.db, db) && h.in_tx);
        if !present {
            return Err(client_error(
                "08006",
                "the connection was lost inside the transaction",
            ));
        }
        let result = self.with_conn(db, async |_, conn| {
            conn.execute(verb)
                .await
                .map(|_| ())
                .map_err(crate::db::error::from_sqlx)
        });
        // The transaction is over whatever the answer; a connection that died on this very
        // COMMIT or ROLLBACK must not block the statements that follow it.
        self.clear_lost_tx();
        self.mark_tx(db, false);
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                let mut err =
                    rhai_db_error(&e).unwrap_or_else(|| client_error("XX000", e.to_string()));
                if verb == "COMMIT" && err.sqlstate.starts_with("08") {
                    err.message = format!(
                        "the connection was lost during COMMIT, so the transaction may or may not \
                         have committed: {}",
                        err.message
                    );
                }
                Err(err)
            }
        }
    }
}

/// Ask the server to cancel whatever backend `pid` is running, from another connection.
/// Best effort, bounded to two seconds: the caller is already reporting the interrupt.
fn cancel_backend(host: &Host, db: &Arc<Database>, pid: i32) {
    host.rt
        .block_on_uninterruptible(db.cancel_backends(&[pid], Duration::from_secs(2)));
}

/// ROLLBACK on a connection; false when the connection is unusable.
pub(crate) fn rollback(rt: &crate::runtime::Runtime, conn: &mut PoolConnection<Postgres>) -> bool {
    rt.block_on_uninterruptible(async { conn.execute("ROLLBACK").await.is_ok() })
}

/// `(conn?, sql, params?)` from the dynamic arguments of the query family.
fn split_args(
    name: &str,
    args: Vec<Dynamic>,
) -> RhaiResult<(Option<Arc<Database>>, String, Vec<Dynamic>)> {
    let mut args = args.into_iter().peekable();
    let conn = match args.peek() {
        Some(first) if first.is::<Conn>() => Some(args.next().expect("peeked").cast::<Conn>().0),
        _ => None,
    };
    let sql = match args.next() {
        Some(s) if s.is_string() => s.into_string().expect("checked"),
        Some(other) => {
            return Err(script_error(format!(
                "{name}: the first argument must be the SQL text (a string), got {}",
                type_label(&other)
            )))
        }
        None => return Err(script_error(format!("{name}: missing the SQL text"))),
    };
    let params = match args.next() {
        None => Vec::new(),
        Some(p) if p.is_array() => p.cast::<Array>(),
        Some(p) if p.is_unit() => Vec::new(),
        Some(other) => {
            return Err(script_error(format!(
                "{name}: parameters must be an array, like {name}(sql, [1, \"x\"]); got {}",
                type_label(&other)
            )))
        }
    };
    if args.next().is_some() {
        return Err(script_error(format!(
            "{name}: too many arguments (expected the SQL text and an array of parameters)"
        )));
    }
    Ok((conn, sql, params))
}

pub fn type_label(v: &Dynamic) -> String {
    match v.type_name() {
        "i64" => "an integer".into(),
        "f64" => "a float".into(),
        "bool" => "a bool".into(),
        "string" | "&str" | "ImmutableString" => "a string".into(),
        "map" => "a map".into(),
        "array" => "an array".into(),
        "()" => "()".into(),
        other => format!("a value of type `{other}`"),
    }
}

fn connect_args(base: &ConnectionArgs, opts: &Map) -> RhaiResult<(ConnectionArgs, PoolSettings)> {
    const KNOWN: &[&str] = &[
        "endpoint",
        "port",
        "user",
        "database",
        "region",
        "profile",
        "url",
        "local",
        "local_dir",
        "ssl_root_cert",
        "connect_addr",
        "pool_max",
        "max_lifetime",
        "token_expires_in",
    ];
    let mut args = base.clone();
    let mut settings = PoolSettings::from_env().map_err(host_error)?;
    let text = |k: &str, v: &Dynamic| -> RhaiResult<String> {
        if v.is_string() {
            Ok(v.to_string())
        } else {
            Err(script_error(format!(
                "connect: `{k}` must be a string, got {}",
                type_label(v)
            )))
        }
    };
    let int = |k: &str, v: &Dynamic, min: i64| -> RhaiResult<i64> {
        v.as_int().ok().filter(|n| *n >= min).ok_or_else(|| {
            script_error(format!(
                "connect: `{k}` must be an integer of at least {min}, got {v}"
            ))
        })
    };
    // A map naming a target replaces the command line's target entirely.
    if ["endpoint", "host", "url", "local"]
        .iter()
        .any(|k| opts.contains_key(*k))
    {
        args.endpoint = None;
        args.database_url = None;
        args.local = false;
    }
    for (k, v) in opts {
        match k.as_str() {
            // `host` and `dbname` as psql users write them (`.connect host=... dbname=...`).
            "endpoint" | "host" => args.endpoint = Some(text(k, v)?),
            "url" => args.database_url = Some(crate::secret::Secret::new(text(k, v)?)),
            "user" => args.user = Some(text(k, v)?),
            "database" | "dbname" => args.database = Some(text(k, v)?),
            "region" => args.region = Some(text(k, v)?),
            "profile" => args.profile = Some(text(k, v)?),
            "local_dir" => args.local_dir = Some(text(k, v)?.into()),
            "ssl_root_cert" => args.ssl_root_cert = Some(text(k, v)?.into()),
            "connect_addr" => args.connect_addr = Some(text(k, v)?),
            "port" => {
                let p = int(k, v, 1)?;
                if p > 65535 {
                    return Err(script_error(format!(
                        "connect: `port` must be from 1 to 65535, got {p}"
                    )));
                }
                args.port = Some(p as u16);
            }
            "local" => {
                args.local = v
                    .as_bool()
                    .map_err(|_| script_error("connect: `local` must be true or false"))?
            }
            "pool_max" => settings.max_connections = int(k, v, 1)?.min(10_000) as u32,
            "max_lifetime" => {
                let secs = v
                    .as_float()
                    .or_else(|_| v.as_int().map(|i| i as f64))
                    .map_err(|_| {
                        script_error("connect: `max_lifetime` must be a number of seconds")
                    })?;
                if !(secs > 0.0 && secs < 1e9) {
                    return Err(script_error(
                        "connect: `max_lifetime` must be a number of seconds above 0 and below 1e9",
                    ));
                }
                settings.max_lifetime = Some(Duration::from_secs_f64(secs));
            }
            "token_expires_in" => {
                let secs = config::parse_token_secs(&v.to_string()).map_err(host_error)?;
                settings.token_expires_in = Some(secs);
            }
            other => {
                return Err(script_error(format!(
                    "connect: unknown option `{other}` (known: {}; `host` and `dbname` also \
                     work)",
                    KNOWN.join(", ")
                )))
            }
        }
    }
    Ok((args, settings))
}

pub fn register(engine: &mut Engine, session: &Arc<Session>) {
    engine
        .register_type_with_name::<Conn>("Connection")
        .register_fn("to_string", |c: &mut Conn| c.to_string())
        .register_fn("to_debug", |c: &mut Conn| c.to_string());

    let s = session.clone();
    let connect = move |opts: Map| -> RhaiResult<Conn> {
        let (args, settings) = connect_args(&s.host.config.conn, &opts)?;
        let target = if opts.is_empty() && s.host.config.target.is_some() {
            s.host.config.target.clone()
        } else {
            config::resolve(&args, &ProcessEnv)
                .map_err(host_error)?
                .target
        };
        let target = target.ok_or_else(|| host_error(config::no_database_error()))?;
        let db = s.host.open(&target, settings).map_err(host_error)?;
        s.host.set_default_db(db.clone());
        Ok(Conn(db))
    };
    let c2 = connect.clone();
    engine.register_fn("connect", move || c2(Map::new()));
    engine.register_fn("connect", connect);

    for arity in 1..=3usize {
        let s = session.clone();
        let query = move |args: Vec<Dynamic>| -> RhaiResult<Array> {
            let (db, sql, params) = split_args("query", args)?;
            Ok(s.run_query(db, &sql, params)?.rows)
        };
        let s = session.clone();
        let query_one = move |args: Vec<Dynamic>| -> RhaiResult<Dynamic> {
            let (db, sql, params) = split_args("query_one", args)?;
            Ok(s.run_query(db, &sql, params)?
                .rows
                .into_iter()
                .next()
                .unwrap_or(Dynamic::UNIT))
        };
        let s = session.clone();
        let execute = move |args: Vec<Dynamic>| -> RhaiResult<i64> {
            let (db, sql, params) = split_args("execute", args)?;
            Ok(s.run_execute(db, &sql, params)? as i64)
        };
        match arity {
            1 => {
                engine.register_fn("query", move |a: Dynamic| query(vec![a]));
                engine.register_fn("query_one", move |a: Dynamic| query_one(vec![a]));
                engine.register_fn("execute", move |a: Dynamic| execute(vec![a]));
            }
            2 => {
                engine.register_fn("query", move |a: Dynamic, b: Dynamic| query(vec![a, b]));
                engine.register_fn("query_one", move |a: Dynamic, b: Dynamic| {
                    query_one(vec![a, b])
                });
                engine.register_fn("execute", move |a: Dynamic, b: Dynamic| execute(vec![a, b]));
            }
            _ => {
                engine.register_fn("query", move |a: Dynamic, b: Dynamic, c: Dynamic| {
                    query(vec![a, b, c])
                });
                engine.register_fn("query_one", move |a: Dynamic, b: Dynamic, c: Dynamic| {
                    query_one(vec![a, b, c])
                });
                engine.register_fn("execute", move |a: Dynamic, b: Dynamic, c: Dynamic| {
                    execute(vec![a, b, c])
                });
            }
        }
    }

    let s = session.clone();
    let token = move |opts: Map| -> RhaiResult<String> {
        for k in opts.keys() {
            if ![
                "endpoint",
                "region",
                "user",
                "admin",
                "expires_in",
                "profile",
            ]
            .contains(&k.as_str())
            {
                return Err(script_error(format!(
                    "token: unknown option `{k}` (known: endpoint, region, user, admin, expires_in, profile)"
                )));
            }
        }
        let text = |k: &str| -> RhaiResult<Option<String>> {
            match opts.get(k) {
                None => Ok(None),
                Some(v) if v.is_string() => Ok(Some(v.to_string())),
                Some(v) => Err(script_error(format!(
                    "token: `{k}` must be a string, got {}",
                    type_label(v)
                ))),
            }
        };
        let admin = match opts.get("admin") {
            None => None,
            Some(v) => Some(
                v.as_bool()
                    .map_err(|_| script_error("token: `admin` must be true or false"))?,
            ),
        };
        let expires_in = match opts.get("expires_in") {
            None => config::DEFAULT_TOKEN_SECS,
            Some(v) => config::parse_token_secs(&v.to_string()).map_err(host_error)?,
        };
        let conn = &s.host.config.conn;
        let req = crate::auth::resolve_request(
            text("endpoint")?.or(conn.endpoint.clone()),
            text("region")?.or(conn.region.clone()),
            text("user")?.or(conn.user.clone()),
            admin,
            expires_in,
            text("profile")?.or(conn.profile.clone()),
            &ProcessEnv,
        )
        .map_err(host_error)?;
        let token = s
            .host
            .rt
            .block_on(async {
                let sdk =
                    crate::auth::load_sdk_config(req.profile.as_deref(), &req.spec.region).await;
                crate::auth::generate(&sdk, &req.spec).await
            })
            .map_err(host_error)?
            .map_err(host_error)?;
        Ok(token.expose().to_string())
    };
    let t2 = token.clone();
    engine.register_fn("token", move || t2(Map::new()));
    engine.register_fn("token", token);

    let s = session.clone();
    engine.register_fn("transaction", move |ctx: NativeCallContext, f: FnPtr| {
        s.transaction(&ctx, None, &Map::new(), &f)
    });
    let s = session.clone();
    engine.register_fn(
        "transaction",
        move |ctx: NativeCallContext, opts: Map, f: FnPtr| s.transaction(&ctx, None, &opts, &f),
    );
    let s = session.clone();
    engine.register_fn(
        "transaction",
        move |ctx: NativeCallContext, c: Conn, f: FnPtr| {
            s.transaction(&ctx, Some(c.0), &Map::new(), &f)
        },
    );
    let s = session.clone();
    engine.register_fn(
        "transaction",
        move |ctx: NativeCallContext, c: Conn, opts: Map, f: FnPtr| {
            s.transaction(&ctx, Some(c.0), &opts, &f)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::manual_tx_after;

    #[test]
    fn transactions_opened_by_sql_text_are_followed() {
        assert!(manual_tx_after("BEGIN", false));
        assert!(manual_tx_after(
            "start transaction isolation level serializable",
            false
        ));
        assert!(manual_tx_after("BEGIN; INSERT INTO t VALUES (';')", false));
        assert!(!manual_tx_after("BEGIN; COMMIT", false));
        assert!(manual_tx_after("ROLLBACK TO SAVEPOINT a", true));
        assert!(!manual_tx_after("rollback", true));
        assert!(!manual_tx_after("END;", true));
        assert!(!manual_tx_after("PREPARE TRANSACTION 'x'", true));
        assert!(manual_tx_after("SELECT 'COMMIT'", true));
        assert!(!manual_tx_after("SELECT 1", false));
        assert!(manual_tx_after("/* hi */ BEGIN", false));
        assert!(manual_tx_after("-- hi\nbegin", false));
        assert!(manual_tx_after("BEGIN; COMMIT AND CHAIN", false));
        assert!(manual_tx_after("ROLLBACK AND CHAIN", true));
        assert!(!manual_tx_after("COMMIT AND NO CHAIN", true));
        assert!(super::ends_transaction("/* x */ COMMIT"));
        assert!(!super::ends_transaction("INSERT INTO t VALUES (1)"));
        assert!(!super::ends_transaction("COMMIT; BEGIN"));
    }
}
