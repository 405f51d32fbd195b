//! The REPL as people use it: typed into a pseudo-terminal (rexpect plays the user: keys,
//! Tab, arrows, Ctrl-C, Ctrl-D), and the same entries piped in, compared byte for byte.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rexpect::process::WaitStatus;
use rexpect::reader::Options;
use rexpect::session::PtySession;

use crate::support::{bin, cluster, dsqlsh, empty_dir, TestDb};

const PROMPT: &str = "dsqlsh> ";
const CONTINUATION: &str = "   ...> ";

/// The REPL in a pseudo-terminal, with the same clean environment as `support::dsqlsh` and
/// `home` as `$HOME`. Every wait has a generous timeout; the process is killed when the
/// session drops.
fn spawn(db: &TestDb, home: &Path, args: &[&str]) -> PtySession {
    let mut cmd = Command::new(bin());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TERM", "xterm")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .args(db.flags())
        .arg("repl")
        .args(args)
        .current_dir(empty_dir());
    let options = Options::new()
        .timeout_ms(Some(60_000))
        .strip_ansi_escape_codes(true);
    let mut pty =
        rexpect::session::spawn_with_options(cmd, options).expect("start dsqlsh in a pty");
    pty.process_mut().set_kill_timeout(Some(5_000));
    pty.exp_string(PROMPT).expect("first prompt");
    pty
}

/// The REPL in a pseudo-terminal with its history in `history`.
fn terminal(db: &TestDb, history: &Path) -> PtySession {
    let history = history.to_str().expect("a UTF-8 temp path");
    spawn(db, &std::env::temp_dir(), &["--history-file", history])
}

/// Type `keys` followed by Enter (a terminal sends `\r`).
fn enter(pty: &mut PtySession, keys: &str) {
    pty.send(keys).unwrap();
    pty.send("\r").unwrap();
    pty.flush().unwrap();
}

/// Wait for `text` in the output, failing with what was seen instead.
#[track_caller]
fn expect(pty: &mut PtySession, text: &str) {
    if let Err(e) = pty.exp_string(text) {
        panic!("waiting for {text:?}: {e}");
    }
}

/// Ctrl-D at an empty prompt ends the shell with status 0.
#[track_caller]
fn quit_with_ctrl_d(mut pty: PtySession) {
    pty.send_control('d').unwrap();
    pty.flush().unwrap();
    match pty.process().wait().unwrap() {
        WaitStatus::Exited(_, code) => assert_eq!(code, 0),
        other => panic!("dsqlsh ended with {other:?}"),
    }
}

/// Entries of every kind, typed: a multi-line `if` (the parser asks for more lines, shown with
/// the continuation prompt), a variable and a function kept across entries, `\SELECT` printed
/// in column order with a `;` inside a string, and a caret error that does not end the session.
pub fn typed_entries_keep_their_state() {
    let db = TestDb::new("repl_typed");
    let dir = tempfile::tempdir().unwrap();
    let mut pty = terminal(&db, &dir.path().join("history"));
    enter(&mut pty, "let n = 5;");
    expect(&mut pty, PROMPT);
    enter(&mut pty, "if n > 3 {");
    expect(&mut pty, CONTINUATION);
    enter(&mut pty, "  print(`big ${n}`);");
    expect(&mut pty, CONTINUATION);
    enter(&mut pty, "}");
    expect(&mut pty, "\r\nbig 5\r\n");
    expect(&mut pty, PROMPT);
    enter(&mut pty, "fn twice(x) { x * 2 }");
    expect(&mut pty, PROMPT);
    enter(&mut pty, "twice(n) + 1");
    expect(&mut pty, "\r\n11\r\n");
    expect(&mut pty, PROMPT);
    enter(&mut pty, r"\SELECT 2 AS b, 'x;y' AS a, 1 AS c;");
    expect(
        &mut pty,
        "\r\n b |  a  | c\r\n---+-----+---\r\n 2 | x;y | 1\r\n(1 row)\r\n",
    );
    expect(&mut pty, PROMPT);
    enter(&mut pty, "let bad = n +* 2;");
    expect(
        &mut pty,
        "error: syntax error: Unexpected '*'\r\n  --> <repl>:1:14\r\n   |\r\n 1 | let bad = n +* 2;\r\n   |              ^\r\n",
    );
    expect(&mut pty, PROMPT);
    enter(&mut pty, "twice(n)");
    expect(&mut pty, "\r\n10\r\n");
    expect(&mut pty, PROMPT);
    quit_with_ctrl_d(pty);
}

