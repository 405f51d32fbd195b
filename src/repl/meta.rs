//! The dot commands (`.help`, `.run`, `.pool`, ...). They start with `.` so they can never clash
//! with a script name, take the rest of their line as arguments, and print results on stdout
//! and problems on stderr like any other entry.
//!
//! `.run` and `.pool` work on the shell's own session and host: a script run from here uses the
//! same default connection and pool as the entries typed around it.

use rhai::{Dynamic, Map, Scope};

use super::complete::META;
use super::editor;
use super::input::Mode;
use super::sql::Format;
use super::{Repl, Step};
use crate::error::Error;
use crate::output;
use crate::script::{self, bundled, Conn};

pub fn run(repl: &mut Repl, line: &str) -> Step {
    let (command, rest) = line
        .split_once(char::is_whitespace)
        .map_or((line, ""), |(c, r)| (c, r.trim()));
    match command {
        "help" => help(),
        "quit" | "q" => Step::Quit(None),
        "scope" => scope(repl),
        "functions" => functions(repl, rest),
        "run" => run_script(repl, rest),
        "timing" => timing(repl, rest),
        "format" => format(repl, rest),
        "sql" | "rhai" if !rest.is_empty() => usage(&format!("`.{command}` takes no arguments")),
        "sql" => set_mode(repl, Mode::Sql),
        "rhai" => set_mode(repl, Mode::Rhai),
        "connect" => connect(repl, rest),
        "pool" => pool(repl),
        "refresh" => refresh(repl),
        other => usage(&format!(
            "unknown command `.{other}` (`.help` lists the commands)"
        )),
    }
}

fn usage(message: &str) -> Step {
    eprintln!("error: {message}");
    Step::Failed
}

/// A mode change is said on stderr, and only to a person: piped output stays results only.
fn note(repl: &Repl, message: &str) {
    if repl.interactive {
        eprintln!("{message}");
    }
}

fn help() -> Step {
    let width = META.iter().map(|(name, _)| name.len()).max().unwrap_or(0) + 1;
    let mut out = String::from(
        "Rhai entries run when complete (an open block or expression continues on the next line).\n\
         A line starting with `\\` is SQL; statements end at `;`. Tab completes names.\n\
         Ctrl-C cancels what is running (or clears the line), Ctrl-R searches history, Ctrl-D quits.\n\n",
    );
    for (name, text) in META {
        out.push_str(&format!(".{name:width$} {text}\n"));
    }
    output::raw(&out);
    Step::Ok
}

fn set_mode(repl: &mut Repl, mode: Mode) -> Step {
    repl.shared().mode = mode;
    note(
        repl,
        match mode {
            Mode::Sql => "SQL input: statements end at `;` (`.rhai` to go back)",
            Mode::Rhai => "Rhai input",
        },
    );
    Step::Ok
}

fn timing(repl: &mut Repl, arg: &str) -> Step {
    repl.timing = match arg {
        "on" => true,
        "off" => false,
        "" => !repl.timing,
        other => return usage(&format!("`.timing` takes on or off, not `{other}`")),
    };
    note(
        repl,
        if repl.timing {
            "timing is on"
        } else {
            "timing is off"
        },
    );
    Step::Ok
}

fn format(repl: &mut Repl, arg: &str) -> Step {
    if arg.is_empty() {
        output::line(repl.format.name());
        return Step::Ok;
    }
    match Format::parse(arg) {
        Some(f) => {
            repl.format = f;
            note(repl, &format!("format is {}", f.name()));
            Step::Ok
        }
        None => usage(&format!("`.format` takes table, json or csv, not `{arg}`")),
    }
}

/// `name: type = value`, one per variable, in the order they were defined.
fn scope(repl: &Repl) -> Step {
    let mut out = String::new();
    for (name, constant, value) in repl.scope.iter() {
        let kind = repl.engine.map_type_name(value.type_name());
        let text = if value.is_string() {
            format!("{:?}", value.clone().into_string().unwrap_or_default())
        } else if value.is_array() || value.is_map() {
            crate::json::to_json(&value).to_string()
        } else {
            output::display_value(&value)
        };
        out.push_str(&format!(
            "{}{name}: {kind} = {}\n",
            if constant { "const " } else { "" },
            shorten(&text, 100)
        ));
    }
    output::raw(&out);
    Step::Ok
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max - 1).collect();
    format!("{cut}…")
}

