//! The native load engine behind `stress()`: Rust tasks insert rows; Rhai only configures the
//! run and prints the report.
//!
//! Model: `concurrency` workers, each holding one connection for the whole run (as pgbench's
//! clients do: no pool traffic and no health-check ping per transaction), pull work until
//! `users` rows have been attempted or `duration` has elapsed. With `rate`, transactions start on
//! a fixed schedule shared by all workers (an open model) and latency is measured from the
//! scheduled start, so a stalled server shows up in the percentiles instead of silently lowering
//! the request rate.
//!
//! Correctness: serialization conflicts (40001, DSQL's OC000/OC001) retry the whole
//! transaction with exponential backoff and jitter; anything else fails the transaction and is
//! counted by SQLSTATE. A connection lost during the statement leaves the outcome unknown, so the
//! engine looks the batch's client-generated ids up before counting or retrying it. Emails embed
//! the row number and a per-run tag, so generated rows never collide on the unique email.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Postgres};
use uuid::Uuid;

use crate::db::error::from_sqlx;
use crate::db::Database;
use crate::error::DbError;
use crate::users::{name_parts, Ident, ROLES};

/// DSQL's per-transaction limits (DSQL.md): rows and bytes modified.
pub const DSQL_MAX_ROWS: usize = 3000;
pub const DSQL_MAX_BYTES: usize = 10 * 1024 * 1024;
/// New connections per second DSQL accepts before answering 53400.
const DSQL_CONNECT_RATE: u32 = 100;
/// A worker replaces its connection after this long (DSQL ends connections at 60 minutes).
const WORKER_CONNECTION_MAX_AGE: Duration = Duration::from_secs(50 * 60);

#[derive(Debug, Clone)]
pub struct Options {
    /// Rows to insert; `None` with a duration means "until the time is up".
    pub users: Option<u64>,
    pub concurrency: usize,
    pub batch: usize,
    pub duration: Option<Duration>,
    /// Transactions started per second (open model).
    pub rate: Option<f64>,
    pub max_retries: u32,
    pub seed: Option<u64>,
    pub table: Ident,
    pub thresholds: Thresholds,
    /// Print a progress line (or bar) on stderr every second.
    pub progress: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Thresholds {
    pub max_p99_ms: Option<f64>,
    pub min_rows_per_s: Option<f64>,
    pub max_failed: Option<u64>,
}

impl Options {
    /// Check the options against each other and the target's limits.
    pub fn validate(&self, dsql: bool) -> Result<(), String> {
        if self.concurrency == 0 || self.concurrency > 10_000 {
            return Err(format!(
                "`concurrency` must be from 1 to 10000, got {}",
                self.concurrency
            ));
        }
        if self.batch == 0 {
            return Err("`batch` must be at least 1".into());
        }
        if dsql && self.batch > DSQL_MAX_ROWS {
            return Err(format!(
                "`batch` {} is above DSQL's limit of {DSQL_MAX_ROWS} rows per transaction",
                self.batch
            ));
        }
        let bytes = self.batch * ESTIMATED_ROW_BYTES;
        if dsql && bytes > DSQL_MAX_BYTES {
            return Err(format!(
                "`batch` {} would modify about {} MiB, above DSQL's 10 MiB per transaction",
                self.batch,
                bytes / (1024 * 1024)
            ));
        }
        if self.batch > 100_000 {
            return Err(format!(
                "`batch` {} is too large (at most 100000 rows)",
                self.batch
            ));
        }
        if let Some(r) = self.rate {
            if !(0.001..=1e9).contains(&r) {
                return Err("`rate` must be from 0.001 to 1e9 transactions per second".into());
            }
        }
        if self.users.is_none() && self.duration.is_none() {
            return Err("give `users`, `duration`, or both".into());
        }
        Ok(())
    }
}

/// `30`, `30s`, `5m`, `1h`, `500ms`: a positive duration (`stress`/`bench` `duration`, and the
/// `--duration` flag, which is checked when the command line is parsed).
pub fn parse_duration_text(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let secs =
        num.trim().parse::<f64>().map(|n| n * mult).map_err(|_| {
            format!("`{text}` is not a duration (use seconds, or 30s, 5m, 1h, 500ms)")
        })?;
    duration_from_secs(secs, &format!("`{text}`"))
}

/// A positive, representable number of seconds; `shown` is how the value was written.
pub fn duration_from_secs(secs: f64, shown: &str) -> Result<Duration, String> {
    if secs > 0.0 && secs < 1e9 {
        Ok(Duration::from_secs_f64(secs))
    } else if secs > 0.0 {
        Err(format!("{shown} is too long (at most 1e9 seconds)"))
    } else {
        Err(format!("the duration must be positive, got {shown}"))
    }
}

/// A generous estimate of one generated row as stored (id, name, email, role, timestamp, overhead).
const ESTIMATED_ROW_BYTES: usize = 256;

#[derive(Debug, Clone)]
pub struct Report {
    pub users: Option<u64>,
    pub concurrency: usize,
    pub batch: usize,
    pub elapsed: Duration,
    pub succeeded: u64,
    pub failed: u64,
    pub retries: u64,
    pub txn_succeeded: u64,
    pub txn_failed: u64,
    pub latency_us: Histogram<u64>,
    pub pool_wait_us: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
    /// The first message seen for each SQLSTATE, to explain the counts.
    pub error_messages: BTreeMap<String, String>,
    pub breaches: Vec<String>,
    pub interrupted: bool,
}

impl Report {
    pub fn rows_per_s(&self) -> f64 {
        per_second(self.succeeded, self.elapsed)
    }
    pub fn txn_per_s(&self) -> f64 {
        per_second(self.txn_succeeded, self.elapsed)
    }