/// Tab completes a registered function name: `que` becomes `query`, which then runs.
pub fn tab_completes_function_names() {
    let db = TestDb::new("repl_tab");
    let dir = tempfile::tempdir().unwrap();
    let mut pty = terminal(&db, &dir.path().join("history"));
    pty.send("que\t").unwrap();
    pty.flush().unwrap();
    expect(&mut pty, "query");
    enter(&mut pty, "(\"SELECT 41 + 1 AS n\")[0].n");
    expect(&mut pty, "\r\n42\r\n");
    expect(&mut pty, PROMPT);
    let history = std::fs::read_to_string(dir.path().join("history")).unwrap();
    assert_eq!(history, "#V2\nquery(\"SELECT 41 + 1 AS n\")[0].n\n");
    quit_with_ctrl_d(pty);
}

/// Ctrl-C while `pg_sleep(30)` runs: back at the prompt within 2 s, the statement cancelled on
/// the server, and the next query works in the same session.
pub fn ctrl_c_cancels_the_running_query() {
    let db = TestDb::new("repl_ctrl_c");
    let dir = tempfile::tempdir().unwrap();
    let mut pty = terminal(&db, &dir.path().join("history"));
    enter(&mut pty, "let before = 7;");
    expect(&mut pty, PROMPT);
    enter(&mut pty, "query(\"SELECT pg_sleep(30)\")");
    wait_for_sleepers(&db, 1);
    let pressed = Instant::now();
    pty.send_control('c').unwrap();
    pty.flush().unwrap();
    expect(&mut pty, "interrupted\r\n");
    expect(&mut pty, PROMPT);
    let waited = pressed.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "Ctrl-C took {waited:?} to return to the prompt"
    );
    wait_for_sleepers(&db, 0);
    enter(&mut pty, "query_one(\"SELECT 6 * 7 AS n\").n + before");
    expect(&mut pty, "\r\n49\r\n");
    expect(&mut pty, PROMPT);
    // Ctrl-C at the prompt drops the half-typed line; the shell stays.
    pty.send("this is not rhai").unwrap();
    pty.flush().unwrap();
    expect(&mut pty, "this is not rhai");
    pty.send_control('c').unwrap();
    pty.flush().unwrap();
    expect(&mut pty, PROMPT);
    enter(&mut pty, "before");
    expect(&mut pty, "\r\n7\r\n");
    expect(&mut pty, PROMPT);
    // Ctrl-C during a load run stops it with its report; that entry's outcome (130 for a
    // script) does not become the exit status of the shell, which still ends with 0.
    enter(
        &mut pty,
        "let r = stress(#{ users: 100000000, concurrency: 2, progress: false }); r.interrupted",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.scalar("SELECT count(*) > 0 FROM pg_tables WHERE tablename = 'users'") != "t"
        || db.scalar("SELECT count(*) > 0 FROM users") != "t"
    {
        assert!(Instant::now() < deadline, "stress never inserted a row");
        std::thread::sleep(Duration::from_millis(50));
    }
    pty.send_control('c').unwrap();
    pty.flush().unwrap();
    expect(&mut pty, "\r\ntrue\r\n");
    expect(&mut pty, PROMPT);
    quit_with_ctrl_d(pty);
}

