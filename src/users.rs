//! The `users` table of the seed flows (PRODUCT.md §3): its DDL and the statements that
//! `insert_user`, `list_users`, `repopulate` and `stress` share.

/// Column definitions; `{table}` is substituted with a validated, quoted identifier.
pub const COLUMNS_DDL: &str = "(\n    id UUID PRIMARY KEY,\n    name VARCHAR(100) NOT NULL,\n    email VARCHAR(100) UNIQUE NOT NULL,\n    role VARCHAR(50) NOT NULL,\n    created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP\n)";

pub fn create_sql(table: &Ident) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} {COLUMNS_DDL}",
        table.quoted()
    )
}

/// Whether the table exists, in the schema search path's first schema (or the named schema).
pub fn exists_sql() -> &'static str {
    "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
     WHERE table_schema = COALESCE($1, current_schema()) AND table_name = $2) AS present"
}

pub const MISSING_TABLE_HINT: &str = "run `dsqlsh repopulate` first to create and fill it";

/// A table name from user input: `name` or `schema.name`, letters, digits and `_` only, so it
/// can be quoted safely into DDL and INSERT statements (identifiers cannot be bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub schema: Option<String>,
    pub name: String,
}

impl Ident {
    pub fn parse(text: &str) -> Result<Ident, String> {
        let valid = |part: &str| {
            !part.is_empty()
                && part.len() <= 63
                && part
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let (schema, name) = match text.split_once('.') {
            Some((s, n)) => (Some(s), n),
            None => (None, text),
        };
        if name.len() > 63 || schema.is_some_and(|s| s.len() > 63) {
            return Err(format!(
                "invalid table name `{text}`: a name has at most 63 characters"
            ));
        }
        if !valid(name) || schema.is_some_and(|s| !valid(s)) {
            return Err(format!(
                "invalid table name `{text}`: use letters, digits and `_` (optionally `schema.table`)"
            ));
        }
        Ok(Ident {
            schema: schema.map(str::to_string),
            name: name.to_string(),
        })
    }

    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!("\"{s}\".\"{}\"", self.name),
            None => format!("\"{}\"", self.name),
        }
    }

    pub fn display(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}.{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The seed's five sample users, inserted by `repopulate` without a count.
pub const SAMPLE_USERS: &[(&str, &str, &str)] = &[
    ("Alice Johnson", "alice@example.com", "admin"),
    ("Bob Smith", "bob@example.com", "user"),
    ("Charlie Brown", "charlie@example.com", "user"),
    ("Diana Prince", "diana@example.com", "moderator"),
    ("Edward Norton", "edward@example.com", "user"),
];

/// Roles of generated users, weighted: mostly `user`.
pub const ROLES: &[&str] = &["user", "user", "user", "user", "moderator", "admin"];

pub const FIRST_NAMES: &[&str] = &[
    "Ava", "Ben", "Chloe", "Daniel", "Emma", "Felix", "Grace", "Hiro", "Isla", "Jonas", "Kira",
    "Liam", "Maya", "Noah", "Olivia", "Priya", "Quinn", "Ravi", "Sofia", "Tomas", "Uma", "Victor",
    "Wen", "Ximena", "Yusuf", "Zoe",
];
pub const LAST_NAMES: &[&str] = &[
    "Anderson", "Brown", "Chen", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen",
    "Kowalski", "Lopez", "Martin", "Nguyen", "Okafor", "Patel", "Quispe", "Rossi", "Smith",
    "Tanaka", "Usman", "Varga", "Wilson", "Xu", "Yilmaz", "Zhang",
];

/// A first and last name chosen by the bits of `h`.
pub fn name_parts(h: u64) -> (&'static str, &'static str) {
    (
        FIRST_NAMES[(h % FIRST_NAMES.len() as u64) as usize],
        LAST_NAMES[((h >> 16) % LAST_NAMES.len() as u64) as usize],
    )
}

#[cfg(test)]
mod tests {
    use super::Ident;

    #[test]
    fn identifiers_are_validated_and_quoted() {
        assert_eq!(Ident::parse("users").unwrap().quoted(), "\"users\"");
        assert_eq!(
            Ident::parse("app.users_2").unwrap().quoted(),
            "\"app\".\"users_2\""
        );
        for bad in [
            "",
            "1users",
            "users; DROP TABLE x",
            "a.b.c",
            "us\"ers",
            "a-b",
        ] {
            assert!(Ident::parse(bad).is_err(), "{bad}");
        }
    }
}
