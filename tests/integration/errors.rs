//! Bad input: each case exits 1 or 2 with a one-line cause on stderr, never a panic, and
//! nothing is half-written.

use crate::support::{dsqlsh, Output, TestDb};

#[track_caller]
fn fails(out: &Output, code: i32, first_line: &str) {
    out.no_panic();
    assert_eq!(out.code, code, "stderr:\n{}", out.stderr);
    assert_eq!(out.first_err_line(), first_line, "stderr:\n{}", out.stderr);
    assert_eq!(out.stdout, "", "stdout must stay clean on errors");
}

pub fn syntax_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.rhai"), "let a = 1;\nlet b = a +;\n").unwrap();
    let out = dsqlsh().cwd(dir.path()).args(["run", "broken.rhai"]).run();
    out.no_panic();
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "error: syntax error: Unexpected ';'\n  --> broken.rhai:2:12\n   |\n 2 | let b = a +;\n   |            ^\n"
    );
}

pub fn wrong_argument_type() {
    let db = TestDb::new("err_argtype");
    let out = dsqlsh()
        .args(db.flags())
        .args(["eval", "let n = 42;\nquery(n)"])
        .run();
    fails(
        &out,
        1,
        "error: query: the first argument must be the SQL text (a string), got an integer",
    );
    assert!(out.stderr.contains("--> <eval>:2:1"), "{}", out.stderr);
    let out = dsqlsh()
        .args(db.flags())
        .args(["eval", "query(\"SELECT 1\", 5)"])
        .run();
    fails(
        &out,
        1,
        "error: query: parameters must be an array, like query(sql, [1, \"x\"]); got an integer",
    );
    let out = dsqlsh()
        .args(db.flags())
        .args(["eval", "stress(#{users: \"many\"})"])
        .run();
    fails(
        &out,
        1,
        "error: stress: `users` must be an integer from 1 to 9223372036854775807, got \"many\"",
    );
}

pub fn unknown_bundled_script() {
    let out = dsqlsh().args(["run", "nosuch"]).run();
    fails(
        &out,
        2,
        "error: no script `nosuch`: it is not a file, not ./scripts/nosuch.rhai, and not a bundled \
         script (bundled: add_user, list_users, repopulate, stress, user_stats)",
    );
    let out = dsqlsh().args(["scripts", "show", "nosuch"]).run();
    fails(
        &out,
        2,
        "error: no bundled script `nosuch` (bundled: add_user, list_users, repopulate, stress, user_stats)",
    );
}

pub fn no_database_configured() {
    let expected =
        "error: no database configured: pass `--local` for the embedded PostgreSQL, set \
                    `DSQL_ENDPOINT` (or --endpoint) for Aurora DSQL, or set `DATABASE_URL` (or \
                    --database-url) for PostgreSQL";
    fails(
        &dsqlsh().args(["eval", "query(\"SELECT 1\")"]).run(),
        1,
        expected,
    );
    fails(&dsqlsh().arg("list-users").run(), 1, expected);
}

pub fn unreachable_server() {
    let out = dsqlsh()
        .args([
            "--database-url",
            "postgres://admin:secret-pw@127.0.0.1:1/app",
            "list-users",
        ])
        .run();
    fails(
        &out,
        1,
        "error: cannot connect to PostgreSQL `127.0.0.1:1` database `app` as `admin`: connection refused (SQLSTATE 08001)",
    );
    assert!(!out.stderr.contains("secret-pw"));
    // A password written into the script itself is masked where the failing line is echoed,
    // and the caret stays under the call.
    let out = dsqlsh()
        .args([
            "eval",
            "let c = connect(#{ url: \"postgres://admin:secret-pw@127.0.0.1:1/app\" });",
        ])
        .run();
    assert_eq!(
        out.stderr,
        "error: cannot connect to PostgreSQL `127.0.0.1:1` database `app` as `admin`: connection \
         refused (SQLSTATE 08001)\n  --> <eval>:1:9\n   |\n 1 | let c = connect(#{ url: \
         \"postgres://admin:***@127.0.0.1:1/app\" });\n   |         ^\n"
    );
}