    fn check(&mut self, t: &Thresholds) {
        let p99_ms = self.latency_us.value_at_quantile(0.99) as f64 / 1000.0;
        if let Some(max) = t.max_p99_ms {
            if p99_ms > max {
                self.breaches.push(format!(
                    "p99 latency {p99_ms:.2} ms is above max_p99_ms {max}"
                ));
            }
        }
        if let Some(min) = t.min_rows_per_s {
            if self.rows_per_s() < min {
                self.breaches.push(format!(
                    "{:.1} rows/s is below min_rows_per_s {min}",
                    self.rows_per_s()
                ));
            }
        }
        // `failed` in the report counts rows (for bench: calls); so does max_failed.
        if let Some(max) = t.max_failed {
            if self.failed > max {
                self.breaches
                    .push(format!("{} failed is above max_failed {max}", self.failed));
            }
        }
    }
}

fn per_second(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

pub fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 1 hour at 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

impl Live {
    /// The open model's schedule, shared by all workers: the next transaction's intended start,
    /// `None` once that is past the deadline. Validation keeps `rate` at 0.001/s or more, so
    /// the offset always fits a Duration.
    pub fn next_slot(
        &self,
        start: Instant,
        rate: f64,
        deadline: Option<Instant>,
    ) -> Option<Instant> {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let at = start + Duration::from_secs_f64(ticket as f64 / rate);
        deadline.is_none_or(|d| at < d).then_some(at)
    }
}

/// Waits for an open model's scheduled starts with the kernel's high-resolution timers (a
/// timerfd, watched by the runtime): tokio's own timer counts whole milliseconds and wakes up
/// to a millisecond late, which the latency of every scheduled transaction would include.
struct PreciseTimer {
    fd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl PreciseTimer {
    /// Must be called inside a runtime. Without a timerfd it falls back to tokio's timer.
    fn new() -> PreciseTimer {
        use std::os::fd::FromRawFd;
        // SAFETY: timerfd_create takes no pointers; a non-negative result is a new fd we own.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        let fd = (raw >= 0)
            .then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) })
            .and_then(|fd| {
                // SAFETY: an OwnedFd stays open, and is the same fd, for the AsyncFd's life.
                unsafe {
                    tokio::io::unix::AsyncFd::register_with_interest(
                        fd,
                        tokio::io::Interest::READABLE,
                    )
                }
                .ok()
            });
        PreciseTimer { fd }
    }

    async fn sleep_until(&self, at: Instant) {
        use std::os::fd::AsRawFd;
        let Some(fd) = &self.fd else {
            tokio::time::sleep_until(at.into()).await;
            return;
        };
        let now = Instant::now();
        if at <= now {
            return;
        }
        // Instant is CLOCK_MONOTONIC, so a relative expiry measures the same clock.
        let d = at - now;
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos().max(1) as libc::c_long,
            },
        };
        // SAFETY: a valid timerfd and a pointer to a live itimerspec; no old value wanted.
        if unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } != 0 {
            tokio::time::sleep_until(at.into()).await;
            return;
        }
        loop {
            let Ok(mut ready) = fd.readable().await else {
                return;
            };
            let mut expirations = [0u8; 8];
            // SAFETY: reading 8 bytes into an 8-byte buffer from our timerfd.
            let n = unsafe {
                libc::read(
                    fd.as_raw_fd(),
                    expirations.as_mut_ptr().cast(),
                    expirations.len(),
                )
            };
            if n == 8 {
                return;
            }
            ready.clear_ready();
        }
    }
}

/// Linux lets a sleeping thread's timers fire up to 50 µs late (the timer slack) to batch
/// wake-ups; a load generator's scheduled starts should not, so its threads ask for 1 µs.
pub fn precise_timers_for_this_thread() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and affects only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}

/// A blocking wait until `at` (bench workers are threads): nanosleep's precision rather than
/// the runtime's millisecond timer, in slices short enough to notice Ctrl-C. False when
/// interrupted.
pub fn sleep_until_blocking(at: Instant) -> bool {
    loop {
        if crate::runtime::interrupted() {
            return false;
        }
        let now = Instant::now();
        if now >= at {
            return true;
        }
        std::thread::sleep((at - now).min(Duration::from_millis(50)));
    }
}

