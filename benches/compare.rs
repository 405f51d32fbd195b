//! Side-by-side benchmark: dsqlsh's load engine against pgbench and COPY, on one throwaway
//! PostgreSQL server, in one run. Prints each figure and the ratios against the issue's targets.
//!
//!     cargo bench --bench compare                 # 15 s per timed phase, 3 rounds
//!     BENCH_SECS=5 BENCH_RUNS=1 BENCH_COPY_ROWS=100000 cargo bench --bench compare
//!
//! Phases (each on an emptied `users` table; 1, 3 and 5 in interleaved rounds):
//! 1. pgbench -M prepared, one-row INSERT, 10 clients  vs  `stress` batch 1, concurrency 10
//! 2. psql \copy of N rows                             vs  `stress` batch 3000
//! 3. `bench` closure doing the same one-row INSERT    vs  native `stress` (phase 1's figure)
//! 4. peak RSS of `stress` for 10k users               vs  1M users
//! 5. pgbench -R 200 at c4                              vs  `stress --rate 200` (latency from
//!    the scheduled start: the open model)
//!
//! Timings on a shared machine are noisy (one 15 s phase can differ from the next by 20%);
//! run it on an idle one. Phases 1 and 3, then phase 2, are each repeated `BENCH_RUNS` times,
//! interleaved, and each ratio is the median of the per-round ratios.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use dsqlsh::local::{LocalServer, SOCKET_PORT};

struct Env {
    socket: PathBuf,
    url: String,
    dir: PathBuf,
    secs: u64,
}

/// A child's stdout and its peak resident set size in KiB (from wait4's rusage).
// The child is reaped by wait4 (which also yields its rusage), not by Child::wait.
#[allow(clippy::zombie_processes)]
fn run_measured(cmd: &mut Command) -> (String, i64) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain old data; wait4 fills it for the child we spawned.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    assert!(ok, "command failed: {cmd:?}\n{out}\n{err}");
    (out, usage.ru_maxrss)
}

fn dsqlsh(env: &Env, args: &[&str]) -> (serde_json::Value, i64) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dsqlsh"));
    cmd.arg("--database-url").arg(&env.url).args(args);
    let (out, rss) = run_measured(&mut cmd);
    let v = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    (v, rss)
}

fn psql(env: &Env, sql: &str) -> String {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(&env.socket)
        .args([
            "-p",
            &SOCKET_PORT.to_string(),
            "-U",
            "admin",
            "-d",
            "bench",
            "-c",
            sql,
        ]);
    run_measured(&mut cmd).0
}

