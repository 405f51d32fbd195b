//! The Aurora DSQL path end to end, through `dsql_fixture` (a local stand-in for the DSQL front
//! door): IAM tokens per connection, verify-full TLS with SNI, the `token` command, the errors
//! that tell the user what to do, and no token or secret in anything dsqlsh prints.
//!
//! Every DSQL-path run goes through `run_dsql`, which checks its output for secrets at once and
//! keeps it for `nothing_printed_leaks_a_token_or_secret`. The `token` command, whose job is to
//! print a token, is run directly.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_async::time::{SharedTimeSource, StaticTimeSource};
use sqlx::{ConnectOptions, Connection};

use crate::dsql_fixture::{
    self as fixture, Counts, Credentials, Expect, Fixture, ParsedToken, Rejection, ACCESS_DENIED,
    ACCESS_KEY_ID, HOST, REGION, SECRET_ACCESS_KEY,
};
use crate::support::{self, dsqlsh, repo, Dsqlsh, Output, TestDb};

/// A secret that signs tokens the fixture does not accept.
const WRONG_SECRET: &str = "wRoNgSeCrEt/notTheFixtureKey+0123456789ABCDEF";
const EU_HOST: &str = "abcdefghijklmnopqrstuvwxyz.dsql.eu-west-1.on.aws";

/// Everything dsqlsh printed (stdout and stderr) in DSQL-path runs of this test binary.
static TRANSCRIPT: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn with_keys(cmd: Dsqlsh, secret: &str) -> Dsqlsh {
    cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", secret)
}

/// dsqlsh pointed at the fixture as if it were the cluster, with the test credentials.
fn through(fx: &Fixture, database: &str) -> Dsqlsh {
    with_keys(dsqlsh().args(fx.flags(database)), SECRET_ACCESS_KEY)
}

/// Run a DSQL-path command; its output must hold no secret and no token.
#[track_caller]
fn run_dsql(label: &str, cmd: Dsqlsh, fx: &Fixture) -> Output {
    let out = cmd.run();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert_clean(label, &text, &fx.passwords());
    TRANSCRIPT.lock().unwrap().push((label.to_string(), text));
    out
}

/// No secret key, no token, no token fragment.
#[track_caller]
fn assert_clean(label: &str, text: &str, tokens: &[String]) {
    for needle in [
        SECRET_ACCESS_KEY,
        WRONG_SECRET,
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "Action=DbConnect",
        "on.aws/?",
    ] {
        assert!(
            !text.contains(needle),
            "{label}: output contains `{needle}`:\n{text}"
        );
    }
    for token in tokens {
        assert!(!text.contains(token.as_str()), "{label}: a token leaked");
        if let Some(sig) = ParsedToken::parse(token)
            .ok()
            .and_then(|t| t.get("X-Amz-Signature").map(str::to_string))
        {
            assert!(!text.contains(&sig), "{label}: a token signature leaked");
        }
    }
}

/// The non-admin role of the tests (roles are cluster-wide; created once per run).
fn ensure_reporter() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        support::admin_sql(
            "postgres",
            "DO $$ BEGIN CREATE ROLE reporter LOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        );
    });
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A token made by dsqlsh's own generator with a frozen clock.
fn make_token(host: &str, secret: &str, admin: bool, at: SystemTime, expires_in: u64) -> String {
    block_on(async {
        let creds = aws_credential_types::Credentials::new(
            ACCESS_KEY_ID,
            secret,
            None,
            None,
            "dsqlsh-tests",
        );
        let sdk = SdkConfig::builder()
            .credentials_provider(SharedCredentialsProvider::new(creds))
            .time_source(SharedTimeSource::new(StaticTimeSource::new(at)))
            .region(Region::new(REGION))
            .behavior_version(BehaviorVersion::latest())
            .build();
        let spec = dsqlsh::auth::TokenSpec {
            endpoint: host.into(),
            region: REGION.into(),
            admin,
            expires_in,
            profile: None,
        };
        dsqlsh::auth::generate(&sdk, &spec)
            .await
            .unwrap()
            .expose()
            .to_string()
    })
}

/// A direct sqlx connection through the fixture with `password`; returns `current_user`.
fn direct_connect(fx: &Fixture, user: &str, password: &str) -> Result<String, sqlx::Error> {
    block_on(async {
        let options = sqlx::postgres::PgConnectOptions::new_without_pgpass()
            .host(&fx.host)
            .hostaddr(fx.addr.ip())
            .port(fx.addr.port())
            .ssl_mode(sqlx::postgres::PgSslMode::VerifyFull)
            .ssl_root_cert(fx.ca_path())
            .username(user)
            .password(password)
            .database("postgres");
        let mut conn = options.connect().await?;
        let who: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        Ok(who)
    })
}

