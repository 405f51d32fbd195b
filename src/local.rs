//! The embedded default behind `--local`: a PostgreSQL cluster that dsqlsh creates, starts and
//! stops itself, from the server binaries already installed on the machine.
//!
//! Layout of the local directory:
//!
//! ```text
//! data/        the cluster (PGDATA), made by initdb on first use and kept afterwards
//! run/         the unix socket directory: the server listens on no TCP port at all
//! server.log   the server's log
//! lock         flock, held exclusively while a process starts or stops the server
//! users        flock, held shared by every dsqlsh process that uses the server
//! ```
//!
//! Lifetime: the first dsqlsh process starts the server and the last one to leave stops it, so
//! any number of processes can use `--local` at once, the data persists between invocations, and
//! nothing keeps running once the last dsqlsh exits. A server left behind by a killed process is
//! adopted by the next user and stopped when that one leaves (or by `dsqlsh local stop`).
//!
//! As root, the server runs as the `postgres` user (or `nobody`): initdb refuses to run as root,
//! and a database server should not run with root's privileges anyway.
//!
//! This module does not connect to the server; it hands out connect options.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::error::{Error, Result};

/// The port only names the socket file (`run/.s.PGSQL.5432`); nothing listens on TCP.
pub const SOCKET_PORT: u16 = 5432;

/// The superuser created by initdb: the same name as DSQL's default role.
pub const SUPERUSER: &str = "admin";

/// The default directory: the user's data directory, except for root, whose home is private
/// and would be unreachable for the unprivileged server.
pub fn default_dir() -> Result<PathBuf> {
    if is_root() {
        return Ok(PathBuf::from("/var/lib/dsqlsh/local"));
    }
    dirs::data_dir()
        .map(|d| d.join("dsqlsh").join("local"))
        .ok_or_else(|| Error::Local("cannot find your data directory; pass --local-dir DIR".into()))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The server binaries this machine has.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub bin_dir: PathBuf,
}

