//! `transaction()`: commit, rollback, aborted transactions, conflict retries, nesting of calls.

use crate::support::{dsqlsh, repo, TestDb};

pub fn commit_rollback_and_caught_errors() {
    let db = TestDb::new("tx_basic");
    db.sql("CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL); INSERT INTO acct VALUES (1, 100), (2, 0)");
    let code = r#"
        let moved = transaction(|| {
            execute("UPDATE acct SET balance = balance - 10 WHERE id = 1");
            execute("UPDATE acct SET balance = balance + 10 WHERE id = 2");
            10
        });
        print(`moved ${moved}`);
        try {
            transaction(|| { execute("UPDATE acct SET balance = 0"); throw "changed my mind"; });
        } catch (e) { print(`thrown: ${e}`); }
        try {
            transaction(|| { try { query("SELECT 1/0"); } catch {} "looks fine" });
        } catch (e) { print(`${e.sqlstate}: ${e.message}`); }
        try {
            transaction(|| transaction(|| 1));
        } catch (e) { print(e); }
        print(to_json(query("SELECT id, balance FROM acct ORDER BY id")));
        print(query_one("SHOW transaction_isolation").transaction_isolation);
        transaction(|| print(query_one("SHOW transaction_isolation").transaction_isolation));
    "#;
    let out = dsqlsh().args(db.flags()).args(["eval", code]).run();
    assert_eq!(
        out.ok(),
        "moved 10\n\
         thrown: changed my mind\n\
         22012: the transaction was aborted by an earlier error that the script caught: division by zero\n\
         transaction: a transaction is already open; transactions do not nest (DSQL has no SAVEPOINT)\n\
         [{\"id\":1,\"balance\":90},{\"id\":2,\"balance\":10}]\n\
         read committed\n\
         repeatable read\n"
    );
}

/// A transaction on a connection handle: plain `query` inside runs on that handle's
/// transaction; `transaction(a, || a.query(..))` works too; the method form whose closure uses
/// the handle cannot (Rhai locks `a` during the call) and says what to write instead.
pub fn transaction_on_a_handle() {
    let db = TestDb::new("tx_handle");
    let code = r#"
        let a = connect();
        let same = a.transaction(|| query_one("SELECT txid_current() AS t").t == query_one("SELECT txid_current() AS t").t);
        let level = transaction(a, || a.query_one("SHOW transaction_isolation").transaction_isolation);
        `${same} ${level}`
    "#;
    let out = dsqlsh().args(db.flags()).args(["eval", code]).run();
    assert_eq!(out.ok(), "true repeatable read\n");
    let code = "let a = connect();\nlet r = a.transaction(|| a.query(\"SELECT 1\"));\n";
    let out = dsqlsh().args(db.flags()).args(["eval", code]).run();
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "error: a variable is in use by the call it was passed to (argument #1 of function \
         'transaction'): a closure cannot use `x` while `x.f(...)` runs it; write \
         `f(x, || ...)` instead, and inside `transaction` call `query`/`execute` without a \
         handle (they run on its connection)\n  --> <eval>\n"
    );
}

