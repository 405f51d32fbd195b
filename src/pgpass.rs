//! `~/.pgpass` (or `PGPASSFILE`) lookup, as libpq does it.
//!
//! sqlx reads the file only inside `PgConnectOptions::new()`, before dsqlsh has applied its own
//! host, user and database, so the lookup is repeated here with the final values.

use std::path::PathBuf;

use sqlx::postgres::PgConnectOptions;

use crate::config::Env;
use crate::secret::Secret;

pub fn lookup(options: &PgConnectOptions, env: &dyn Env) -> Option<Secret> {
    let path = env
        .var("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|h| h.join(".pgpass")))?;
    // libpq ignores a password file others can read; so does dsqlsh, saying why.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            eprintln!(
                "dsqlsh: warning: password file `{}` has group or world access; it is ignored \
                 (chmod 0600 it)",
                path.display()
            );
            return None;
        }
    }
    let text = std::fs::read_to_string(path).ok()?;
    // libpq matches a socket connection against `localhost`.
    let host = if options.get_socket().is_some() {
        "localhost".to_string()
    } else {
        options.get_host().to_string()
    };
    find(
        &text,
        &host,
        &options.get_port().to_string(),
        options.get_database().unwrap_or("postgres"),
        options.get_username(),
    )
    .map(Secret::new)
}

/// The password of the first line matching all four fields (`*` matches anything).
fn find(text: &str, host: &str, port: &str, database: &str, user: &str) -> Option<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .find_map(|line| {
            let fields = split_fields(line);
            if fields.len() < 5 {
                return None;
            }
            let wanted = [host, port, database, user];
            let matches = fields[..4]
                .iter()
                .zip(wanted)
                .all(|(pattern, value)| pattern == "*" || pattern == value);
            matches.then(|| fields[4].clone())
        })
}

/// Split on unescaped `:`; `\:` and `\\` are literal.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("never empty").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => fields.last_mut().expect("never empty").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::find;

    #[test]
    fn first_matching_line_wins_with_wildcards_and_escapes() {
        let text = "# comment\n\
                    other:5432:*:admin:nope\n\
                    db:*:app:admin:pa\\:ss\n\
                    *:*:*:*:fallback\n";
        assert_eq!(
            find(text, "db", "5432", "app", "admin").as_deref(),
            Some("pa:ss")
        );
        assert_eq!(
            find(text, "db", "5432", "other", "admin").as_deref(),
            Some("fallback")
        );
        assert_eq!(
            find("db:5432:app:admin\n", "db", "5432", "app", "admin"),
            None
        );
    }
}
