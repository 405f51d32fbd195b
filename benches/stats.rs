//! `stats()` on 1,000,000 users against the same SQL run by psql, on one throwaway server.
//!
//!     cargo bench --bench stats                  # 1M users, 7 runs each
//!     BENCH_USERS=200000 BENCH_RUNS=3 cargo bench --bench stats
//!
//! Both sides are timed as whole commands (process start, connect, query, print), which is what
//! a cron job or a person pays; the median of the runs is compared. It also counts the
//! statements dsqlsh sends for one report (from pg_stat_database's commit counter).

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dsqlsh::local::{LocalServer, SOCKET_PORT};

fn run(cmd: &mut Command) -> (Duration, String) {
    let t = Instant::now();
    let out = cmd.stderr(Stdio::inherit()).output().expect("spawn");
    let elapsed = t.elapsed();
    assert!(out.status.success(), "{cmd:?} failed");
    (elapsed, String::from_utf8_lossy(&out.stdout).to_string())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let users: u64 = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let root = tempfile::Builder::new()
        .prefix("dsqlsh-bench-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut server = LocalServer::acquire(&root.path().join("pg")).expect("start PostgreSQL");
    let socket = server.socket_dir();
    let psql = |db: &str| {
        let mut c = Command::new("psql");
        c.args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&socket)
            .args(["-p", &SOCKET_PORT.to_string(), "-U", "admin", "-d", db]);
        c
    };
    run(psql("postgres").args(["-c", "CREATE DATABASE bench"]));
    run(psql("bench").args([
        "-c",
        &format!("CREATE TABLE users {}", dsqlsh::users::COLUMNS_DDL),
    ]));
    let t = Instant::now();
    run(psql("bench").args([
        "-c",
        &format!(
            "INSERT INTO users (id, name, email, role, created_at)
             SELECT gen_random_uuid(),
                    (ARRAY['Ana','Bob','Chen','Dia','Élodie','山田'])[1 + g % 6] || ' Surname' || (g % 997),
                    'user' || g || '@' || (ARRAY['example.com','Test.org','mail.net'])[1 + g % 3],
                    (ARRAY['user','user','admin','moderator'])[1 + g % 4],
                    now() - (g % 20000) * interval '1 minute'
             FROM generate_series(1, {users}) AS g"
        ),
    ]));
    run(psql("bench").args(["-c", "VACUUM ANALYZE users"]));
    println!("loaded {users} users in {:.1} s", t.elapsed().as_secs_f64());

    // The exact statement stats() sends, with its parameters as literals for psql.
    let sql = dsqlsh::stats::sql(&dsqlsh::users::Ident::parse("users").unwrap())
        .replace("$1", "'UTC'")
        .replace("$2", "7")
        .replace("$3", "5")
        .replace("$4", "NULL");
    let url = format!(
        "postgres://admin@localhost/bench?host={}&port={SOCKET_PORT}",
        socket.display()
    );

    let mut psql_times = Vec::new();
    let mut dsqlsh_times = Vec::new();
    for _ in 0..runs {
        psql_times.push(run(psql("bench").args(["-c", &sql])).0);
        dsqlsh_times.push(
            run(Command::new(env!("CARGO_BIN_EXE_dsqlsh")).args([
                "--database-url",
                &url,
                "eval",
                "to_json(stats())",
            ]))
            .0,
        );
    }
    let (p, d) = (median(psql_times), median(dsqlsh_times));
    println!(
        "psql -c '<stats SQL>':     median {:>8.1} ms over {runs} runs",
        p.as_secs_f64() * 1000.0
    );
    println!(
        "dsqlsh eval 'stats()':     median {:>8.1} ms over {runs} runs",
        d.as_secs_f64() * 1000.0
    );
    println!(
        "ratio dsqlsh / psql:       {:>8.2}  (target <= 1.20: {})",
        d.as_secs_f64() / p.as_secs_f64(),
        if d.as_secs_f64() <= 1.2 * p.as_secs_f64() {
            "met"
        } else {
            "NOT met"
        }
    );

    // Statements per report, read from the server's own statement log: every statement the
    // admin role runs in this database is logged (simple and extended protocol alike), so the
    // lines appended during one dsqlsh run are exactly what it sent.
    run(psql("postgres").args([
        "-c",
        "ALTER ROLE admin IN DATABASE bench SET log_statement = 'all'",
    ]));
    let log_path = root.path().join("pg").join("server.log");
    let before = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
    run(Command::new(env!("CARGO_BIN_EXE_dsqlsh")).args([
        "--database-url",
        &url,
        "eval",
        "stats(); ()",
    ]));
    std::thread::sleep(Duration::from_millis(500));
    let log = std::fs::read(&log_path).unwrap_or_default();
    let appended = String::from_utf8_lossy(&log[before as usize..]);
    let statements: Vec<&str> = appended
        .lines()
        .filter(|l| l.contains("LOG:  statement: ") || l.contains("LOG:  execute "))
        .collect();
    println!(
        "statements dsqlsh sent for one report: {} (round trips: one session query, one report)",
        statements.len()
    );
    for line in &statements {
        let text = line.split_once("LOG:  ").map_or(*line, |(_, t)| t);
        println!("    {}", text.chars().take(90).collect::<String>());
    }
    server.release().expect("stop PostgreSQL");
}
