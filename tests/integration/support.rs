//! Test support: the throwaway PostgreSQL cluster, per-test databases, and a builder that runs
//! the real `dsqlsh` binary in a clean environment.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use dsqlsh::local::LocalServer;
use sqlx::Connection;

/// The cluster every test uses, created by `main` before the tests and stopped after them.
#[allow(dead_code)]
pub struct Cluster {
    pub dir: PathBuf,
    pub socket: PathBuf,
    server: Option<LocalServer>,
    _root: tempfile::TempDir,
}

static CLUSTER: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();

impl Cluster {
    /// initdb + start, through dsqlsh's own `--local` machinery (as root the server runs as
    /// the `postgres` user, so the directory must be reachable by it).
    pub fn start() -> Cluster {
        let root = tempfile::Builder::new()
            .prefix("dsqlsh-test-")
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = root.path().join("pg");
        let server = LocalServer::acquire(&dir).unwrap_or_else(|e| {
            panic!("cannot start the test PostgreSQL (is the server package installed?): {e}")
        });
        let socket = server.socket_dir();
        CLUSTER.set((dir.clone(), socket.clone())).ok();
        Cluster {
            dir,
            socket,
            server: Some(server),
            _root: root,
        }
    }

    pub fn stop(mut self) {
        if let Some(mut s) = self.server.take() {
            s.release().expect("stop the test server");
        }
    }
}

/// The running cluster's directory and socket directory.
pub fn cluster() -> (PathBuf, PathBuf) {
    CLUSTER
        .get()
        .cloned()
        .expect("the cluster is started by main")
}

/// Run SQL as the superuser on `database` (setup and verification, not under test).
pub fn admin_sql(database: &str, sql: &str) -> Vec<BTreeMap<String, String>> {
    let (_, socket) = cluster();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let opts = sqlx::postgres::PgConnectOptions::new_without_pgpass()
            .socket(&socket)
            .port(dsqlsh::local::SOCKET_PORT)
            .username("admin")
            .database(database);
        let mut conn = sqlx::PgConnection::connect_with(&opts)
            .await
            .expect("admin connect");
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("admin SQL failed: {e}\n{sql}"));
        let out = rows
            .iter()
            .map(|row| {
                use sqlx::{Column, Row, ValueRef};
                row.columns()
                    .iter()
                    .map(|c| {
                        let raw = row.try_get_raw(c.ordinal()).unwrap();
                        let v = if raw.is_null() {
                            "NULL".to_string()
                        } else {
                            String::from_utf8_lossy(raw.as_bytes().unwrap()).to_string()
                        };
                        (c.name().to_string(), v)
                    })
                    .collect()
            })
            .collect();
        let _ = conn.close().await;
        out
    })
}

/// One value from a single-row, single-column query.
pub fn scalar(database: &str, sql: &str) -> String {
    let rows = admin_sql(database, sql);
    rows.first()
        .and_then(|r| r.values().next().cloned())
        .unwrap_or_else(|| panic!("no value from {sql}"))
}

/// A fresh database for one test, so tests can run in parallel.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn new(test: &str) -> TestDb {
        let name = format!("t_{test}");
        admin_sql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        admin_sql("postgres", &format!("CREATE DATABASE {name}"));
        TestDb { name }
    }

    /// `--database-url` for this database over the cluster's socket (plain PostgreSQL path).
    pub fn url(&self) -> String {
        let (_, socket) = cluster();
        format!(
            "postgres://admin@localhost/{}?host={}&port={}",
            self.name,
            socket.display(),
            dsqlsh::local::SOCKET_PORT
        )
    }

    /// Connection flags for the plain PostgreSQL path.
    pub fn flags(&self) -> Vec<String> {
        vec!["--database-url".into(), self.url()]
    }

    /// Connection flags for the `--local` path on the shared cluster.
    pub fn local_flags(&self) -> Vec<String> {
        let (dir, _) = cluster();
        vec![
            "--local".into(),
            "--local-dir".into(),
            dir.display().to_string(),
            "--database".into(),
            self.name.clone(),
        ]
    }

    pub fn sql(&self, sql: &str) -> Vec<BTreeMap<String, String>> {
        admin_sql(&self.name, sql)
    }

    pub fn scalar(&self, sql: &str) -> String {
        scalar(&self.name, sql)
    }
}

/// What a dsqlsh run produced.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Output {
    /// Assert success and return stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "dsqlsh failed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self.no_panic();
        &self.stdout
    }

    #[track_caller]
    pub fn no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "dsqlsh panicked:\n{}",
            self.stderr
        );
    }

    /// The first line of stderr (the one-line cause).
    pub fn first_err_line(&self) -> &str {
        self.stderr.lines().next().unwrap_or("")
    }
}

/// Runs the real binary in a clean environment.
#[must_use]
pub struct Dsqlsh {
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
    cwd: Option<PathBuf>,
    timeout: Duration,
}

pub fn dsqlsh() -> Dsqlsh {
    Dsqlsh {
        args: Vec::new(),
        env: Vec::new(),
        stdin: None,
        cwd: None,
        timeout: Duration::from_secs(120),
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dsqlsh")
}

impl Dsqlsh {
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn args<I, S>(mut self, a: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }
    pub fn env(mut self, k: &str, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    pub fn stdin(mut self, s: impl Into<String>) -> Self {
        self.stdin = Some(s.into());
        self
    }
    pub fn cwd(mut self, p: &Path) -> Self {
        self.cwd = Some(p.to_path_buf());
        self
    }

    pub fn run(self) -> Output {
        let mut cmd = Command::new(bin());
        // Hermetic: nothing from the developer's environment (DATABASE_URL, PG*, AWS_*) leaks in.
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::temp_dir())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .args(&self.args)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let cwd = self.cwd.clone().unwrap_or_else(empty_dir);
        cmd.current_dir(cwd);
        let mut child = cmd.spawn().expect("spawn dsqlsh");
        if let Some(input) = &self.stdin {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).unwrap();
        }
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "dsqlsh {:?} did not finish in {:?}",
                    self.args, self.timeout
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let out = child.wait_with_output().unwrap();
        Output {
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
            code: out.status.code().unwrap_or(-1),
        }
    }
}

/// A directory with nothing in it (no .env, no scripts/), the default working directory.
pub fn empty_dir() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap())
        .path()
        .to_path_buf()
}

/// The repository root, where scripts/ and examples/ live.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
