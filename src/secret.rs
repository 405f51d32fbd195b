//! A string that must never be printed: IAM tokens, passwords, URLs that may carry a password.
//!
//! `Debug` and `Display` print `***`; the only way to the text is `expose()`, which is called
//! where the value is handed to the wire (the connect options) or, for `dsqlsh token`, to stdout.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `text` with the password of every `scheme://user:password@host` URL and every
/// `password=...` setting replaced by `***`: for echoing source lines (a caret under an
/// error) that may hold a connection string the user wrote into a script.
pub fn redact_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first character that cannot be in it.
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '"' | '`' | '?' | '#'))
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(amp), Some(colon)) if colon < amp => {
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[amp..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    redact_settings(&out)
}

/// `password=secret`, `password = 'x y'`, `password: "x"` (libpq key/value syntax, URL query
/// parameters, a Rhai map) with the value masked.
fn redact_settings(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find("password") {
        let key_end = pos + found + "password".len();
        let after_key = &text[key_end..];
        let gap = after_key.len() - after_key.trim_start().len();
        let Some(sep) = after_key[gap..]
            .chars()
            .next()
            .filter(|c| matches!(c, '=' | ':'))
        else {
            out.push_str(&text[pos..key_end]);
            pos = key_end;
            continue;
        };
        let sep_end = key_end + gap + sep.len_utf8();
        let rest = &text[sep_end..];
        let value_start = sep_end + (rest.len() - rest.trim_start().len());
        out.push_str(&text[pos..value_start]);
        let value = &text[value_start..];
        let quote = value
            .chars()
            .next()
            .filter(|c| matches!(c, '"' | '\'' | '`'));
        let value_end = match quote {
            Some(q) => value[1..]
                .find(q)
                .map_or(text.len(), |i| value_start + 1 + i + 1),
            None => value
                .find(|c: char| c.is_whitespace() || matches!(c, '&' | ',' | '}' | ';' | ')'))
                .map_or(text.len(), |i| value_start + i),
        };
        if value_end > value_start {
            out.push_str(&match quote {
                Some(q) => format!("{q}***{q}"),
                None => "***".to_string(),
            });
        }
        pos = value_end;
    }
    out.push_str(&text[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::{redact_passwords, Secret};

    #[test]
    fn passwords_in_echoed_text_are_masked() {
        assert_eq!(
            redact_passwords(
                r#"connect(#{url: "postgres://app:S3cr:et@db:5432/x?sslmode=require"})"#
            ),
            r#"connect(#{url: "postgres://app:***@db:5432/x?sslmode=require"})"#
        );
        assert_eq!(
            redact_passwords("postgres://app@db/x and https://h/p?a=1"),
            "postgres://app@db/x and https://h/p?a=1"
        );
        assert_eq!(
            redact_passwords("'host=db user=a PASSWORD=hunter2 dbname=x' ?password=p2&x=1"),
            "'host=db user=a PASSWORD=*** dbname=x' ?password=***&x=1"
        );
        assert_eq!(redact_passwords("let é = 1; // ☃"), "let é = 1; // ☃");
        assert_eq!(
            redact_passwords(r#"connect(#{host: "h", password: "HUNTER2", user: "u"})"#),
            r#"connect(#{host: "h", password: "***", user: "u"})"#
        );
        assert_eq!(
            redact_passwords("password = 'it s' and password=x"),
            "password = '***' and password=***"
        );
        assert_eq!(
            redact_passwords(r#""postgres://app:it'sHUNTER@db/x""#),
            r#""postgres://app:***@db/x""#
        );
        assert_eq!(redact_passwords("no_password_here"), "no_password_here");
    }

    #[test]
    fn never_formats_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?} {:?}", Some(&s)), "*** *** Some(***)");
        assert_eq!(s.expose(), "hunter2");
    }
}
