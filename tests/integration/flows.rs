//! The seed's flows end to end: repopulate, user-stats, list-users, add-user, stress.

use crate::support::{dsqlsh, TestDb};

/// `Total time: 0.53 seconds` and friends: the seed's four lines, in order, with the numbers.
fn seed_summary(stdout: &str) -> (f64, u64, u64, f64) {
    let lines: Vec<&str> = stdout.lines().collect();
    let num = |line: &str, prefix: &str, suffix: &str| -> String {
        line.strip_prefix(prefix)
            .and_then(|l| l.strip_suffix(suffix))
            .unwrap_or_else(|| panic!("`{line}` is not `{prefix}...{suffix}`\n{stdout}"))
            .to_string()
    };
    (
        num(lines[0], "Total time: ", " seconds").parse().unwrap(),
        num(lines[1], "Successful inserts: ", "").parse().unwrap(),
        num(lines[2], "Failed inserts: ", "").parse().unwrap(),
        num(lines[3], "Insert rate: ", " users/second")
            .parse()
            .unwrap(),
    )
}

pub fn stress_on_local_adds_exactly_the_rows() {
    let db = TestDb::new("flow_stress");
    dsqlsh()
        .args(db.local_flags())
        .args(["repopulate", "--yes"])
        .run()
        .ok();
    assert_eq!(db.scalar("SELECT count(*) FROM users"), "5");
    let out = dsqlsh()
        .args(db.local_flags())
        .args(["run", "scripts/stress.rhai", "users=2000", "concurrency=10"])
        .cwd(&crate::support::repo())
        .run();
    let (secs, ok, failed, rate) = seed_summary(out.ok());
    assert_eq!((ok, failed), (2000, 0));
    assert!(secs > 0.0 && rate > 0.0);
    assert_eq!(db.scalar("SELECT count(*) FROM users"), "2005");
    assert_eq!(db.scalar("SELECT count(DISTINCT email) FROM users"), "2005");

    // The JSON form carries the PRODUCT.md §4 keys, and `succeeded` is what the table gained.
    let out = dsqlsh()
        .args(db.local_flags())
        .args([
            "stress-test",
            "--users",
            "300",
            "--concurrency",
            "4",
            "--batch",
            "50",
            "--json",
        ])
        .run();
    let v: serde_json::Value = serde_json::from_str(out.ok()).expect("stdout is one JSON object");
    for key in [
        "users",
        "concurrency",
        "batch",
        "elapsed_s",
        "succeeded",
        "failed",
        "retries",
        "rows_per_s",
        "txn_per_s",
        "latency_ms",
        "errors",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    for key in ["p50", "p90", "p99", "p999", "max", "mean"] {
        assert!(v["latency_ms"][key].is_number(), "latency_ms.{key} in {v}");
    }
    assert_eq!(
        (
            v["succeeded"].as_u64(),
            v["failed"].as_u64(),
            v["batch"].as_u64()
        ),
        (Some(300), Some(0), Some(50))
    );
    assert_eq!(db.scalar("SELECT count(*) FROM users"), "2305");
}

pub fn repopulate_then_stats_and_list() {
    let db = TestDb::new("flow_repop");
    let out = dsqlsh()
        .args(db.flags())
        .args(["repopulate", "--yes", "--count", "50"])
        .run();
    assert_eq!(out.ok(), "Recreated the users table.\nInserted 50 users.\n");
    assert_eq!(db.scalar("SELECT count(*) FROM users"), "50");
    // The five sample users come first; the rest are generated with unique emails.
    assert_eq!(
        db.scalar("SELECT string_agg(email, ',' ORDER BY email) FROM users WHERE email NOT LIKE '%.%@%'"),
        "alice@example.com,bob@example.com,charlie@example.com,diana@example.com,edward@example.com"
    );

    let stats = dsqlsh().args(db.flags()).arg("user-stats").run();
    let text = stats.ok();
    assert!(text.lines().any(|l| l == "Total users: 50"), "{text}");
    for section in [
        "Users by role",
        "Newest user:",
        "Oldest user:",
        "Users created by hour of day (UTC)",
        "Name length (characters)",
        "Most common first names",
        "Email domains",
    ] {
        assert!(text.contains(section), "missing {section}:\n{text}");
    }

    let list = dsqlsh().args(db.flags()).arg("list-users").run();
    let text = list.ok();
    assert!(text.ends_with("(50 rows)\n"), "{text}");
    assert!(
        text.starts_with("                  id                  |"),
        "{text}"
    );
    assert!(text.contains(" alice@example.com "), "{text}");

    // A repeat with the default count recreates the five sample users.
    dsqlsh()
        .args(db.flags())
        .args(["run", "repopulate", "yes=true"])
        .run()
        .ok();
    assert_eq!(db.scalar("SELECT count(*) FROM users"), "5");
}

pub fn repopulate_refuses_without_confirmation() {
    let db = TestDb::new("flow_refuse");
    dsqlsh()
        .args(db.flags())
        .args(["repopulate", "--yes", "--count", "7"])
        .run()
        .ok();
    let out = dsqlsh()
        .args(db.flags())
        .arg("repopulate")
        .stdin("y\n")
        .run();
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "repopulate drops the users table: pass --yes (or yes=true) to confirm\n"
    );
    assert_eq!(out.stdout, "");
    assert_eq!(db.scalar("SELECT count(*) FROM users"), "7");
}

pub fn add_user_from_flags_and_refuses_to_prompt() {
    let db = TestDb::new("flow_add");
    let out = dsqlsh()
        .args(db.flags())
        .args([
            "add-user",
            "--name",
            "Zoë O'Brien",
            "--email",
            "zoe@example.com",
            "--role",
            "admin",
        ])
        .run();
    let text = out.ok();
    assert!(
        text.starts_with("Added Zoë O'Brien <zoe@example.com> as admin (id "),
        "{text}"
    );
    assert_eq!(
        db.scalar("SELECT name || '|' || role FROM users WHERE email = 'zoe@example.com'"),
        "Zoë O'Brien|admin"
    );

    let out = dsqlsh()
        .args(db.flags())
        .args(["add-user", "--name", "No Mail"])
        .stdin("")
        .run();
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        "add_user: missing --email, and stdin is not a terminal to ask on\n"
    );

    let dup = dsqlsh()
        .args(db.flags())
        .args(["add-user", "--name", "Again", "--email", "zoe@example.com"])
        .run();
    assert_eq!(dup.code, 1);
    assert_eq!(
        dup.stderr,
        "add_user: a user with email zoe@example.com already exists\n"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM users"), "1");
}

pub fn empty_and_missing_table() {
    let db = TestDb::new("flow_empty");
    let missing = "error: database error 42P01: the `users` table does not exist: run `dsqlsh repopulate` first to create and fill it";
    for cmd in ["user-stats", "list-users"] {
        let out = dsqlsh().args(db.flags()).arg(cmd).run();
        assert_eq!((out.code, out.first_err_line()), (1, missing), "{cmd}");
    }
    db.sql(&format!(
        "CREATE TABLE users {}",
        dsqlsh::users::COLUMNS_DDL
    ));
    let out = dsqlsh().args(db.flags()).arg("user-stats").run();
    let text = out.ok();
    assert!(text.contains("Total users: 0\n"), "{text}");
    assert!(!text.contains("NaN"), "{text}");
    assert_eq!(text.matches("nothing to report").count(), 8, "{text}");
    assert_eq!(
        dsqlsh().args(db.flags()).arg("list-users").run().ok(),
        "No users.\n"
    );
}
