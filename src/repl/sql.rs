//! The SQL side of the shell: a `\` line or `.sql` mode. Statements are cut at top-level `;`
//! (the lexer in `sql_lex` skips quotes, comments and dollar quotes), each runs on the session's
//! connection through the same `Session::run_query` scripts use, and its rows print in SELECT
//! column order as a psql-style table, JSON or CSV.
//!
//! This module formats; it does not decide when an entry is complete (`input`) and holds no
//! connection of its own.

use rhai::{Array, Dynamic};

use crate::db::exec::ResultSet;
use crate::output;

/// How result rows print (`.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

impl Format {
    pub fn parse(word: &str) -> Option<Format> {
        match word {
            "table" => Some(Format::Table),
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }
}

/// The statements of an entry. Text after the last `;` (the piped input ended without one)
/// counts as a last statement unless it is only comments.
pub fn statements(sql: &str) -> Vec<String> {
    let (mut stmts, rest) = crate::sql_lex::split_statements(sql);
    if !super::input::only_comments(&rest) {
        stmts.push(rest.trim().to_string());
    }
    stmts
}

/// The printed form of one statement's result, ending with a newline.
pub fn render(sql: &str, result: &ResultSet, format: Format) -> String {
    if result.columns.is_empty() {
        // A statement without a result set prints psql's command tag.
        return format!("{}\n", command_tag(sql, result.rows_affected));
    }
    let rows: Array = result.rows.clone();
    match format {
        // psql ends every result with an empty line; so does this.
        Format::Table => format!("{}\n", output::render_table_with(&result.columns, &rows)),
        Format::Json => format!(
            "{}\n",
            crate::json::to_json(&Dynamic::from_array(rows.clone()))
        ),
        Format::Csv => {
            let mut out = csv_line(result.columns.iter().map(String::as_str));
            for row in &rows {
                let map = row.read_lock::<rhai::Map>().map(|m| m.clone());
                let cells: Vec<String> = result
                    .columns
                    .iter()
                    .map(|c| {
                        map.as_ref()
                            .and_then(|m| m.get(c.as_str()))
                            .map(cell)
                            .unwrap_or_default()
                    })
                    .collect();
                out.push_str(&csv_line(cells.iter().map(String::as_str)));
            }
            out
        }
    }
}

/// A CSV cell: NULL is empty, collections are JSON, as in the table.
fn cell(v: &Dynamic) -> String {
    if v.is_unit() {
        String::new()
    } else if v.is_array() || v.is_map() || v.is_blob() {
        crate::json::to_json(v).to_string()
    } else {
        output::display_value(v)
    }
}

/// RFC 4180: quote a field holding a comma, quote or line break, doubling inner quotes.
fn csv_line<'a>(fields: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = fields
        .map(|f| {
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.to_string()
            }
        })
        .collect();
    format!("{}\n", quoted.join(","))
}

/// The statement's first keyword (after any comments), upper-cased.
pub fn first_word(sql: &str) -> String {
    crate::sql_lex::after_leading_comments(sql)
        .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .to_ascii_uppercase()
}

/// psql's command tag, rebuilt from the statement (sqlx does not pass the server's tag on):
/// `INSERT 0 n`, `UPDATE n`, `CREATE TABLE`, `BEGIN`...
pub fn command_tag(sql: &str, rows: u64) -> String {
    let words: Vec<String> = crate::sql_lex::after_leading_comments(sql)
        .split(|c: char| c.is_whitespace() || c == '(')
        .filter(|w| !w.is_empty())
        .take(6)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let first = words.first().map(String::as_str).unwrap_or("");
    match first {
        "INSERT" => format!("INSERT 0 {rows}"),
        "UPDATE" | "DELETE" | "MERGE" | "COPY" | "FETCH" | "MOVE" => format!("{first} {rows}"),
        "CREATE" | "DROP" | "ALTER" => {
            // The object kind, past modifiers such as OR REPLACE, UNIQUE or TEMP.
            const SKIP: &[&str] = &[
                "OR",
                "REPLACE",
                "UNIQUE",
                "TEMP",
                "TEMPORARY",
                "UNLOGGED",
                "GLOBAL",
                "LOCAL",
                "ASYNC",
            ];
            match words[1..].iter().find(|w| !SKIP.contains(&w.as_str())) {
                Some(kind) => format!("{first} {kind}"),
                None => first.to_string(),
            }
        }
        _ => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn result(columns: &[&str], rows: Vec<Vec<Dynamic>>) -> ResultSet {
        let columns: Arc<[String]> = columns.iter().map(|c| c.to_string()).collect();
        let tag = crate::rows::tag_for(&columns);
        ResultSet {
            rows: rows
                .into_iter()
                .map(|values| crate::rows::make_row(&columns, tag, values))
                .collect(),
            columns,
            rows_affected: 0,
        }
    }

    #[test]
    fn formats_keep_select_order() {
        let r = result(
            &["b", "a"],
            vec![
                vec![Dynamic::from_int(2), Dynamic::from("x;y")],
                vec![Dynamic::UNIT, Dynamic::from("say \"hi\", bye")],
            ],
        );
        assert_eq!(
            render("SELECT", &r, Format::Table),
            " b |       a\n---+---------------\n 2 | x;y\n   | say \"hi\", bye\n(2 rows)\n\n"
        );
        assert_eq!(
            render("SELECT", &r, Format::Json),
            "[{\"b\":2,\"a\":\"x;y\"},{\"b\":null,\"a\":\"say \\\"hi\\\", bye\"}]\n"
        );
        assert_eq!(
            render("SELECT", &r, Format::Csv),
            "b,a\n2,x;y\n,\"say \"\"hi\"\", bye\"\n"
        );
    }

    #[test]
    fn statements_without_rows_print_a_tag() {
        assert_eq!(command_tag("insert into t values (1)", 3), "INSERT 0 3");
        assert_eq!(command_tag("UPDATE t SET a = 1", 2), "UPDATE 2");
        assert_eq!(
            command_tag("create unique index i on t(a)", 0),
            "CREATE INDEX"
        );
        assert_eq!(
            command_tag("CREATE OR REPLACE VIEW v AS SELECT 1", 0),
            "CREATE VIEW"
        );
        assert_eq!(command_tag("begin", 0), "BEGIN");
    }

    #[test]
    fn entries_split_into_statements() {
        assert_eq!(
            statements("SELECT ';' AS a; SELECT 2 -- end"),
            vec!["SELECT ';' AS a", "SELECT 2 -- end"]
        );
        assert_eq!(statements("SELECT 1; -- only a comment"), vec!["SELECT 1"]);
    }
}