/// Wait (up to 20 s) until `want` sessions of this test's database run `pg_sleep`.
#[track_caller]
fn wait_for_sleepers(db: &TestDb, want: usize) {
    let sql = format!(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = '{}' AND state = 'active' \
         AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()",
        db.name
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n: usize = db.scalar(&sql).parse().unwrap();
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} pg_sleep statements running, expected {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// History is saved after every entry and recalled after a restart: Up arrow and Ctrl-R.
pub fn history_survives_a_restart() {
    let db = TestDb::new("repl_history");
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("state").join("history");
    let mut pty = terminal(&db, &history);
    enter(&mut pty, "if true {");
    expect(&mut pty, CONTINUATION);
    enter(&mut pty, "  print(\"block \" + 1);");
    expect(&mut pty, CONTINUATION);
    enter(&mut pty, "}");
    expect(&mut pty, "\r\nblock 1\r\n");
    expect(&mut pty, PROMPT);
    enter(&mut pty, "let marker = 4242;");
    expect(&mut pty, PROMPT);
    enter(&mut pty, ".quit");
    match pty.process().wait().unwrap() {
        WaitStatus::Exited(_, code) => assert_eq!(code, 0),
        other => panic!("dsqlsh ended with {other:?}"),
    }
    // A multi-line entry is one history entry. The continuation indent is stored with it, so
    // a recalled entry shows its continuation prompts again.
    assert_eq!(
        std::fs::read_to_string(&history).unwrap(),
        "#V2\nif true {\\n          print(\"block \" + 1);\\n        }\nlet marker = 4242;\n.quit\n"
    );

    let mut pty = terminal(&db, &history);
    // Up, Up: `.quit`, then the `let`.
    pty.send("\x1b[A\x1b[A").unwrap();
    pty.flush().unwrap();
    expect(&mut pty, "let marker = 4242;");
    enter(&mut pty, "");
    expect(&mut pty, PROMPT);
    enter(&mut pty, "marker + 1");
    expect(&mut pty, "\r\n4243\r\n");
    expect(&mut pty, PROMPT);
    // Ctrl-R finds the multi-line entry by a fragment, and Enter runs it.
    pty.send_control('r').unwrap();
    pty.send("block").unwrap();
    pty.flush().unwrap();
    expect(&mut pty, "print(\"block \" + 1);");
    enter(&mut pty, "");
    expect(&mut pty, "\r\nblock 1\r\n");
    expect(&mut pty, PROMPT);
    quit_with_ctrl_d(pty);
}

/// Without `--history-file` the history lives in the state directory; `--no-history` writes
/// nothing at all.
pub fn history_defaults_to_the_state_directory() {
    let db = TestDb::new("repl_history_default");
    let home = tempfile::tempdir().unwrap();
    let mut pty = spawn(&db, home.path(), &[]);
    enter(&mut pty, "40 + 2");
    expect(&mut pty, "\r\n42\r\n");
    expect(&mut pty, PROMPT);
    quit_with_ctrl_d(pty);
    let saved = home.path().join(".local/state/dsqlsh/history");
    assert_eq!(std::fs::read_to_string(saved).unwrap(), "#V2\n40 + 2\n");

    let home = tempfile::tempdir().unwrap();
    let mut pty = spawn(&db, home.path(), &["--no-history"]);
    enter(&mut pty, "1 + 1");
    expect(&mut pty, "\r\n2\r\n");
    expect(&mut pty, PROMPT);
    quit_with_ctrl_d(pty);
    assert_eq!(std::fs::read_dir(home.path()).unwrap().count(), 0);
}

/// Run the REPL on piped stdin in the test's database.
fn piped(db: &TestDb, input: &str) -> crate::support::Output {
    dsqlsh().args(db.flags()).arg("repl").stdin(input).run()
}

/// psql's backslash commands, typed out of habit, are answered at once with what to do in
/// dsqlsh (not sent to the server, not left waiting for a `;`); SQL words like DO still run.
pub fn psql_commands_say_what_to_use() {
    let db = TestDb::new("repl_psql_habits");
    let out = piped(
        &db,
        "\\dt\n\\q\n\\do $$ BEGIN END $$;\n\\SELECT 1 AS one;\n",
    );
    assert_eq!(out.stdout, "DO\n one\n-----\n   1\n(1 row)\n\n");
    assert_eq!(
        out.stderr,
        "error: `\\dt` is a psql command; a line starting with `\\` is SQL in dsqlsh: query the \
         catalog instead, e.g. `\\SELECT table_name FROM information_schema.tables WHERE \
         table_schema = 'public';`, or press Tab for table and column names\n\
         error: `\\q` is a psql command; a line starting with `\\` is SQL in dsqlsh: leave with \
         `.quit` or Ctrl-D\n"
    );
    assert_eq!(out.code, 1);
}

/// `.connect url=...` is a KEY=VALUE pair like the others, and a numeric-looking `dbname`
/// stays a name.
pub fn connect_meta_takes_url_and_names() {
    let db = TestDb::new("repl_connect_kv");
    let input = format!(
        ".connect url={}\n\\SELECT current_database() AS d;\n.connect dbname=12345\n",
        db.url()
    );
    let out = piped(&db, &input);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "connected to PostgreSQL socket `{}` database `{}` as `admin`",
            crate::support::cluster().1.display(),
            db.name
        )
    );
    assert_eq!(lines[3], format!(" {}", db.name), "{}", out.stdout);
    assert!(
        out.stderr.contains("database \"12345\" does not exist"),
        "{}",
        out.stderr
    );
}

