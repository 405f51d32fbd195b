//! `--local`: the embedded PostgreSQL that dsqlsh creates, starts, shares and stops itself.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::dsqlsh;

fn server_running(data: &Path) -> bool {
    let pid_file = data.join("postmaster.pid");
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return false;
    };
    let pid = text.lines().next().unwrap_or("").trim().to_string();
    Path::new(&format!("/proc/{pid}")).exists()
}

fn fresh_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("dsqlsh-local-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

pub fn two_processes_share_one_server() {
    let root = fresh_dir();
    let dir = root.path().join("cluster");
    let flags = [
        "--local".to_string(),
        "--local-dir".to_string(),
        dir.display().to_string(),
    ];
    // The first use creates the cluster; data persists into later invocations.
    dsqlsh()
        .args(flags.clone())
        .args([
            "eval",
            "execute(\"CREATE TABLE kept (n int)\"); execute(\"INSERT INTO kept VALUES (42)\")",
        ])
        .run()
        .ok();
    assert!(
        !server_running(&dir.join("data")),
        "the server must stop when the last user leaves"
    );

    // Two at once: both work, and the one that finishes first does not stop the other's server.
    let slow = {
        let flags = flags.clone();
        std::thread::spawn(move || {
            dsqlsh()
                .args(flags)
                .args([
                    "eval",
                    "query(\"SELECT pg_sleep(2)\"); query_one(\"SELECT n FROM kept\").n",
                ])
                .run()
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let quick = dsqlsh()
        .args(flags.clone())
        .args(["eval", "query_one(\"SELECT n FROM kept\").n"])
        .run();
    assert_eq!(quick.ok(), "42\n");
    let slow = slow.join().unwrap();
    assert_eq!(slow.ok(), "42\n");
    assert!(
        !server_running(&dir.join("data")),
        "no server may be left running"
    );
}

pub fn missing_binaries_name_the_package() {
    let empty = tempfile::tempdir().unwrap();
    let out = dsqlsh()
        .env("DSQLSH_PG_BIN", empty.path().display().to_string())
        .args(["--local", "--local-dir"])
        .arg(fresh_dir().path().join("c").display().to_string())
        .args(["eval", "query(\"SELECT 1\")"])
        .run();
    out.no_panic();
    assert_eq!(out.code, 1);
    let first = out.first_err_line();
    assert!(first.starts_with("error: local server: the PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`) were not found"), "{first}");
    assert!(first.contains("`apt install postgresql`"), "{first}");
}

pub fn status_and_stop() {
    let (dir, _) = crate::support::cluster();
    let out = dsqlsh()
        .args(["local", "status", "--local-dir"])
        .arg(dir.display().to_string())
        .run();
    let text = out.ok();
    assert!(text.contains("status:    running (pid "), "{text}");
    // The psql line it prints reaches the server.
    let psql_line = text
        .lines()
        .find_map(|l| l.strip_prefix("psql:      "))
        .unwrap_or_else(|| panic!("no psql line: {text}"));
    let args: Vec<&str> = psql_line.split_whitespace().skip(1).collect();
    let psql = std::process::Command::new("psql")
        .args(&args)
        .args(["-XAtc", "SELECT current_user"])
        .output()
        .expect("psql");
    assert_eq!(
        String::from_utf8_lossy(&psql.stdout),
        "admin\n",
        "{psql_line}"
    );

    let fresh = fresh_dir();
    let unused = fresh.path().join("never");
    let out = dsqlsh()
        .args(["local", "status", "--local-dir"])
        .arg(unused.display().to_string())
        .run();
    assert!(
        out.ok().contains("cluster:   not created yet"),
        "{}",
        out.stdout
    );
    let out = dsqlsh()
        .args(["local", "stop", "--local-dir"])
        .arg(unused.display().to_string())
        .run();
    assert_eq!(
        out.ok(),
        format!("the local server in {} is not running\n", unused.display())
    );
}

/// A dsqlsh killed with SIGKILL cannot stop the server it started; its reaper does, within
/// seconds, once no other dsqlsh process uses it.
pub fn killed_process_leaves_no_server() {
    let root = fresh_dir();
    let dir = root.path().join("cluster");
    let mut child = std::process::Command::new(crate::support::bin())
        .args(["--local", "--local-dir"])
        .arg(&dir)
        .args(["eval", "query(\"SELECT 1\"); sleep(60)"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !server_running(&dir.join("data")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server_running(&dir.join("data")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the server outlived the killed process"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

pub fn unsafe_directory_names_are_refused() {
    let root = fresh_dir();
    for bad in ["with$(touch x)", "back\\slash", "quo\"te"] {
        let dir = root.path().join(bad);
        let out = dsqlsh()
            .args(["--local", "--local-dir"])
            .arg(dir.display().to_string())
            .args(["eval", "query(\"SELECT 1\")"])
            .run();
        out.no_panic();
        assert_eq!(out.code, 1, "{bad}");
        assert!(
            out.first_err_line()
                .starts_with("error: local server: the local directory `"),
            "{}",
            out.stderr
        );
        assert!(!dir.exists(), "nothing is created for {bad}");
    }
    assert!(!root.path().join("x").exists());
}