pub fn sql_error() {
    let db = TestDb::new("err_sql");
    let out = dsqlsh()
        .args(db.flags())
        .args(["eval", "query(\"SELECT * FROM nosuch\")"])
        .run();
    fails(
        &out,
        1,
        "error: database error 42P01: relation \"nosuch\" does not exist",
    );
    // A failed statement inside a script leaves earlier statements committed and nothing else.
    let out = dsqlsh()
        .args(db.flags())
        .args([
            "eval",
            "execute(\"CREATE TABLE t (n int)\"); execute(\"INSERT INTO t VALUES (1), (2)\"); \
             execute(\"INSERT INTO t VALUES (3), ('x')\")",
        ])
        .run();
    fails(
        &out,
        1,
        "error: database error 22P02: invalid input syntax for type integer: \"x\"",
    );
    assert_eq!(
        db.scalar("SELECT string_agg(n::text, ',' ORDER BY n) FROM t"),
        "1,2"
    );
}

pub fn parameter_count_mismatch() {
    let db = TestDb::new("err_params");
    let out = dsqlsh()
        .args(db.flags())
        .args(["eval", "query(\"SELECT $1::int + $2::int AS s\", [1])"])
        .run();
    fails(
        &out,
        1,
        "error: database error 07001: the statement has 2 parameters but 1 value was given",
    );
    let out = dsqlsh()
        .args(db.flags())
        .args(["eval", "query(\"SELECT 1\", [1, 2])"])
        .run();
    fails(
        &out,
        1,
        "error: database error 07001: the statement has 0 parameters but 2 values were given",
    );
}

pub fn errors_are_catchable_maps() {
    let db = TestDb::new("err_catch");
    let code = r#"
        try { query("SELECT 1/0"); } catch (e) { print(`${e.sqlstate}|${e.message}|${e.retryable}`); }
        try { query("SELECT $1::uuid", ["nope"]); } catch (e) { print(`${e.sqlstate}|${e.message}`); }
        "after"
    "#;
    let out = dsqlsh().args(db.flags()).args(["eval", code]).run();
    assert_eq!(
        out.ok(),
        "22012|division by zero|false\n22P02|invalid input syntax for type uuid: \"nope\"\nafter\n"
    );
}

pub fn bad_script_arguments() {
    let out = dsqlsh().args(["run", "stress", "users"]).run();
    fails(
        &out,
        2,
        "error: script arguments are KEY=VALUE pairs; got `users`",
    );
    let out = dsqlsh().args(["--bogus"]).run();
    out.no_panic();
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("error: unexpected argument '--bogus'"),
        "{}",
        out.stderr
    );
}

/// A full disk is not a closed pipe: the run fails instead of reporting success.
pub fn stdout_write_failure_is_an_error() {
    let out = std::process::Command::new(crate::support::bin())
        .args(["eval", "print(1)"])
        .env_clear()
        .stdout(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: `standard output`: No space left on device (os error 28)\n"
    );
    // A reader that goes away early is normal (`| head`): exit 0, nothing on stderr.
    let mut child = std::process::Command::new(crate::support::bin())
        .args(["eval", "for i in 0..1000000 { print(i) }"])
        .env_clear()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 2];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        (out.status.code(), out.stderr.as_slice()),
        (Some(0), &b""[..])
    );
}

/// Server notices go to stderr as psql shows them; results stay on stdout.
pub fn server_notices_on_stderr() {
    let db = TestDb::new("err_notice");
    let out = dsqlsh()
        .args(db.flags())
        .args([
            "eval",
            "execute(\"DROP TABLE IF EXISTS nosuch\"); execute(\"COMMIT\"); 7",
        ])
        .run();
    assert_eq!(out.ok(), "7\n");
    assert_eq!(
        out.stderr,
        "NOTICE:  table \"nosuch\" does not exist, skipping\nWARNING:  there is no transaction in progress\n"
    );
}