#[track_caller]
fn assert_access_denied(result: Result<String, sqlx::Error>) {
    let err = result.expect_err("the fixture must refuse this token");
    let db = err
        .as_database_error()
        .unwrap_or_else(|| panic!("expected a server error, got {err}"));
    assert_eq!(db.code().as_deref(), Some("28P01"));
    assert_eq!(db.message(), ACCESS_DENIED);
}

fn vectors() -> Vec<serde_json::Value> {
    let path = repo().join("tests/data/dsql_token_vectors.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["vectors"].as_array().unwrap().clone()
}

// ---------------------------------------------------------------------------------------------
// The fixture itself

/// The fixture's verifier reproduces the canonical request, string to sign and signature of
/// every shared vector (both parameter orders), and refuses each single fault.
pub fn fixture_verifier_matches_every_vector() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 7);
    for v in &vectors {
        let name = v["name"].as_str().unwrap();
        let input = &v["input"];
        let output = &v["output"];
        let creds = Credentials {
            access_key_id: input["access_key_id"].as_str().unwrap().into(),
            secret_access_key: input["secret_access_key"].as_str().unwrap().into(),
            session_token: input["session_token"].as_str().map(String::from),
        };
        let action = input["action"].as_str().unwrap();
        let user = if action == "DbConnectAdmin" {
            "admin"
        } else {
            "reporter"
        };
        let issued = input["time_unix"].as_i64().unwrap();
        let expires = input["expires_in_secs"].as_i64().unwrap();
        let expect = Expect {
            host: input["hostname"].as_str().unwrap(),
            region: input["region"].as_str().unwrap(),
            user,
            creds: &creds,
            now: (issued + 1) as f64,
        };
        for key in ["token", "token_aws_sdk_rust_order"] {
            let token = output[key].as_str().unwrap();
            let parsed = ParsedToken::parse(token).unwrap();
            assert_eq!(
                parsed.canonical_request(),
                output["canonical_request"].as_str().unwrap(),
                "{name} {key}"
            );
            assert_eq!(
                parsed.string_to_sign().unwrap(),
                output["string_to_sign"].as_str().unwrap(),
                "{name} {key}"
            );
            let ok = fixture::verify(token, &expect).unwrap_or_else(|r| panic!("{name}: {r:?}"));
            assert_eq!(
                ok,
                fixture::Verified {
                    action: action.into(),
                    issued,
                    expires_in: expires as u64,
                    signature: output["signature"].as_str().unwrap().into(),
                },
                "{name} {key}"
            );
        }

        let token = output["token_aws_sdk_rust_order"].as_str().unwrap();
        let refused = |e: &Expect| fixture::verify(token, e).unwrap_err();
        // Last valid second (with the skew), then expired.
        let at = |now: i64| Expect {
            now: now as f64,
            ..expect.clone()
        };
        assert!(
            fixture::verify(token, &at(issued + expires)).is_ok(),
            "{name}"
        );
        assert_eq!(
            refused(&at(issued + expires + 2)),
            Rejection::Expired,
            "{name}"
        );
        assert_eq!(refused(&at(issued - 60)), Rejection::NotYetValid, "{name}");
        let other_user = if user == "admin" { "reporter" } else { "admin" };
        assert!(
            matches!(refused(&Expect { user: other_user, ..expect.clone() }),
                Rejection::Action { got, .. } if got == action),
            "{name}"
        );
        assert!(matches!(
            refused(&Expect {
                region: "ap-south-1",
                ..expect.clone()
            }),
            Rejection::Credential(_)
        ));
        assert_eq!(
            refused(&Expect {
                host: "zzzzzzzzzzzzzzzzzzzzzzzzzz.dsql.us-east-1.on.aws",
                ..expect.clone()
            }),
            Rejection::Host(expect.host.to_string())
        );
        let forged = Credentials {
            secret_access_key: WRONG_SECRET.into(),
            ..creds.clone()
        };
        assert_eq!(
            refused(&Expect {
                creds: &forged,
                ..expect.clone()
            }),
            Rejection::Signature,
            "{name}"
        );
        // Temporary credentials: the session token must be the one signed.
        let session = Credentials {
            session_token: match &creds.session_token {
                Some(_) => None,
                None => Some("a-session-token".into()),
            },
            ..creds.clone()
        };
        assert!(matches!(
            refused(&Expect {
                creds: &session,
                ..expect.clone()
            }),
            Rejection::Credential(_)
        ));
        // One character of the signature changed.
        let sig = output["signature"].as_str().unwrap();
        let flipped = format!(
            "{}{}",
            &sig[..63],
            if sig.ends_with('0') { "1" } else { "0" }
        );
        let tampered = token.replace(sig, &flipped);
        assert_eq!(
            fixture::verify(&tampered, &expect).unwrap_err(),
            Rejection::Signature
        );
        // The action is signed: swapping it breaks the signature.
        let swapped = if action == "DbConnect" {
            token.replace("Action=DbConnect&", "Action=DbConnectAdmin&")
        } else {
            token.replace("Action=DbConnectAdmin&", "Action=DbConnect&")
        };
        assert_eq!(
            fixture::verify(
                &swapped,
                &Expect {
                    user: other_user,
                    ..expect.clone()
                }
            )
            .unwrap_err(),
            Rejection::Signature
        );
        assert!(matches!(
            fixture::verify(&format!("https://{token}"), &expect).unwrap_err(),
            Rejection::Malformed(_)
        ));
    }
}

