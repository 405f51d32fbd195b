//! The load engine: exact accounting, conflicts, stalls, thresholds and the report formats.

use crate::support::{dsqlsh, TestDb};

fn json(out: &crate::support::Output) -> serde_json::Value {
    serde_json::from_str(out.ok())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{}", out.stdout))
}

/// Failures are counted, by SQLSTATE, and never as inserted rows: a CHECK constraint rejects
/// every row whose generated role is `admin`.
pub fn failed_plus_succeeded_is_attempted() {
    let db = TestDb::new("stress_acct");
    db.sql(&format!(
        "CREATE TABLE picky {}",
        dsqlsh::users::COLUMNS_DDL
    ));
    db.sql("ALTER TABLE picky ADD CONSTRAINT no_admins CHECK (role <> 'admin')");
    let out = dsqlsh()
        .args(db.flags())
        .args([
            "run",
            "stress",
            "users=600",
            "concurrency=6",
            "table=picky",
            "seed=7",
            "json=true",
        ])
        .run();
    let v = json(&out);
    let (ok, failed) = (
        v["succeeded"].as_u64().unwrap(),
        v["failed"].as_u64().unwrap(),
    );
    assert_eq!(ok + failed, 600, "{v}");
    assert!(
        failed > 0,
        "the constraint must reject some generated rows: {v}"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM picky"), ok.to_string());
    assert_eq!(v["errors"]["23514"].as_u64(), Some(failed), "{v}");
    assert_eq!(v["retries"], 0, "a constraint error is never retried: {v}");
    // The same seed generates the same names and roles: the same rows fail again.
    let again = json(
        &dsqlsh()
            .args(db.flags())
            .args([
                "run",
                "stress",
                "users=600",
                "concurrency=3",
                "table=picky",
                "seed=7",
                "json=true",
            ])
            .run(),
    );
    assert_eq!(again["failed"], v["failed"]);

    // Batched: one statement per batch, all or nothing per batch.
    db.sql("TRUNCATE picky");
    let v = json(
        &dsqlsh()
            .args(db.flags())
            .args([
                "run",
                "stress",
                "users=600",
                "concurrency=3",
                "batch=5",
                "seed=7",
                "table=picky",
                "json=true",
            ])
            .run(),
    );
    let (ok, failed) = (
        v["succeeded"].as_u64().unwrap(),
        v["failed"].as_u64().unwrap(),
    );
    assert_eq!(ok + failed, 600);
    assert!(
        ok > 0,
        "with the fixed seed some batches have no admin: {v}"
    );
    assert_eq!(ok % 5, 0, "batches fail whole: {v}");
    assert_eq!(db.scalar("SELECT count(*) FROM picky"), ok.to_string());
}

/// A hot-row workload at REPEATABLE READ produces real serialization failures; every committed
/// transaction is counted once and the counter agrees.
pub fn hot_row_conflicts_are_retried_exactly() {
    let db = TestDb::new("stress_hot");
    db.sql("CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL); INSERT INTO counter VALUES (1, 0)");
    let code = r#"
        let r = bench(#{ workers: 6, iterations: 300, max_retries: 1000, progress: false }, |w| {
            let n = query_one("SELECT n FROM counter WHERE id = 1").n;
            execute("UPDATE counter SET n = $1 WHERE id = 1", [n + 1]);
        });
        to_json(r)
    "#;
    let v = json(&dsqlsh().args(db.flags()).args(["eval", code]).run());
    assert_eq!(v["transactions"], 300, "{v}");
    assert_eq!(v["failed_transactions"], 0, "{v}");
    assert!(
        v["retries"].as_u64().unwrap() > 0,
        "six writers on one row must conflict: {v}"
    );
    assert_eq!(db.scalar("SELECT n FROM counter"), "300");
}

