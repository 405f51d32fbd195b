//! The Rhai side: one `Host` per process (runtime, configuration, open databases) and one
//! `Session` per script engine (its open transaction). Host functions are closures that capture
//! an `Arc<Session>`; they are grouped by API area in the submodules.
//!
//! What this module does not do: run SQL (db::exec), generate load (stress), compute statistics
//! (stats). The functions here convert arguments, call those, and convert results back.

mod bench_api;
pub mod bundled;
mod db_api;
mod helpers;
pub mod report;
mod users_api;

pub use db_api::host_value_text;

use std::sync::{Arc, Mutex};

use rhai::{Dynamic, Engine, EvalAltResult, Map, Position, Scope, AST};

use crate::config::Config;
use crate::db::{Database, PoolSettings};
use crate::error::{DbError, Error, Result};

use crate::runtime::Runtime;
pub use db_api::Conn;

pub type RhaiResult<T> = std::result::Result<T, Box<EvalAltResult>>;

/// Process-wide state shared by every engine.
pub struct Host {
    pub rt: Runtime,
    pub config: Config,
    default_db: Mutex<Option<Arc<Database>>>,
    /// Every pool opened (with what identifies it), closed at shutdown.
    opened: Mutex<Vec<(String, Arc<Database>)>>,
    /// Set by `exit(n)`.
    exit_code: Mutex<Option<i32>>,
    /// A stress or bench run breached one of its thresholds: exit 3 unless the script exits.
    threshold_breached: std::sync::atomic::AtomicBool,
    /// A stress or bench run was cut short by Ctrl-C; the script printed its report, and the
    /// process still exits as interrupted.
    load_interrupted: std::sync::atomic::AtomicBool,
}