/// Plaintext is refused; TLS needs the right SNI.
pub fn fixture_requires_tls_and_sni() {
    let fx = Fixture::start();
    let answer = fixture::plaintext_startup(fx.addr, "admin");
    assert_eq!(answer.get(&'C').map(String::as_str), Some("08P01"));
    assert_eq!(
        answer.get(&'M').map(String::as_str),
        Some(fixture::SSL_REQUIRED)
    );

    assert_eq!(fixture::tls_handshake(&fx, HOST), Ok(()));
    let wrong = fixture::tls_handshake(&fx, "zzzzzzzzzzzzzzzzzzzzzzzzzz.dsql.us-east-1.on.aws");
    assert!(wrong.is_err(), "a handshake for another name must fail");
    // An IP address as the server name: rustls sends no SNI.
    let no_sni = fixture::tls_handshake(&fx, "127.0.0.1");
    assert!(no_sni.is_err(), "a handshake without SNI must fail");

    assert_eq!(
        fx.sni_seen(),
        vec![
            Some("zzzzzzzzzzzzzzzzzzzzzzzzzz.dsql.us-east-1.on.aws".to_string()),
            None
        ]
    );
    assert_eq!(
        fx.counts(),
        Counts {
            accepted: 4,
            verified: 0,
            rejected: 0,
            plaintext_refused: 1,
            sni_rejected: 2,
        }
    );
    assert!(fx.passwords().is_empty());
}