/// `bench` wraps each call in one transaction by default; `autocommit: true` sends each
/// statement as its own transaction. Two `txid_current()` calls in one call tell them apart.
pub fn bench_transaction_and_autocommit_modes() {
    let db = TestDb::new("bench_modes");
    db.sql("CREATE TABLE seen (worker int, iteration int, same_tx boolean)");
    for (autocommit, same) in [(false, "t"), (true, "f")] {
        db.sql("TRUNCATE seen");
        let code = format!(
            r#"
            let r = bench(#{{ workers: 3, iterations: 40, progress: false, autocommit: {autocommit} }}, |w| {{
                let a = query_one("SELECT txid_current() AS t").t;
                let b = query_one("SELECT txid_current() AS t").t;
                execute("INSERT INTO seen VALUES ($1, $2, $3)", [w.worker, w.iteration, a == b]);
            }});
            to_json(r)
        "#
        );
        let v = json(&dsqlsh().args(db.flags()).args(["eval", &code]).run());
        assert_eq!(v["transactions"], 40, "{v}");
        assert_eq!(v["failed_transactions"], 0, "{v}");
        assert_eq!(
            db.scalar("SELECT count(*) || ' ' || count(DISTINCT (worker, iteration)) FROM seen"),
            "40 40"
        );
        assert_eq!(
            db.scalar("SELECT DISTINCT same_tx FROM seen"),
            same,
            "autocommit: {autocommit}"
        );
    }
    let out = dsqlsh()
        .args(db.flags())
        .args(["eval", "bench(#{ iterations: 1, autocommit: 1 }, |w| {})"])
        .run();
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("bench: `autocommit` must be true or false"),
        "{}",
        out.stderr
    );
}

/// A connection handle captured by a bench closure works on every worker at once (no data
/// race on the shared variable) and runs in the call's transaction; bench works in the REPL;
/// exit(n) in the closure ends the run and the script with that status.
pub fn bench_closures_use_handles_and_exit() {
    let db = TestDb::new("bench_handles");
    let code = r#"
        let c = connect();
        let r = bench(#{ workers: 12, iterations: 240, progress: false }, |w| {
            let a = c.query_one("SELECT txid_current() AS t").t;
            if a != query_one("SELECT txid_current() AS t").t { throw "not one transaction"; }
        });
        `${r.transactions} ${r.failed_transactions} ${r.errors}`
    "#;
    let out = dsqlsh().args(db.flags()).args(["eval", code]).run();
    assert_eq!(
        out.ok(),
        "240 0 #{}
"
    );
    let out = dsqlsh()
        .args(db.flags())
        .args(["eval", "bench(#{ workers: 2, iterations: 10, progress: false }, |w| exit(7)); print(\"after\")"])
        .run();
    assert_eq!((out.code, out.stdout.as_str()), (7, ""), "{}", out.stderr);
    let out = dsqlsh()
        .args(db.flags())
        .arg("repl")
        .stdin("let r = bench(#{ workers: 2, iterations: 6, progress: false }, |w| w.iteration);\nr.transactions\n")
        .run();
    assert_eq!(
        (out.stdout.as_str(), out.code),
        ("6\n", 0),
        "{}",
        out.stderr
    );
}

/// Open model: a 2 s lock on the table stalls the server; transactions keep their schedule, so
/// the stall appears in the high percentiles instead of disappearing into a lower rate.
pub fn server_stall_shows_in_p99() {
    let db = TestDb::new("stress_stall");
    dsqlsh()
        .args(db.flags())
        .args(["repopulate", "--yes"])
        .run()
        .ok();
    let flags = db.flags();
    let locker = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1000));
        dsqlsh()
            .args(flags)
            .args(["eval", "transaction(|| { execute(\"LOCK TABLE users IN ACCESS EXCLUSIVE MODE\"); query(\"SELECT pg_sleep(2)\"); })"])
            .run()
            .ok()
            .to_string()
    });
    let out = dsqlsh()
        .args(db.flags())
        .args([
            "stress-test",
            "--duration",
            "4s",
            "--rate",
            "100",
            "--concurrency",
            "4",
            "--json",
        ])
        .run();
    locker.join().unwrap();
    let v = json(&out);
    let lat = &v["latency_ms"];
    assert!(
        lat["max"].as_f64().unwrap() >= 1900.0,
        "the 2 s stall must show in max: {v}"
    );
    assert!(lat["p99"].as_f64().unwrap() >= 1500.0, "and in p99: {v}");
    assert!(
        lat["p50"].as_f64().unwrap() < 1500.0,
        "while most transactions were fast: {v}"
    );
    assert_eq!(v["failed"], 0);
    assert_eq!(
        db.scalar("SELECT count(*) - 5 FROM users"),
        v["succeeded"].to_string()
    );
}

