//! `bench(#{workers, duration, iterations, rate, ...}, |w| { ... })`: a scripted workload,
//! measured and reported like `stress`.
//!
//! Each worker is an OS thread with an engine of its own (Rhai engines are single-threaded)
//! evaluating the same compiled script: it calls the closure once per transaction, between
//! BEGIN and COMMIT on its own connection from one pool shared by all workers, with the same
//! conflict retries as `transaction()`. Captured variables are shared between workers, as
//! closures share them in Rhai. `w` is `#{worker, iteration}`. With `autocommit: true` a call
//! runs without BEGIN/COMMIT (each statement commits on its own), for single-statement
//! workloads measured the way `stress` measures its inserts.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use rhai::{Dynamic, Engine, FnPtr, Map, AST};

use super::users_api::{check_keys, opt_float, opt_int, parse_duration, report_map};
use super::{host_error, rhai_db_error, script_error, RhaiResult, Session};
use crate::db::Database;
use crate::stress::{self, Live, Report, Tally, Thresholds};

struct Plan {
    workers: usize,
    iterations: Option<u64>,
    rate: Option<f64>,
    max_retries: u32,
    /// Run calls without an enclosing transaction (see `autocommit_call`).
    autocommit: bool,
    start: Instant,
    deadline: Option<Instant>,
}

pub fn register(engine: &mut Engine, session: &Arc<Session>) {
    let s = session.clone();
    engine.register_fn("bench", move |opts: Map, f: FnPtr| run(&s, &opts, f));
}

fn run(session: &Arc<Session>, opts: &Map, f: FnPtr) -> RhaiResult<Map> {
    const F: &str = "bench";
    check_keys(
        F,
        opts,
        &[
            "workers",
            "duration",
            "iterations",
            "rate",
            "max_retries",
            "max_p99_ms",
            "min_rows_per_s",
            "max_failed",
            "progress",
            "json",
            "autocommit",
        ],
    )?;
    let workers = opt_int(F, opts, "workers", 1, 1000)?.unwrap_or(10) as usize;
    let duration = match opts.get("duration") {
        None => None,
        Some(v) if v.is_unit() => None,
        Some(v) => {
            Some(parse_duration(v).map_err(|e| script_error(format!("{F}: `duration`: {e}")))?)
        }
    };
    let iterations = match (opt_int(F, opts, "iterations", 1, i64::MAX)?, duration) {
        (Some(n), _) => Some(n as u64),
        (None, Some(_)) => None,
        (None, None) => Some(1000),
    };
    let rate = opt_float(F, opts, "rate")?;
    if rate.is_some_and(|r| !(0.001..=1e9).contains(&r)) {
        return Err(script_error(format!(
            "{F}: `rate` must be from 0.001 to 1e9 calls per second"
        )));
    }
    let thresholds = Thresholds {
        max_p99_ms: opt_float(F, opts, "max_p99_ms")?,
        min_rows_per_s: opt_float(F, opts, "min_rows_per_s")?,
        max_failed: opt_int(F, opts, "max_failed", 0, i64::MAX)?.map(|n| n as u64),
    };
    let progress = match opts.get("progress") {
        None => true,
        Some(v) => v
            .as_bool()
            .map_err(|_| script_error(format!("{F}: `progress` must be true or false")))?,
    };
    let max_retries = opt_int(F, opts, "max_retries", 0, 1000)?.unwrap_or(10) as u32;
    let autocommit = match opts.get("autocommit") {
        None => false,
        Some(v) => v
            .as_bool()
            .map_err(|_| script_error(format!("{F}: `autocommit` must be true or false")))?,
    };
    let ast = session
        .ast
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or_else(|| script_error(format!("{F}: must be called from a script")))?;

    let host = session.host.clone();
    let base = session.default_db().map_err(host_error)?;
    let pool = host
        .rt
        .block_on(base.sibling(workers as u32 + 1))
        .map_err(host_error)?
        .map_err(host_error)?;
    let live = Arc::new(Live::default());
    let start = Instant::now();
    let plan = Plan {
        workers,
        iterations,
        rate,
        max_retries,
        autocommit,
        start,
        deadline: duration.map(|d| start + d),
    };
    let progress = progress.then(|| {
        let _enter = host.rt.enter();
        stress::spawn_progress(iterations, start, "transactions", live.clone())
    });

    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..plan.workers)
            .map(|k| {
                let (session, base, pool, ast, f, live, plan) =
                    (session, &base, &pool, &ast, &f, &live, &plan);
                scope.spawn(move || worker(k, session, base, pool, ast, f, live, plan))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    let mut t = Tally::new();
                    t.failure("internal", "a bench worker stopped on an internal error");
                    t
                })
            })
            .collect()
    });
    let elapsed = start.elapsed();
    live.stop.store(true, Ordering::SeqCst);
    if let Some(p) = progress {
        host.rt.block_on_uninterruptible(p.finish());
    }
    host.rt.block_on_uninterruptible(pool.close());
    if let Some(code) = host.exit_code() {
        // A worker's closure called exit(n): the script ends here with that status.
        return Err(Box::new(rhai::EvalAltResult::Exit(
            Dynamic::from_int(code as i64),
            rhai::Position::NONE,
        )));
    }

    let interrupted = crate::runtime::interrupted();
    let report = Report::from_tallies(
        iterations,
        workers,
        1,
        elapsed,
        &live,
        stress::new_histogram(),
        tallies,
        interrupted,
        &thresholds,
    );
    if !report.breaches.is_empty() {
        host.set_threshold_breached();
    }
    if interrupted {
        host.load_interrupted_now();
    }
    let mut map = report_map(&report);
    map.insert("workers".into(), Dynamic::from_int(workers as i64));
    map.insert("iterations".into(), map["users"].clone());
    map.remove("users");
    Ok(map)
}