/// A transaction the script opened with its own BEGIN is not silently committed by a
/// transaction() inside it (on DSQL the inner BEGIN would only warn): it is refused until the
/// script ends its own.
pub fn transaction_refuses_to_nest_in_a_manual_one() {
    let db = TestDb::new("tx_manual");
    db.sql("CREATE TABLE m (v int)");
    let code = r#"
        execute("BEGIN");
        execute("INSERT INTO m VALUES (1)");
        try { transaction(|| 1); } catch (e) { print(`${e.sqlstate}: ${e.message}`); }
        execute("ROLLBACK");
        print(transaction(|| { execute("INSERT INTO m VALUES (2)"); "inner" }));
        query_one("SELECT string_agg(v::text, ',') AS v FROM m").v
    "#;
    let out = dsqlsh().args(db.flags()).args(["eval", code]).run();
    assert_eq!(
        out.ok(),
        "25001: transaction: a transaction opened with BEGIN is still open on this connection; \
         end it with COMMIT or ROLLBACK first (transactions do not nest)\ninner\n2\n"
    );
    // Comments before BEGIN and COMMIT AND CHAIN still open one; a COMMIT that fails (a
    // deferred unique check) still ends it, so transaction() works again afterwards.
    db.sql("CREATE TABLE d (v int UNIQUE DEFERRABLE INITIALLY DEFERRED)");
    let code = r#"
        let refused = |label| {
            try { transaction(|| 1); print(`${label}: ran`); } catch (e) { print(`${label}: ${e.sqlstate}`); }
        };
        execute("/* why not */ BEGIN"); refused.call("comment"); execute("ROLLBACK");
        execute("-- line\nBEGIN; COMMIT AND CHAIN"); refused.call("chain"); execute("ROLLBACK");
        execute("BEGIN"); execute("INSERT INTO d VALUES (1), (1)");
        try { execute("COMMIT"); } catch (e) { print(`commit: ${e.sqlstate}`); }
        refused.call("after failed commit");
        query_one("SELECT count(*) AS n FROM m").n
    "#;
    let out = dsqlsh().args(db.flags()).args(["eval", code]).run();
    assert_eq!(
        out.ok(),
        "comment: 25001\nchain: 25001\ncommit: 23505\nafter failed commit: ran\n1\n"
    );
}

/// The connection of a transaction opened with BEGIN dies: what follows is refused until the
/// script ends that transaction (psql would let each statement commit on its own), its COMMIT
/// says nothing was committed, its ROLLBACK ends it, and then statements run again.
pub fn a_lost_manual_transaction_is_not_continued() {
    let db = TestDb::new("tx_manual_lost");
    db.sql("CREATE TABLE ml (v int)");
    let code = r#"
        let kill = || { try { execute("SELECT pg_terminate_backend(pg_backend_pid())"); } catch (e) { print(`killed: ${e.sqlstate}`); } };
        execute("BEGIN"); execute("INSERT INTO ml VALUES (1)"); kill.call();
        try { execute("INSERT INTO ml VALUES (2)"); } catch (e) { print(`refused: ${e.sqlstate}`); }
        execute("ROLLBACK");
        execute("INSERT INTO ml VALUES (3)");
        execute("BEGIN"); execute("INSERT INTO ml VALUES (4)"); kill.call();
        try { execute("COMMIT"); } catch (e) { print(`commit: ${e.message}`); }
        query_one("SELECT string_agg(v::text, ',') AS v FROM ml").v
    "#;
    let out = dsqlsh().args(db.flags()).args(["eval", code]).run();
    assert_eq!(
        out.ok(),
        "killed: 57P01\nrefused: 08006\nkilled: 57P01\ncommit: the connection was lost inside \
         the transaction, so it was not committed\n3\n"
    );
}

/// Real serialization failures (40001) from REPEATABLE READ on a hot row: every increment
/// lands exactly once, and some of them needed retries.
pub fn conflicts_are_retried() {
    let db = TestDb::new("tx_conflict");
    db.sql("CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL); INSERT INTO counter VALUES (1, 0)");
    let code = r#"
        let attempts = 0;
        for i in 0..25 {
            transaction(#{ retries: 200 }, || {
                attempts += 1;
                let n = query_one("SELECT n FROM counter WHERE id = 1").n;
                query("SELECT pg_sleep(0.005)");
                execute("UPDATE counter SET n = $1 WHERE id = 1", [n + 1]);
            });
        }
        attempts
    "#;
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let flags = db.flags();
            std::thread::spawn(move || dsqlsh().args(flags).args(["eval", code]).run())
        })
        .collect();
    let attempts: u64 = workers
        .into_iter()
        .map(|w| w.join().unwrap().ok().trim().parse::<u64>().unwrap())
        .sum();
    assert_eq!(db.scalar("SELECT n FROM counter"), "100");
    assert!(
        attempts > 100,
        "4 writers on one row must have conflicted (attempts {attempts})"
    );
    let _ = repo();
}

