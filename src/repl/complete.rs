//! Tab completion candidates, as a pure function of the text before the cursor and the names
//! the shell knows: registered and script-defined functions, scope variables, meta commands,
//! and table and column names read from the connected database.
//!
//! Which names fit depends on where the cursor is: after a leading `.` come meta commands (and
//! their arguments), in SQL (a `\` line, `.sql` mode, or inside a Rhai string literal such as
//! `query("SELECT * FROM us`) come table and column names, elsewhere Rhai names. Reading the
//! database and talking to rustyline live in `editor`.

use super::input::{self, Mode, Tail};

/// Meta commands with a one-line description each (`.help` prints the same list).
pub const META: &[(&str, &str)] = &[
    ("help", "this list"),
    ("quit", "leave the shell (also Ctrl-D)"),
    (
        "scope",
        "variables defined so far, with their types and values",
    ),
    (
        "functions",
        "functions with their signatures (`.functions all` adds Rhai's own)",
    ),
    (
        "run",
        "FILE [KEY=VALUE]...  run a script file or a bundled script on this session",
    ),
    ("timing", "on|off  print how long each entry took"),
    ("format", "table|json|csv  how SQL results print"),
    (
        "sql",
        "switch to SQL input (statements end at `;`); a `\\` line is SQL in any mode",
    ),
    ("rhai", "switch back to Rhai input"),
    (
        "connect",
        "[URL | HOST | KEY=VALUE...]  connect and make it the default connection",
    ),
    (
        "pool",
        "size, idle and in-use connections of the default pool",
    ),
    ("refresh", "re-read table and column names for completion"),
];

/// Table and column names of the connected database.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DbNames {
    pub tables: Vec<String>,
    pub columns: Vec<String>,
}

/// Everything completion may offer.
#[derive(Debug, Default)]
pub struct Names {
    /// Registered functions (dsqlsh's and Rhai's own) and functions defined in the shell.
    pub functions: Vec<String>,
    pub variables: Vec<String>,
    /// `None` until read from a database.
    pub db: Option<DbNames>,
    pub bundled: Vec<String>,
}

const RHAI_KEYWORDS: &[&str] = &[
    "let", "const", "fn", "if", "else", "for", "in", "while", "loop", "do", "until", "break",
    "continue", "return", "throw", "try", "catch", "switch", "true", "false", "import", "export",
    "as", "private",
];

const SQL_KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "INSERT INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE FROM",
    "RETURNING",
    "JOIN",
    "LEFT JOIN",
    "ON",
    "AND",
    "OR",
    "NOT",
    "NULL",
    "DISTINCT",
    "COUNT",
    "CREATE TABLE",
    "DROP TABLE",
    "ALTER TABLE",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "EXPLAIN",
];

/// What the completer needs to decide.
pub enum Need {
    /// Candidates are ready.
    Words(usize, Vec<String>),
    /// The cursor is in SQL and no table names are cached yet: read them, then call again.
    DbNames,
    /// File names for `.run` (rustyline's filename completer finds them).
    Files,
}

/// Completion for `line` with the cursor at byte `pos`: the offset where the replaced word
/// starts and the candidates, sorted and without duplicates.
pub fn complete(line: &str, pos: usize, mode: Mode, names: &Names) -> Need {
    let before = &line[..pos];
    let trimmed = before.trim_start();
    let lead = before.len() - trimmed.len();
    if let Some(meta) = trimmed.strip_prefix('.') {
        return complete_meta(meta, lead + 1, names);
    }
    let sql =
        trimmed.starts_with('\\') || mode == Mode::Sql || input::rhai_tail(before) == Tail::String;
    let start = word_start(before);
    let word = &before[start..];
    if sql {
        let Some(db) = &names.db else {
            return Need::DbNames;
        };
        let upper = word.chars().next().is_some_and(|c| c.is_ascii_uppercase());
        let keywords = SQL_KEYWORDS.iter().map(|k| {
            if upper {
                k.to_string()
            } else {
                k.to_ascii_lowercase()
            }
        });
        let all = db.tables.iter().chain(&db.columns).cloned().chain(keywords);
        return Need::Words(start, matching(word, all));
    }
    if word.is_empty() {
        return Need::Words(pos, Vec::new());
    }
    // After a `.` only a method (any function) fits, not a keyword.
    let method = before[..start].ends_with('.');
    let keywords = RHAI_KEYWORDS
        .iter()
        .filter(|_| !method)
        .map(|k| k.to_string());
    let all = names
        .functions
        .iter()
        .chain(&names.variables)
        .cloned()
        .chain(keywords);
    Need::Words(start, matching(word, all))
}