pub fn thresholds_exit_3_and_say_which() {
    let db = TestDb::new("stress_thresholds");
    let out = dsqlsh()
        .args(db.flags())
        .args([
            "stress-test",
            "--users",
            "50",
            "--concurrency",
            "2",
            "--max-p99-ms",
            "0.001",
            "--min-rows-per-s",
            "1",
        ])
        .run();
    out.no_panic();
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let breach: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("Threshold breached: "))
        .collect();
    assert_eq!(breach.len(), 1, "{}", out.stdout);
    assert!(
        breach[0].starts_with("Threshold breached: p99 latency "),
        "{}",
        breach[0]
    );
    assert!(
        breach[0].ends_with(" ms is above max_p99_ms 0.001"),
        "{}",
        breach[0]
    );
    // Met thresholds exit 0.
    let ok = dsqlsh()
        .args(db.flags())
        .args([
            "stress-test",
            "--users",
            "50",
            "--max-failed",
            "0",
            "--json",
        ])
        .run();
    assert_eq!(json(&ok)["breaches"], serde_json::json!([]));
}

pub fn seed_lines_and_json_only() {
    let db = TestDb::new("stress_lines");
    let out = dsqlsh()
        .args(db.flags())
        .args(["stress-test", "--users", "500", "--concurrency", "20"])
        .run();
    let text = out.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("Total time: ") && lines[0].ends_with(" seconds"),
        "{text}"
    );
    assert_eq!(lines[1], "Successful inserts: 500");
    assert_eq!(lines[2], "Failed inserts: 0");
    assert!(
        lines[3].starts_with("Insert rate: ") && lines[3].ends_with(" users/second"),
        "{text}"
    );
    assert!(
        lines[4].starts_with("Transactions: 500 committed, 0 failed, 0 retries"),
        "{text}"
    );
    assert!(lines[5].starts_with("Latency (ms): p50 "), "{text}");
    // Progress goes to stderr, never stdout.
    assert!(!text.contains("progress:"));
    let out = dsqlsh()
        .args(db.flags())
        .args(["stress-test", "--users", "100", "--json"])
        .run();
    let v = json(&out);
    assert_eq!(v["succeeded"], 100);
    assert_eq!(db.scalar("SELECT count(*) FROM users"), "600");
    // --no-progress leaves stderr empty; a rate one worker cannot keep up is named.
    let out = dsqlsh()
        .args(db.flags())
        .args([
            "stress-test",
            "--users",
            "50",
            "--concurrency",
            "1",
            "--rate",
            "1000000",
            "--no-progress",
        ])
        .run();
    let text = out.ok();
    assert_eq!(out.stderr, "");
    let line = text
        .lines()
        .find(|l| l.starts_with("Rate target not reached: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.ends_with(" of 1000000.0 transactions/s (more concurrency may help)"),
        "{line}"
    );
}

pub fn bad_options_are_named() {
    let db = TestDb::new("stress_bad");
    for (args, first) in [
        (vec!["run", "stress", "users=0"], "error: stress: `users` must be an integer from 1 to 9223372036854775807, got 0"),
        (vec!["run", "stress", "duration=soon"], "error: stress: `duration`: `soon` is not a duration (use seconds, or 30s, 5m, 1h, 500ms)"),
        (vec!["stress-test", "--table", "users; DROP TABLE x"], "error: stress: invalid table name `users; DROP TABLE x`: use letters, digits and `_` (optionally `schema.table`)"),
        (vec!["run", "stress", "rate=0"], "error: stress: `rate` must be from 0.001 to 1e9 transactions per second"),
    ] {
        let out = dsqlsh().args(db.flags()).args(args.clone()).run();
        out.no_panic();
        assert_eq!((out.code, out.first_err_line()), (1, first), "{args:?}");
    }
    // Flags of stress-test are checked by the argument parser, and a misspelled KEY=VALUE
    // argument is refused by the script: usage errors, exit 2, before anything runs.
    for (args, first) in [
        (vec!["stress-test", "--users", "0"], "error: invalid value '0' for '--users <N>': 0 is not in 1..9223372036854775807"),
        (vec!["stress-test", "--duration", "soon"], "error: invalid value 'soon' for '--duration <D>': `soon` is not a duration (use seconds, or 30s, 5m, 1h, 500ms)"),
        (vec!["stress-test", "--duration", "0s"], "error: invalid value '0s' for '--duration <D>': the duration must be positive, got `0s`"),
        (vec!["stress-test", "--rate", "0"], "error: invalid value '0' for '--rate <R>': `0` is not a rate from 0.001 to 1e9 transactions per second"),
        (vec!["stress-test", "--max-p99-ms", "-1"], "error: invalid value '-1' for '--max-p99-ms <MS>': `-1` is not a number of 0 or more"),
        (vec!["user-stats", "--as-of", "2026-13-01"], "error: invalid value '2026-13-01' for '--as-of <DATE>': `2026-13-01` is not a date like 2025-01-31"),
        (vec!["run", "stress", "users=5", "concurency=50"], "error: unknown script argument `concurency` (this script takes users, concurrency, batch, duration, rate, max_retries, seed, table, max_p99_ms, min_rows_per_s, max_failed, progress, json); did you mean `concurrency`?"),
        (vec!["run", "user_stats", "topp=1"], "error: unknown script argument `topp` (this script takes tz, top, days, as_of, json); did you mean `top`?"),
    ] {
        let out = dsqlsh().args(db.flags()).args(args.clone()).run();
        out.no_panic();
        assert_eq!((out.code, out.first_err_line()), (2, first), "{args:?}");
        assert_eq!(out.stdout, "", "{args:?}");
    }
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'users'"),
        "0",
        "nothing ran"
    );
}

