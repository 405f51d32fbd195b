//! Just enough SQL lexing to find the two things dsqlsh needs outside quotes and comments:
//! statement-ending `;` (the REPL's SQL mode) and `$n` placeholders (to check the parameter
//! count before the server would silently accept extra declared parameters).
//!
//! Skipped regions: '...' strings (with '' escapes; E'...' also with backslash escapes),
//! "identifiers", -- line comments, nested /* block comments */, and $tag$ dollar quotes $tag$.

/// What the scanner reports.
enum Event {
    /// A `;` at top level, at this byte offset.
    Semicolon(usize),
    /// A placeholder `$n`.
    Placeholder(usize),
}

fn scan(sql: &str, mut on: impl FnMut(Event)) -> bool {
    let b = sql.as_bytes();
    let mut i = 0;
    // True while inside a region that has not closed by the end of the text.
    let mut open = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' => {
                let escapes =
                    i > 0 && matches!(b[i - 1], b'e' | b'E') && (i < 2 || !is_ident(b[i - 2]));
                i += 1;
                open = true;
                while i < b.len() {
                    if escapes && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == b'\'' {
                        if b.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        open = false;
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'"' => {
                i += 1;
                open = true;
                while i < b.len() {
                    if b[i] == b'"' {
                        if b.get(i + 1) == Some(&b'"') {
                            i += 2;
                            continue;
                        }
                        open = false;
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 1;
                i += 2;
                open = true;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            open = false;
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'$' => {
                // `$n` placeholder, or `$tag$` dollar quote (tag: identifier chars, not starting
                // with a digit), unless the `$` continues an identifier like `a$b`.
                if i > 0 && is_ident(b[i - 1]) {
                    i += 1;
                    continue;
                }
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                if j > start {
                    if let Ok(n) = sql[start..j].parse::<usize>() {
                        on(Event::Placeholder(n));
                    }
                    i = j;
                    continue;
                }
                let mut j = start;
                while j < b.len() && is_ident(b[j]) {
                    j += 1;
                }
                if j < b.len() && b[j] == b'$' {
                    let tag = &sql[i..=j];
                    match sql[j + 1..].find(tag) {
                        Some(end) => i = j + 1 + end + tag.len(),
                        None => {
                            open = true;
                            i = b.len();
                        }
                    }
                    continue;
                }
                i += 1;
            }
            b';' => {
                on(Event::Semicolon(i));
                i += 1;
            }
            _ => i += 1,
        }
    }
    !open
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// The highest `$n` in `sql` (0 when there is none).
pub fn max_placeholder(sql: &str) -> usize {
    let mut max = 0;
    scan(sql, |e| {
        if let Event::Placeholder(n) = e {
            max = max.max(n);
        }
    });
    max
}

/// The statement with the whitespace and comments before its first word removed (`/* x */
/// BEGIN` is a BEGIN). Block comments nest, as in PostgreSQL; an unterminated one is kept.
pub fn after_leading_comments(sql: &str) -> &str {
    let mut rest = sql.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if rest.starts_with("/*") {
            let b = rest.as_bytes();
            let (mut depth, mut i) = (0usize, 0usize);
            while i + 1 < b.len() {
                if b[i] == b'/' && b[i + 1] == b'*' {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b[i + 1] == b'/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            if depth > 0 {
                // Unterminated: the comment is the text that is left.
                return rest;
            }
            rest = rest[i..].trim_start();
        } else {
            return rest;
        }
    }
}

/// Split input into complete statements (each without its `;`) and the unfinished rest.
pub fn split_statements(text: &str) -> (Vec<String>, String) {
    let mut cuts = Vec::new();
    scan(text, |e| {
        if let Event::Semicolon(at) = e {
            cuts.push(at);
        }
    });
    let mut out = Vec::new();
    let mut from = 0;
    for at in cuts {
        let stmt = text[from..at].trim();
        if !stmt.is_empty() {
            out.push(stmt.to_string());
        }
        from = at + 1;
    }
    (out, text[from..].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_outside_quotes_and_comments() {
        assert_eq!(max_placeholder("SELECT $1 + $12"), 12);
        assert_eq!(
            max_placeholder(
                "SELECT '$3', \"$4\", $$ $5 $$, $t$ $6 $t$ -- $7\n /* $8 /* $9 */ */ , $2"
            ),
            2
        );
        assert_eq!(max_placeholder("SELECT 1"), 0);
        assert_eq!(max_placeholder("SELECT a$1 FROM t"), 0);
        assert_eq!(max_placeholder("SELECT E'it\\'s $1', $1"), 1);
    }

    #[test]
    fn statements_split_at_top_level_semicolons() {
        let (stmts, rest) = split_statements("SELECT ';'; SELECT $$a;b$$ ; -- x;\nSELECT 3");
        assert_eq!(stmts, vec!["SELECT ';'", "SELECT $$a;b$$"]);
        assert_eq!(rest, " -- x;\nSELECT 3");
    }

    #[test]
    fn leading_comments_are_skipped() {
        assert_eq!(
            after_leading_comments("  -- a\n/* b /* c */ */ BEGIN"),
            "BEGIN"
        );
        assert_eq!(after_leading_comments("-- only"), "");
        assert_eq!(after_leading_comments("/* open"), "/* open");
        assert_eq!(after_leading_comments("SELECT 1 -- x"), "SELECT 1 -- x");
    }
}