/// dsqlsh's functions (and Rhai's own with `all`), then the ones defined in this session.
fn functions(repl: &Repl, arg: &str) -> Step {
    let all = match arg {
        "" => false,
        "all" => true,
        other => {
            return usage(&format!(
                "`.functions` takes `all` or nothing, not `{other}`"
            ))
        }
    };
    let mut signatures: Vec<String> = repl
        .engine
        .gen_fn_signatures(all)
        .into_iter()
        .filter(|sig| sig.split('(').next().is_some_and(super::is_identifier))
        .map(|sig| tidy_signature(&sig))
        .collect();
    signatures.sort();
    signatures.dedup();
    let mut out = signatures.join("\n");
    out.push('\n');
    let mut defined: Vec<String> = repl
        .functions
        .iter_functions()
        .filter(|f| !f.name.starts_with("anon$"))
        .map(|f| format!("fn {}({})", f.name, f.params.join(", ")))
        .collect();
    defined.sort();
    if !defined.is_empty() {
        out.push_str("\ndefined here:\n");
        out.push_str(&defined.join("\n"));
        out.push('\n');
    }
    output::raw(&out);
    Step::Ok
}

/// Rhai describes closures registered from Rust with their Rust types
/// (`query(_: types::dynamic::Dynamic) -> core::result::Result<alloc::vec::Vec<...>, ...>`);
/// this writes them the way a script sees them: `query(Dynamic) -> array`.
fn tidy_signature(sig: &str) -> String {
    // Module paths go: `a::b::Name` -> `Name`.
    let mut short = String::with_capacity(sig.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        let last = token.rsplit("::").next().unwrap_or("");
        out.push_str(match last {
            "String" | "ImmutableString" => "string",
            "Conn" => "Connection",
            other => other,
        });
        token.clear();
    };
    for c in sig.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            token.push(c);
        } else {
            flush(&mut token, &mut short);
            short.push(c);
        }
    }
    flush(&mut token, &mut short);
    // A fallible function returns its success type to scripts: `Result<T,Box<...>>` -> `T`.
    while let Some(start) = short.find("Result<") {
        let inner_start = start + "Result<".len();
        let (mut depth, mut comma, mut end) = (1, None, None);
        for (i, c) in short[inner_start..].char_indices() {
            match c {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(inner_start + i);
                        break;
                    }
                }
                ',' if depth == 1 && comma.is_none() => comma = Some(inner_start + i),
                _ => {}
            }
        }
        let Some(end) = end else { break };
        let ok = short[inner_start..comma.unwrap_or(end)].to_string();
        short.replace_range(start..=end, &ok);
    }
    let short = short
        .replace("BTreeMap<SmartString<LazyCompact>,Dynamic>", "map")
        .replace("Vec<Dynamic>", "array")
        .replace("_: ", "")
        .replace("&mut ", "");
    short.strip_suffix(" -> ()").unwrap_or(&short).to_string()
}

/// `.run NAME [KEY=VALUE]...`: resolved like `dsqlsh run` (file, ./scripts, bundled), run on
/// this session. The script gets its own scope and `ARGS`; its `exit(n)` ends the script, not
/// the shell.
fn run_script(repl: &mut Repl, rest: &str) -> Step {
    let words = match split_words(rest) {
        Ok(w) => w,
        Err(e) => return usage(&e),
    };
    let Some((name, args)) = words.split_first() else {
        return usage("`.run` needs a script: `.run FILE [KEY=VALUE]...`");
    };
    let resolved = match bundled::resolve(name) {
        Ok(r) => r,
        Err(e) => return usage(&e.to_string()),
    };
    let args = match script::parse_args(args) {
        Ok(a) => a,
        Err(e) => return usage(&e.to_string()),
    };
    if resolved.overrides_bundled {
        eprintln!(
            "dsqlsh: running {} (a local copy that overrides the bundled script)",
            resolved.source.name
        );
    }
    let outcome = script::run_source(&repl.session, &resolved.source, args);
    // The script's exit(n) was for the script; the shell goes on.
    let exit = repl.session.host.take_exit_code();
    match outcome {
        Ok(_) => Step::Ok,
        Err(Error::Exit(code)) => {
            let code = exit.unwrap_or(code);
            if code == 0 {
                Step::Ok
            } else {
                eprintln!("{} exited with status {code}", resolved.source.name);
                Step::Failed
            }
        }
        Err(Error::Interrupted) => {
            eprintln!("interrupted");
            Step::Failed
        }
        Err(e) => {
            eprintln!("error: {e}");
            Step::Failed
        }
    }
}