/// Counters the progress line reads while workers run (shared with `bench`).
#[derive(Default)]
pub struct Live {
    pub rows_ok: AtomicU64,
    pub rows_failed: AtomicU64,
    /// Rows of batches whose outcome is not known yet (see `resolve_at_end`).
    pub rows_pending: AtomicU64,
    pub retries: AtomicU64,
    pub next_row: AtomicU64,
    pub next_ticket: AtomicU64,
    pub stop: AtomicBool,
}

/// What the run loop can see of one stress worker while it runs, so that a worker stuck in a
/// statement (a lock, a network partition) can be cancelled on the server and the report
/// still include its figures.
#[derive(Default)]
struct WorkerSlot {
    tally: std::sync::Mutex<Tally>,
    /// The server process of the worker's connection (0: not known).
    pid: std::sync::atomic::AtomicI32,
    /// Ids of the batch being inserted right now (empty between batches).
    in_flight: std::sync::Mutex<Vec<Uuid>>,
    /// Set (under the tally's lock) when the report went out without this worker: the batch
    /// it was stuck in is the run's to settle, and the worker records nothing more.
    abandoned: AtomicBool,
}

impl WorkerSlot {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn in_flight(&self) -> std::sync::MutexGuard<'_, Vec<Uuid>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A stuck worker gets this long past the deadline (or past Ctrl-C) before its statement is
/// cancelled on the server, and as long again before the report goes out without it.
const GRACE: Duration = Duration::from_secs(2);
/// How long a stress worker waits for a connection before counting the batch as failed.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// A worker that cannot get a connection this many times in a row stops (as pgbench aborts a
/// client): the server is gone, and every further batch would only wait and fail.
const MAX_CONNECT_FAILURES: u32 = 3;

/// What one worker measured (stress and bench workers alike).
pub struct Tally {
    pub latency: Histogram<u64>,
    pub pool_wait: Histogram<u64>,
    pub txn_ok: u64,
    pub txn_failed: u64,
    pub errors: BTreeMap<String, u64>,
    pub messages: BTreeMap<String, String>,
    /// Ids of batches whose connection was lost and that could not be checked afterwards:
    /// looked up once more when the run ends (see `resolve_at_end`).
    unresolved: Vec<Vec<Uuid>>,
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            latency: new_histogram(),
            pool_wait: new_histogram(),
            txn_ok: 0,
            txn_failed: 0,
            errors: BTreeMap::new(),
            messages: BTreeMap::new(),
            unresolved: Vec::new(),
        }
    }

    /// Count one failed transaction under its SQLSTATE, keeping the first message.
    pub fn failure(&mut self, sqlstate: &str, message: &str) {
        self.txn_failed += 1;
        *self.errors.entry(sqlstate.to_string()).or_default() += 1;
        self.messages
            .entry(sqlstate.to_string())
            .or_insert_with(|| message.to_string());
    }
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

impl Report {
    /// Combine the workers' tallies into one report and check the thresholds.
    #[allow(clippy::too_many_arguments)]
    pub fn from_tallies(
        users: Option<u64>,
        concurrency: usize,
        batch: usize,
        elapsed: Duration,
        live: &Live,
        pool_wait: Histogram<u64>,
        tallies: Vec<Tally>,
        interrupted: bool,
        thresholds: &Thresholds,
    ) -> Report {
        let mut report = Report {
            users,
            concurrency,
            batch,
            elapsed,
            succeeded: live.rows_ok.load(Ordering::SeqCst),
            failed: live.rows_failed.load(Ordering::SeqCst),
            retries: live.retries.load(Ordering::SeqCst),
            txn_succeeded: 0,
            txn_failed: 0,
            latency_us: new_histogram(),
            pool_wait_us: pool_wait,
            errors: BTreeMap::new(),
            error_messages: BTreeMap::new(),
            breaches: Vec::new(),
            interrupted,
        };
        for t in tallies {
            report.latency_us.add(&t.latency).expect("same bounds");
            report.pool_wait_us.add(&t.pool_wait).expect("same bounds");
            report.txn_succeeded += t.txn_ok;
            report.txn_failed += t.txn_failed;
            for (k, v) in t.errors {
                *report.errors.entry(k).or_default() += v;
            }
            for (k, v) in t.messages {
                report.error_messages.entry(k).or_insert(v);
            }
        }
        report.check(thresholds);
        report
    }
}

struct Plan {
    opts: Options,
    insert_one: Arc<str>,
    insert_many: Arc<str>,
    /// The batch insert that skips rows already there: the retry after a lost connection.
    insert_again: Arc<str>,
    lookup: Arc<str>,
    tag: String,
    seed: u64,
    start: Instant,
    deadline: Option<Instant>,
}