impl Binaries {
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Find `initdb`, `pg_ctl` and `postgres` together: on PATH, then in the usual install
    /// directories, newest version first.
    /// `DSQLSH_PG_BIN`, when set, is the only directory searched.
    pub fn find() -> Result<Binaries> {
        let has_all = |dir: &Path| {
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|t| is_executable(&dir.join(t)))
        };
        let mut candidates: Vec<PathBuf> = Vec::new();
        match std::env::var_os("DSQLSH_PG_BIN") {
            Some(dir) => candidates.push(PathBuf::from(dir)),
            None => candidates.extend(
                std::env::var_os("PATH")
                    .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                    .unwrap_or_default(),
            ),
        }
        let search_standard_places = std::env::var_os("DSQLSH_PG_BIN").is_none();
        if search_standard_places {
            for pattern_dir in [
                "/usr/lib/postgresql",
                "/usr/local/pgsql",
                "/opt/homebrew/opt",
            ] {
                candidates.extend(versioned_bin_dirs(Path::new(pattern_dir)));
            }
            candidates.extend(
                [
                    "/usr/local/pgsql/bin",
                    "/usr/pgsql/bin",
                    "/opt/homebrew/bin",
                    "/usr/local/bin",
                ]
                .map(PathBuf::from),
            );
        }
        candidates
            .into_iter()
            .find(|d| has_all(d))
            .map(|bin_dir| {
                // PATH entries are often symlinks into the real install; keep the real directory
                // so that the three tools come from one version.
                let real = fs::canonicalize(bin_dir.join("postgres"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .filter(|d| has_all(d))
                    .unwrap_or(bin_dir);
                Binaries { bin_dir: real }
            })
            .ok_or_else(|| {
                let place = match std::env::var_os("DSQLSH_PG_BIN") {
                    Some(d) => format!("in `{}` (DSQLSH_PG_BIN)", PathBuf::from(d).display()),
                    None => "on PATH or under /usr/lib/postgresql".to_string(),
                };
                Error::Local(format!(
                    "the PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`) were not found \
                     {place}; install the PostgreSQL server package (Debian/Ubuntu: `apt install \
                     postgresql`, Fedora/RHEL: `dnf install postgresql-server`, macOS: `brew install \
                     postgresql@16`)"
                ))
            })
    }

    pub fn version(&self) -> Option<String> {
        let out = Command::new(self.tool("postgres"))
            .arg("--version")
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// `<base>/<version>/bin` directories, highest version first (e.g. /usr/lib/postgresql/16/bin).
fn versioned_bin_dirs(base: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(base) else {
        return Vec::new();
    };
    let mut dirs: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let digits: String = name
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(|c| c.is_ascii_digit())
                .collect();
            Some((digits.parse().ok()?, e.path().join("bin")))
        })
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    dirs.into_iter().map(|(_, d)| d).collect()
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The unprivileged account the server runs as when dsqlsh runs as root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

fn run_as() -> Result<Option<RunAs>> {
    if !is_root() {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Some(r) = lookup_user(name) {
            return Ok(Some(r));
        }
    }
    Err(Error::Local(
        "running as root, and neither a `postgres` nor a `nobody` user exists to run the server"
            .into(),
    ))
}

fn lookup_user(name: &str) -> Option<RunAs> {
    let cname = std::ffi::CString::new(name).ok()?;
    // SAFETY: getpwnam returns a pointer to static storage or null; we copy the two fields out
    // immediately and dsqlsh calls it before starting any other thread that could race on it.
    unsafe {
        let pw = libc::getpwnam(cname.as_ptr());
        if pw.is_null() {
            None
        } else {
            Some(RunAs {
                uid: (*pw).pw_uid,
                gid: (*pw).pw_gid,
            })
        }
    }
}

/// An advisory lock on a file, released when dropped.
struct FileLock {
    file: File,
}

impl FileLock {
    fn open(path: &Path) -> Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        // 0600: another local user able to open the file could hold the lock and block us.
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io(path.display(), e))
    }

    fn take(path: &Path, op: libc::c_int) -> Result<FileLock> {
        let file = Self::open(path)?;
        loop {
            // SAFETY: flock on a descriptor we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
            if rc == 0 {
                return Ok(FileLock { file });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::io(path.display(), err));
            }
        }
    }

    /// Try to take an exclusive lock without waiting; `None` when someone else holds it.
    fn try_exclusive(path: &Path) -> Result<Option<FileLock>> {
        let file = Self::open(path)?;
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            Ok(Some(FileLock { file }))
        } else {
            Ok(None)
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: unlocking a descriptor we own; closing it would release the lock anyway.
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

/// Paths inside a local directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Result<Layout> {
        // pg_ctl starts the server through `sh -c "... -D \"<dir>\" ..."`, and the socket path
        // goes into a quoted configuration string: characters a shell or that string would
        // interpret are refused rather than escaped.
        let text = dir.to_str().ok_or_else(|| {
            Error::Local(format!(
                "the local directory `{}` is not valid UTF-8",
                dir.display()
            ))
        })?;
        if let Some(c) = text
            .chars()
            .find(|c| matches!(c, '"' | '\'' | '\\' | '$' | '`' | '\n' | '\r'))
        {
            return Err(Error::Local(format!(
                "the local directory `{text}` contains `{}`; choose a path without quotes, \
                 backslashes, `$` or backquotes (pg_ctl passes it through a shell)",
                c.escape_default()
            )));
        }
        let dir = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| Error::io(".", e))?
                .join(dir)
        };
        Ok(Layout { dir })
    }
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }
    pub fn run(&self) -> PathBuf {
        self.dir.join("run")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }
    fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }
    fn users(&self) -> PathBuf {
        self.dir.join("users")
    }
    fn initialized(&self) -> bool {
        self.data().join("PG_VERSION").is_file()
    }
}

