//! The interactive shell: one engine, one `Scope` and the script functions defined so far, kept
//! across entries, on the host's default connection, the same session `.run` scripts use.
//!
//! An entry is a meta command (`.help`), SQL (a `\` line, or any entry in `.sql` mode) or Rhai.
//! This module runs entries and keeps their state; `input` decides where an entry ends,
//! `editor` reads them from a terminal (rustyline), `complete` offers Tab candidates, `meta`
//! runs the dot commands and `sql` prints SQL results. Piped input (stdin not a terminal) goes
//! through the same `Repl::entry` without prompts or escape sequences, and the exit status says
//! whether every entry succeeded.
//!
//! Nothing an entry does ends the session except `.quit`, Ctrl-D and `exit(n)`: errors print
//! with their caret, Ctrl-C cancels the running statement (on the server too) and returns to
//! the prompt, and a panic in a host function is caught and reported.

mod complete;
mod editor;
mod input;
mod meta;
mod sql;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rhai::{Dynamic, Engine, EvalAltResult, Scope, AST};

use crate::config::Config;
use crate::error::Result;
use crate::output;
use crate::script::{self, report, Session, Source};
use complete::Names;
use input::{Kind, Mode};
use sql::Format;

/// Start the shell on a terminal, or read entries from piped stdin; returns the exit status.
pub fn start(config: Config, history_file: Option<PathBuf>, no_history: bool) -> Result<i32> {
    let interactive = std::io::stdin().is_terminal();
    // Piped input is a script, not something a person will want to recall.
    let history = match (interactive, no_history) {
        (true, false) => history_file.or_else(editor::default_history_path),
        _ => None,
    };
    let mut status = 0;
    let outcome = crate::app::with_session(config, |session| {
        let _quiet = QuietPanics::install();
        let mut repl = Repl::new(session.clone(), script::engine(session), interactive);
        status = if interactive {
            editor::run(&mut repl, history)?
        } else {
            piped(&mut repl)
        };
        Ok(())
    })?;
    Ok(if status != 0 { status } else { outcome })
}

/// Entries from a pipe: the same entry rules, no prompt. Status 1 when any entry failed.
fn piped(repl: &mut Repl) -> i32 {
    let stdin = std::io::stdin();
    let mut buffer = String::new();
    let mut failed = false;
    let mut line_no = 0;
    loop {
        crate::runtime::reset_interrupt();
        let mut line = String::new();
        // One line at a time from the shared stdin buffer, so a script's `prompt()` reads the
        // lines that follow its entry.
        let more = match stdin.read_line(&mut line) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => {
                eprintln!("error: cannot read standard input: {e}");
                failed = true;
                false
            }
        };
        line_no += 1;
        if buffer.trim().is_empty() {
            // Errors name lines of the input, as for a script file.
            repl.origin = Some(line_no);
        }
        buffer.push_str(&line);
        if !more
            && !buffer.trim().is_empty()
            && input::is_incomplete(&repl.engine, &buffer, repl.mode())
        {
            // Input ended inside an entry: say so, rather than report what the parser makes
            // of a block that was cut off.
            let first = buffer.trim_start().lines().next().unwrap_or("").trim();
            eprintln!("error: input ended in the middle of an entry (it starts `{first}`)");
            failed = true;
            break;
        }
        let complete = !more || !input::is_incomplete(&repl.engine, &buffer, repl.mode());
        if complete && !buffer.trim().is_empty() {
            let entry = std::mem::take(&mut buffer);
            match repl.entry(entry.trim_end_matches('\n')) {
                Step::Ok => {}
                Step::Failed => failed = true,
                Step::Quit(Some(code)) => return code,
                Step::Quit(None) => break,
            }
        } else if complete {
            buffer.clear();
        }
        if !more {
            break;
        }
    }
    i32::from(failed)
}

/// What became of one entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Ok,
    Failed,
    /// `.quit` (None) or `exit(n)`.
    Quit(Option<i32>),
}

/// What the editor's helpers read while the user types.
pub struct Shared {
    pub mode: Mode,
    pub names: Names,
}