/// A forged token (wrong secret), an expired one, an admin token for a non-admin role (and the
/// reverse) and a token for another host are each refused with 28P01; valid ones get through.
pub fn fixture_rejects_forged_expired_and_wrong_action_tokens() {
    ensure_reporter();
    let fx = Fixture::start();
    let now = SystemTime::now();
    let admin_token = make_token(HOST, SECRET_ACCESS_KEY, true, now, 900);
    let connect_token = make_token(HOST, SECRET_ACCESS_KEY, false, now, 900);

    // Valid tokens: the sessions reach the real server as the right role.
    assert_eq!(direct_connect(&fx, "admin", &admin_token).unwrap(), "admin");
    assert_eq!(
        direct_connect(&fx, "reporter", &connect_token).unwrap(),
        "reporter"
    );

    let forged = make_token(HOST, WRONG_SECRET, true, now, 900);
    assert_access_denied(direct_connect(&fx, "admin", &forged));
    let expired = make_token(
        HOST,
        SECRET_ACCESS_KEY,
        true,
        now - Duration::from_secs(120),
        60,
    );
    assert_access_denied(direct_connect(&fx, "admin", &expired));
    assert_access_denied(direct_connect(&fx, "reporter", &admin_token));
    assert_access_denied(direct_connect(&fx, "admin", &connect_token));
    let elsewhere = make_token(
        "zzzzzzzzzzzzzzzzzzzzzzzzzz.dsql.us-east-1.on.aws",
        SECRET_ACCESS_KEY,
        true,
        now,
        900,
    );
    assert_access_denied(direct_connect(&fx, "admin", &elsewhere));

    assert_eq!(
        fx.counts(),
        Counts {
            accepted: 7,
            verified: 2,
            rejected: 5,
            plaintext_refused: 0,
            sni_rejected: 0,
        }
    );
    assert_eq!(
        fx.rejections(),
        vec![
            ("admin".to_string(), Rejection::Signature),
            ("admin".to_string(), Rejection::Expired),
            (
                "reporter".to_string(),
                Rejection::Action {
                    expected: "DbConnect",
                    got: "DbConnectAdmin".into()
                }
            ),
            (
                "admin".to_string(),
                Rejection::Action {
                    expected: "DbConnectAdmin",
                    got: "DbConnect".into()
                }
            ),
            (
                "admin".to_string(),
                Rejection::Host("zzzzzzzzzzzzzzzzzzzzzzzzzz.dsql.us-east-1.on.aws".into())
            ),
        ]
    );
    let sessions: Vec<(String, String)> = fx
        .sessions()
        .into_iter()
        .map(|s| (s.user, s.action))
        .collect();
    assert_eq!(
        sessions,
        vec![
            ("admin".to_string(), "DbConnectAdmin".to_string()),
            ("reporter".to_string(), "DbConnect".to_string())
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// dsqlsh through the front door

/// The seed's four lines of `scripts/stress.rhai`.
fn inserted(stdout: &str) -> (u64, u64) {
    let value = |prefix: &str| -> u64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in\n{stdout}"))
            .trim()
            .parse()
            .unwrap()
    };
    (value("Successful inserts: "), value("Failed inserts: "))
}

pub fn stress_over_tls_with_verified_tokens() {
    let db = TestDb::new("dsql_stress");
    let fx = Fixture::start();
    let out = run_dsql(
        "stress",
        through(&fx, &db.name).cwd(&repo()).args([
            "run",
            "scripts/stress.rhai",
            "users=200",
            "concurrency=4",
        ]),
        &fx,
    );
    assert_eq!(inserted(out.ok()), (200, 0));
    assert_eq!(db.scalar("SELECT count(*) FROM users"), "200");
    assert_eq!(db.scalar("SELECT count(DISTINCT email) FROM users"), "200");

    let c = fx.counts();
    // Every connection that reached the door presented a valid token.
    assert_eq!(c.rejected, 0, "{c:?} {:?}", fx.rejections());
    assert_eq!(c.verified, c.accepted, "{c:?}");
    // The first connect, then one per worker (4); the table check's connection is reused by a
    // worker unless it is still on its way back to the pool.
    assert!((5..=6).contains(&c.verified), "{c:?}");
    assert_eq!((c.plaintext_refused, c.sni_rejected), (0, 0));
    assert_eq!(fx.errors(), Vec::<String>::new());
    for s in fx.sessions() {
        assert_eq!(
            (
                s.user.as_str(),
                s.action.as_str(),
                s.database.as_str(),
                s.application_name.as_deref()
            ),
            ("admin", "DbConnectAdmin", db.name.as_str(), Some("dsqlsh"))
        );
    }
}

/// Tokens live 2 s and connections 1 s, for 20 s of load that keeps opening connections:
/// every new connection still presents a valid token.
pub fn short_token_lifetime_long_run() {
    let db = TestDb::new("dsql_lifetime");
    let fx = Fixture::start();
    let out = run_dsql(
        "lifetime",
        through(&fx, &db.name)
            .env("DSQLSH_TOKEN_EXPIRES_IN", "2")
            .env("DSQLSH_POOL_MAX_LIFETIME", "1")
            .cwd(&repo())
            .args([
                "run",
                "scripts/stress.rhai",
                "duration=20",
                "rate=10",
                "concurrency=2",
                "json=true",
            ]),
        &fx,
    );
    let r: serde_json::Value = serde_json::from_str(out.ok()).expect("one JSON object");
    // The last of the 200 scheduled transactions starts at 19.9 s.
    let elapsed = r["elapsed_s"].as_f64().unwrap();
    assert!(elapsed >= 19.5, "{r}");
    assert_eq!(
        r["failed"],
        0,
        "{r}\n{:?}\n{:?}",
        fx.rejections(),
        fx.sessions()
    );
    let succeeded = r["succeeded"].as_u64().unwrap();
    assert!(succeeded >= 150, "10 per second for 20 s: {r}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM users"),
        succeeded.to_string()
    );

    let c = fx.counts();
    assert_eq!(c.rejected, 0, "{c:?} {:?}", fx.rejections());
    assert_eq!(c.verified, c.accepted, "{c:?}");
    // Two workers replacing 1-second connections for 20 s open well over 20 connections.
    assert!(c.verified >= 20, "{c:?}");
    let sessions = fx.sessions();
    let mut signatures: Vec<&str> = sessions.iter().map(|s| s.signature.as_str()).collect();
    signatures.sort();
    signatures.dedup();
    // A 2-s token cannot serve 20 s of new connections: at least 10 distinct tokens.
    assert!(signatures.len() >= 10, "{} tokens", signatures.len());
    // Each token was used within its 2-s lifetime, counted from its (whole-second) X-Amz-Date
    // as IAM counts it, without the fixture's skew allowance.
    let oldest = sessions.iter().map(|s| s.token_age).fold(0.0, f64::max);
    assert!(
        oldest < 2.0,
        "a token was used {oldest:.3} s after its date"
    );
}

/// A non-admin role signs DbConnect.
pub fn non_admin_role_connects_with_db_connect() {
    ensure_reporter();
    let db = TestDb::new("dsql_reporter");
    let fx = Fixture::start();
    let out = run_dsql(
        "reporter",
        through(&fx, &db.name).args([
            "--user",
            "reporter",
            "eval",
            "query(\"SELECT current_user::text AS u\")[0].u",
        ]),
        &fx,
    );
    assert_eq!(out.ok(), "reporter\n");
    let c = fx.counts();
    assert_eq!((c.verified, c.rejected), (c.accepted, 0), "{c:?}");
    assert!(c.verified >= 1);
    for s in fx.sessions() {
        assert_eq!(
            (s.user.as_str(), s.action.as_str()),
            ("reporter", "DbConnect")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// `dsqlsh token`

fn token_cmd() -> Dsqlsh {
    with_keys(dsqlsh(), SECRET_ACCESS_KEY).arg("token")
}

/// Verify a printed token as the fixture would for `host`/`region`/`user`.
#[track_caller]
fn check_token(stdout: &str, host: &str, region: &str, user: &str) -> fixture::Verified {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stdout}");
    let creds = Credentials::test();
    fixture::verify(
        lines[0],
        &Expect {
            host,
            region,
            user,
            creds: &creds,
            now: fixture::unix_now(),
        },
    )
    .unwrap_or_else(|r| panic!("{r:?}"))
}

pub fn token_command_signs_for_region_and_role() {
    let out = token_cmd()
        .args(["--endpoint", EU_HOST, "--token-only"])
        .run();
    let v = check_token(out.ok(), EU_HOST, "eu-west-1", "admin");
    assert_eq!((v.action.as_str(), v.expires_in), ("DbConnectAdmin", 900));
    assert_eq!(out.stderr, "");

    let out = token_cmd()
        .args(["--endpoint", EU_HOST, "--token-only", "--admin", "false"])
        .run();
    assert_eq!(
        check_token(out.ok(), EU_HOST, "eu-west-1", "reporter").action,
        "DbConnect"
    );
    let out = token_cmd()
        .args(["--endpoint", EU_HOST, "--token-only", "--user", "reporter"])
        .run();
    assert_eq!(
        check_token(out.ok(), EU_HOST, "eu-west-1", "reporter").action,
        "DbConnect"
    );
    // The seed's name, a bare --admin for a non-admin role, and a lifetime.
    let out = dsqlsh()
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .args([
            "generate-token",
            "--endpoint",
            EU_HOST,
            "--user",
            "reporter",
        ])
        .args(["--admin", "--expires-in", "3600", "--token-only"])
        .run();
    let v = check_token(out.ok(), EU_HOST, "eu-west-1", "admin");
    assert_eq!((v.action.as_str(), v.expires_in), ("DbConnectAdmin", 3600));

    // Without --token-only: the details, and a psql command that does not hold the token.
    let out = token_cmd()
        .args(["--endpoint", EU_HOST, "--user", "reporter"])
        .run();
    let text = out.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        &lines[..6],
        &[
            format!("host:     {EU_HOST}").as_str(),
            "port:     5432",
            "user:     reporter",
            "database: postgres",
            "region:   eu-west-1",
            "action:   DbConnect",
        ]
    );
    assert!(lines[6].starts_with("expires:  ") && lines[6].ends_with(" (900 s)"));
    let token = lines[7].strip_prefix("token:    ").expect("a token line");
    check_token(token, EU_HOST, "eu-west-1", "reporter");
    assert_eq!(text.matches(token).count(), 1, "the token is printed once");
    assert!(text.contains("psql \"host=") && text.contains("--token-only"));
}

/// Names a signed URL cannot hold are refused with the reason, never a panic in the signer:
/// a hostname with a space, a URL where the hostname goes, a region that is not a region; in
/// `token(...)` and on the connection path alike.
pub fn token_names_are_validated() {
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--endpoint",
                "a b.dsql.us-east-1.on.aws",
                "--region",
                "us-east-1",
            ],
            "error: `a b.dsql.us-east-1.on.aws` is not a valid endpoint hostname: use letters, \
             digits, `-` and `.`, as in <cluster-id>.dsql.us-east-1.on.aws",
        ),
        (
            &[
                "--endpoint",
                "a%b.dsql.us-east-1.on.aws",
                "--region",
                "us-east-1",
            ],
            "error: `a%b.dsql.us-east-1.on.aws` is not a valid endpoint hostname: use letters, \
             digits, `-` and `.`, as in <cluster-id>.dsql.us-east-1.on.aws",
        ),
        (
            &[
                "--endpoint",
                "https://abcdefghijklmnopqrstuvwxyz.dsql.eu-west-1.on.aws/",
            ],
            "error: the endpoint `https://abcdefghijklmnopqrstuvwxyz.dsql.eu-west-1.on.aws/` is a \
             URL: give the hostname alone (`abcdefghijklmnopqrstuvwxyz.dsql.eu-west-1.on.aws`)",
        ),
        (
            &[
                "--endpoint",
                "abcdefghijklmnopqrstuvwxyz",
                "--region",
                "../etc",
            ],
            "error: `../etc` is not an AWS region name (like us-east-1)",
        ),
    ];
    for (args, error) in cases {
        let out = token_cmd()
            .args(args.iter().copied())
            .args(["--token-only"])
            .run();
        out.no_panic();
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (1, ""),
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(out.stderr, format!("{error}\n"), "{args:?}");
        // The same names on the connection path (a hostname that is not a DSQL one is a
        // PostgreSQL host there, which DNS then refuses).
        let out = with_keys(dsqlsh().args(args.iter().copied()), SECRET_ACCESS_KEY)
            .args(["eval", PROBE])
            .run();
        out.no_panic();
        assert_eq!(out.code, 1, "{args:?}");
        if !args[1].contains(".dsql.us-east-1.") {
            assert_eq!(out.stderr, format!("{error}\n"), "{args:?}");
        }
    }
    // A region that contradicts the hostname cannot sign a usable token either.
    let out = token_cmd()
        .args([
            "--endpoint",
            EU_HOST,
            "--region",
            "us-east-1",
            "--token-only",
        ])
        .run();
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            1,
            "error: the endpoint `abcdefghijklmnopqrstuvwxyz.dsql.eu-west-1.on.aws` is in \
             eu-west-1, but the region given is us-east-1: a token signed for another region is \
             refused, so drop --region (or `region`)\n"
        )
    );
    let out = with_keys(dsqlsh(), SECRET_ACCESS_KEY)
        .args([
            "eval",
            "token(#{ endpoint: \"x y.dsql.us-east-1.on.aws\", region: \"us-east-1\" })",
        ])
        .run();
    out.no_panic();
    assert_eq!(
        out.first_err_line(),
        "error: `x y.dsql.us-east-1.on.aws` is not a valid endpoint hostname: use letters, digits, \
         `-` and `.`, as in <cluster-id>.dsql.us-east-1.on.aws"
    );
}

