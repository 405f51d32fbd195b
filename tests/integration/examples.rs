//! Every shipped example runs, so none can rot.

use crate::support::{dsqlsh, repo, TestDb};

pub fn every_example_runs() {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rhai") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let db = TestDb::new(&format!("ex_{name}"));
        dsqlsh()
            .args(db.flags())
            .args(["repopulate", "--yes"])
            .run()
            .ok();
        let out = dsqlsh()
            .args(db.flags())
            .arg("run")
            .arg(path.display().to_string())
            .run();
        let stdout = out.ok().to_string();
        check(&name, &stdout, &db);
        seen.push(name);
    }
    seen.sort();
    assert!(seen.len() >= 3, "at least three examples: {seen:?}");
}

fn check(name: &str, stdout: &str, db: &TestDb) {
    match name {
        "nightly_report" => {
            let v: serde_json::Value = serde_json::from_str(stdout).expect("one JSON object");
            assert_eq!(v["total_users"], 5);
            assert_eq!(v["new_users"], 5);
            assert_eq!(
                v["by_role"],
                serde_json::json!({"admin": 1, "moderator": 1, "user": 3})
            );
        }
        "domain_report" => {
            assert_eq!(
                stdout
                    .lines()
                    .nth(2)
                    .map(|l| l.starts_with(" example.com |     5 | ")),
                Some(true),
                "{stdout}"
            );
        }
        "transfer_with_retry" => {
            assert!(
                stdout.starts_with("moved 10 from 1 to 2 in 1 attempt(s)\n"),
                "{stdout}"
            );
            let balances =
                || db.scalar("SELECT string_agg(balance::text, ',' ORDER BY id) FROM accounts");
            assert_eq!(balances(), "90,110");
            // Money is never created or destroyed: a missing target account, a negative or
            // fractional amount, or a transfer to the same account fails and changes nothing.
            let example = repo().join("examples/transfer_with_retry.rhai");
            for (args, error) in [
                (&["to=9", "amount=1"][..], "no account 9"),
                (
                    &["amount=-5"][..],
                    "amount must be a positive whole number, got -5",
                ),
                (
                    &["amount=2.5"][..],
                    "amount must be a positive whole number, got 2.5",
                ),
                (
                    &["from=2", "to=2"][..],
                    "from and to are the same account (2)",
                ),
            ] {
                let out = dsqlsh()
                    .args(db.flags())
                    .arg("run")
                    .arg(example.display().to_string())
                    .args(args.iter().copied())
                    .run();
                assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
                assert!(out.stderr.contains(error), "{args:?}: {}", out.stderr);
                assert_eq!(out.stdout, "", "{args:?}");
                assert_eq!(balances(), "90,110", "{args:?}");
            }
        }
        "bench_workload" => {
            assert!(
                stdout.starts_with("400 transactions, 0 failed, "),
                "{stdout}"
            );
            assert_eq!(db.scalar("SELECT sum(views) FROM page_views"), "400");
            assert_eq!(db.scalar("SELECT count(*) FROM page_views"), "4");
        }
        other => panic!("example {other} has no check in tests/integration/examples.rs"),
    }
}