/// A running local server that this process is using. Dropping it leaves the server, stopping
/// it when no other dsqlsh process still uses it.
#[derive(Debug)]
pub struct LocalServer {
    layout: Layout,
    binaries: Binaries,
    run_as: Option<RunAs>,
    /// Our shared hold on `users`; `None` once released.
    users: Option<FileLockHandle>,
}

// FileLock holds a File, which is Debug; wrap it to keep LocalServer's Debug derive short.
struct FileLockHandle(#[allow(dead_code)] FileLock);

impl std::fmt::Debug for FileLockHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileLock")
    }
}

impl LocalServer {
    /// Create the cluster if needed, start the server if needed, and register as a user.
    pub fn acquire(dir: &Path) -> Result<LocalServer> {
        let layout = Layout::new(dir)?;
        let run_as = run_as()?;
        prepare_dir(&layout.dir, run_as)?;
        let _guard = FileLock::take(&layout.lock(), libc::LOCK_EX)?;
        let binaries = Binaries::find()?;
        let mut server = LocalServer {
            layout,
            binaries,
            run_as,
            users: None,
        };
        if !server.layout.initialized() {
            server.init()?;
        }
        server.write_settings()?;
        if !server.is_running() {
            server.start()?;
            spawn_reaper(&server.layout);
        }
        let users = FileLock::take(&server.layout.users(), libc::LOCK_SH)?;
        server.users = Some(FileLockHandle(users));
        Ok(server)
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.layout.run()
    }

    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    /// Connect options for a role and database on this server (trust auth over the socket).
    pub fn connect_options(&self, user: &str, database: &str) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .socket(self.socket_dir())
            .port(SOCKET_PORT)
            .username(user)
            .database(database)
            .ssl_mode(PgSslMode::Disable)
            .application_name("dsqlsh")
    }

    fn command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(self.binaries.tool(tool));
        cmd.current_dir(&self.layout.dir)
            .env_remove("PGDATA")
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        if let Some(r) = self.run_as {
            cmd.uid(r.uid).gid(r.gid);
        }
        cmd
    }

    fn init(&self) -> Result<()> {
        let data = self.layout.data();
        create_owned_dir(&data, 0o700, self.run_as)?;
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
            ])
            .output()
            .map_err(|e| Error::Local(format!("cannot run `initdb`: {e}")))?;
        if !out.status.success() {
            return Err(Error::Local(format!(
                "initdb failed in `{}`: {}",
                data.display(),
                last_lines(&String::from_utf8_lossy(&out.stderr), 5)
            )));
        }
        // initdb writes postgresql.conf; have it include the file dsqlsh rewrites at each start.
        let conf = data.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).map_err(|e| Error::io(conf.display(), e))?;
        text.push_str(
            "\n# dsqlsh: socket directory and listen settings\ninclude_if_exists = 'dsqlsh.conf'\n",
        );
        fs::write(&conf, text).map_err(|e| Error::io(conf.display(), e))?;
        Ok(())
    }

    /// Written at every start, so a moved directory still finds its socket.
    fn write_settings(&self) -> Result<()> {
        let run = self.layout.run();
        create_owned_dir(&run, 0o700, self.run_as)?;
        let socket = run.join(format!(".s.PGSQL.{SOCKET_PORT}"));
        if socket.as_os_str().len() > 100 {
            return Err(Error::Local(format!(
                "the socket path `{}` is too long for a unix socket; choose a shorter --local-dir",
                socket.display()
            )));
        }
        let quoted = run.display().to_string().replace('\'', "''");
        let text = format!(
            "listen_addresses = ''\n\
             port = {SOCKET_PORT}\n\
             unix_socket_directories = '{quoted}'\n\
             unix_socket_permissions = 0700\n\
             max_connections = 200\n\
             log_min_error_statement = panic\n"
        );
        let path = self.layout.data().join("dsqlsh.conf");
        fs::write(&path, text).map_err(|e| Error::io(path.display(), e))?;
        chown(&path, self.run_as)
    }

    fn is_running(&self) -> bool {
        self.command("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(self.layout.data())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn start(&self) -> Result<()> {
        let log = self.layout.log();
        // The log is not rotated by the server: keep one previous generation past 10 MiB.
        if fs::metadata(&log).is_ok_and(|m| m.len() > 10 * 1024 * 1024) {
            let _ = fs::rename(&log, self.layout.dir.join("server.log.1"));
        }
        if !log.exists() {
            File::create(&log).map_err(|e| Error::io(log.display(), e))?;
        }
        fs::set_permissions(&log, fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(log.display(), e))?;
        chown(&log, self.run_as)?;
        let status = self
            .command("pg_ctl")
            .arg("start")
            .arg("-D")
            .arg(self.layout.data())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| Error::Local(format!("cannot run `pg_ctl`: {e}")))?;
        if !status.success() {
            return Err(Error::Local(format!(
                "the server in `{}` did not start; its log says: {}",
                self.layout.dir.display(),
                last_lines(&read_tail(&log), 3)
            )));
        }
        Ok(())
    }

    fn stop_server(&self) -> Result<()> {
        let out = self
            .command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(self.layout.data())
            .args(["-m", "fast", "-w", "-t", "60"])
            .output()
            .map_err(|e| Error::Local(format!("cannot run `pg_ctl`: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Local(format!(
                "pg_ctl stop failed: {}",
                last_lines(&String::from_utf8_lossy(&out.stderr), 3)
            )))
        }
    }

    /// Stop using the server; stop it when no other process uses it.
    pub fn release(&mut self) -> Result<()> {
        let Some(users) = self.users.take() else {
            return Ok(());
        };
        let _guard = FileLock::take(&self.layout.lock(), libc::LOCK_EX)?;
        drop(users);
        if let Some(_alone) = FileLock::try_exclusive(&self.layout.users())? {
            if self.is_running() {
                self.stop_server()?;
            }
        }
        Ok(())
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            eprintln!("dsqlsh: warning: {e}");
        }
    }
}