pub fn token_lifetime_is_validated() {
    for bad in ["0", "604801"] {
        let out = token_cmd()
            .args(["--endpoint", EU_HOST, "--expires-in", bad])
            .run();
        out.no_panic();
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert_eq!(out.stdout, "");
        assert_eq!(
            out.stderr,
            format!(
                "error: token lifetime must be a whole number of seconds from 1 to 604800, \
                 got `{bad}`\n"
            )
        );
    }
    let out = token_cmd()
        .args([
            "--endpoint",
            EU_HOST,
            "--expires-in",
            "604800",
            "--token-only",
        ])
        .run();
    assert_eq!(
        check_token(out.ok(), EU_HOST, "eu-west-1", "admin").expires_in,
        604_800
    );
}

// ---------------------------------------------------------------------------------------------
// Errors that tell the user what to do

/// The script every connection-error case runs, and what dsqlsh prints under the cause.
const PROBE: &str = "query(\"SELECT 1\")";
const PROBE_CARET: &str = "  --> <eval>:1:1\n   |\n 1 | query(\"SELECT 1\")\n   | ^\n";

#[track_caller]
fn assert_fails_with(out: &Output, first_line: &str) {
    out.no_panic();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, format!("{first_line}\n{PROBE_CARET}"));
}

const NO_CREDENTIALS: &str = "token: no AWS credentials found: set `AWS_ACCESS_KEY_ID` and \
     `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN` for temporary credentials), or name a \
     profile from ~/.aws/config with --profile or `AWS_PROFILE`";