/// `autocommit: true`: the call runs without BEGIN/COMMIT, each statement its own transaction
/// (one round trip for a one-statement call instead of two). A serialization conflict re-runs
/// the whole call, so only closures whose statements are independent should use it.
fn autocommit_call(
    session: &Session,
    max_retries: u32,
    call: &mut dyn FnMut() -> RhaiResult<Dynamic>,
) -> super::db_api::TxOutcome {
    let mut retries = 0;
    loop {
        let result = call();
        let retry = match &result {
            Err(e) => rhai_db_error(e).is_some_and(|d| d.retryable) && retries < max_retries,
            Ok(_) => false,
        };
        if !retry {
            return super::db_api::TxOutcome { result, retries };
        }
        retries += 1;
        let pause = crate::db::error::backoff(retries as i64);
        if session.rt().block_on(tokio::time::sleep(pause)).is_err() {
            return super::db_api::TxOutcome { result, retries };
        }
    }
}

/// The closure with its captured connection handles copied for this worker. Captured
/// variables are shared between workers, and a call on a shared variable locks it, so
/// `|w| c.query(...)` would serialise the workers on `c` (and fail after 50 ms of waiting).
/// A handle is an immutable reference to a pool, so a copy per worker changes nothing else;
/// a handle to the database bench runs on (`base`) becomes one to bench's own `pool`, so its
/// statements run in the call's transaction like those without a handle.
fn own_handles(f: &FnPtr, base: &Arc<Database>, pool: &Arc<Database>) -> FnPtr {
    let mut f = f.clone();
    for v in f.iter_curry_mut() {
        let copy = v.read_lock::<super::db_api::Conn>().map(|c| c.clone());
        if let Some(conn) = copy {
            let conn = if Arc::ptr_eq(&conn.0, base) {
                super::db_api::Conn(pool.clone())
            } else {
                conn
            };
            *v = Dynamic::from(conn);
        }
    }
    f
}

/// One worker: its own engine and session, one transaction per closure call.
#[allow(clippy::too_many_arguments)]
fn worker(
    k: usize,
    parent: &Arc<Session>,
    base: &Arc<Database>,
    pool: &Arc<Database>,
    ast: &Arc<AST>,
    f: &FnPtr,
    live: &Live,
    plan: &Plan,
) -> Tally {
    let host = parent.host.clone();
    let mut tally = Tally::new();
    let session = match Session::for_worker(host.clone(), pool.clone(), ast.clone()) {
        Ok(s) => s,
        Err(e) => {
            tally.failure("script", &e.to_string());
            return tally;
        }
    };
    let _enter = session.rt().enter();
    stress::precise_timers_for_this_thread();
    let engine = super::engine(&session);
    let f = &own_handles(f, base, pool);
    let limit = plan.iterations.unwrap_or(u64::MAX);
    loop {
        if live.stop.load(Ordering::Relaxed) || crate::runtime::interrupted() {
            break;
        }
        let intended = match plan.rate {
            Some(rate) => {
                let Some(at) = live.next_slot(plan.start, rate, plan.deadline) else {
                    break;
                };
                if !stress::sleep_until_blocking(at) {
                    break;
                }
                at
            }
            None => Instant::now(),
        };
        if plan.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let iteration = live.next_row.fetch_add(1, Ordering::Relaxed);
        if iteration >= limit {
            break;
        }
        let mut w = Map::new();
        w.insert("worker".into(), Dynamic::from_int(k as i64));
        w.insert("iteration".into(), Dynamic::from_int(iteration as i64));
        let w = Dynamic::from_map(w);
        let mut call = || f.call::<Dynamic>(&engine, ast, (w.clone(),));
        let outcome = if plan.autocommit {
            autocommit_call(&session, plan.max_retries, &mut call)
        } else {
            // Closed loop: chain each COMMIT with the next BEGIN. On a schedule the connection
            // would sit idle in a transaction between calls, so not then.
            let chain = plan.rate.is_none();
            session.run_transaction(pool, plan.max_retries, chain, &mut call)
        };
        if let Err(e) = &outcome.result {
            match super::report::innermost(e) {
                // A call cut short by Ctrl-C did not finish: it is neither timed nor counted.
                rhai::EvalAltResult::ErrorTerminated(..) => break,
                // exit(n) in the closure ends the whole run, then the script (see `run`).
                rhai::EvalAltResult::Exit(..) => {
                    live.stop.store(true, Ordering::SeqCst);
                    break;
                }
                _ => {}
            }
        }
        tally
            .latency
            .saturating_record(intended.elapsed().as_micros().max(1) as u64);
        live.retries
            .fetch_add(outcome.retries as u64, Ordering::Relaxed);
        match outcome.result {
            Ok(_) => {
                tally.txn_ok += 1;
                live.rows_ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                live.rows_failed.fetch_add(1, Ordering::Relaxed);
                match rhai_db_error(&e) {
                    Some(db) => tally.failure(&db.sqlstate, &db.message),
                    None => tally.failure("script", &super::report::message(&e)),
                }
            }
        }
    }
    session.release_connections();
    tally
}