/// Words separated by whitespace; '...' and "..." group words with spaces in them.
fn split_words(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(other) => word.push(other),
                        None => return Err(format!("unclosed {c} in `{text}`")),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// `.connect` (the command line's target again), `.connect URL`, `.connect HOST` (a DSQL
/// endpoint or PostgreSQL host) or `.connect KEY=VALUE...` (the options of `connect(#{...})`).
/// The new connection becomes the default, as `connect()` in a script makes it.
fn connect(repl: &mut Repl, rest: &str) -> Step {
    if repl.sql_tx != super::SqlTx::None {
        eprintln!(
            "dsqlsh: warning: the transaction opened with BEGIN stays open (uncommitted) on the \
             previous connection"
        );
        repl.sql_tx = super::SqlTx::None;
    }
    let words = match split_words(rest) {
        Ok(w) => w,
        Err(e) => return usage(&e),
    };
    let opts: Map = match words.as_slice() {
        [] => Map::new(),
        // A bare URL or host; `url=postgres://...` is a KEY=VALUE pair like the others.
        [one] if !one.contains('=') || (one.contains("://") && !one.starts_with("url=")) => {
            let key = if one.contains("://") {
                "url"
            } else {
                "endpoint"
            };
            let mut m = Map::new();
            m.insert(key.into(), Dynamic::from(one.clone()));
            m
        }
        pairs => match script::parse_args(pairs) {
            Ok(mut m) => {
                // Options that are text in connect() stay text even when they look numeric.
                for key in [
                    "database", "dbname", "user", "endpoint", "host", "url", "region", "profile",
                ] {
                    if let Some(v) = m.get_mut(key) {
                        *v = Dynamic::from(v.to_string());
                    }
                }
                m
            }
            Err(e) => return usage(&e.to_string()),
        },
    };
    let mut scope = Scope::new();
    scope.push("opts", opts);
    match repl
        .engine
        .eval_with_scope::<Dynamic>(&mut scope, "connect(opts)")
    {
        Ok(conn) => {
            repl.shared().names.db = None;
            if let Some(conn) = conn.try_cast::<Conn>() {
                output::line(&format!("connected to {}", conn.0.label()));
            }
            Step::Ok
        }
        Err(e) => {
            if let rhai::EvalAltResult::ErrorTerminated(..) = script::report::innermost(&e) {
                eprintln!("interrupted");
            } else {
                eprintln!("error: {}", script::report::message(&e));
            }
            Step::Failed
        }
    }
}

/// The default pool as `.run` scripts and entries share it.
fn pool(repl: &Repl) -> Step {
    match repl.session.host.current_db() {
        None => output::line("no database opened yet (the first query opens the pool)"),
        Some(db) => {
            let (size, idle, max) = db.pool_status();
            let in_use = (size as usize).saturating_sub(idle);
            output::line(&format!(
                "size {size}, idle {idle}, in use {in_use}, max {max} ({})",
                db.label()
            ))
        }
    };
    Step::Ok
}

fn refresh(repl: &mut Repl) -> Step {
    match editor::load_db_names(&repl.session) {
        Ok(names) => {
            output::line(&format!(
                "{} tables, {} column names",
                names.tables.len(),
                names.columns.len()
            ));
            repl.shared().names.db = Some(names);
            Step::Ok
        }
        Err(e) => {
            repl.shared().names.db = None;
            usage(&e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_read_like_scripts() {
        assert_eq!(
            tidy_signature(
                "query(_: types::dynamic::Dynamic, _: types::dynamic::Dynamic) -> \
                 core::result::Result<alloc::vec::Vec<rhai::types::dynamic::Dynamic>,\
                 alloc::boxed::Box<rhai::types::error::EvalAltResult>>"
            ),
            "query(Dynamic, Dynamic) -> array"
        );
        assert_eq!(
            tidy_signature(
                "stress(_: map) -> core::result::Result<alloc::collections::btree::map::\
                 BTreeMap<smartstring::SmartString<smartstring::config::LazyCompact>,\
                 rhai::types::dynamic::Dynamic>,alloc::boxed::Box<rhai::types::error::EvalAltResult>>"
            ),
            "stress(map) -> map"
        );
        assert_eq!(
            tidy_signature(
                "connect() -> core::result::Result<dsqlsh::script::db_api::Conn,\
                 alloc::boxed::Box<rhai::types::error::EvalAltResult>>"
            ),
            "connect() -> Connection"
        );
        assert_eq!(
            tidy_signature("exit(_: i64) -> core::result::Result<(),alloc::boxed::Box<rhai::types::error::EvalAltResult>>"),
            "exit(i64)"
        );
        assert_eq!(
            tidy_signature("to_string(_: &mut Connection) -> string"),
            "to_string(Connection) -> string"
        );
        assert_eq!(tidy_signature("insert_user(_: map) -> core::result::Result<alloc::string::String,alloc::boxed::Box<rhai::types::error::EvalAltResult>>"), "insert_user(map) -> string");
    }

    #[test]
    fn words_with_quotes() {
        assert_eq!(
            split_words(r#"add_user name="Ann Lee" role='a b' x=1"#).unwrap(),
            vec!["add_user", "name=Ann Lee", "role=a b", "x=1"]
        );
        assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
        assert!(split_words("a 'b").is_err());
    }
}