pub fn error_no_aws_credentials() {
    let out = dsqlsh().args(["token", "--endpoint", EU_HOST]).run();
    out.no_panic();
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, format!("error: {NO_CREDENTIALS}\n"));

    // Connecting: the same explanation, and nothing reaches the cluster.
    let db = TestDb::new("dsql_nocreds");
    let fx = Fixture::start();
    let out = run_dsql(
        "no credentials",
        dsqlsh().args(fx.flags(&db.name)).args(["eval", PROBE]),
        &fx,
    );
    assert_fails_with(&out, &format!("error: {NO_CREDENTIALS}"));
    assert_eq!(fx.counts(), Counts::default());
}

pub fn error_region_missing_for_a_non_dsql_host() {
    let out = token_cmd().args(["--endpoint", "db.example.com"]).run();
    out.no_panic();
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "error: no AWS region for `db.example.com`: it is not a DSQL hostname \
         (<id>.dsql.<region>.on.aws), so pass --region or set `AWS_REGION`\n"
    );
    // With the region given, the token is signed for it.
    let out = token_cmd()
        .args([
            "--endpoint",
            "db.example.com",
            "--region",
            "eu-west-1",
            "--token-only",
        ])
        .run();
    check_token(out.ok(), "db.example.com", "eu-west-1", "admin");
}

