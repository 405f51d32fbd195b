//! user_stats: exact values on a fixed data set, time zones, rendering, customisation.

use serde_json::json;

use crate::support::{dsqlsh, TestDb};

/// Five users chosen for the edge cases: a combining mark (é as e + U+0301), a CJK single-word
/// name, an emoji ZWJ sequence, a mixed-case domain, padding around a name, and two users on
/// either side of midnight UTC that share a day in New York.
const DATA: &str = r#"
CREATE TABLE users (id UUID PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(100) UNIQUE NOT NULL,
                    role VARCHAR(50) NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP);
INSERT INTO users VALUES
 ('00000000-0000-4000-8000-000000000001', U&'Jose\0301 Álvarez', 'jose@Example.COM', 'admin', '2025-01-15 23:30:00+00'),
 ('00000000-0000-4000-8000-000000000002', '山田太郎', 'yamada@example.jp', 'user', '2025-01-16 00:30:00+00'),
 ('00000000-0000-4000-8000-000000000003', 'Ana 👩‍💻', 'ana.dev@example.com', 'user', '2025-01-14 12:00:00+00'),
 ('00000000-0000-4000-8000-000000000004', 'Ana Silva', 'ana.silva@EXAMPLE.com', 'moderator', '2025-01-16 09:15:00+00'),
 ('00000000-0000-4000-8000-000000000005', '  Bob  ', 'bob@test.org', 'user', '2025-01-10 08:00:00+00');
"#;

fn dataset(name: &str) -> TestDb {
    let db = TestDb::new(name);
    db.sql(DATA);
    db
}

fn stats_json(db: &TestDb, extra: &[&str]) -> serde_json::Value {
    let out = dsqlsh()
        .args(db.flags())
        .args(["user-stats", "--json", "--as-of", "2025-01-16"])
        .args(extra.iter().copied())
        .run();
    serde_json::from_str(out.ok()).expect("one JSON object")
}

fn hours(pairs: &[(i64, i64)]) -> serde_json::Value {
    let counts: Vec<_> = (0..24)
        .map(|h| json!({"hour": h, "count": pairs.iter().find(|p| p.0 == h).map_or(0, |p| p.1)}))
        .collect();
    json!(counts)
}

fn days(counts: [i64; 7]) -> serde_json::Value {
    json!((10..=16)
        .zip(counts)
        .map(|(d, c)| json!({"date": format!("2025-01-{d}"), "count": c}))
        .collect::<Vec<_>>())
}

pub fn exact_values_in_utc_and_another_zone() {
    let db = dataset("stats_exact");
    let v = stats_json(&db, &[]);
    let expected = json!({
        "total_users": 5,
        "roles": [
            {"role": "user", "count": 3, "share": 60.0},
            {"role": "admin", "count": 1, "share": 20.0},
            {"role": "moderator", "count": 1, "share": 20.0}
        ],
        "newest_user": {"name": "Ana Silva", "email": "ana.silva@EXAMPLE.com", "created_at": "2025-01-16T09:15:00+00:00"},
        "oldest_user": {"name": "  Bob  ", "email": "bob@test.org", "created_at": "2025-01-10T08:00:00+00:00"},
        "hourly": {"tz": "UTC", "counts": hours(&[(0, 1), (8, 1), (9, 1), (12, 1), (23, 1)])},
        "daily": {"tz": "UTC", "days": 7, "counts": days([1, 0, 0, 0, 1, 1, 2])},
        "name_lengths": {
            "longest": {"name": "Jose\u{301} Álvarez", "length": 13},
            "shortest": {"name": "山田太郎", "length": 4},
            "average": 8.0
        },
        "first_names": [
            {"name": "Ana", "count": 2, "share": 40.0},
            {"name": "Bob", "count": 1, "share": 20.0},
            {"name": "Jose\u{301}", "count": 1, "share": 20.0},
            {"name": "山田太郎", "count": 1, "share": 20.0}
        ],
        "email_domains": [
            {"domain": "example.com", "count": 3, "share": 60.0},
            {"domain": "example.jp", "count": 1, "share": 20.0},
            {"domain": "test.org", "count": 1, "share": 20.0}
        ]
    });
    assert_eq!(v, expected);

    // 23:30 and 00:30 UTC fall on 15 and 16 January in UTC, but both on the 15th in New York.
    let ny = stats_json(&db, &["--tz", "America/New_York", "--top", "1"]);
    assert_eq!(
        ny["hourly"],
        json!({"tz": "America/New_York", "counts": hours(&[(3, 1), (4, 1), (7, 1), (18, 1), (19, 1)])})
    );
    assert_eq!(
        ny["daily"],
        json!({"tz": "America/New_York", "days": 7, "counts": days([1, 0, 0, 0, 1, 2, 1])})
    );
    assert_eq!(
        ny["first_names"],
        json!([{"name": "Ana", "count": 2, "share": 40.0}])
    );
    assert_eq!(
        ny["email_domains"],
        json!([{"domain": "example.com", "count": 3, "share": 60.0}])
    );

    // The same through `run user_stats json=true`, and one key per report section.
    let out = dsqlsh()
        .args(db.flags())
        .args(["run", "user_stats", "json=true", "as_of=2025-01-16"])
        .run();
    let again: serde_json::Value = serde_json::from_str(out.ok()).unwrap();
    assert_eq!(again, expected);
    let mut keys: Vec<&String> = again.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "daily",
            "email_domains",
            "first_names",
            "hourly",
            "name_lengths",
            "newest_user",
            "oldest_user",
            "roles",
            "total_users"
        ]
    );
}

