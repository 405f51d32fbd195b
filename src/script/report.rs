//! Script errors as people read them: one line saying what went wrong, then where, with the
//! source line and a caret under the column.
//!
//! ```text
//! database error 42P01: relation "nosuch" does not exist
//!   --> report.rhai:3:11
//!    |
//!  3 | let rows = query("SELECT * FROM nosuch");
//!    |            ^
//! ```

use rhai::{EvalAltResult, Map, ParseError, Position};

use super::Source;

/// The error at the bottom of a chain of function-call wrappers.
pub fn innermost(e: &EvalAltResult) -> &EvalAltResult {
    match e {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => innermost(inner),
        other => other,
    }
}

/// The one-line cause of an evaluation error.
pub fn message(e: &EvalAltResult) -> String {
    match innermost(e) {
        EvalAltResult::ErrorRuntime(value, _) => {
            if let Some(map) = value.read_lock::<Map>() {
                if let (Some(code), Some(msg)) = (map.get("sqlstate"), map.get("message")) {
                    let (code, msg) = (code.to_string(), msg.to_string());
                    // Class 08, and any failure to connect (a rejected token is 28P01, a missing
                    // database 3D000), is about reaching the server, not about a statement.
                    return if code.starts_with("08") || msg.starts_with("cannot connect to ") {
                        let tag = format!(" (SQLSTATE {code})");
                        if msg.ends_with(&tag) {
                            msg
                        } else {
                            format!("{msg}{tag}")
                        }
                    } else {
                        format!("database error {code}: {msg}")
                    };
                }
            }
            if let Some(usage) = value.read_lock::<super::UsageError>() {
                return usage.0.clone();
            }
            if value.is_string() {
                value.to_string()
            } else {
                format!("script threw {value}")
            }
        }
        EvalAltResult::ErrorFunctionNotFound(sig, _) => {
            format!(
                "no function matches `{sig}` (unknown name, or wrong number or types of arguments)"
            )
        }
        // Rhai locks a variable captured by a closure while a method runs on it, so
        // `a.transaction(|| a.query(..))` cannot reach `a` from inside; say what works.
        EvalAltResult::ErrorDataRace(what, _) => format!(
            "a variable is in use by the call it was passed to ({what}): a closure cannot \
             use `x` while `x.f(...)` runs it; write `f(x, || ...)` instead, and inside \
             `transaction` call `query`/`execute` without a handle (they run on its connection)"
        ),
        other => strip_position(&other.to_string()),
    }
}

/// Rhai's Display appends " (line N, position M)"; the caret block says that better.
fn strip_position(s: &str) -> String {
    match s.rfind(" (line ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s.to_string(),
    }
}

/// Where the error happened: the innermost known position, and the functions it was inside.
fn location(e: &EvalAltResult) -> (Position, Vec<String>) {
    let mut calls = Vec::new();
    let mut pos = e.position();
    let mut cur = e;
    loop {
        match cur {
            EvalAltResult::ErrorInFunctionCall(name, _, inner, p) => {
                if !name.starts_with("anon$") {
                    calls.push(format!(
                        "in `{name}` called at line {}",
                        p.line().unwrap_or(0)
                    ));
                }
                if !p.is_none() {
                    pos = *p;
                }
                cur = inner;
            }
            EvalAltResult::ErrorInModule(_, inner, p) => {
                if !p.is_none() {
                    pos = *p;
                }
                cur = inner;
            }
            other => {
                if !other.position().is_none() {
                    pos = other.position();
                }
                break;
            }
        }
    }
    (pos, calls)
}

pub fn render_eval(e: &EvalAltResult, source: &Source) -> String {
    let (pos, calls) = location(e);
    let mut out = message(e);
    for c in calls {
        out.push_str(&format!(" ({c})"));
    }
    out.push_str(&caret_block(pos, source));
    out
}

pub fn render_parse(e: &ParseError, source: &Source) -> String {
    let text = strip_position(&e.to_string());
    format!("syntax error: {text}{}", caret_block(e.position(), source))
}

fn caret_block(pos: Position, source: &Source) -> String {
    let (Some(line), col) = (pos.line(), pos.position().unwrap_or(1)) else {
        return format!("\n  --> {}", source.name);
    };
    let mut out = format!("\n  --> {}:{line}:{col}", source.name);
    if let Some(original) = source.text.lines().nth(line - 1) {
        // A connection string written into the script must not be echoed with its password
        // (the text before the caret is masked the same way, so the caret stays in place).
        let text = crate::secret::redact_passwords(original);
        let num = line.to_string();
        let gutter = " ".repeat(num.len());
        // The caret goes under the column's character, counting display width before it.
        let before: String = original.chars().take(col.saturating_sub(1)).collect();
        let before = crate::secret::redact_passwords(&before);
        let indent = crate::output::width(&before.replace('\t', "    "));
        out.push_str(&format!(
            "\n {gutter} |\n {num} | {}\n {gutter} | {}^",
            text.replace('\t', "    "),
            " ".repeat(indent)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_sits_under_the_column() {
        let source = Source {
            name: "t.rhai".into(),
            text: "let a = 1;\nlet b = a +;\n".into(),
            dir: None,
        };
        let engine = rhai::Engine::new();
        let err = engine.compile(&source.text).unwrap_err();
        let text = render_parse(&err, &source);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("syntax error: "), "{text}");
        assert_eq!(lines[1], "  --> t.rhai:2:12");
        assert_eq!(lines[3], " 2 | let b = a +;");
        assert_eq!(lines[4], "   |            ^");
    }

    #[test]
    fn connect_failures_read_as_such_whatever_their_sqlstate() {
        let cause = |sqlstate: &str, text: &str| {
            message(&crate::script::db_error(crate::error::DbError {
                sqlstate: sqlstate.into(),
                message: text.into(),
                retryable: false,
            }))
        };
        assert_eq!(
            cause("42P01", "relation \"x\" does not exist"),
            "database error 42P01: relation \"x\" does not exist"
        );
        assert_eq!(
            cause("08001", "cannot connect to h: connection refused"),
            "cannot connect to h: connection refused (SQLSTATE 08001)"
        );
        assert_eq!(
            cause("28P01", "cannot connect to h: authentication rejected"),
            "cannot connect to h: authentication rejected (SQLSTATE 28P01)"
        );
        assert_eq!(
            cause("3D000", "cannot connect to h: no database (SQLSTATE 3D000)"),
            "cannot connect to h: no database (SQLSTATE 3D000)"
        );
    }
}