fn complete_meta(meta: &str, at: usize, names: &Names) -> Need {
    let Some((command, args)) = meta.split_once(char::is_whitespace) else {
        let commands = META.iter().map(|(name, _)| name.to_string());
        return Need::Words(at, matching(meta, commands));
    };
    let arg_start = at + meta.len() - args.rsplit(char::is_whitespace).next().unwrap_or("").len();
    let word = &meta[arg_start - at..];
    let options: Vec<String> = match command {
        "format" => ["table", "json", "csv"].map(String::from).into(),
        "timing" => ["on", "off"].map(String::from).into(),
        "functions" => vec!["all".into()],
        "run" if !args.trim_start().contains(char::is_whitespace) => {
            if word.contains(['/', '.']) {
                return Need::Files;
            }
            names.bundled.clone()
        }
        _ => Vec::new(),
    };
    Need::Words(arg_start, matching(word, options.into_iter()))
}

fn matching(word: &str, all: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = all.filter(|c| c.starts_with(word)).collect();
    out.sort();
    out.dedup();
    out
}

/// Where the identifier that ends at the cursor begins.
fn word_start(before: &str) -> usize {
    before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
        .last()
        .map_or(before.len(), |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            functions: vec!["query".into(), "query_one".into(), "print".into()],
            variables: vec!["quota".into(), "rows".into()],
            db: Some(DbNames {
                tables: vec!["users".into()],
                columns: vec!["id".into(), "user_name".into()],
            }),
            bundled: vec!["stress".into(), "user_stats".into()],
        }
    }

    fn words(line: &str, mode: Mode, names: &Names) -> (usize, Vec<String>) {
        match complete(line, line.len(), mode, names) {
            Need::Words(at, w) => (at, w),
            Need::DbNames => panic!("asked for database names"),
            Need::Files => (usize::MAX, vec!["<files>".into()]),
        }
    }

    #[test]
    fn rhai_names_functions_and_variables() {
        let n = names();
        assert_eq!(
            words("let r = que", Mode::Rhai, &n),
            (8, vec!["query".into(), "query_one".into()])
        );
        assert_eq!(words("quo", Mode::Rhai, &n), (0, vec!["quota".into()]));
        assert_eq!(words("rows.pr", Mode::Rhai, &n), (5, vec!["print".into()]));
    }

    #[test]
    fn sql_names_in_sql_and_in_strings() {
        let n = names();
        assert_eq!(
            words("\\SELECT * FROM us", Mode::Rhai, &n).1,
            ["user_name", "users"]
        );
        assert_eq!(words("SELECT us", Mode::Sql, &n).1, ["user_name", "users"]);
        assert_eq!(
            words("query(\"SELECT * FROM us", Mode::Rhai, &n),
            (21, vec!["user_name".into(), "users".into()])
        );
        assert_eq!(words("SELECT * fr", Mode::Sql, &n).1, ["from"]);
        assert_eq!(
            words("query(\"a\") // \"us", Mode::Rhai, &n).1,
            Vec::<String>::new()
        );
        let empty = Names::default();
        assert!(matches!(
            complete("\\SELECT us", 10, Mode::Rhai, &empty),
            Need::DbNames
        ));
    }

    #[test]
    fn meta_commands_and_their_arguments() {
        let n = names();
        assert_eq!(words(".fo", Mode::Rhai, &n), (1, vec!["format".into()]));
        assert_eq!(words(".format j", Mode::Sql, &n), (8, vec!["json".into()]));
        assert_eq!(words(".run st", Mode::Rhai, &n), (5, vec!["stress".into()]));
        assert_eq!(words(".run ./x", Mode::Rhai, &n).1, ["<files>"]);
        assert_eq!(
            words(".run stress us", Mode::Rhai, &n).1,
            Vec::<String>::new()
        );
    }
}
