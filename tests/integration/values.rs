//! PRODUCT.md §2 value mapping, both directions, with exact expected values.

use crate::support::{dsqlsh, repo, TestDb};

fn script() -> String {
    repo()
        .join("tests/integration/scripts/values.rhai")
        .display()
        .to_string()
}

const EXPECTED: &str = include_str!("scripts/values.expected");

pub fn round_trip_in_run() {
    let db = TestDb::new("values_run");
    let out = dsqlsh().args(db.flags()).arg("run").arg(script()).run();
    assert_eq!(out.ok(), EXPECTED);
    // Spot checks that the pinned file says what the contract says.
    for line in [
        "int8: i64 5000000000",
        "numeric: string \"0.004\"",
        "numeric_40_digits: string \"1234567890123456789012345678901234567890\"",
        "float8_nan: f64 \"NaN\"",
        "int_array: array [1,null,3]",
        "uuid_null: () null",
        "timestamptz: string \"2025-01-15T10:00:00.500+00:00\"",
        "bind_string_uuid: string \"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"",
    ] {
        assert!(EXPECTED.lines().any(|l| l == line), "missing `{line}`");
    }
}

pub fn round_trip_in_eval() {
    let db = TestDb::new("values_eval");
    let code = std::fs::read_to_string(script()).unwrap();
    let out = dsqlsh()
        .args(db.flags())
        .arg("eval")
        .arg(code.clone())
        .run();
    assert_eq!(out.ok(), EXPECTED);
    // `-e` is the same as `eval`, on the --local path this time.
    let out = dsqlsh().args(db.local_flags()).arg("-e").arg(code).run();
    assert_eq!(out.ok(), EXPECTED);
}

/// Strings bound to typed columns without casts: the server's inferred type decides.
pub fn binding_strings_to_typed_parameters() {
    let db = TestDb::new("values_typed");
    db.sql("CREATE TABLE typed (id uuid PRIMARY KEY, at timestamptz, amount numeric(10,2), day date, n int4, tags text[])");
    let code = r#"
        execute("INSERT INTO typed VALUES ($1, $2, $3, $4, $5, $6)",
                ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "2025-01-15T12:00:00Z", "12.5", "2025-01-15", 7, ["a", "b"]]);
        let r = query_one("SELECT * FROM typed WHERE id = $1", ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]);
        print(to_json(r));
        try {
            execute("INSERT INTO typed (id, n) VALUES ($1, $2)", [uuid(), 70000000000]);
        } catch (e) {
            print(e.sqlstate + " " + e.message);
        }
        try {
            execute("INSERT INTO typed (id, n) VALUES ($1, $2)", [uuid(), "forty"]);
        } catch (e) {
            print(e.sqlstate + " " + e.message);
        }
        try {
            execute("INSERT INTO typed (id) VALUES ($1)", ["not-a-uuid"]);
        } catch (e) {
            print(e.sqlstate + " " + e.message);
        }
    "#;
    let out = dsqlsh().args(db.flags()).arg("eval").arg(code).run();
    assert_eq!(
        out.ok(),
        "{\"id\":\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\",\"at\":\"2025-01-15T12:00:00+00:00\",\"amount\":\"12.50\",\"day\":\"2025-01-15\",\"n\":7,\"tags\":[\"a\",\"b\"]}\n\
         22003 integer out of range\n\
         22P02 invalid input syntax for type integer: \"forty\"\n\
         22P02 invalid input syntax for type uuid: \"not-a-uuid\"\n"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM typed"), "1");
}

/// Repeated column names (`SELECT 1, 2`, joins) keep every value under a distinct key.
pub fn duplicate_column_names_keep_every_value() {
    let db = TestDb::new("values_dupes");
    let out = dsqlsh()
        .args(db.flags())
        .args([
            "eval",
            "to_json(query_one(\"SELECT 1 AS id, 2 AS id, 3 AS id_2, 4\"))",
        ])
        .run();
    assert_eq!(
        out.ok(),
        "{\"id\":1,\"id_2\":2,\"id_2_2\":3,\"?column?\":4}\n"
    );
}