/// The typed entries again, piped: no prompt or escape sequence reaches stdout.
pub fn piped_entries_print_results_only() {
    let db = TestDb::new("repl_piped");
    let input = "let n = 5;\n\
                 if n > 3 {\n  print(`big ${n}`);\n}\n\
                 fn twice(x) { x * 2 }\n\
                 twice(n) + 1\n\
                 \\SELECT 2 AS b, 'x;y' AS a, 1 AS c;\n\
                 query(\"SELECT 41 + 1 AS n\")[0].n\n\
                 .sql\n\
                 SELECT 'a;b' AS semi,\n  $$ $x$ ; $$ AS dollar -- ;\n  , 3 AS n;\n\
                 .format csv\n\
                 SELECT 1 AS x, 'say \"hi\"' AS y; SELECT 2 AS x;\n\
                 .format json\n\
                 CREATE TABLE t (id int, name text);\n\
                 INSERT INTO t VALUES (2, 'b'), (1, NULL);\n\
                 SELECT name, id FROM t ORDER BY id;\n\
                 .rhai\n\
                 twice(21)\n";
    let out = piped(&db, input);
    assert_eq!(
        out.ok(),
        "big 5\n\
         11\n \
         b |  a  | c\n\
         ---+-----+---\n \
         2 | x;y | 1\n\
         (1 row)\n\
         \n\
         42\n \
         semi | dollar  | n\n\
         ------+---------+---\n \
         a;b  |  $x$ ;  | 3\n\
         (1 row)\n\
         \n\
         x,y\n\
         1,\"say \"\"hi\"\"\"\n\
         x\n\
         2\n\
         CREATE TABLE\n\
         INSERT 0 2\n\
         [{\"name\":null,\"id\":1},{\"name\":\"b\",\"id\":2}]\n\
         42\n"
    );
    assert_eq!(out.stderr, "");
}