fn reset_table(env: &Env) {
    psql(env, "DROP TABLE IF EXISTS users");
    psql(
        env,
        &format!("CREATE TABLE users {}", dsqlsh::users::COLUMNS_DDL),
    );
    psql(env, "CHECKPOINT");
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// pgbench -M prepared one-row inserts; returns (tps, p99 ms) from its per-transaction log.
fn pgbench(env: &Env) -> (f64, f64) {
    let (tps, p99, _) = pgbench_with(env, &["-c", "10", "-j", "2"]);
    (tps, p99)
}

/// pgbench with `args` (clients, threads, rate); returns (tps, p99 ms, mean ms). Under
/// `-R`, pgbench measures latency from each transaction's scheduled start, as stress does.
fn pgbench_with(env: &Env, args: &[&str]) -> (f64, f64, f64) {
    let script = env.dir.join("insert.sql");
    std::fs::write(
        &script,
        "INSERT INTO users (id, name, email, role) VALUES (gen_random_uuid(), 'Bench User', \
         'pgb-' || :client_id || '-' || gen_random_uuid() || '@example.com', 'user');\n",
    )
    .unwrap();
    let logs = env.dir.join("pgbench-logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).unwrap();
    let mut cmd = Command::new("pgbench");
    cmd.current_dir(&logs)
        .args(["-n", "-M", "prepared"])
        .args(args)
        .arg("-T")
        .arg(env.secs.to_string())
        .arg("-f")
        .arg(&script)
        .args(["-l", "--log-prefix", "tx", "-h"])
        .arg(&env.socket)
        .args(["-p", &SOCKET_PORT.to_string(), "-U", "admin", "bench"]);
    let (out, _) = run_measured(&mut cmd);
    let tps = pgbench_figure(&out, "tps = ");
    let mut lat: Vec<f64> = Vec::new();
    for entry in std::fs::read_dir(&logs).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            // client_id transaction_no latency_us script_no epoch epoch_us
            if let Some(us) = line
                .split_whitespace()
                .nth(2)
                .and_then(|v| v.parse::<f64>().ok())
            {
                lat.push(us / 1000.0);
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    let mean = pgbench_figure(&out, "latency average = ");
    (tps, percentile(&lat, 0.99), mean)
}

/// The number after `label` on the pgbench output line that starts with it.
fn pgbench_figure(out: &str, label: &str) -> f64 {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no `{label}` in pgbench output:\n{out}"))
}

/// One interleaved round of phases 1 and 3.
struct Round {
    pg_tps: f64,
    pg_p99: f64,
    st_tps: f64,
    st_p99: f64,
    /// `bench` in transaction mode, then with `autocommit`.
    bench_tps: [f64; 2],
    bench_p99: [f64; 2],
    /// Phase 5, at 200 transactions/s: mean latency from the scheduled start.
    pg_rate_mean: f64,
    st_rate_mean: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// pgbench, native `stress` and the `bench` closure (both modes) on one-row inserts at c10,
/// each on an emptied table.
fn one_round(env: &Env) -> Round {
    reset_table(env);
    let (pg_tps, pg_p99) = pgbench(env);
    reset_table(env);
    let duration = format!("{}s", env.secs);
    let (st, _) = dsqlsh(
        env,
        &[
            "stress-test",
            "--duration",
            &duration,
            "--concurrency",
            "10",
            "--json",
        ],
    );
    let mut round = Round {
        pg_tps,
        pg_p99,
        st_tps: st["txn_per_s"].as_f64().unwrap(),
        st_p99: st["latency_ms"]["p99"].as_f64().unwrap(),
        bench_tps: [0.0; 2],
        bench_p99: [0.0; 2],
        pg_rate_mean: 0.0,
        st_rate_mean: 0.0,
    };
    // The same insert as a Rhai closure on 10 bench workers: one transaction per call
    // (BEGIN/COMMIT around it), and with `autocommit` (one statement, as stress sends it).
    for (i, autocommit) in [false, true].into_iter().enumerate() {
        reset_table(env);
        let code = format!(
            r#"to_json(bench(#{{ workers: 10, duration: "{duration}", progress: false, autocommit: {autocommit} }}, |w| {{
                execute("INSERT INTO users (id, name, email, role) VALUES ($1, $2, $3, $4)",
                        [uuid(), "Bench User", `bench.${{w.worker}}.${{w.iteration}}@example.com`, "user"]);
            }}))"#
        );
        let (bn, _) = dsqlsh(env, &["eval", &code]);
        round.bench_tps[i] = bn["txn_per_s"].as_f64().unwrap();
        round.bench_p99[i] = bn["latency_ms"]["p99"].as_f64().unwrap();
    }
    // 5. The open model at a rate both keep up with: latency from the scheduled start.
    reset_table(env);
    round.pg_rate_mean = pgbench_with(env, &["-c", "4", "-j", "2", "-R", "200"]).2;
    reset_table(env);
    let (sr, _) = dsqlsh(
        env,
        &[
            "stress-test",
            "--duration",
            &duration,
            "--concurrency",
            "4",
            "--rate",
            "200",
            "--json",
            "--no-progress",
        ],
    );
    round.st_rate_mean = sr["latency_ms"]["mean"].as_f64().unwrap();
    round
}