/// inet and cidr read exactly as the server's output function writes them (the text cast
/// would add `/32`), IPv6 compression and IPv4-compatible forms included; arrays too.
pub fn inet_and_cidr_read_as_the_server_writes_them() {
    let db = TestDb::new("values_inet");
    let inets = [
        "1.2.3.4",
        "1.2.3.4/24",
        "0.0.0.0/0",
        "255.255.255.255",
        "::1",
        "::",
        "2001:db8::1",
        "2001:db8:0:0:1:0:0:1",
        "2001:db8::/32",
        "fe80::1:2:3:4/64",
        "::ffff:1.2.3.4",
        "::1.2.3.4",
        "1:0:0:2::3",
    ];
    for (ty, values) in [
        ("inet", &inets[..]),
        (
            "cidr",
            &["10.0.0.0/8", "10.1.2.3/32", "2001:db8::/32", "::/0"][..],
        ),
    ] {
        let list = values
            .iter()
            .map(|v| format!("'{v}'::{ty}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql =
            format!("SELECT v FROM unnest(ARRAY[{list}]) WITH ORDINALITY AS t(v, i) ORDER BY i");
        let expected: Vec<String> = db.sql(&sql).into_iter().map(|r| r["v"].clone()).collect();
        let out = dsqlsh()
            .args(db.flags())
            .args(["eval", &format!("to_json(query(\"{sql}\").map(|r| r.v))")])
            .run();
        let got: Vec<String> = serde_json::from_str(out.ok()).expect("a JSON array");
        assert_eq!(got, expected, "{ty}");
    }
    let out = dsqlsh()
        .args(db.flags())
        .args([
            "eval",
            "to_json(query_one(\"SELECT ARRAY['1.2.3.4'::inet, NULL, '::1/64'] AS a\").a)",
        ])
        .run();
    assert_eq!(out.ok(), "[\"1.2.3.4\",null,\"::1/64\"]\n");
}

/// Integers bind the way SQL types literals (integer when they fit, else bigint), so functions
/// and operators without a bigint form work; arrays reach array types dsqlsh has no encoder for
/// (inet[], an enum's array) through the server's parser; a `"char"` takes a multi-byte string.
pub fn parameters_bind_like_literals() {
    let db = TestDb::new("values_bind_literals");
    db.sql("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')");
    let code = r#"
        print(query_one("SELECT current_date + $1 - current_date AS d", [7]).d);
        print(query_one("SELECT left($1, $2) || lpad($3, $4, '0') AS s", ["hello", 2, "7", 3]).s);
        print(query_one("SELECT make_date($1, $2, $3) AS d", [2026, 12, 4]).d);
        print(query_one("SELECT repeat($1, $2) || chr($3) AS s", ["ab", 2, 33]).s);
        let n = query_one("SELECT $1 AS small, $2 AS big, $1 + $2 AS sum", [7, 7000000000]);
        print(`${n.small + 1} ${n.big + 1} ${n.sum}`);
        print(to_json(query_one("SELECT $1::inet[] AS ips, $2::mood[] AS moods", [["10.0.0.1", "::1"], ["ok", "happy", ()]])));
        print(query_one("SELECT $1::\"char\" AS c, $2::\"char\" = 'x' AS same", ["ab", "x"]).c);
        print(query_one("SELECT count(*) AS n FROM generate_series(1, 10) g WHERE g = ANY($1)", [[2, 3, 99]]).n);
        // Elements of types without a mapping, inside arrays and records, arrive as their text.
        print(to_json(query_one("SELECT row(1, 'ok'::mood, '[1,2)'::int4range) AS r, ARRAY[ARRAY['ok'::mood], ARRAY['sad'::mood]] AS m, '{1,-1,0}'::line AS l")));
    "#;
    let out = dsqlsh().args(db.flags()).args(["eval", code]).run();
    assert_eq!(
        out.ok(),
        "7\nhe007\n2026-12-04\nabab!\n8 7000000001 7000000007\n\
         {\"ips\":[\"10.0.0.1\",\"::1\"],\"moods\":[\"ok\",\"happy\",null]}\na\n2\n\
         {\"r\":[1,\"ok\",\"[1,2)\"],\"m\":[[\"ok\"],[\"sad\"]],\"l\":\"{1,-1,0}\"}\n"
    );
}

/// System catalogs read as psql reads them: columns without a binary output (aclitem), of a
/// pseudo-type (pg_stats' anyarray) or that sqlx cannot describe (pg_node_tree) come back as
/// text, with integers and booleans still typed.
pub fn system_catalogs_can_be_explored() {
    let db = TestDb::new("values_catalogs");
    db.sql("CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 100); ANALYZE t");
    let acl = db.scalar("SELECT nspacl::text FROM pg_namespace WHERE nspname = 'pg_catalog'");
    let code = r#"
        let ns = query_one("SELECT nspname, nspacl FROM pg_namespace WHERE nspname = 'pg_catalog'");
        print(ns.nspacl);
        let c = query_one("SELECT * FROM pg_class WHERE relname = 't'");
        print(`${c.relname} ${type_of(c.relnatts)} ${c.relnatts} ${c.relhasindex}`);
        let s = query_one("SELECT * FROM pg_stats WHERE tablename = 't'");
        print(`${s.attname} ${s.null_frac} ${s.n_distinct}`);
        print(type_of(query_one("SELECT ev_action FROM pg_rewrite LIMIT 1").ev_action));
        // A type sqlx cannot describe (a multirange) reads as text without parameters...
        print(query_one("SELECT '{[1,3), [5,7)}'::int4multirange AS m").m);
        // ... and with them, the error says to cast; a "char" reads as charout writes it.
        try { query_one("SELECT '{[1,3)}'::int4multirange AS m, $1 AS x", [1]); } catch (e) { print(e.message.contains("cast it in the query")); }
        print(to_json(query_one("SELECT $1::\"char\" AS a, $2::\"char\" AS b", ["é", ""])));
        // Inside a transaction too, and the other columns read as they would without the
        // catalog column (text results are read back into the same values).
        let cols = "ARRAY[[1, NULL]] AS a, '[0:1]={x,\"y z\"}'::text[] AS b, timestamptz '2026-12-04 02:59:05.5+01' AS t, '\\x0102'::bytea AS y, 2.5::float8 AS f";
        let plain = query_one(`SELECT ${cols}`);
        let with_acl = transaction(|| query_one(`SELECT ${cols}, relacl FROM pg_class WHERE relname = 'pg_class'`));
        with_acl.remove("relacl");
        print(to_json(plain) == to_json(with_acl));
        print(to_json(plain));
    "#;
    let out = dsqlsh().args(db.flags()).args(["eval", code]).run();
    assert_eq!(
        out.ok(),
        format!(
            "{acl}\nt i64 1 false\nv 0.0 -1.0\nstring\n{{[1,3),[5,7)}}\ntrue\n\
             {{\"a\":\"\\\\303\",\"b\":\"\"}}\ntrue\n\
             {{\"a\":[[1,null]],\"b\":[\"x\",\"y z\"],\"t\":\"2026-12-04T01:59:05.500+00:00\",\
             \"y\":\"\\\\x0102\",\"f\":2.5}}\n"
        )
    );
}