pub fn error_auth_rejected_names_the_token_kind_and_action() {
    ensure_reporter();
    let db = TestDb::new("dsql_authfail");
    let fx = Fixture::start();
    let forged = || with_keys(dsqlsh().args(fx.flags(&db.name)), WRONG_SECRET);
    let out = run_dsql("auth rejected (admin)", forged().args(["eval", PROBE]), &fx);
    assert_fails_with(
        &out,
        &format!(
            "error: cannot connect to DSQL endpoint `{HOST}` (via {}): authentication rejected for role \
             `admin` with an admin token ({ACCESS_DENIED}); the IAM identity needs \
             `dsql:DbConnectAdmin` on this cluster (SQLSTATE 28P01)",
            fx.addr()
        ),
    );

    let out = run_dsql(
        "auth rejected (reporter)",
        forged().args(["--user", "reporter", "eval", PROBE]),
        &fx,
    );
    assert_fails_with(
        &out,
        &format!(
            "error: cannot connect to DSQL endpoint `{HOST}` (via {}): authentication rejected for role \
             `reporter` with a non-admin token ({ACCESS_DENIED}); the IAM identity needs \
             `dsql:DbConnect` on this cluster, and the role must be granted to it with AWS IAM \
             GRANT (SQLSTATE 28P01)",
            fx.addr()
        ),
    );

    // Scripts can tell a rejected token from an unreachable server.
    let out = run_dsql(
        "auth rejected (caught)",
        forged().args([
            "eval",
            "let s = \"connected\"; try { query(\"SELECT 1\"); } catch (e) { s = e.sqlstate; } s",
        ]),
        &fx,
    );
    assert_eq!(out.ok(), "28P01\n");

    assert_eq!(
        fx.rejections(),
        vec![
            ("admin".to_string(), Rejection::Signature),
            ("reporter".to_string(), Rejection::Signature),
            ("admin".to_string(), Rejection::Signature),
        ]
    );
    let c = fx.counts();
    assert_eq!((c.accepted, c.verified, c.rejected), (3, 0, 3));
}