fn main() {
    // `cargo bench` passes --bench; there are no other options.
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let copy_rows: u64 = std::env::var("BENCH_COPY_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3);
    let root = tempfile::Builder::new()
        .prefix("dsqlsh-bench-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut server = LocalServer::acquire(&root.path().join("pg")).expect("start PostgreSQL");
    let socket = server.socket_dir();
    let env = Env {
        url: format!(
            "postgres://admin@localhost/bench?host={}&port={SOCKET_PORT}",
            socket.display()
        ),
        socket,
        dir: root.path().to_path_buf(),
        secs,
    };
    {
        let mut cmd = Command::new("psql");
        cmd.args(["-X", "-q", "-h"]).arg(&env.socket).args([
            "-p",
            &SOCKET_PORT.to_string(),
            "-U",
            "admin",
            "-d",
            "postgres",
            "-c",
            "CREATE DATABASE bench",
        ]);
        run_measured(&mut cmd);
    }
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "dsqlsh benchmark: {secs} s per timed phase, {runs} interleaved rounds, {cpus} CPUs, \
         one local PostgreSQL server"
    );
    println!();

    // Phases 1-3 run `runs` times, interleaved (pgbench, stress, bench, bench; then again), so
    // that drift on a shared machine (checkpoints, other tenants) lands on both sides; the
    // ratios are medians of the per-round ratios.
    let mut rounds: Vec<Round> = Vec::new();
    for round in 1..=runs {
        let r = one_round(&env);
        println!(
            "round {round}/{runs}: pgbench {:.0} tps (p99 {:.2} ms), stress {:.0} tps (p99 {:.2} ms), \
             bench {:.0} / {:.0} tps (transaction / autocommit), at 200/s mean {:.3} / {:.3} ms \
             (pgbench / stress)",
            r.pg_tps,
            r.pg_p99,
            r.st_tps,
            r.st_p99,
            r.bench_tps[0],
            r.bench_tps[1],
            r.pg_rate_mean,
            r.st_rate_mean
        );
        rounds.push(r);
    }
    let med = |f: &dyn Fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    let (pg_tps, pg_p99) = (med(&|r| r.pg_tps), med(&|r| r.pg_p99));
    let (st_tps, st_p99) = (med(&|r| r.st_tps), med(&|r| r.st_p99));
    let bench_tps = [med(&|r| r.bench_tps[0]), med(&|r| r.bench_tps[1])];
    let bench_p99 = [med(&|r| r.bench_p99[0]), med(&|r| r.bench_p99[1])];
    println!();
    println!("medians of {runs} rounds:");
    println!("pgbench -M prepared, 1-row INSERT, c10:  {pg_tps:>10.1} tps  p99 {pg_p99:.2} ms");
    println!("dsqlsh stress, batch 1, c10:             {st_tps:>10.1} tps  p99 {st_p99:.2} ms");
    println!(
        "at 200 tps, c4, mean latency:            pgbench -R {:.3} ms, stress --rate {:.3} ms",
        med(&|r| r.pg_rate_mean),
        med(&|r| r.st_rate_mean)
    );
    for (i, mode) in [",  BEGIN/COMMIT", ", autocommit"].iter().enumerate() {
        println!(
            "dsqlsh bench closure, 10 workers{mode}: {:>10.1} tps  p99 {:.2} ms",
            bench_tps[i], bench_p99[i]
        );
    }

    // 2. Bulk load: \copy against large batches, also interleaved.
    let csv = env.dir.join("users.csv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
        for i in 0..copy_rows {
            writeln!(
                f,
                "{},Copy User {i},copy.{i}@example.com,user",
                uuid::Uuid::new_v4()
            )
            .unwrap();
        }
    }
    let users = copy_rows.to_string();
    let mut copies = Vec::new();
    let mut bulks = Vec::new();
    for _ in 0..runs {
        reset_table(&env);
        let t = Instant::now();
        psql(
            &env,
            &format!(
                "\\copy users (id, name, email, role) FROM '{}' WITH (FORMAT csv)",
                csv.display()
            ),
        );
        copies.push(copy_rows as f64 / t.elapsed().as_secs_f64());
        reset_table(&env);
        let (bulk, _) = dsqlsh(
            &env,
            &[
                "stress-test",
                "--users",
                &users,
                "--batch",
                "3000",
                "--concurrency",
                "4",
                "--json",
            ],
        );
        bulks.push(bulk["rows_per_s"].as_f64().unwrap());
    }
    let bulk_ratio = median(copies.iter().zip(&bulks).map(|(c, b)| b / c).collect());
    let (copy_rps, bulk_rps) = (median(copies), median(bulks));
    println!("psql \\copy of {copy_rows} rows:             {copy_rps:>10.0} rows/s");
    println!("dsqlsh stress, batch 3000, c4:           {bulk_rps:>10.0} rows/s");

    // 4. Memory does not grow with the number of rows.
    reset_table(&env);
    let (_, rss_small) = dsqlsh(
        &env,
        &[
            "stress-test",
            "--users",
            "10000",
            "--batch",
            "1000",
            "--concurrency",
            "10",
            "--json",
        ],
    );
    reset_table(&env);
    let (_, rss_large) = dsqlsh(
        &env,
        &[
            "stress-test",
            "--users",
            "1000000",
            "--batch",
            "1000",
            "--concurrency",
            "10",
            "--json",
        ],
    );
    println!(
        "peak RSS, stress 10k users:              {:>10.1} MiB",
        rss_small as f64 / 1024.0
    );
    println!(
        "peak RSS, stress 1M users:               {:>10.1} MiB",
        rss_large as f64 / 1024.0
    );

    println!();
    println!("{:<48} {:>8} {:>8}  met", "ratio", "value", "target");
    let tps_ratio = med(&|r| r.st_tps / r.pg_tps);
    let p99_ratio = med(&|r| r.st_p99 / r.pg_p99);
    let bench_ratio = [
        med(&|r| r.bench_tps[0] / r.st_tps),
        med(&|r| r.bench_tps[1] / r.st_tps),
    ];
    let rate_ratio = med(&|r| r.st_rate_mean / r.pg_rate_mean);
    let rss_ratio = rss_large as f64 / rss_small as f64;
    let rss_mib = rss_large as f64 / 1024.0;
    let rows = [
        (
            "stress batch 1 tps / pgbench tps",
            tps_ratio,
            1.0,
            tps_ratio >= 1.0,
        ),
        (
            "stress p99 / pgbench p99 (lower is better)",
            p99_ratio,
            1.0,
            p99_ratio <= 1.0,
        ),
        (
            "stress batch 3000 rows/s / \\copy rows/s",
            bulk_ratio,
            1.0,
            bulk_ratio >= 1.0,
        ),
        (
            "bench closure (transaction) tps / stress tps",
            bench_ratio[0],
            0.9,
            bench_ratio[0] >= 0.9,
        ),
        (
            "bench closure (autocommit) tps / stress tps",
            bench_ratio[1],
            0.9,
            bench_ratio[1] >= 0.9,
        ),
        (
            "rate 200: stress mean / pgbench mean latency",
            rate_ratio,
            1.0,
            rate_ratio <= 1.0,
        ),
        ("RSS 1M / RSS 10k", rss_ratio, 1.5, rss_ratio < 1.5),
        ("RSS 1M in MiB (target < 64)", rss_mib, 64.0, rss_mib < 64.0),
    ];
    for (name, value, target, met) in rows {
        println!(
            "{name:<48} {value:>8.2} {target:>8.2}  {}",
            if met { "yes" } else { "NO" }
        );
    }
    server.release().expect("stop PostgreSQL");
}
