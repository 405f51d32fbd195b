//! What an entry is: where it ends, which kind it is (meta command, SQL or Rhai), and how the
//! continuation lines the editor shows are turned back into the text the user meant.
//!
//! The same rules serve the terminal (through the rustyline `Validator`) and piped input, so a
//! script typed by hand and the same text piped in are cut into the same entries. Nothing here
//! runs anything.

use rhai::{Engine, ParseErrorType, Position};

use crate::sql_lex;

/// The two input languages of the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Rhai,
    Sql,
}

/// What one complete entry asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// Only whitespace: nothing to do.
    Blank,
    /// `.name args...` (the text after the dot).
    Meta(&'a str),
    /// SQL text, without the leading `\`.
    Sql(&'a str),
    Rhai(&'a str),
}

pub fn classify(text: &str, mode: Mode) -> Kind<'_> {
    let trimmed = text.trim_start();
    if trimmed.trim().is_empty() {
        Kind::Blank
    } else if let Some(meta) = trimmed.strip_prefix('.') {
        Kind::Meta(meta.trim())
    } else if let Some(sql) = trimmed.strip_prefix('\\') {
        Kind::Sql(sql)
    } else if mode == Mode::Sql {
        Kind::Sql(trimmed)
    } else {
        Kind::Rhai(text)
    }
}

/// Does this entry need more lines? Meta commands are one line; SQL ends at a `;` outside
/// quotes, comments and dollar quotes; Rhai ends when the parser does not run out of input.
pub fn is_incomplete(engine: &Engine, text: &str, mode: Mode) -> bool {
    match classify(text, mode) {
        Kind::Blank | Kind::Meta(_) => false,
        // `\q` or `\dt` typed out of psql habit is answered at once, not continued.
        Kind::Sql(sql) if psql_command_hint(sql).is_some() => false,
        Kind::Sql(sql) => sql_is_incomplete(sql),
        Kind::Rhai(code) => match engine.compile(code) {
            // Rhai accepts a block comment left open at the end; a person has not finished it.
            Ok(_) => rhai_tail(code) == Tail::Comment,
            Err(e) => ended_early(&e, code),
        },
    }
}

/// Where the end of some Rhai code is.
#[derive(Debug, PartialEq, Eq)]
pub enum Tail {
    Code,
    /// Inside a "..." or `...` string literal.
    String,
    /// Inside a (possibly nested) block comment.
    Comment,
}

/// Scan Rhai code for the region its end is in: strings (with `\` escapes), character
/// literals, `//` comments and nested `/* */` comments.
pub fn rhai_tail(code: &str) -> Tail {
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '`' | '\'' => {
                let mut closed = false;
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    // An open character literal is a typo, not a place to complete into.
                    return if c == '\'' { Tail::Code } else { Tail::String };
                }
            }
            // A line comment that runs to the end leaves nothing open.
            '/' if chars.peek() == Some(&'/') => {
                chars.find(|d| *d == '\n');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut depth = 1;
                let mut prev = ' ';
                while depth > 0 {
                    let Some(d) = chars.next() else {
                        return Tail::Comment;
                    };
                    match (prev, d) {
                        ('/', '*') => {
                            depth += 1;
                            prev = ' ';
                        }
                        ('*', '/') => {
                            depth -= 1;
                            prev = ' ';
                        }
                        _ => prev = d,
                    }
                }
            }
            _ => {}
        }
    }
    Tail::Code
}

/// SQL is complete once everything after the last top-level `;` is whitespace or comments.
/// For a psql backslash command (`\q`, `\dt`, `\c`, ...: the text after the `\`), what to
/// do in dsqlsh instead. None for SQL; no psql command word is also a SQL statement's.
pub fn psql_command_hint(sql: &str) -> Option<String> {
    let word = sql
        .split(|c: char| c.is_whitespace() || c == ';')
        .find(|w| !w.is_empty())?;
    let instead = match word {
        "q" | "quit" => "leave with `.quit` or Ctrl-D".to_string(),
        "c" | "connect" | "conninfo" => "use `.connect [URL | HOST | KEY=VALUE...]`".into(),
        "timing" => "use `.timing on|off`".into(),
        "x" | "pset" | "a" | "t" | "H" => "use `.format table|json|csv`".into(),
        "i" | "ir" | "include" => "use `.run FILE`".into(),
        "?" | "h" | "help" => "`.help` lists dsqlsh's commands".into(),
        w if w == "l"
            || w == "l+"
            || (w.starts_with('d')
                && w.len() <= 4
                && w[1..].chars().all(|c| c.is_ascii_lowercase() || c == '+')) =>
        {
            "query the catalog instead, e.g. `\\SELECT table_name FROM \
             information_schema.tables WHERE table_schema = 'public';`, or press Tab for \
             table and column names"
                .into()
        }
        "e" | "ef" | "echo" | "watch" | "g" | "gx" | "gset" | "o" | "encoding" | "password" => {
            "it has no dsqlsh equivalent; `.help` lists dsqlsh's commands".into()
        }
        _ => return None,
    };
    // `\do` is a psql command, but DO is SQL: leave SQL words alone.
    if ["do", "drop", "delete", "declare", "deallocate", "discard"]
        .contains(&word.to_ascii_lowercase().as_str())
    {
        return None;
    }
    Some(format!(
        "`\\{word}` is a psql command; a line starting with `\\` is SQL in dsqlsh: {instead}"
    ))
}

pub fn sql_is_incomplete(sql: &str) -> bool {
    let (_, rest) = sql_lex::split_statements(sql);
    !only_comments(&rest)
}

/// True for text made of whitespace and complete `--` / `/* */` comments.
pub fn only_comments(text: &str) -> bool {
    sql_lex::after_leading_comments(text).is_empty()
}