pub fn text_report_lines_up_wide_characters() {
    let db = dataset("stats_text");
    let out = dsqlsh()
        .args(db.flags())
        .args(["user-stats", "--as-of", "2025-01-16"])
        .run();
    let text = out.ok();
    let section = |title: &str| -> Vec<&str> {
        text.split("\n\n")
            .find(|s| s.starts_with(title))
            .unwrap_or_else(|| panic!("no section {title}:\n{text}"))
            .lines()
            .collect()
    };
    assert_eq!(
        section("Most common first names"),
        [
            "Most common first names",
            " first_name | count | share",
            "------------+-------+--------",
            " Ana        |     2 | 40.00%",
            " Bob        |     1 | 20.00%",
            " Jose\u{301}       |     1 | 20.00%",
            " 山田太郎   |     1 | 20.00%",
            "(4 rows)",
        ]
    );
    assert_eq!(
        section("Name length (characters)"),
        [
            "Name length (characters)",
            "  longest:  Jose\u{301} Álvarez (13)",
            "  shortest: 山田太郎 (4)",
            "  average:  8.00"
        ]
    );
    let daily = section("Users created per day");
    assert_eq!(daily[0], "Users created per day, last 7 days (UTC)");
    assert_eq!(daily[7], format!("2025-01-16 | {} 2", "█".repeat(40)));
    assert_eq!(daily[2], "2025-01-11 |  0");
    let hourly = section("Users created by hour of day");
    assert_eq!(hourly.len(), 25);
    assert_eq!(hourly[24], format!("23:00 | {} 1", "█".repeat(40)));
    assert!(
        text.starts_with("=== User statistics ===\n\nTotal users: 5\n"),
        "{text}"
    );
}

pub fn edited_copy_wins_and_says_so() {
    let db = dataset("stats_eject");
    let dir = tempfile::tempdir().unwrap();
    dsqlsh()
        .cwd(dir.path())
        .args(["scripts", "eject"])
        .run()
        .ok();
    let script = dir.path().join("scripts/user_stats.rhai");
    let mut text = std::fs::read_to_string(&script).unwrap();
    text.push_str("print(`EDITED: ${s.total_users} users`);\n");
    std::fs::write(&script, text).unwrap();
    for args in [
        vec!["user-stats", "--as-of", "2025-01-16"],
        vec!["run", "user_stats"],
    ] {
        let out = dsqlsh()
            .cwd(dir.path())
            .args(db.flags())
            .args(args.clone())
            .run();
        assert!(
            out.ok().ends_with("EDITED: 5 users\n"),
            "{args:?}: {}",
            out.stdout
        );
        assert_eq!(
            out.stderr,
            "dsqlsh: running scripts/user_stats.rhai (a local copy that overrides the bundled script)\n"
        );
    }
    // An unedited copy is the bundled script: nothing to announce.
    let plain = tempfile::tempdir().unwrap();
    dsqlsh()
        .cwd(plain.path())
        .args(["scripts", "eject"])
        .run()
        .ok();
    let out = dsqlsh()
        .cwd(plain.path())
        .args(db.flags())
        .arg("user-stats")
        .run();
    out.ok();
    assert_eq!(out.stderr, "");
}

pub fn bad_zone_and_options_are_named() {
    let db = dataset("stats_bad");
    let out = dsqlsh()
        .args(db.flags())
        .args(["user-stats", "--tz", "Mars/Olympus"])
        .run();
    assert_eq!(out.code, 1);
    assert_eq!(
        out.first_err_line(),
        "error: database error 22023: unknown time zone `Mars/Olympus`: use an IANA name such as UTC, Europe/Paris or America/New_York"
    );
    let out = dsqlsh()
        .args(db.flags())
        .args(["run", "user_stats", "top=0"])
        .run();
    assert_eq!(
        (out.code, out.first_err_line()),
        (1, "error: stats: `top` must be from 1 to 100, got 0")
    );
    // The command-line form is checked by the argument parser: a usage error.
    let out = dsqlsh()
        .args(db.flags())
        .args(["user-stats", "--top", "-1"])
        .run();
    assert_eq!(
        (out.code, out.first_err_line()),
        (
            2,
            "error: invalid value '-1' for '--top <N>': -1 is not in 1..=100"
        )
    );
    // An offset would be read as a POSIX zone, sign inverted: refused with the reason.
    let out = dsqlsh()
        .args(db.flags())
        .args(["user-stats", "--tz", "+05:30"])
        .run();
    assert_eq!(
        (out.code, out.first_err_line()),
        (
            1,
            "error: stats: `tz` `+05:30` is an offset, which PostgreSQL reads with the sign \
             inverted; use an IANA name such as Asia/Kolkata or America/New_York"
        )
    );
    // The flag is checked before anything runs (exit 2); a script's value, by the server.
    let out = dsqlsh()
        .args(db.flags())
        .args(["user-stats", "--as-of", "someday"])
        .run();
    assert_eq!(
        (out.code, out.first_err_line()),
        (
            2,
            "error: invalid value 'someday' for '--as-of <DATE>': `someday` is not a date like 2025-01-31"
        )
    );
    let out = dsqlsh()
        .args(db.flags())
        .args(["run", "user_stats", "as_of=someday"])
        .run();
    assert_eq!(
        (out.code, out.first_err_line()),
        (
            1,
            "error: database error 22007: `as_of` must be a date like 2025-01-31, got `someday`"
        )
    );
}
