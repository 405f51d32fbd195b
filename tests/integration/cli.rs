//! Commands that need no database, and script-level behaviour of `run` and `eval`.

use crate::support::{dsqlsh, empty_dir, TestDb};

pub fn help_and_version() {
    let out = dsqlsh().arg("--help").run();
    let text = out.ok();
    for cmd in [
        "run",
        "eval",
        "repl",
        "scripts",
        "token",
        "local",
        "list-users",
        "add-user",
        "repopulate",
        "user-stats",
        "stress-test",
    ] {
        assert!(
            text.contains(&format!("  {cmd}")),
            "help lacks {cmd}:\n{text}"
        );
    }
    assert_eq!(
        dsqlsh().arg("--version").run().ok(),
        format!("dsqlsh {}\n", env!("CARGO_PKG_VERSION"))
    );
    // The seed's command name still works.
    assert!(dsqlsh()
        .args(["generate-token", "--help"])
        .run()
        .ok()
        .contains("--token-only"));
}

pub fn scripts_list_show_eject() {
    let list = dsqlsh().args(["scripts", "list"]).run();
    let names: Vec<&str> = list
        .ok()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "add_user",
            "list_users",
            "repopulate",
            "stress",
            "user_stats"
        ]
    );
    assert_eq!(
        list.ok().lines().nth(3),
        Some("stress      concurrent-insert load test on the users table (created when missing).")
    );

    let repo_stress =
        std::fs::read_to_string(crate::support::repo().join("scripts/stress.rhai")).unwrap();
    assert_eq!(
        dsqlsh().args(["scripts", "show", "stress"]).run().ok(),
        repo_stress
    );

    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("mine");
    let out = dsqlsh()
        .args(["scripts", "eject"])
        .arg(target.display().to_string())
        .run();
    assert_eq!(out.ok().lines().count(), 5);
    for name in names {
        let ejected = std::fs::read_to_string(target.join(format!("{name}.rhai"))).unwrap();
        let original =
            std::fs::read_to_string(crate::support::repo().join(format!("scripts/{name}.rhai")))
                .unwrap();
        assert_eq!(ejected, original, "{name}");
    }
    // A second eject refuses to overwrite edits.
    let again = dsqlsh()
        .args(["scripts", "eject"])
        .arg(target.display().to_string())
        .run();
    assert_eq!(again.code, 2);
    assert!(
        again
            .first_err_line()
            .starts_with("error: not overwriting "),
        "{}",
        again.stderr
    );
}

pub fn eval_prints_values() {
    let cases = [
        ("1 + 1", "2\n"),
        ("\"text\"", "text\n"),
        ("let x = 1;", ""),
        (
            "#{b: 1, a: [1, 2.5, ()]}",
            "{\n  \"a\": [\n    1,\n    2.5,\n    null\n  ],\n  \"b\": 1\n}\n",
        ),
        (
            "to_json(parse_json(`{\"k\": [1, \"v\"]}`))",
            "{\"k\":[1,\"v\"]}\n",
        ),
        ("format_number(1234567)", "1,234,567\n"),
        ("format_number(-1234.5)", "-1,234.5\n"),
        ("1e300", "1e300\n"),
        (
            "let m = \"\"; try { pad_left(\"x\", 100000000000) } catch (e) { m = e } m",
            "pad_left: width 100000000000 is too large (at most 16777216)\n",
        ),
        // uuid(): 36 characters, version 4, RFC 4122 variant, a new one each call.
        (
            "let a = uuid(); let b = uuid(); `${a.len()} ${a[14]} ${\"89ab\".contains(a[19])} ${a != b}`",
            "36 4 true true\n",
        ),
    ];
    for (code, expected) in cases {
        assert_eq!(dsqlsh().args(["eval", code]).run().ok(), expected, "{code}");
    }
    // Column order survives into JSON output: SELECT order, not alphabetical.
    let db = TestDb::new("cli_eval");
    let out = dsqlsh()
        .args(db.flags())
        .args(["-e", "to_json(query(\"SELECT 2 AS zeta, 1 AS alpha\"))"])
        .run();
    assert_eq!(out.ok(), "[{\"zeta\":2,\"alpha\":1}]\n");
    let out = dsqlsh()
        .args(db.flags())
        .args([
            "-e",
            "print_table(query(\"SELECT 2 AS zeta, 'x' AS alpha UNION ALL SELECT 10, NULL\"))",
        ])
        .run();
    assert_eq!(
        out.ok(),
        " zeta | alpha\n------+-------\n    2 | x\n   10 |\n(2 rows)\n"
    );
}