/// Create the directory (and parents); as root, make sure the server's user can reach it.
fn prepare_dir(dir: &Path, run_as: Option<RunAs>) -> Result<()> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        // Ours alone; as root, the server's user may pass through but not list it.
        let mode = if run_as.is_some() { 0o711 } else { 0o700 };
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(dir.display(), e))?;
    }
    if let Some(r) = run_as {
        // Every ancestor must be searchable by the server's user.
        for ancestor in dir.ancestors() {
            let meta = fs::metadata(ancestor).map_err(|e| Error::io(ancestor.display(), e))?;
            let mode = meta.permissions().mode();
            let searchable = mode & 0o001 != 0
                || (meta.uid() == r.uid && mode & 0o100 != 0)
                || (meta.gid() == r.gid && mode & 0o010 != 0);
            if !searchable {
                if ancestor == dir {
                    let mut p = meta.permissions();
                    p.set_mode(mode | 0o011);
                    fs::set_permissions(dir, p).map_err(|e| Error::io(dir.display(), e))?;
                } else {
                    return Err(Error::Local(format!(
                        "`{}` is not reachable by the unprivileged user the server runs as \
                         (the directory `{}` is private); choose a --local-dir outside it, \
                         for example under /var/lib",
                        dir.display(),
                        ancestor.display()
                    )));
                }
            }
        }
    }
    Ok(())
}

fn create_owned_dir(dir: &Path, mode: u32, run_as: Option<RunAs>) -> Result<()> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(dir.display(), e))?;
    chown(dir, run_as)
}

fn chown(path: &Path, run_as: Option<RunAs>) -> Result<()> {
    if let Some(r) = run_as {
        std::os::unix::fs::chown(path, Some(r.uid), Some(r.gid))
            .map_err(|e| Error::io(path.display(), e))?;
    }
    Ok(())
}

