//! The terminal side: rustyline with history, completion, and multi-line entries decided by
//! the Rhai parser.
//!
//! Rustyline draws continuation lines without a prompt and computes the cursor from the raw
//! buffer, so a continuation prompt cannot simply be painted in. Instead, Enter on an entry
//! that ended early inserts a newline plus the prompt's width of spaces, and the highlighter
//! paints those spaces as `   ...> `: same width, so the cursor stays right. The spaces are
//! removed again before the entry runs (`input::strip_continuations`). The `Validator` still
//! gates every accept with the same completeness check, so an entry can only run complete.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rhai::Engine;
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{
    Cmd, CompletionType, ConditionalEventHandler, Config, Context, Editor, Event, EventContext,
    EventHandler, Helper, KeyCode, KeyEvent, Modifiers, RepeatCount,
};

use super::complete::{self, DbNames, Need};
use super::input::{self, Mode};
use super::{Repl, Shared, Step};
use crate::error::{Error, Result};
use crate::script::Session;

const PROMPT_RHAI: &str = "dsqlsh> ";
const PROMPT_SQL: &str = "dsqlsh=> ";

pub fn prompt(mode: Mode) -> &'static str {
    match mode {
        Mode::Rhai => PROMPT_RHAI,
        Mode::Sql => PROMPT_SQL,
    }
}

/// The spaces that stand for the continuation prompt in the buffer: the prompt's width.
fn indent(mode: Mode) -> usize {
    prompt(mode).len()
}

/// `<state dir>/dsqlsh/history` (`~/.local/state/dsqlsh/history` on Linux).
pub fn default_history_path() -> Option<PathBuf> {
    let base = dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .or_else(|| dirs::home_dir().map(|h| h.join(".local").join("state")))?;
    Some(base.join("dsqlsh").join("history"))
}

struct ReplHelper {
    shared: Arc<Mutex<Shared>>,
    engine: Arc<Engine>,
    session: Arc<Session>,
    files: FilenameCompleter,
}

impl ReplHelper {
    fn mode(&self) -> Mode {
        self.shared.lock().unwrap_or_else(|e| e.into_inner()).mode
    }
}

impl Helper for ReplHelper {}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        let mode = self.mode();
        let text = input::strip_continuations(ctx.input(), indent(mode));
        Ok(if input::is_incomplete(&self.engine, &text, mode) {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}

impl Highlighter for ReplHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if !line.contains('\n') {
            return Cow::Borrowed(line);
        }
        let mode = self.mode();
        let width = indent(mode);
        let sql = mode == Mode::Sql || line.trim_start().starts_with('\\');
        let marker = format!("{:>width$}", if sql { "-> " } else { "...> " });
        let mut out = String::with_capacity(line.len());
        for (i, l) in line.split('\n').enumerate() {
            if i > 0 {
                out.push('\n');
                if l.len() >= width && l[..width].bytes().all(|b| b == b' ') {
                    out.push_str(&marker);
                    out.push_str(&l[width..]);
                    continue;
                }
            }
            out.push_str(l);
        }
        Cow::Owned(out)
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        false
    }
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let mut need = {
            let shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            complete::complete(line, pos, shared.mode, &shared.names)
        };
        if let Need::DbNames = need {
            // Only a database the session already opened is read: a Tab must not connect.
            // A failed read is cached as empty so each Tab does not wait again; `.refresh`
            // tries anew.
            if self.session.host.current_db().is_none() {
                return Ok((pos, Vec::new()));
            }
            let names = load_db_names(&self.session).unwrap_or_default();
            let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            shared.names.db = Some(names);
            need = complete::complete(line, pos, shared.mode, &shared.names);
        }
        match need {
            Need::Words(at, words) => Ok((
                at,
                words
                    .into_iter()
                    .map(|w| Pair {
                        display: w.clone(),
                        replacement: w,
                    })
                    .collect(),
            )),
            Need::Files => self.files.complete(line, pos, ctx),
            Need::DbNames => Ok((pos, Vec::new())),
        }
    }
}