pub fn nested_calls_in_every_mode() {
    let db = TestDb::new("tx_nested");
    let code = r#"
        let a = query("SELECT g FROM generate_series(1, 3) AS g").map(|r| query_one("SELECT $1 * 10 AS v", [r.g]).v);
        let b = transaction(|| query("SELECT g FROM generate_series(1, 2) AS g").map(|r| execute("SELECT $1", [r.g])));
        fn lookup(n) { query_one("SELECT $1 + 1 AS v", [n]).v }
        let c = [1, 2].map(|n| lookup(n));
        `${a} ${b} ${c}`
    "#;
    let expected = "[10, 20, 30] [1, 1] [2, 3]\n";
    assert_eq!(
        dsqlsh().args(db.flags()).args(["eval", code]).run().ok(),
        expected
    );
    let dir = tempfile::tempdir().unwrap();
    let script = code.replace("`${a} ${b} ${c}`", "print(`${a} ${b} ${c}`);");
    std::fs::write(dir.path().join("nested.rhai"), script).unwrap();
    assert_eq!(
        dsqlsh()
            .args(db.flags())
            .args(["run", "nested.rhai"])
            .cwd(dir.path())
            .run()
            .ok(),
        expected
    );
    let repl = dsqlsh()
        .args(db.flags())
        .arg("repl")
        .stdin(format!("{}\n", code.trim().replace('\n', " ")))
        .run();
    assert_eq!(repl.ok(), expected);
}

/// The connection dies inside a transaction: nothing after that may run (it would commit on
/// its own on a new connection), the transaction reports "not committed", and it was not.
pub fn lost_connection_ends_the_transaction() {
    let db = TestDb::new("tx_lost");
    db.sql("CREATE TABLE txt (v text)");
    let code = r#"
        try {
            transaction(#{ retries: 0 }, || {
                execute("INSERT INTO txt VALUES ('A')");
                try { execute("SELECT pg_terminate_backend(pg_backend_pid())"); } catch (e) { print(`killed: ${e.sqlstate}`); }
                try { execute("INSERT INTO txt VALUES ('B')"); } catch (e) { print(`refused: ${e.sqlstate}`); }
                execute("INSERT INTO txt VALUES ('C')");
            });
        } catch (e) {
            print(`transaction: ${e.sqlstate}`);
        }
        query_one("SELECT count(*) AS n FROM txt").n
    "#;
    let out = dsqlsh().args(db.flags()).args(["eval", code]).run();
    assert_eq!(
        out.ok(),
        "killed: 57P01\nrefused: 08006\ntransaction: 08006\n0\n"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM txt"), "0");
    // The closure catches the loss and returns normally: the transaction still fails (nothing
    // was committed), and the statements after it run on a new connection.
    let code = r#"
        try {
            transaction(#{ retries: 0 }, || {
                execute("INSERT INTO txt VALUES ('A')");
                try { execute("SELECT pg_terminate_backend(pg_backend_pid())"); } catch (e) {}
                "done"
            });
        } catch (e) {
            print(`transaction: ${e.sqlstate}: ${e.message}`);
        }
        query_one("SELECT count(*) AS n FROM txt").n
    "#;
    let out = dsqlsh().args(db.flags()).args(["eval", code]).run();
    assert_eq!(
        out.ok(),
        "transaction: 08006: the transaction was aborted by an earlier error that the script \
         caught: the connection was lost inside the transaction; it was not committed\n0\n"
    );
    assert_eq!(
        out.stderr,
        "dsqlsh: note: the connection was lost; the next statement will use a new one; settings \
         made with SET and temporary tables of the old one are gone\n"
    );
}