/// Ctrl-C during a run: the workers stop at a transaction boundary, the report still comes
/// out (marked interrupted, with exactly the rows that were committed), and the exit is 130.
pub fn interrupt_still_reports() {
    let db = TestDb::new("stress_interrupt");
    dsqlsh()
        .args(db.flags())
        .args(["repopulate", "--yes"])
        .run()
        .ok();
    let child = std::process::Command::new(crate::support::bin())
        .args(db.flags())
        .args([
            "stress-test",
            "--duration",
            "30s",
            "--rate",
            "50",
            "--concurrency",
            "2",
            "--json",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2000));
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "it stops promptly"
    );
    assert_eq!(out.status.code(), Some(130));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the report is printed");
    assert_eq!(v["interrupted"], true);
    let ok = v["succeeded"].as_u64().unwrap();
    assert!(ok > 0 && ok < 1500, "{v}");
    assert_eq!(db.scalar("SELECT count(*) - 5 FROM users"), ok.to_string());
    assert!(String::from_utf8_lossy(&out.stderr).ends_with("dsqlsh: interrupted\n"));
}

/// A TCP relay to the test cluster, to make the network fail under a load run: with `cut_every`
/// it cuts every open connection that often; once `frozen`, it passes nothing more from clients
/// to the server and takes no new connections, as a partition would (replies already on their
/// way still arrive, so no statement commits unseen).
struct Relay {
    addr: std::net::SocketAddr,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cuts: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Relay {
    fn start(cut_every: Option<std::time::Duration>) -> Relay {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::{Arc, Mutex};
        use std::time::Duration;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicU64::new(0));
        let open: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let (_, socket) = crate::support::cluster();
        let server = socket.join(format!(".s.PGSQL.{}", dsqlsh::local::SOCKET_PORT));
        let (f, st, o) = (frozen.clone(), stop.clone(), open.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                // Frozen: accepted, never answered (held open until the relay stops).
                o.lock().unwrap().push(client.try_clone().unwrap());
                if f.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(upstream) = std::os::unix::net::UnixStream::connect(&server) else {
                    continue;
                };
                let (mut c_in, mut u_out) =
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let (mut u_in, mut c_out) = (upstream, client);
                let (f2, st2) = (f.clone(), st.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c_in.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        while f2.load(Ordering::SeqCst) && !st2.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        if st2.load(Ordering::SeqCst) || u_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = u_out.shutdown(std::net::Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u_in, &mut c_out);
                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                });
            }
            for s in o.lock().unwrap().drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        });
        if let Some(period) = cut_every {
            let (st, o, c) = (stop.clone(), open.clone(), cuts.clone());
            std::thread::spawn(move || {
                while !st.load(Ordering::SeqCst) {
                    std::thread::sleep(period);
                    for s in o.lock().unwrap().drain(..) {
                        let _ = s.shutdown(std::net::Shutdown::Both);
                        c.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
        Relay {
            addr,
            frozen,
            stop,
            cuts,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Connections cut again and again mid-run (inserts in flight, COMMITs unanswered): every
/// batch is settled by inserting it again with ON CONFLICT DO NOTHING and counting its ids, so
/// `succeeded` is still exactly the rows the table gained, and nothing is counted twice.
pub fn lost_connections_keep_the_count_exact() {
    let db = TestDb::new("stress_cuts");
    db.sql(&format!(
        "CREATE TABLE users {}",
        dsqlsh::users::COLUMNS_DDL
    ));
    let proxy = Relay::start(Some(std::time::Duration::from_millis(300)));
    let url = format!("postgres://admin@{}/{}", proxy.addr, db.name);
    let out = dsqlsh()
        .args(["--database-url", &url])
        .args([
            "run",
            "stress",
            "duration=4",
            "concurrency=6",
            "batch=20",
            "json=true",
        ])
        .run();
    let cuts = proxy.cuts.load(std::sync::atomic::Ordering::SeqCst);
    drop(proxy);
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout, out.stderr));
    assert!(cuts >= 6, "the proxy cut {cuts} connections");
    let ok = v["succeeded"].as_u64().unwrap();
    assert!(ok > 0, "{v}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM users"),
        ok.to_string(),
        "{v}"
    );
    // Every row is in the table once: no batch was inserted twice.
    assert_eq!(
        db.scalar("SELECT count(*) = count(DISTINCT email) FROM users"),
        "t"
    );
}

/// A statement stuck behind a lock when the run's time is up is cancelled on the server, so
/// the report comes out soon after the deadline (not when the lock goes), with the cancelled
/// batches counted as failed and `succeeded` still the rows the table gained.
pub fn stuck_statements_are_cancelled_after_the_deadline() {
    let db = TestDb::new("stress_stuck");
    db.sql(&format!(
        "CREATE TABLE users {}",
        dsqlsh::users::COLUMNS_DDL
    ));
    let flags = db.flags();
    let locker = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(500));
        dsqlsh()
            .args(flags)
            .args(["eval", "transaction(|| { execute(\"LOCK TABLE users IN ACCESS EXCLUSIVE MODE\"); query(\"SELECT pg_sleep(60)\"); })"])
            .run()
    });
    let started = std::time::Instant::now();
    let out = dsqlsh()
        .args(db.flags())
        .args([
            "run",
            "stress",
            "duration=2",
            "concurrency=2",
            "json=true",
            "progress=false",
        ])
        .run();
    let took = started.elapsed();
    db.sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' \
         AND query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()",
        db.name
    ));
    let _ = locker.join();
    let v = json(&out);
    assert!(
        took < std::time::Duration::from_secs(12),
        "the run took {took:?}: {v}"
    );
    assert!(v["errors"]["57014"].as_u64().unwrap_or(0) >= 1, "{v}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM users"),
        v["succeeded"].to_string()
    );
}