pub fn error_tls_failure_names_host_and_root() {
    let db = TestDb::new("dsql_tlsfail");
    let fx = Fixture::start();
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    fixture::write_unrelated_ca(&other_ca);
    let mut flags = fx.flags(&db.name);
    let at = flags.iter().position(|f| f == "--ssl-root-cert").unwrap();
    flags[at + 1] = other_ca.display().to_string();
    let out = run_dsql(
        "tls failure",
        with_keys(dsqlsh().args(flags), SECRET_ACCESS_KEY).args(["eval", PROBE]),
        &fx,
    );
    assert_fails_with(
        &out,
        &format!(
            "error: cannot connect to DSQL endpoint `{HOST}` (via {}): TLS verification of `{HOST}` failed \
             using the root certificate `{}`: invalid peer certificate: UnknownIssuer \
             (SQLSTATE 08001)",
            fx.addr(),
            other_ca.display()
        ),
    );
    // The handshake failed before any password was sent.
    let c = fx.counts();
    assert_eq!((c.accepted, c.verified, c.rejected), (1, 0, 0));
    assert!(fx.passwords().is_empty());
}

/// A server that answers the SSLRequest with `N` (a plain PostgreSQL, a wrong port) is named
/// as not accepting TLS, not as a failed verification.
pub fn error_server_without_tls_is_named() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut request = [0u8; 8];
        s.read_exact(&mut request).unwrap();
        // The SSLRequest code, 80877103; the answer `N` means "no TLS here".
        assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47]);
        s.write_all(b"N").unwrap();
    });
    let out = with_keys(
        dsqlsh().args(["--endpoint", HOST, "--connect-addr", &addr.to_string()]),
        SECRET_ACCESS_KEY,
    )
    .args(["eval", PROBE])
    .run();
    server.join().unwrap();
    assert_fails_with(
        &out,
        &format!(
            "error: cannot connect to DSQL endpoint `{HOST}` (via {addr}): the server at `{addr}` \
             does not accept TLS, which every DSQL endpoint does; check the address \
             (--connect-addr, or what `{HOST}` resolves to) (SQLSTATE 08001)"
        ),
    );
}

// ---------------------------------------------------------------------------------------------
// Secrets

/// Everything dsqlsh printed on the DSQL path holds no token and no secret: the runs of this
/// binary's other DSQL tests so far (each also checked on its own), plus the paths most likely to
/// leak, run here with logging and backtraces switched on.
pub fn nothing_printed_leaks_a_token_or_secret() {
    ensure_reporter();
    let db = TestDb::new("dsql_leaks");
    let fx = Fixture::start();
    let noisy = |cmd: Dsqlsh| cmd.env("RUST_LOG", "trace").env("RUST_BACKTRACE", "full");
    let cases: Vec<(&str, Dsqlsh, i32)> = vec![
        (
            "query",
            noisy(through(&fx, &db.name)).args(["eval", "print_table(query(\"SELECT 1 AS one\"))"]),
            0,
        ),
        (
            "sql error",
            noisy(through(&fx, &db.name)).args(["eval", "execute(\"SELEC 1\")"]),
            1,
        ),
        (
            "caught error map",
            noisy(through(&fx, &db.name)).args([
                "eval",
                "try { query(\"SELECT nope\") } catch (e) { print(to_json(e)) }",
            ]),
            0,
        ),
        (
            "connection handle",
            noisy(through(&fx, &db.name)).args([
                "eval",
                "let c = connect(#{user: \"reporter\", pool_max: 2}); print(c); c.query(\"SELECT 1 AS x\")",
            ]),
            0,
        ),
        (
            "stress json",
            noisy(through(&fx, &db.name)).args([
                "stress-test",
                "--users",
                "20",
                "--concurrency",
                "2",
                "--json",
            ]),
            0,
        ),
        (
            "wrong secret",
            noisy(with_keys(dsqlsh().args(fx.flags(&db.name)), WRONG_SECRET))
                .args(["eval", PROBE]),
            1,
        ),
        (
            "unknown role in a script connect",
            noisy(through(&fx, &db.name)).env("DSQLSH_POOL_MAX", "1").args([
                "eval",
                "try { connect(#{user: \"nosuchrole\"}) } catch (e) { print(e) }",
            ]),
            0,
        ),
    ];
    for (label, cmd, code) in cases {
        let out = run_dsql(label, cmd, &fx);
        out.no_panic();
        assert_eq!(out.code, code, "{label}:\n{}{}", out.stdout, out.stderr);
    }
    assert!(fx.counts().verified >= 5, "{:?}", fx.counts());
    assert!(fx.counts().rejected >= 1, "{:?}", fx.counts());

    let transcript = TRANSCRIPT.lock().unwrap();
    assert!(transcript.len() >= 7);
    for (label, text) in transcript.iter() {
        assert_clean(label, text, &fx.passwords());
    }
}