pub fn args_are_typed() {
    let dir = empty_dir();
    let script = dir.join("args.rhai");
    std::fs::write(
        &script,
        "for k in ARGS.keys() { print(`${k}=${type_of(ARGS[k])}:${ARGS[k]}`) }",
    )
    .unwrap();
    let out = dsqlsh()
        .args([
            "run",
            "args.rhai",
            "n=42",
            "f=1.5",
            "b=true",
            "s=hello world",
            "neg=-3",
            "e=",
        ])
        .cwd(&dir)
        .run();
    assert_eq!(
        out.ok(),
        "b=bool:true\ne=string:\nf=f64:1.5\nn=i64:42\nneg=i64:-3\ns=string:hello world\n"
    );
    // `.rhai` may be omitted for a file in the working directory.
    assert!(dsqlsh()
        .args(["run", "args", "x=1"])
        .cwd(&dir)
        .run()
        .ok()
        .contains("x=i64:1"));
}

pub fn exit_sets_the_status() {
    let out = dsqlsh()
        .args(["eval", "print(\"before\"); exit(3); print(\"after\")"])
        .run();
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (3, "before\n", "")
    );
    let out = dsqlsh().args(["eval", "exit()"]).run();
    assert_eq!(out.code, 0);
}

/// `connect(#{...})` (and `.connect KEY=VALUE` in the REPL) takes psql's `host` and `dbname`
/// as well as `endpoint` and `database`; an unknown key lists the known ones.
pub fn connect_takes_psql_names() {
    let db = TestDb::new("cli_connect_names");
    let (_, socket) = crate::support::cluster();
    let code = format!(
        "let c = connect(#{{ host: \"{}\", port: {}, user: \"admin\", dbname: \"{}\" }}); \
         query_one(\"SELECT current_database() AS d\").d",
        socket.display(),
        dsqlsh::local::SOCKET_PORT,
        db.name
    );
    let out = dsqlsh().args(["eval", &code]).run();
    assert_eq!(out.ok(), format!("{}\n", db.name));
    // A handle prints as what it connects to, in eval's output and in JSON alike.
    let out = dsqlsh()
        .args(db.flags())
        .args(["eval", "let c = connect(); print(c); [c]"])
        .run();
    let label = format!(
        "Connection(PostgreSQL socket `{}` database `{}` as `admin`)",
        socket.display(),
        db.name
    );
    assert_eq!(out.ok(), format!("{label}\n[\n  \"{label}\"\n]\n"));
    let out = dsqlsh().args(["eval", "connect(#{ hots: 1 })"]).run();
    assert_eq!(out.code, 1);
    assert_eq!(
        out.first_err_line(),
        "error: connect: unknown option `hots` (known: endpoint, port, user, database, region, \
         profile, url, local, local_dir, ssl_root_cert, connect_addr, pool_max, max_lifetime, \
         token_expires_in; `host` and `dbname` also work)"
    );
}

/// `connect()` reuses an open pool only for the very same connection settings: a URL that
/// differs in its startup options (or password, or TLS mode) gets a pool of its own.
pub fn pools_are_reused_only_for_identical_settings() {
    let db = TestDb::new("cli_pool_identity");
    let other = format!("{}&options=-csearch_path%3Dother", db.url());
    let code = format!(
        r#"let a = connect(); let b = connect(); let c = connect(#{{ url: "{other}" }});
           let pid = |h| h.query_one("SELECT pg_backend_pid() AS p").p;
           `${{pid.call(a) == pid.call(b)}} ${{c.query_one("SHOW search_path").search_path}} ${{a.query_one("SHOW search_path").search_path}}`"#
    );
    let out = dsqlsh().args(db.flags()).args(["eval", &code]).run();
    assert_eq!(out.ok(), "true other \"$user\", public\n");
    // The application name is dsqlsh unless the URL names one.
    let named = format!("{}&application_name=nightly-report", db.url());
    let code = format!(
        r#"`${{query_one("SHOW application_name").application_name}} ${{connect(#{{ url: "{named}" }}).query_one("SHOW application_name").application_name}}`"#
    );
    let out = dsqlsh().args(db.flags()).args(["eval", &code]).run();
    assert_eq!(out.ok(), "dsqlsh nightly-report\n");
}