/// A failed entry prints its caret and the session goes on; the exit status reports it.
/// `.quit` stops reading, and an entry left open at the end of input is a syntax error.
pub fn piped_errors_continue_and_set_the_status() {
    let db = TestDb::new("repl_piped_errors");
    let out = piped(
        &db,
        "let a = 1;\nlet b = a +* 2;\n\\SELECT nosuch;\nfn f(x) {\n  x / 0\n}\na + 1\nf(a)\n.nosuch\na + 2\nif a {\n",
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "2\n3\n");
    assert_eq!(
        out.stderr,
        "error: syntax error: Unexpected '*'\n  --> <stdin>:2:12\n   |\n 2 | let b = a +* 2;\n   |            ^\n\
         error: database error 42703: column \"nosuch\" does not exist\n  --> <stdin>:3\n\
         error: Division by zero: 1 / 0 (in `f` called at line 8)\n  --> <stdin>:5:5\n   |\n 5 |   x / 0\n   |     ^\n\
         error: unknown command `.nosuch` (`.help` lists the commands)\n\
         error: input ended in the middle of an entry (it starts `if a {`)\n"
    );
    let out = piped(&db, "1 + 1\n.quit\n2 + 2\n");
    assert_eq!((out.ok(), out.code), ("2\n", 0));
}

/// SIGINT (what Ctrl-C sends) during a piped entry cancels it; the next entry runs on the same
/// session, and the status is 1 because an entry did not finish.
pub fn piped_interrupt_cancels_one_entry() {
    let db = TestDb::new("repl_piped_interrupt");
    let mut child = Command::new(bin())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .args(db.flags())
        .arg("repl")
        .current_dir(empty_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(
        stdin,
        "let pid = query_one(\"SELECT pg_backend_pid() AS p\").p;"
    )
    .unwrap();
    writeln!(stdin, "query(\"SELECT pg_sleep(30)\")").unwrap();
    stdin.flush().unwrap();
    wait_for_sleepers(&db, 1);
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    wait_for_sleepers(&db, 0);
    writeln!(
        stdin,
        "query_one(\"SELECT pg_backend_pid() AS p\").p != pid"
    )
    .unwrap();
    writeln!(stdin, "query_one(\"SELECT 6 * 7 AS n\").n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    // The interrupted connection was closed (it cannot be reused mid-statement); the session
    // took a fresh one from the pool.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "true\n42\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "interrupted\n");
    assert_eq!(out.status.code(), Some(1));
}

/// `.run` runs on the REPL's session: the pool the script opened is the one `.pool` shows, and
/// the script and the next entry use the same server connection.
pub fn run_shares_the_pool_and_session() {
    let db = TestDb::new("repl_pool");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pid.rhai"),
        "print(`${ARGS.label} ${query_one(\"SELECT pg_backend_pid() AS p\").p}`);\n",
    )
    .unwrap();
    let out = dsqlsh()
        .args(db.flags())
        .arg("repl")
        .cwd(dir.path())
        .stdin(
            ".pool\n.run pid label=script\n.pool\n\
             print(`repl ${query_one(\"SELECT pg_backend_pid() AS p\").p}`);\n\
             .run repopulate\n.pool\n",
        )
        .run();
    assert_eq!(out.code, 1, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let (_, socket) = cluster();
    let label = format!(
        "PostgreSQL socket `{}` database `{}` as `admin`",
        socket.display(),
        db.name
    );
    let pool_line = format!("size 1, idle 0, in use 1, max 10 ({label})");
    assert_eq!(lines.len(), 5, "{}", out.stdout);
    assert_eq!(
        lines[0],
        "no database opened yet (the first query opens the pool)"
    );
    let script_pid = lines[1].strip_prefix("script ").expect(lines[1]);
    assert_eq!(lines[2], pool_line);
    assert_eq!(lines[3], format!("repl {script_pid}"));
    assert_eq!(lines[4], pool_line);
    // A bundled script's exit(1) ends that script, not the shell.
    assert_eq!(
        out.stderr,
        "repopulate drops the users table: pass --yes (or yes=true) to confirm\n\
         repopulate.rhai (bundled) exited with status 1\n"
    );
}