impl Host {
    pub fn new(rt: Runtime, config: Config) -> Arc<Host> {
        Arc::new(Host {
            rt,
            config,
            default_db: Mutex::new(None),
            opened: Mutex::new(Vec::new()),
            exit_code: Mutex::new(None),
            threshold_breached: std::sync::atomic::AtomicBool::new(false),
            load_interrupted: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The default connection: the last `connect()`, or the command line's target, opened on
    /// first use.
    pub fn default_db(&self) -> Result<Arc<Database>> {
        let mut slot = self.default_db.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = slot.as_ref() {
            return Ok(db.clone());
        }
        let target = self.config.require_target()?.clone();
        let db = self.open(&target, PoolSettings::from_env()?)?;
        *slot = Some(db.clone());
        Ok(db)
    }

    pub fn set_default_db(&self, db: Arc<Database>) {
        *self.default_db.lock().unwrap_or_else(|e| e.into_inner()) = Some(db);
    }

    /// The default connection if one is open, without opening one.
    pub fn current_db(&self) -> Option<Arc<Database>> {
        self.default_db
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A pool on `target`; calling `connect()` again with the same target and settings (say,
    /// in a loop) returns the pool already open instead of opening another.
    pub fn open(
        &self,
        target: &crate::config::Target,
        settings: PoolSettings,
    ) -> Result<Arc<Database>> {
        let key = format!("{}|{settings:?}", target.identity());
        if let Some(db) = self
            .opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, db)| db.clone())
        {
            return Ok(db);
        }
        let db = self.rt.block_on(Database::open(target, settings))??;
        self.opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key, db.clone()));
        Ok(db)
    }

    pub fn set_exit_code(&self, code: i32) {
        *self.exit_code.lock().unwrap_or_else(|e| e.into_inner()) = Some(code);
    }

    pub fn set_threshold_breached(&self) {
        self.threshold_breached
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// A load run stopped on Ctrl-C: let the script go on to print the partial report.
    pub fn load_interrupted_now(&self) {
        self.load_interrupted
            .store(true, std::sync::atomic::Ordering::SeqCst);
        crate::runtime::clear_interrupt_for_report();
    }

    pub fn load_interrupted(&self) -> bool {
        self.load_interrupted
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Read and clear both load-run outcomes (interrupted, threshold breached): the REPL
    /// takes them after each entry, so one entry's run does not decide the session's status.
    pub fn take_load_outcome(&self) -> (bool, bool) {
        use std::sync::atomic::Ordering::SeqCst;
        (
            self.load_interrupted.swap(false, SeqCst),
            self.threshold_breached.swap(false, SeqCst),
        )
    }

    pub fn threshold_breached(&self) -> bool {
        self.threshold_breached
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn exit_code(&self) -> Option<i32> {
        *self.exit_code.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forget an `exit(n)` once it has been acted on: the REPL goes on after a `.run` script
    /// exits, and later entries must not see that status.
    pub fn take_exit_code(&self) -> Option<i32> {
        self.exit_code
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Close every pool, then let the local server go (the last `Arc` drops it).
    pub fn shutdown(&self) {
        let opened: Vec<Arc<Database>> =
            std::mem::take(&mut *self.opened.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .map(|(_, db)| db)
                .collect();
        self.default_db
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        for db in &opened {
            self.rt.block_on_uninterruptible(db.close());
        }
        drop(opened);
    }
}

/// Per-engine state: the connections this engine holds (see db_api).
pub struct Session {
    pub host: Arc<Host>,
    pub(crate) conns: Mutex<Vec<db_api::Held>>,
    /// The database whose transaction lost its connection, until that transaction ends.
    pub(crate) lost_tx: Mutex<Option<Arc<Database>>>,
    /// The database whose transaction opened with BEGIN lost its connection, until the script
    /// sends COMMIT or ROLLBACK: statements in between would otherwise commit one by one.
    pub(crate) lost_manual_tx: Mutex<Option<Arc<Database>>>,
    /// The script being evaluated: `bench` workers run its closures on engines of their own.
    pub(crate) ast: Mutex<Option<Arc<AST>>>,
    /// Where calls without a connection go instead of the host's default (bench workers).
    pub(crate) default_db: Option<Arc<Database>>,
    /// A runtime of this session's own (bench workers); the host's otherwise.
    local_rt: Option<Runtime>,
}

impl Session {
    pub fn new(host: Arc<Host>) -> Arc<Session> {
        Arc::new(Session {
            host,
            conns: Mutex::new(Vec::new()),
            lost_tx: Mutex::new(None),
            lost_manual_tx: Mutex::new(None),
            ast: Mutex::new(None),
            default_db: None,
            local_rt: None,
        })
    }

    /// A bench worker's session: default connection `db`, and a runtime of its own.
    pub fn for_worker(host: Arc<Host>, db: Arc<Database>, ast: Arc<AST>) -> Result<Arc<Session>> {
        Ok(Arc::new(Session {
            host,
            conns: Mutex::new(Vec::new()),
            lost_tx: Mutex::new(None),
            lost_manual_tx: Mutex::new(None),
            ast: Mutex::new(Some(ast)),
            default_db: Some(db),
            local_rt: Some(Runtime::current_thread()?),
        }))
    }

    /// The runtime this session's database calls run on.
    pub fn rt(&self) -> &Runtime {
        self.local_rt.as_ref().unwrap_or(&self.host.rt)
    }

    /// This session's default database, opening the host's on first use.
    pub fn default_db(&self) -> Result<Arc<Database>> {
        match &self.default_db {
            Some(db) => Ok(db.clone()),
            None => self.host.default_db(),
        }
    }
}

/// The value of an error that is the caller's command line at fault (a misspelled `KEY=VALUE`
/// argument): the run exits with the usage status 2 instead of 1. Catchable like any error.
#[derive(Debug, Clone)]
pub struct UsageError(pub String);

/// A Rhai runtime error for a usage mistake (see `UsageError`).
pub fn usage_error(message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(UsageError(message.into())),
        Position::NONE,
    ))
}

/// A Rhai runtime error carrying a plain message.
pub fn script_error(message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(message.into()),
        Position::NONE,
    ))
}

/// A database error as scripts see it: a catchable map `#{sqlstate, message, retryable}`.
pub fn db_error(e: DbError) -> Box<EvalAltResult> {
    let mut map = Map::new();
    map.insert("sqlstate".into(), Dynamic::from(e.sqlstate));
    map.insert("message".into(), Dynamic::from(e.message));
    map.insert("retryable".into(), Dynamic::from_bool(e.retryable));
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from_map(map),
        Position::NONE,
    ))
}

/// The DbError inside a Rhai error built by `db_error`.
pub fn rhai_db_error(e: &rhai::EvalAltResult) -> Option<DbError> {
    if let rhai::EvalAltResult::ErrorRuntime(v, _) = report::innermost(e) {
        let map = v.read_lock::<Map>()?;
        return Some(DbError {
            sqlstate: map.get("sqlstate")?.to_string(),
            message: map.get("message")?.to_string(),
            retryable: map.get("retryable")?.as_bool().unwrap_or(false),
        });
    }
    None
}

/// Any crate error inside a host function.
pub fn host_error(e: Error) -> Box<EvalAltResult> {
    match e {
        Error::Interrupted => Box::new(EvalAltResult::ErrorTerminated(
            Dynamic::from("interrupted"),
            Position::NONE,
        )),
        Error::Database(d) => db_error(d),
        Error::Connect {
            target,
            message,
            sqlstate,
        } => db_error(DbError {
            sqlstate,
            message: format!("cannot connect to {target}: {message}"),
            retryable: false,
        }),
        other => script_error(other.to_string()),
    }
}

/// A fresh engine with every dsqlsh function registered.
pub fn engine(session: &Arc<Session>) -> Engine {
    let mut engine = Engine::new();
    engine.set_max_expr_depths(256, 128);
    // Bounds that turn a runaway script (`"x".pad(1e11, "y")`) into an error instead of an
    // out-of-memory kill, which would skip cleanup such as stopping the --local server.
    engine.set_max_string_size(256 * 1024 * 1024);
    engine.set_max_array_size(50_000_000);
    engine.set_max_map_size(10_000_000);
    engine.set_max_call_levels(256);
    engine.on_print(|s| {
        crate::output::line(s);
    });
    engine.on_debug(|s, src, pos| {
        let place = match (src, pos.line()) {
            (Some(src), Some(line)) => format!("{src}:{line}: "),
            (None, Some(line)) => format!("line {line}: "),
            _ => String::new(),
        };
        eprintln!("{place}{s}");
    });
    engine.on_progress(|_| {
        if crate::runtime::interrupted() {
            Some(Dynamic::from("interrupted"))
        } else if crate::output::stdout_failed() {
            Some(Dynamic::from("stdout unusable"))
        } else {
            None
        }
    });
    helpers::register(&mut engine, session);
    db_api::register(&mut engine, session);
    users_api::register(&mut engine, session);
    bench_api::register(&mut engine, session);
    engine
}

/// A script ready to run: its display name (for messages) and text.
pub struct Source {
    pub name: String,
    pub text: String,
    /// Directory `import` statements resolve against.
    pub dir: Option<std::path::PathBuf>,
}

/// Compile and run a script with `ARGS`; returns its value. Errors come back rendered with
/// `script:line:column` and a caret.
pub fn run_source(session: &Arc<Session>, source: &Source, args: Map) -> Result<Dynamic> {
    let mut engine = engine(session);
    if let Some(dir) = &source.dir {
        engine.set_module_resolver(rhai::module_resolvers::FileModuleResolver::new_with_path(
            dir,
        ));
    }
    let ast = compile(&engine, source)?;
    let mut scope = Scope::new();
    scope.push_constant("ARGS", Dynamic::from_map(args));
    eval(session, &engine, &mut scope, &ast, source)
}

/// A UTF-8 byte-order mark and a `#!` first line (scripts run directly from cron or a shell)
/// are not Rhai; blank them while keeping the line numbers.
fn runnable_text(text: &str) -> std::borrow::Cow<'_, str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.starts_with("#!") {
        let rest = text.find('\n').map_or("", |i| &text[i..]);
        std::borrow::Cow::Owned(rest.to_string())
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

pub fn compile(engine: &Engine, source: &Source) -> Result<AST> {
    let mut ast = engine
        .compile(runnable_text(&source.text).as_ref())
        .map_err(|e| Error::Script(report::render_parse(&e, source)))?;
    ast.set_source(source.name.as_str());
    Ok(ast)
}

/// Evaluate `ast` and turn Rhai's outcome into dsqlsh's.
pub fn eval(
    session: &Arc<Session>,
    engine: &Engine,
    scope: &mut Scope,
    ast: &AST,
    source: &Source,
) -> Result<Dynamic> {
    *session.ast.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(ast.clone()));
    let outcome = engine.eval_ast_with_scope::<Dynamic>(scope, ast);
    // A transaction the script left open (an error escaped it) is rolled back.
    session.abandon_transaction();
    if let Some(code) = session.host.exit_code() {
        return Err(Error::Exit(code));
    }
    match outcome {
        Ok(v) => Ok(v),
        Err(e) => Err(classify(&e, source)),
    }
}