/// Create the table when it is missing (the seed's stress test did this too).
pub async fn ensure_table(db: &Database, table: &Ident) -> Result<(), DbError> {
    let mut conn = db.acquire().await?;
    let present: bool = sqlx::query_scalar(crate::users::exists_sql())
        .bind(table.schema.as_deref())
        .bind(&table.name)
        .fetch_one(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    if !present {
        sqlx::query(AssertSqlSafe(crate::users::create_sql(table)))
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    }
    Ok(())
}

/// Run the load. `db` should be a pool sized to the concurrency (see `Database::sibling`).
pub async fn run(db: Arc<Database>, opts: Options) -> Result<Report, DbError> {
    ensure_table(&db, &opts.table).await?;
    let live = Arc::new(Live::default());
    let q = opts.table.quoted();
    let statements = (
        Arc::<str>::from(format!(
            "INSERT INTO {q} (id, name, email, role) VALUES ($1, $2, $3, $4)"
        )),
        // Set-returning functions in the select list zip the arrays without materialising
        // them in a tuplestore, as UNNEST(a, b, ...) in FROM would.
        Arc::<str>::from(format!(
            "INSERT INTO {q} (id, name, email, role) \
             SELECT unnest($1::uuid[]), unnest($2::text[]), unnest($3::text[]), unnest($4::text[])"
        )),
        Arc::<str>::from(format!("SELECT count(*) FROM {q} WHERE id = ANY($1)")),
        Arc::<str>::from(format!(
            "INSERT INTO {q} (id, name, email, role) \
             SELECT unnest($1::uuid[]), unnest($2::text[]), unnest($3::text[]), unnest($4::text[]) \
             ON CONFLICT (id) DO NOTHING"
        )),
    );

    // Workers run on a few threads, each with a single-threaded runtime of its own driving its
    // workers' connections (pgbench's -j model): a round trip then wakes the thread that waits
    // for it instead of passing through a shared reactor thread.
    let threads = opts
        .concurrency
        .min(std::thread::available_parallelism().map_or(1, |n| n.get()));
    let spacing = if db.is_dsql() {
        // Open connections at most DSQL_CONNECT_RATE per second.
        Duration::from_secs(1) / DSQL_CONNECT_RATE
    } else {
        Duration::ZERO
    };
    let slots: Arc<Vec<Arc<WorkerSlot>>> =
        Arc::new((0..opts.concurrency).map(|_| Arc::default()).collect());
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let (start_tx, start_rx) = tokio::sync::watch::channel::<Option<Arc<Plan>>>(None);
    for t in 0..threads {
        let mine: Vec<usize> = (t..opts.concurrency).step_by(threads).collect();
        let (db, live, ready_tx, done_tx, mut start_rx, slots) = (
            db.clone(),
            live.clone(),
            ready_tx.clone(),
            done_tx.clone(),
            start_rx.clone(),
            slots.clone(),
        );
        std::thread::Builder::new()
            .name(format!("dsqlsh-stress-{t}"))
            .spawn(move || {
                precise_timers_for_this_thread();
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx
                            .send(Err(crate::db::error::client_error("XX000", e.to_string())));
                        return;
                    }
                };
                rt.block_on(async move {
                    // Open this thread's connections first, so the timed run starts warm.
                    let opening = mine.iter().map(|&k| {
                        let db = db.clone();
                        async move {
                            tokio::time::sleep(spacing * k as u32).await;
                            let t = Instant::now();
                            db.acquire().await.map(|c| (c, t.elapsed()))
                        }
                    });
                    let mut waits = new_histogram();
                    let mut conns = Vec::new();
                    let mut failure = None;
                    for opened in futures_util::future::join_all(opening).await {
                        match opened {
                            Ok((c, waited)) => {
                                waits.saturating_record(waited.as_micros().max(1) as u64);
                                conns.push(c);
                            }
                            Err(e) => failure = Some(e),
                        }
                    }
                    if let Some(e) = failure {
                        let _ = ready_tx.send(Err(e));
                        for c in conns {
                            let _ = c.close().await;
                        }
                        return;
                    }
                    let _ = ready_tx.send(Ok(waits));
                    let plan = loop {
                        if let Some(p) = start_rx.borrow_and_update().clone() {
                            break Some(p);
                        }
                        if start_rx.changed().await.is_err() {
                            break None;
                        }
                    };
                    let Some(plan) = plan else {
                        for c in conns {
                            let _ = c.close().await;
                        }
                        return;
                    };
                    // One task per worker, so a reply wakes only the worker it is for
                    // (join_all would poll every worker of the thread on each wake).
                    let mut runs = tokio::task::JoinSet::new();
                    for (c, &k) in conns.into_iter().zip(&mine) {
                        let slot = slots[k].clone();
                        runs.spawn(worker(db.clone(), plan.clone(), live.clone(), c, slot));
                    }
                    while let Some(done) = runs.join_next().await {
                        if let Err(e) = done {
                            eprintln!("dsqlsh: a stress worker stopped: {e}");
                        }
                    }
                    let _ = done_tx.send(());
                });
            })
            .map_err(|e| crate::db::error::client_error("XX000", e.to_string()))?;
    }
    drop((ready_tx, done_tx));

    let mut waits = new_histogram();
    for _ in 0..threads {
        match ready_rx.recv().await {
            Some(Ok(h)) => waits.add(&h).expect("same bounds"),
            Some(Err(e)) => return Err(e), // dropping start_tx releases the other threads
            None => {
                return Err(crate::db::error::client_error(
                    "XX000",
                    "a stress thread ended early",
                ))
            }
        }
    }
    let start = Instant::now();
    let plan = Arc::new(Plan {
        insert_one: statements.0,
        insert_many: statements.1,
        insert_again: statements.3,
        lookup: statements.2,
        tag: format!("{:08x}", rand::random::<u32>()),
        seed: opts.seed.unwrap_or_else(rand::random),
        start,
        deadline: opts.duration.map(|d| start + d),
        opts,
    });
    let _ = start_tx.send(Some(plan.clone()));
    let progress = plan
        .opts
        .progress
        .then(|| spawn_progress(plan.opts.users, plan.start, "rows", live.clone()));

    // Wait for the threads. Past the deadline (or Ctrl-C) plus GRACE, statements still running
    // are cancelled on the server; GRACE later the report goes out whatever is still stuck.
    let mut finished = 0;
    let mut interrupted = false;
    let grace_from = |t: Instant| tokio::time::Instant::from_std(t + GRACE);
    let mut cancel_at: Option<tokio::time::Instant> = plan.deadline.map(grace_from);
    let mut give_up_at: Option<tokio::time::Instant> = None;
    while finished < threads {
        tokio::select! {
            done = done_rx.recv() => match done {
                Some(()) => finished += 1,
                None => break,
            },
            _ = crate::runtime::until_interrupted(), if !interrupted => {
                interrupted = true;
                live.stop.store(true, Ordering::SeqCst);
                // Workers stop at their next transaction boundary.
                cancel_at = Some(grace_from(Instant::now()));
            }
            _ = async { tokio::time::sleep_until(cancel_at.expect("guarded")).await }, if cancel_at.is_some() => {
                cancel_at = None;
                live.stop.store(true, Ordering::SeqCst);
                let pids: Vec<i32> = slots
                    .iter()
                    .filter(|s| !s.in_flight().is_empty())
                    .map(|s| s.pid.load(Ordering::SeqCst))
                    .filter(|&p| p > 0)
                    .collect();
                if !pids.is_empty() {
                    // In the background: under a partition the cancel itself cannot connect.
                    let db = db.clone();
                    tokio::spawn(async move {
                        db.cancel_backends(&pids, Duration::from_secs(3)).await
                    });
                }
                give_up_at = Some(tokio::time::Instant::now() + GRACE);
            }
            _ = async { tokio::time::sleep_until(give_up_at.expect("guarded")).await }, if give_up_at.is_some() => {
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    live.stop.store(true, Ordering::SeqCst);
    if let Some(p) = progress {
        p.finish().await;
    }
    // Batches of workers still stuck: their outcome is checked like that of a lost connection.
    let mut results: Vec<Tally> = Vec::with_capacity(slots.len());
    for slot in slots.iter() {
        let mut tally = slot.tally();
        slot.abandoned.store(true, Ordering::SeqCst);
        let mut t = std::mem::take(&mut *tally);
        let stuck = std::mem::take(&mut *slot.in_flight());
        drop(tally);
        if !stuck.is_empty() {
            live.rows_pending
                .fetch_add(stuck.len() as u64, Ordering::Relaxed);
            t.unresolved.push(stuck);
        }
        results.push(t);
    }
    resolve_at_end(&db, &plan, &live, &mut results).await;

    let report = Report::from_tallies(
        plan.opts.users,
        plan.opts.concurrency,
        plan.opts.batch,
        elapsed,
        &live,
        waits,
        results,
        interrupted,
        &plan.opts.thresholds,
    );
    Ok(report)
}

/// One generated row: deterministic in (seed, row number) except for the id.
pub struct RowData {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub role: &'static str,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The row `stress` inserts as number `row` of a run with this seed and tag. Public so that
/// benchmarks can load the same data by other means (COPY) for a fair comparison.
pub fn generated_row(seed: u64, tag: &str, row: u64) -> RowData {
    let h = splitmix(seed ^ splitmix(row));
    let (first, last) = name_parts(h);
    let role = ROLES[(h >> 40) as usize % ROLES.len()];
    RowData {
        // From the thread's RNG: a uuid per row without a getrandom syscall per row.
        id: uuid::Builder::from_random_bytes(rand::random()).into_uuid(),
        email: format!(
            "{}.{}.{row}.{tag}@example.com",
            first.to_ascii_lowercase(),
            last.to_ascii_lowercase(),
        ),
        name: format!("{first} {last}"),
        role,
    }
}

fn row_data(plan: &Plan, row: u64) -> RowData {
    generated_row(plan.seed, &plan.tag, row)
}

enum Attempt {
    Done,
    Conflict(DbError),
    Failed(DbError),
    /// The connection died mid-statement: committed or not is unknown.
    Unknown(DbError),
}

async fn insert(plan: &Plan, conn: &mut PoolConnection<Postgres>, rows: &[RowData]) -> Attempt {
    let result = if rows.len() == 1 {
        let r = &rows[0];
        sqlx::query(AssertSqlSafe(plan.insert_one.clone()))
            .bind(r.id)
            .bind(&r.name)
            .bind(&r.email)
            .bind(r.role)
            .execute(&mut **conn)
            .await
    } else {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        let emails: Vec<&str> = rows.iter().map(|r| r.email.as_str()).collect();
        let roles: Vec<&str> = rows.iter().map(|r| r.role).collect();
        sqlx::query(AssertSqlSafe(plan.insert_many.clone()))
            .bind(ids)
            .bind(names)
            .bind(emails)
            .bind(roles)
            .execute(&mut **conn)
            .await
    };
    match result {
        Ok(_) => Attempt::Done,
        Err(e) => {
            let db = from_sqlx(e);
            if db.retryable {
                Attempt::Conflict(db)
            } else if crate::db::is_connection_error(&db) {
                Attempt::Unknown(db)
            } else {
                Attempt::Failed(db)
            }
        }
    }
}

/// After a lost connection the batch may or may not have committed, and the server may even
/// still be running it. On a new connection the batch is inserted again, skipping rows whose id
/// is there (an insert that meets the lost one's uncommitted rows waits for it to end), and then
/// its ids are counted: every row is in the table exactly once, and `found` says how many. A
/// table whose ids are not unique cannot skip them (42P10): its ids are only counted. Tried
/// with backoff until `until`, when the server cannot be reached.
async fn resolve_lost(
    db: &Database,
    plan: &Plan,
    rows: &[RowData],
    until: Instant,
) -> Result<(u64, PoolConnection<Postgres>), DbError> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut last = None;
    for attempt in 0u32.. {
        if attempt > 0 {
            let pause = crate::db::error::backoff(attempt as i64 + 3);
            if Instant::now() + pause >= until {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        let mut conn = match acquire_by(db, until).await {
            Ok(c) => c,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let again = sqlx::query(AssertSqlSafe(plan.insert_again.clone()))
            .bind(&ids)
            .bind(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.email.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.role).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx);
        if let Err(e) = again {
            if crate::db::is_connection_error(&e) {
                conn.close_on_drop();
                last = Some(e);
                continue;
            }
            // Anything else (no unique id: 42P10; a conflict; another constraint, for the
            // whole batch as the first attempt would have met it) leaves the count to say
            // what is there.
        }
        match count_ids(&mut conn, plan, &ids).await {
            Ok(found) => return Ok((found, conn)),
            Err(e) => {
                conn.close_on_drop();
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| crate::db::error::client_error("08006", "connection lost")))
}

/// A connection from the pool, waiting no later than `until` (nor longer than
/// ACQUIRE_TIMEOUT): a server that is down must not hold a worker past the end of the run.
async fn acquire_by(db: &Database, until: Instant) -> Result<PoolConnection<Postgres>, DbError> {
    let wait = until
        .saturating_duration_since(Instant::now())
        .min(ACQUIRE_TIMEOUT)
        .max(Duration::from_millis(100));
    match tokio::time::timeout(wait, db.acquire()).await {
        Ok(r) => r,
        Err(_) => Err(crate::db::error::client_error(
            "08001",
            format!(
                "no connection to the server within {:.1} s",
                wait.as_secs_f64()
            ),
        )),
    }
}

/// How long after the deadline (or, without one, after the loss) a lost batch is retried.
const RESOLVE_FOR: Duration = Duration::from_secs(10);

async fn count_ids(
    conn: &mut PoolConnection<Postgres>,
    plan: &Plan,
    ids: &[Uuid],
) -> Result<u64, DbError> {
    let found: i64 = sqlx::query_scalar(AssertSqlSafe(plan.lookup.clone()))
        .bind(ids)
        .fetch_one(&mut **conn)
        .await
        .map_err(from_sqlx)?;
    Ok(found.max(0) as u64)
}

/// The server process behind a worker's connection, for cancelling a stuck statement.
async fn backend_pid(conn: &mut PoolConnection<Postgres>) -> i32 {
    sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
        .fetch_one(&mut **conn)
        .await
        .unwrap_or(0)
}

/// Batches still unresolved when the run ends: counted on a fresh connection, now that the
/// server has had time to finish whatever it was running for the lost connections. Bounded to
/// a few seconds in all.
async fn resolve_at_end(db: &Database, plan: &Plan, live: &Live, tallies: &mut [Tally]) {
    let until = Instant::now() + Duration::from_secs(3);
    let mut conn: Option<PoolConnection<Postgres>> = None;
    for tally in tallies.iter_mut() {
        for ids in std::mem::take(&mut tally.unresolved) {
            let n = ids.len() as u64;
            let mut found = None;
            while found.is_none() && Instant::now() < until {
                if conn.is_none() {
                    conn = acquire_by(db, until).await.ok();
                }
                match conn.as_mut() {
                    Some(c) => match count_ids(c, plan, &ids).await {
                        Ok(k) => found = Some(k),
                        Err(_) => conn = None,
                    },
                    None => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            live.rows_pending.fetch_sub(n, Ordering::Relaxed);
            match found {
                Some(k) => {
                    let k = k.min(n);
                    live.rows_ok.fetch_add(k, Ordering::Relaxed);
                    if k == n {
                        tally.txn_ok += 1;
                    } else {
                        fail(tally, live, n - k, lost_rows());
                    }
                }
                None => fail(
                    tally,
                    live,
                    n,
                    crate::db::error::client_error(
                        "08006",
                        "the connection was lost (or the statement never finished) and the \
                         server could not be reached again to check whether the rows \
                         committed; they are counted as failed",
                    ),
                ),
            }
        }
    }
}

fn lost_rows() -> DbError {
    crate::db::error::client_error(
        "08006",
        "the connection was lost during the insert (or the statement never finished), and the \
         rows were not found afterwards",
    )
}

async fn worker(
    db: Arc<Database>,
    plan: Arc<Plan>,
    live: Arc<Live>,
    mut first_conn: PoolConnection<Postgres>,
    slot: Arc<WorkerSlot>,
) {
    let opts = &plan.opts;
    slot.pid
        .store(backend_pid(&mut first_conn).await, Ordering::SeqCst);
    // None after a connection was lost and no new one could be had: the next batch asks again.
    let mut conn = Some(first_conn);
    let mut conn_since = Instant::now();
    let mut connect_failures = 0u32;
    let max_age = db
        .max_connection_age()
        .map_or(WORKER_CONNECTION_MAX_AGE, |l| {
            l.min(WORKER_CONNECTION_MAX_AGE)
        });
    let limit = opts.users.unwrap_or(u64::MAX);
    let timer = opts.rate.map(|_| PreciseTimer::new());
    // Waits for the server end with the run (plus GRACE), not minutes after it.
    let wait_until = || {
        plan.deadline
            .map_or(Instant::now() + ACQUIRE_TIMEOUT, |d| d + GRACE)
    };
    loop {
        if live.stop.load(Ordering::Relaxed) {
            break;
        }
        // When does this transaction start? On the shared schedule, or now.
        let intended = match (opts.rate, &timer) {
            (Some(rate), Some(timer)) => {
                let Some(at) = live.next_slot(plan.start, rate, plan.deadline) else {
                    break;
                };
                timer.sleep_until(at).await;
                at
            }
            _ => Instant::now(),
        };
        if plan.deadline.is_some_and(|d| Instant::now() >= d) || live.stop.load(Ordering::Relaxed) {
            break;
        }
        let first = live
            .next_row
            .fetch_add(opts.batch as u64, Ordering::Relaxed);
        if first >= limit {
            break;
        }
        let n = (opts.batch as u64).min(limit - first);
        let rows: Vec<RowData> = (first..first + n).map(|i| row_data(&plan, i)).collect();

        if conn.is_none() || conn_since.elapsed() > max_age {
            let t = Instant::now();
            match acquire_by(&db, wait_until()).await {
                Ok(mut c) => {
                    slot.pid.store(backend_pid(&mut c).await, Ordering::SeqCst);
                    conn = Some(c);
                    conn_since = Instant::now();
                    connect_failures = 0;
                    slot.tally()
                        .pool_wait
                        .saturating_record(t.elapsed().as_micros().max(1) as u64);
                }
                Err(e) => {
                    fail(&mut slot.tally(), &live, n, e);
                    connect_failures += 1;
                    if connect_failures >= MAX_CONNECT_FAILURES {
                        // The server is gone: stop here rather than fail every batch slowly.
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else {
            continue;
        };

        *slot.in_flight() = rows.iter().map(|r| r.id).collect();
        let mut attempt = 0u32;
        let outcome = loop {
            match insert(&plan, c, &rows).await {
                Attempt::Done => break Outcome::Committed,
                Attempt::Failed(e) => break Outcome::Failed(e),
                Attempt::Conflict(e) => {
                    if attempt >= opts.max_retries {
                        break Outcome::Failed(e);
                    }
                }
                Attempt::Unknown(e) => {
                    c.close_on_drop();
                    let until = plan.deadline.unwrap_or_else(Instant::now) + RESOLVE_FOR;
                    break match resolve_lost(&db, &plan, &rows, until).await {
                        Ok((found, mut fresh)) => {
                            slot.pid
                                .store(backend_pid(&mut fresh).await, Ordering::SeqCst);
                            conn = Some(fresh);
                            conn_since = Instant::now();
                            Outcome::Found(found, e)
                        }
                        Err(_) => {
                            conn = None;
                            Outcome::Unresolved
                        }
                    };
                }
            }
            attempt += 1;
            live.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(crate::db::error::backoff(attempt as i64)).await;
        };
        // The tally's lock first, as the run loop takes it, so a batch is settled once.
        let mut out = slot.tally();
        if slot.abandoned.load(Ordering::SeqCst) {
            break;
        }
        let ids = std::mem::take(&mut *slot.in_flight());
        out.latency
            .saturating_record(intended.elapsed().as_micros().max(1) as u64);
        match outcome {
            Outcome::Committed => {
                out.txn_ok += 1;
                live.rows_ok.fetch_add(n, Ordering::Relaxed);
            }
            Outcome::Failed(e) => fail(&mut out, &live, n, e),
            Outcome::Found(k, e) => {
                // More than the batch (a table whose ids are not unique, where an earlier
                // attempt did commit) is still only this batch's rows.
                let k = k.min(n);
                live.rows_ok.fetch_add(k, Ordering::Relaxed);
                if k == n {
                    out.txn_ok += 1;
                } else {
                    fail(&mut out, &live, n - k, e);
                }
            }
            Outcome::Unresolved => {
                live.rows_pending.fetch_add(n, Ordering::Relaxed);
                out.unresolved.push(ids);
            }
        }
    }
    // Close here: the connection's socket belongs to this thread's runtime, which ends next.
    if let Some(c) = conn {
        let _ = c.close().await;
    }
}

/// What became of one batch.
enum Outcome {
    Committed,
    Failed(DbError),
    /// The connection was lost (with this error); afterwards this many of the batch's rows
    /// were in the table.
    Found(u64, DbError),
    /// The connection was lost and the server could not be reached to check.
    Unresolved,
}

fn fail(out: &mut Tally, live: &Live, rows: u64, e: DbError) {
    live.rows_failed.fetch_add(rows, Ordering::Relaxed);
    out.failure(&e.sqlstate, &e.message);
}

/// Progress on stderr: a live bar on a terminal, one plain line per second otherwise.
pub struct Progress {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub async fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
    }
}

/// `unit` names what `rows_ok` counts ("rows" for stress, "transactions" for bench).
pub fn spawn_progress(
    total: Option<u64>,
    start: Instant,
    unit: &'static str,
    live: Arc<Live>,
) -> Progress {
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let task = tokio::spawn(async move {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(t) => indicatif::ProgressBar::new(t),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let template = format!("{{bar:30}} {{pos}}/{{len}} {unit} {{msg}}");
            bar.set_style(
                indicatif::ProgressStyle::with_template(&template)
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        let mut last = 0;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            // Wake every second, or promptly when the run ends.
            tokio::select! {
                _ = tick.tick() => {}
                _ = async {
                    while !stopping.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                } => {}
            }
            let done = live.rows_ok.load(Ordering::Relaxed);
            let failed = live.rows_failed.load(Ordering::Relaxed);
            let retries = live.retries.load(Ordering::Relaxed);
            let finished = stopping.load(Ordering::SeqCst);
            match &bar {
                Some(b) if finished => b.finish_and_clear(),
                Some(b) => {
                    b.set_position(done + failed);
                    b.set_message(format!("{} {unit}/s, {retries} retries, {failed} failed", done - last));
                }
                None if !finished => eprintln!(
                    "progress: {:>6.1}s {done} {unit}, {} {unit}/s, {retries} retries, {failed} failed",
                    start.elapsed().as_secs_f64(),
                    done - last
                ),
                None => {}
            }
            if finished {
                break;
            }
            last = done;
        }
    });
    Progress { stop, task }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            users: Some(10),
            concurrency: 2,
            batch: 1,
            duration: None,
            rate: None,
            max_retries: 3,
            seed: Some(7),
            table: Ident::parse("users").unwrap(),
            thresholds: Thresholds::default(),
            progress: false,
        }
    }

    #[test]
    fn dsql_batch_limit_is_enforced() {
        let mut o = opts();
        o.batch = 3000;
        assert!(o.validate(true).is_ok());
        o.batch = 3001;
        assert_eq!(
            o.validate(true).unwrap_err(),
            "`batch` 3001 is above DSQL's limit of 3000 rows per transaction"
        );
        assert!(o.validate(false).is_ok());
    }

    #[test]
    fn generated_rows_are_reproducible_and_unique() {
        let plan = Plan {
            opts: opts(),
            insert_one: "".into(),
            insert_many: "".into(),
            insert_again: "".into(),
            lookup: "".into(),
            tag: "abcd1234".into(),
            seed: 42,
            start: Instant::now(),
            deadline: None,
        };
        let a = row_data(&plan, 5);
        let b = row_data(&plan, 5);
        assert_eq!((a.name.as_str(), a.role), (b.name.as_str(), b.role));
        assert!(a.email.ends_with(".5.abcd1234@example.com"), "{}", a.email);
        let emails: std::collections::HashSet<String> =
            (0..10_000).map(|i| row_data(&plan, i).email).collect();
        assert_eq!(emails.len(), 10_000);
    }

    #[test]
    fn thresholds_name_what_was_breached() {
        let mut r = Report {
            users: Some(10),
            concurrency: 1,
            batch: 1,
            elapsed: Duration::from_secs(10),
            succeeded: 10,
            failed: 2,
            retries: 0,
            txn_succeeded: 10,
            txn_failed: 1,
            latency_us: new_histogram(),
            pool_wait_us: new_histogram(),
            errors: BTreeMap::new(),
            error_messages: BTreeMap::new(),
            breaches: vec![],
            interrupted: false,
        };
        r.latency_us.record(50_000).unwrap();
        r.check(&Thresholds {
            max_p99_ms: Some(10.0),
            min_rows_per_s: Some(5.0),
            max_failed: Some(1),
        });
        assert_eq!(
            r.breaches,
            vec![
                "p99 latency 50.02 ms is above max_p99_ms 10".to_string(),
                "1.0 rows/s is below min_rows_per_s 5".to_string(),
                "2 failed is above max_failed 1".to_string(),
            ]
        );
    }
}