/// A partition in the middle of a timed run: the run still ends within seconds of its
/// duration (no statement or connection attempt outlives it for long), and the rows it counts
/// are exactly the rows the table gained.
pub fn a_partition_does_not_outlast_the_duration() {
    let db = TestDb::new("stress_partition");
    db.sql(&format!(
        "CREATE TABLE users {}",
        dsqlsh::users::COLUMNS_DDL
    ));
    let proxy = Relay::start(None);
    let url = format!("postgres://admin@{}/{}", proxy.addr, db.name);
    let frozen = proxy.frozen.clone();
    let freezer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1000));
        frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let started = std::time::Instant::now();
    let out = dsqlsh()
        .args(["--database-url", &url])
        .args([
            "run",
            "stress",
            "duration=2",
            "concurrency=3",
            "batch=5",
            "json=true",
            "progress=false",
        ])
        .run();
    let took = started.elapsed();
    freezer.join().unwrap();
    drop(proxy);
    let v = json(&out);
    assert!(
        took < std::time::Duration::from_secs(20),
        "the run took {took:?}: {v}"
    );
    assert!(v["succeeded"].as_u64().unwrap() > 0, "{v}");
    assert!(
        v["failed"].as_u64().unwrap() > 0,
        "the partition failed some batches: {v}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM users"),
        v["succeeded"].to_string()
    );
}