fn classify(e: &EvalAltResult, source: &Source) -> Error {
    if let Some(why) = crate::output::write_failure() {
        return Error::Io {
            path: "standard output".into(),
            source: std::io::Error::other(why),
        };
    }
    if crate::output::broken_pipe() {
        return Error::Exit(0);
    }
    match report::innermost(e) {
        EvalAltResult::ErrorTerminated(..) => Error::Interrupted,
        // The command line is at fault, not the script: no caret into the script's source.
        EvalAltResult::ErrorRuntime(v, _) if v.is::<UsageError>() => {
            Error::Usage(v.clone_cast::<UsageError>().0)
        }
        _ => Error::Script(report::render_eval(e, source)),
    }
}

/// `ARGS` from `KEY=VALUE` strings; values that parse as integers, floats or booleans are typed.
pub fn parse_args(pairs: &[String]) -> Result<Map> {
    let mut map = Map::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(Error::Usage(format!(
                "script arguments are KEY=VALUE pairs; got `{pair}`"
            )));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(Error::Usage(format!("script argument `{pair}` has no key")));
        }
        map.insert(key.into(), typed_value(value));
    }
    Ok(map)
}

pub fn typed_value(value: &str) -> Dynamic {
    // `007` or `-01` is an identifier or a code, not a number: leading zeros stay a string.
    let digits = value.trim_start_matches(['-', '+']);
    let leading_zero = digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0.");
    if leading_zero {
        return Dynamic::from(value.to_string());
    }
    if let Ok(i) = value.parse::<i64>() {
        return Dynamic::from_int(i);
    }
    let numeric_looking = value
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && value.chars().any(|c| c.is_ascii_digit());
    if numeric_looking {
        if let Ok(f) = value.parse::<f64>() {
            return Dynamic::from_float(f);
        }
    }
    match value {
        "true" => Dynamic::from_bool(true),
        "false" => Dynamic::from_bool(false),
        _ => Dynamic::from(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_are_typed() {
        let m = parse_args(&[
            "users=2000".into(),
            "rate=1.5".into(),
            "json=true".into(),
            "name=Ann Lee".into(),
            "tz=Europe/Paris".into(),
            "e=1e3".into(),
            "neg=-4".into(),
            "nan=nan".into(),
            "zip=01234".into(),
            "zero=0".into(),
            "eq=a=b".into(),
        ])
        .unwrap();
        assert_eq!(m["users"].as_int().unwrap(), 2000);
        assert_eq!(m["rate"].as_float().unwrap(), 1.5);
        assert!(m["json"].as_bool().unwrap());
        assert_eq!(m["name"].clone().into_string().unwrap(), "Ann Lee");
        assert_eq!(m["tz"].clone().into_string().unwrap(), "Europe/Paris");
        assert_eq!(m["e"].as_float().unwrap(), 1000.0);
        assert_eq!(m["neg"].as_int().unwrap(), -4);
        assert_eq!(m["nan"].clone().into_string().unwrap(), "nan");
        assert_eq!(m["zip"].clone().into_string().unwrap(), "01234");
        assert_eq!(m["zero"].as_int().unwrap(), 0);
        assert_eq!(m["eq"].clone().into_string().unwrap(), "a=b");
        assert_eq!(
            parse_args(&["users".into()]).unwrap_err().to_string(),
            "script arguments are KEY=VALUE pairs; got `users`"
        );
    }
}