pub struct Repl {
    session: Arc<Session>,
    engine: Arc<Engine>,
    scope: Scope<'static>,
    /// Every function defined by an entry so far (a later definition replaces an earlier one).
    functions: AST,
    /// The entry text each script function was defined in, so an error inside a function
    /// typed earlier shows that entry's line under the caret.
    fn_sources: HashMap<String, Arc<str>>,
    shared: Arc<Mutex<Shared>>,
    /// Registered function names, for completion; script functions are added per entry.
    registered: Vec<String>,
    format: Format,
    timing: bool,
    interactive: bool,
    /// Piped input: the line of stdin the current entry starts on, so that errors point at
    /// `<stdin>:line:column` rather than at a line of the entry.
    origin: Option<usize>,
    /// A transaction opened with SQL (`\BEGIN;`) and whether a statement in it failed, so
    /// that COMMIT prints ROLLBACK when the server rolls back (sqlx does not pass the server's
    /// command tag on).
    pub(crate) sql_tx: SqlTx,
}

/// What the shell knows of a transaction opened with SQL statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlTx {
    None,
    Open,
    Aborted,
}

impl Repl {
    pub fn new(session: Arc<Session>, engine: Engine, interactive: bool) -> Repl {
        let mut scope = Scope::new();
        scope.push_constant("ARGS", Dynamic::from_map(rhai::Map::new()));
        let mut registered: Vec<String> = engine
            .gen_fn_signatures(true)
            .iter()
            .filter_map(|sig| sig.split('(').next())
            .filter(|name| is_identifier(name))
            .map(String::from)
            .collect();
        registered.sort();
        registered.dedup();
        let names = Names {
            bundled: script::bundled::BUNDLED
                .iter()
                .map(|b| b.name.to_string())
                .collect(),
            ..Names::default()
        };
        let repl = Repl {
            session,
            engine: Arc::new(engine),
            scope,
            functions: AST::empty(),
            fn_sources: HashMap::new(),
            shared: Arc::new(Mutex::new(Shared {
                mode: Mode::Rhai,
                names,
            })),
            registered,
            format: Format::Table,
            timing: false,
            interactive,
            origin: None,
            sql_tx: SqlTx::None,
        };
        repl.update_names();
        repl
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn mode(&self) -> Mode {
        self.shared().mode
    }

    /// Run one complete entry. Never panics and never ends the session by itself.
    pub fn entry(&mut self, text: &str) -> Step {
        crate::runtime::reset_interrupt();
        // Timing is about statements and scripts (`.run` included), not about `.timing on`.
        let timed = self.timing
            && match input::classify(text, self.mode()) {
                Kind::Sql(_) | Kind::Rhai(_) => true,
                Kind::Meta(command) => command.split_whitespace().next() == Some("run"),
                Kind::Blank => false,
            };
        let started = Instant::now();
        IN_ENTRY.with(|f| f.set(true));
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| self.dispatch(text)));
        IN_ENTRY.with(|f| f.set(false));
        let mut step = outcome.unwrap_or_else(|payload| {
            // A panic is a bug in dsqlsh, but one bad call must not lose the user's session.
            self.session.abandon_transaction();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            let place = PANIC_PLACE
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .map(|p| format!(" at {p}"))
                .unwrap_or_default();
            eprintln!(
                "error: internal error (a bug in dsqlsh): {message}{place}; the session goes on"
            );
            Step::Failed
        });
        // A load run stopped by Ctrl-C or over a threshold sets the exit status of a script
        // run (130, 3); in a shell it concerns that entry only. Piped, the entry counts as
        // failed, so the exit status still tells a job that something went wrong.
        let (load_interrupted, breached) = self.session.host.take_load_outcome();
        if (load_interrupted || breached) && !self.interactive && step == Step::Ok {
            step = Step::Failed;
        }
        if output::broken_pipe() {
            // Whoever read stdout has gone (`dsqlsh repl < x | head`): stop quietly, as `run` does.
            return Step::Quit(Some(0));
        }
        if timed && !matches!(step, Step::Quit(_)) {
            eprintln!("Time: {:.3} ms", started.elapsed().as_secs_f64() * 1000.0);
        }
        step
    }

    fn dispatch(&mut self, text: &str) -> Step {
        let mode = self.mode();
        match input::classify(text, mode) {
            Kind::Blank => Step::Ok,
            Kind::Meta(command) => meta::run(self, command),
            Kind::Sql(sql) => self.run_sql(sql),
            Kind::Rhai(code) => self.run_rhai(code),
        }
    }

    fn run_rhai(&mut self, code: &str) -> Step {
        // Piped, the entry is compiled after as many empty lines as precede it in the input,
        // so every position (carets, "called at line N") is a line of stdin.
        let (name, text) = match self.origin {
            Some(line) => ("<stdin>", format!("{}{code}", "\n".repeat(line - 1))),
            None => ("<repl>", code.to_string()),
        };
        let code = text.as_str();
        let source = Source {
            name: name.into(),
            text: code.to_string(),
            dir: None,
        };
        let ast = match self.engine.compile_with_scope(&self.scope, code) {
            Ok(ast) => ast,
            Err(e) => {
                eprintln!("error: {}", report::render_parse(&e, &source));
                return Step::Failed;
            }
        };
        let text: Arc<str> = Arc::from(code);
        for f in ast.iter_functions() {
            self.fn_sources.insert(f.name.to_string(), text.clone());
        }
        self.functions = self.functions.merge(&ast.clone_functions_only());
        let ast = self.functions.merge(&ast);
        // bench() runs its closure on worker engines that need the entry's compiled script.
        *self.session.ast.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(ast.clone()));
        let outcome = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut self.scope, &ast);
        // A transaction an error escaped from is rolled back, as at the end of a script.
        self.session.abandon_transaction();
        self.update_names();
        if let Some(code) = self.session.host.exit_code() {
            return Step::Quit(Some(code));
        }
        match outcome {
            Ok(v) => {
                if !v.is_unit() {
                    output::line(&output::display_value(&v));
                }
                Step::Ok
            }
            // Stopped because stdout is gone: `entry` ends the session without a word.
            Err(_) if output::broken_pipe() => Step::Failed,
            Err(e) => {
                if let EvalAltResult::ErrorTerminated(..) = report::innermost(&e) {
                    eprintln!("interrupted");
                } else {
                    let source = self.source_of_error(&e, source);
                    eprintln!("error: {}", report::render_eval(&e, &source));
                }
                Step::Failed
            }
        }
    }

    /// The entry whose text the error's position points into: the entry that defined the
    /// innermost script function on the call chain, else the current one.
    fn source_of_error(&self, e: &EvalAltResult, current: Source) -> Source {
        let mut innermost_fn = None;
        let mut cur = e;
        loop {
            match cur {
                EvalAltResult::ErrorInFunctionCall(name, _, inner, _) => {
                    innermost_fn = Some(name.as_str());
                    cur = inner;
                }
                EvalAltResult::ErrorInModule(_, inner, _) => cur = inner,
                _ => break,
            }
        }
        match innermost_fn.and_then(|name| Some((name, self.fn_sources.get(name)?))) {
            Some((name, text)) if **text != *current.text => Source {
                name: if self.origin.is_some() {
                    "<stdin>".into()
                } else if name.starts_with("anon$") {
                    "<repl, closure>".into()
                } else {
                    format!("<repl, fn {name}>")
                },
                text: text.to_string(),
                dir: None,
            },
            _ => current,
        }
    }

    fn run_sql(&mut self, sql: &str) -> Step {
        if let Some(hint) = input::psql_command_hint(sql) {
            eprintln!("error: {hint}");
            return Step::Failed;
        }
        for statement in sql::statements(sql) {
            let verb = sql::first_word(&statement);
            match self.session.run_query(None, &statement, Vec::new()) {
                Ok(result) => {
                    let ends = matches!(verb.as_str(), "COMMIT" | "END" | "ROLLBACK" | "ABORT");
                    if ends
                        && self.sql_tx == SqlTx::Aborted
                        && matches!(verb.as_str(), "COMMIT" | "END")
                    {
                        // The server answers a COMMIT of a failed transaction with ROLLBACK.
                        output::raw("ROLLBACK\n");
                    } else {
                        output::raw(&sql::render(&statement, &result, self.format));
                    }
                    if ends {
                        self.sql_tx = SqlTx::None;
                    } else if matches!(verb.as_str(), "BEGIN" | "START") {
                        self.sql_tx = SqlTx::Open;
                    }
                }
                Err(e) => {
                    if self.sql_tx == SqlTx::Open {
                        self.sql_tx = SqlTx::Aborted;
                    }
                    if let EvalAltResult::ErrorTerminated(..) = report::innermost(&e) {
                        eprintln!("interrupted");
                    } else if let Some(line) = self.origin {
                        eprintln!("error: {}\n  --> <stdin>:{line}", report::message(&e));
                    } else {
                        eprintln!("error: {}", report::message(&e));
                    }
                    // Later statements of the entry may depend on this one: stop here.
                    return Step::Failed;
                }
            }
        }
        Step::Ok
    }

    /// Refresh the names completion offers after an entry may have defined some.
    fn update_names(&self) {
        let mut functions = self.registered.clone();
        functions.extend(
            self.functions
                .iter_functions()
                .filter(|f| !f.name.starts_with("anon$"))
                .map(|f| f.name.to_string()),
        );
        let variables = self
            .scope
            .iter()
            .map(|(name, ..)| name.to_string())
            .collect();
        let mut shared = self.shared();
        shared.names.functions = functions;
        shared.names.variables = variables;
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

thread_local! {
    /// True while an entry runs on this thread: its panics are reported by `entry`.
    static IN_ENTRY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Where the last caught panic happened (the hook sees it; `catch_unwind` does not).
static PANIC_PLACE: Mutex<Option<String>> = Mutex::new(None);

/// Replaces the panic hook while the shell runs: a panic inside an entry is reported once by
/// `Repl::entry` instead of Rust's "thread 'main' panicked" text; any other panic goes to the
/// previous hook. The previous hook is put back on drop.
struct QuietPanics {
    previous: Arc<dyn Fn(&panic::PanicHookInfo<'_>) + Send + Sync>,
}

impl QuietPanics {
    fn install() -> QuietPanics {
        let previous: Arc<dyn Fn(&panic::PanicHookInfo<'_>) + Send + Sync> =
            Arc::from(panic::take_hook());
        let chained = previous.clone();
        panic::set_hook(Box::new(move |info| {
            if IN_ENTRY.with(|f| f.get()) {
                *PANIC_PLACE.lock().unwrap_or_else(|e| e.into_inner()) =
                    info.location().map(|l| l.to_string());
            } else {
                chained(info);
            }
        }));
        QuietPanics { previous }
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        let previous = self.previous.clone();
        panic::set_hook(Box::new(move |info| previous(info)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Runtime;
    use crate::script::Host;

    /// A shell with no database configured: enough for Rhai entries and meta commands.
    fn repl(extra: impl FnOnce(&mut Engine)) -> Repl {
        let host = Host::new(
            Runtime::new().unwrap(),
            Config {
                target: None,
                conn: Default::default(),
            },
        );
        let session = Session::new(host);
        let mut engine = script::engine(&session);
        extra(&mut engine);
        Repl::new(session, engine, false)
    }

    #[test]
    fn variables_and_functions_outlive_their_entry() {
        let mut r = repl(|_| {});
        assert_eq!(r.entry("let total = 40;"), Step::Ok);
        assert_eq!(r.entry("fn add(a, b) { a + b }"), Step::Ok);
        assert_eq!(r.entry("total = add(total, 2);"), Step::Ok);
        assert_eq!(r.scope.get_value::<i64>("total"), Some(42));
        let names = &r.shared().names;
        assert!(names.variables.contains(&"total".to_string()));
        assert!(names.functions.contains(&"add".to_string()));
        assert!(names.functions.contains(&"query".to_string()));
    }

    #[test]
    fn errors_do_not_end_the_session() {
        let mut r = repl(|_| {});
        assert_eq!(r.entry("let a = ;"), Step::Failed);
        assert_eq!(r.entry("throw \"no\""), Step::Failed);
        assert_eq!(r.entry(".nosuch"), Step::Failed);
        assert_eq!(r.entry("let b = 1;"), Step::Ok);
        assert_eq!(r.entry("exit(4)"), Step::Quit(Some(4)));
    }

    #[test]
    fn a_panicking_host_function_is_reported_and_the_session_goes_on() {
        let mut r = repl(|e| {
            e.register_fn("boom", || -> i64 { panic!("boom went the host function") });
        });
        let _quiet = QuietPanics::install();
        assert_eq!(r.entry("let kept = 7;"), Step::Ok);
        assert_eq!(r.entry("boom()"), Step::Failed);
        assert_eq!(r.entry("kept += 1;"), Step::Ok);
        assert_eq!(r.scope.get_value::<i64>("kept"), Some(8));
    }

    #[test]
    fn an_error_in_an_earlier_function_points_into_its_own_entry() {
        let mut r = repl(|_| {});
        assert_eq!(r.entry("fn half(n) {\n  n / 0\n}"), Step::Ok);
        let source = Source {
            name: "<repl>".into(),
            text: "half(4)".into(),
            dir: None,
        };
        let err = r
            .engine
            .eval_ast_with_scope::<Dynamic>(
                &mut r.scope,
                &r.functions.merge(&r.engine.compile("half(4)").unwrap()),
            )
            .unwrap_err();
        let source = r.source_of_error(&err, source);
        assert_eq!(source.name, "<repl, fn half>");
        let text = report::render_eval(&err, &source);
        assert!(text.contains(" 2 |   n / 0\n"), "{text}");
    }
}