fn read_tail(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

/// What `dsqlsh local status` reports.
pub fn status(dir: &Path) -> Result<String> {
    let layout = Layout::new(dir)?;
    let binaries = Binaries::find();
    let mut out = format!("directory: {}\n", layout.dir.display());
    match &binaries {
        Ok(b) => out.push_str(&format!(
            "server:    {} ({})\n",
            b.bin_dir.display(),
            b.version().unwrap_or_else(|| "unknown version".into())
        )),
        Err(e) => out.push_str(&format!("server:    {e}\n")),
    }
    if !layout.initialized() {
        out.push_str("cluster:   not created yet (the first `dsqlsh --local ...` creates it)\n");
        return Ok(out);
    }
    out.push_str(&format!("cluster:   {}\n", layout.data().display()));
    let pid = fs::read_to_string(layout.data().join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
        // SAFETY: kill with signal 0 only checks that the process exists.
        .filter(|&pid| unsafe { libc::kill(pid, 0) } == 0);
    match pid {
        Some(pid) => {
            // Every dsqlsh process using the server holds a shared lock on `users`.
            let in_use = FileLock::try_exclusive(&layout.users())?.is_none();
            out.push_str(&format!(
                "status:    running (pid {pid}), socket {}, {}\n",
                layout.run().display(),
                if in_use {
                    "in use by a dsqlsh process"
                } else {
                    "not in use (left behind by a killed process; `dsqlsh local stop` stops it)"
                }
            ));
            out.push_str(&format!(
                "psql:      psql -h {} -p {SOCKET_PORT} -U admin postgres\n",
                layout.run().display()
            ));
        }
        None => out.push_str("status:    stopped\n"),
    }
    Ok(out)
}

/// Start `dsqlsh local reap` in the background for a server this process just started.
///
/// The last process to leave stops the server, but a process killed with SIGKILL, aborted, or
/// killed by the out-of-memory killer never runs that code. The reaper outlives it and stops
/// the server once no dsqlsh process holds the `users` lock (the kernel drops a dead process's
/// locks), then exits. Only the dsqlsh binary itself spawns one: tests and benchmarks that use
/// this module as a library manage the server's lifetime themselves.
fn spawn_reaper(layout: &Layout) {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    if exe.file_name().and_then(|n| n.to_str()) != Some("dsqlsh") {
        return;
    }
    let _ = Command::new(exe)
        .args(["local", "reap", "--local-dir"])
        .arg(&layout.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: Ctrl-C in the terminal is for the foreground dsqlsh only.
        .process_group(0)
        .spawn();
}

/// The reaper's loop: once a second, under the start/stop lock, stop the server if it runs
/// with no dsqlsh process using it; leave when it is not running any more.
pub fn reap(dir: &Path) -> Result<()> {
    let layout = Layout::new(dir)?;
    let server = LocalServer {
        layout,
        binaries: Binaries::find()?,
        run_as: run_as()?,
        users: None,
    };
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let _guard = FileLock::take(&server.layout.lock(), libc::LOCK_EX)?;
        if !server.is_running() {
            return Ok(());
        }
        if FileLock::try_exclusive(&server.layout.users())?.is_some() {
            return server.stop_server();
        }
    }
}

/// `dsqlsh local stop`: stop the server whoever started it. Returns false when it was not running.
pub fn stop(dir: &Path) -> Result<bool> {
    let layout = Layout::new(dir)?;
    if !layout.initialized() {
        return Ok(false);
    }
    let _guard = FileLock::take(&layout.lock(), libc::LOCK_EX)?;
    let server = LocalServer {
        layout,
        binaries: Binaries::find()?,
        run_as: run_as()?,
        users: None,
    };
    if !server.is_running() {
        return Ok(false);
    }
    if FileLock::try_exclusive(&server.layout.users())?.is_none() {
        eprintln!(
            "dsqlsh: warning: a dsqlsh process is still using this server; stopping it anyway \
             (that process will lose its connections)"
        );
    }
    server.stop_server()?;
    Ok(true)
}