/// A parse error means "keep reading" when the parser ran out of input: an unexpected end, a
/// backtick string still open, or any error placed after the last character typed (a block or
/// bracket left open, `else` without its block). An error earlier in the text is a real one and
/// is reported at once, so a typo never leaves the user stuck on continuation lines.
pub fn ended_early(e: &rhai::ParseError, code: &str) -> bool {
    match e.err_type() {
        ParseErrorType::UnexpectedEOF => true,
        ParseErrorType::BadInput(rhai::LexError::UnterminatedString) => {
            // Only backtick strings may span lines; an open "..." is a typo.
            char_at(code, e.position()) == Some('`')
        }
        _ => at_or_after_end(code, e.position()),
    }
}

/// The character at a Rhai position (1-based line and column, counted in characters).
fn char_at(code: &str, pos: Position) -> Option<char> {
    let (line, col) = (pos.line()?, pos.position()?);
    code.lines().nth(line - 1)?.chars().nth(col - 1)
}

fn at_or_after_end(code: &str, pos: Position) -> bool {
    let Some(line) = pos.line() else {
        return false;
    };
    let col = pos.position().unwrap_or(1);
    // The position just after the last non-whitespace character.
    let mut end = (1, 1);
    for (i, text) in code.lines().enumerate() {
        let trimmed = text.trim_end();
        if !trimmed.is_empty() {
            end = (i + 1, trimmed.chars().count() + 1);
        }
    }
    (line, col) >= end
}

/// The editor draws continuation lines as `CONT` followed by the text, and keeps the prompt's
/// width of spaces at the start of each such line in the buffer so the cursor stays where it is
/// drawn (see `editor`). Those spaces are not part of what the user typed.
pub fn strip_continuations(raw: &str, indent: usize) -> String {
    let mut out = String::with_capacity(raw.len());
    for (i, line) in raw.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            let spaces = line.len() - line.trim_start_matches(' ').len();
            out.push_str(&line[spaces.min(indent)..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rhai_entries_end_where_the_parser_says() {
        let e = Engine::new();
        let incomplete = |s: &str| is_incomplete(&e, s, Mode::Rhai);
        for open in [
            "if x {",
            "if x {\n print(1);\n",
            "let a = 1 +",
            "foo(1,",
            "let m = #{a: 1,",
            "if x { 1 } else",
            "let s = `a\nb",
            "fn f(a) {",
            "/* a comment\n  still open",
            "let a = 1; /* outer /* inner */",
        ] {
            assert!(incomplete(open), "{open:?} should continue");
        }
        for done in [
            "let a = 1",
            "let x = (1 2);",
            "\"abc",
            "f(1 2",
            "let x = 5 let y = 6",
            "let = 5",
            "if x {\n 1\n}",
            "/* done */ let a = \"/*\";",
            "let c = '\"'; // \"",
            "",
        ] {
            assert!(!incomplete(done), "{done:?} should run (or fail) now");
        }
    }

    #[test]
    fn sql_entries_end_at_a_top_level_semicolon() {
        let e = Engine::new();
        let incomplete = |s: &str, m| is_incomplete(&e, s, m);
        assert!(incomplete("\\SELECT 'a;b'", Mode::Rhai));
        assert!(!incomplete("\\SELECT 'a;b';", Mode::Rhai));
        assert!(incomplete("SELECT $$;$$", Mode::Sql));
        assert!(!incomplete("SELECT 1; -- done", Mode::Sql));
        assert!(!incomplete("SELECT 1; /* a /* b */ */", Mode::Sql));
        assert!(incomplete("SELECT 1; /* open", Mode::Sql));
        assert!(incomplete("SELECT 1; SELECT 2", Mode::Sql));
        assert!(!incomplete(".format json", Mode::Sql));
    }

    #[test]
    fn where_rhai_code_ends() {
        assert_eq!(rhai_tail("query(\"SELECT * FROM us"), Tail::String);
        assert_eq!(rhai_tail("let s = `a\nb"), Tail::String);
        assert_eq!(rhai_tail("let s = \"a\\\"b"), Tail::String);
        assert_eq!(rhai_tail("let s = \"a\\\\\" + b"), Tail::Code);
        assert_eq!(rhai_tail("query(\"a\") // \"us"), Tail::Code);
        assert_eq!(rhai_tail("1 // c\n*2 + \"x"), Tail::String);
        assert_eq!(rhai_tail("let q = '\"'; q"), Tail::Code);
        assert_eq!(rhai_tail("/* /* */ \" "), Tail::Comment);
        assert_eq!(rhai_tail("/* /* */ */ \"x"), Tail::String);
    }

    #[test]
    fn kinds() {
        assert_eq!(
            classify("  .run x a=1 ", Mode::Rhai),
            Kind::Meta("run x a=1")
        );
        assert_eq!(classify("\\SELECT 1;", Mode::Rhai), Kind::Sql("SELECT 1;"));
        assert_eq!(classify("\\SELECT 1;", Mode::Sql), Kind::Sql("SELECT 1;"));
        assert_eq!(classify("SELECT 1;", Mode::Sql), Kind::Sql("SELECT 1;"));
        assert_eq!(classify("let a = 1;", Mode::Rhai), Kind::Rhai("let a = 1;"));
        assert_eq!(classify(" \n ", Mode::Rhai), Kind::Blank);
    }

    #[test]
    fn continuation_indent_is_removed() {
        assert_eq!(
            strip_continuations("if x {\n          print(1);\n        }", 8),
            "if x {\n  print(1);\n}"
        );
        assert_eq!(strip_continuations("a\n  b", 8), "a\nb");
        assert_eq!(strip_continuations("  a", 8), "  a");
    }
}