/// Table and column names of the default database (opening it if needed), for completion.
/// Bounded to a few seconds: it runs while the user waits on a Tab or `.refresh`.
pub fn load_db_names(session: &Arc<Session>) -> std::result::Result<DbNames, String> {
    let db = session.host.default_db().map_err(|e| e.to_string())?;
    let sql = "SELECT table_name::text AS t, column_name::text AS c \
               FROM information_schema.columns \
               WHERE table_schema NOT IN ('pg_catalog', 'information_schema') \
               ORDER BY 1, 2 LIMIT 20000";
    let result = session
        .with_conn(&db, async |db, conn| {
            match tokio::time::timeout(
                Duration::from_secs(5),
                crate::db::exec::query(db, conn, sql, &[]),
            )
            .await
            {
                Ok(r) => r,
                // A connection abandoned mid-statement is dropped (class 08), not reused.
                Err(_) => Err(crate::db::error::client_error(
                    "08006",
                    "reading table names took too long",
                )),
            }
        })
        .map_err(|e| crate::script::report::message(&e))?;
    let mut names = DbNames::default();
    for row in &result.rows {
        let Some(map) = row.read_lock::<rhai::Map>() else {
            continue;
        };
        let text = |k: &str| map.get(k).map(|v| v.to_string()).unwrap_or_default();
        names.tables.push(text("t"));
        names.columns.push(text("c"));
    }
    for list in [&mut names.tables, &mut names.columns] {
        list.sort();
        list.dedup();
    }
    Ok(names)
}

/// Enter on an entry that ended early continues it on an indented line (drawn as the
/// continuation prompt); otherwise rustyline's own Enter runs, behind the `Validator`.
struct ContinueOnEnter {
    shared: Arc<Mutex<Shared>>,
    engine: Arc<Engine>,
}

impl ConditionalEventHandler for ContinueOnEnter {
    fn handle(
        &self,
        _evt: &Event,
        _n: RepeatCount,
        _positive: bool,
        ctx: &EventContext,
    ) -> Option<Cmd> {
        let line = ctx.line();
        if ctx.pos() != line.len() {
            return None;
        }
        let mode = self.shared.lock().unwrap_or_else(|e| e.into_inner()).mode;
        let text = input::strip_continuations(line, indent(mode));
        input::is_incomplete(&self.engine, &text, mode)
            .then(|| Cmd::Insert(1, format!("\n{}", " ".repeat(indent(mode)))))
    }
}

/// Read entries from the terminal until Ctrl-D, `.quit` or `exit(n)`; returns the status.
pub fn run(repl: &mut Repl, history: Option<PathBuf>) -> Result<i32> {
    let config = Config::builder()
        .auto_add_history(false)
        .completion_type(CompletionType::List)
        .max_history_size(10_000)
        .map_err(|e| Error::Config(format!("cannot set up the line editor: {e}")))?
        .build();
    let mut rl: Editor<ReplHelper, FileHistory> = Editor::with_config(config)
        .map_err(|e| Error::Config(format!("cannot set up the line editor: {e}")))?;
    rl.set_helper(Some(ReplHelper {
        shared: repl.shared.clone(),
        engine: repl.engine.clone(),
        session: repl.session.clone(),
        files: FilenameCompleter::new(),
    }));
    // Ctrl-J is what some terminals send for Enter.
    for key in [
        KeyEvent(KeyCode::Enter, Modifiers::NONE),
        KeyEvent::ctrl('J'),
    ] {
        rl.bind_sequence(
            key,
            EventHandler::Conditional(Box::new(ContinueOnEnter {
                shared: repl.shared.clone(),
                engine: repl.engine.clone(),
            })),
        );
    }
    let history = history.filter(|path| prepare_history(&mut rl, path));
    eprintln!(
        "dsqlsh {}: Rhai by default, `\\` for one SQL entry, `.help` for commands, Ctrl-D to quit",
        env!("CARGO_PKG_VERSION")
    );
    let mut history_warned = false;
    loop {
        crate::runtime::reset_interrupt();
        let mode = repl.mode();
        let raw = match rl.readline(prompt(mode)) {
            Ok(raw) => raw,
            // Ctrl-C at the prompt drops what was typed and starts over.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => return Ok(0),
            Err(e) => return Err(Error::Config(format!("cannot read the terminal: {e}"))),
        };
        if raw.trim().is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(raw.as_str());
        if let Some(path) = &history {
            // Saved after every entry, so a crash or a kill loses nothing typed before it.
            if let Err(e) = rl.append_history(path) {
                if !history_warned {
                    eprintln!(
                        "dsqlsh: warning: cannot save history to `{}`: {e}",
                        path.display()
                    );
                    history_warned = true;
                }
            }
        }
        let text = input::strip_continuations(&raw, indent(mode));
        if let Step::Quit(code) = repl.entry(&text) {
            return Ok(code.unwrap_or(0));
        }
    }
}

/// Create the history file's directory and load earlier entries; false (with a warning) when
/// the file cannot be used, and the session goes on without saving history.
fn prepare_history(rl: &mut Editor<ReplHelper, FileHistory>, path: &Path) -> bool {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!(
                "dsqlsh: warning: cannot create `{}` for the history: {e}",
                dir.display()
            );
            return false;
        }
    }
    if path.exists() {
        if let Err(e) = rl.load_history(path) {
            eprintln!(
                "dsqlsh: warning: cannot read the history file `{}`: {e}",
                path.display()
            );
            return false;
        }
    }
    true
}
