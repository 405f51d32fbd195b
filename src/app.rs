//! Executes a parsed command line. Commands that need no database (`scripts`, `local`) never
//! build a runtime; the rest share one `Host` and one `Session`.

use std::path::PathBuf;
use std::sync::Arc;

use rhai::{Dynamic, Map};

use crate::cli::{Cli, Command, LocalCommand, ScriptsCommand, StressArgs, TokenArgs};
use crate::config::{self, Config, Env, ProcessEnv};
use crate::error::{Error, Result, EXIT_OK};
use crate::runtime::Runtime;
use crate::script::bundled::{self, Resolved};
use crate::script::{self, Host, Session, Source};
use crate::{auth, local, output};

pub fn execute(cli: Cli) -> Result<i32> {
    config::load_env_file(cli.conn.env_file.as_deref())?;
    let config = config::resolve(&cli.conn, &ProcessEnv)?;
    if let Some(code) = cli.eval {
        if cli.command.is_some() {
            return Err(Error::Usage(
                "`-e CODE` cannot be combined with a command".into(),
            ));
        }
        return eval(config, code);
    }
    match cli.command {
        None => crate::repl::start(config, cli.history_file, cli.no_history),
        Some(Command::Repl {
            history_file,
            no_history,
        }) => crate::repl::start(
            config,
            history_file.or(cli.history_file),
            no_history || cli.no_history,
        ),
        Some(Command::Run { script, args }) => {
            let args = script::parse_args(&args)?;
            run_resolved(config, bundled::resolve(&script)?, args)
        }
        Some(Command::Eval { code }) => eval(config, code),
        Some(Command::Scripts { action }) => scripts(action),
        Some(Command::Token(args)) => token(&config, &args),
        Some(Command::Local { action }) => local_command(&config, action),
        Some(Command::ListUsers { limit }) => {
            let mut a = Map::new();
            insert_opt(&mut a, "limit", limit.map(Dynamic::from_int));
            run_flow(config, "list_users", a)
        }
        Some(Command::AddUser { name, email, role }) => {
            let mut a = Map::new();
            insert_opt(&mut a, "name", name.map(Dynamic::from));
            insert_opt(&mut a, "email", email.map(Dynamic::from));
            insert_opt(&mut a, "role", role.map(Dynamic::from));
            run_flow(config, "add_user", a)
        }
        Some(Command::Repopulate { yes, count }) => {
            let mut a = Map::new();
            a.insert("yes".into(), Dynamic::from_bool(yes));
            insert_opt(&mut a, "count", count.map(Dynamic::from_int));
            run_flow(config, "repopulate", a)
        }
        Some(Command::UserStats {
            json,
            tz,
            top,
            days,
            as_of,
        }) => {
            let mut a = Map::new();
            a.insert("json".into(), Dynamic::from_bool(json));
            insert_opt(&mut a, "tz", tz.map(Dynamic::from));
            insert_opt(&mut a, "top", top.map(Dynamic::from_int));
            insert_opt(&mut a, "days", days.map(Dynamic::from_int));
            insert_opt(&mut a, "as_of", as_of.map(Dynamic::from));
            run_flow(config, "user_stats", a)
        }
        Some(Command::StressTest(args)) => run_flow(config, "stress", stress_args(args)),
    }
}

fn insert_opt(map: &mut Map, key: &str, value: Option<Dynamic>) {
    if let Some(v) = value {
        map.insert(key.into(), v);
    }
}

fn stress_args(a: StressArgs) -> Map {
    let mut m = Map::new();
    insert_opt(&mut m, "users", a.users.map(Dynamic::from_int));
    insert_opt(&mut m, "concurrency", a.concurrency.map(Dynamic::from_int));
    insert_opt(&mut m, "batch", a.batch.map(Dynamic::from_int));
    insert_opt(
        &mut m,
        "duration",
        a.duration.map(|d| script::typed_value(&d)),
    );
    insert_opt(&mut m, "rate", a.rate.map(Dynamic::from_float));
    insert_opt(&mut m, "max_retries", a.max_retries.map(Dynamic::from_int));
    insert_opt(&mut m, "seed", a.seed.map(Dynamic::from_int));
    insert_opt(&mut m, "table", a.table.map(Dynamic::from));
    insert_opt(&mut m, "max_p99_ms", a.max_p99_ms.map(Dynamic::from_float));
    insert_opt(
        &mut m,
        "min_rows_per_s",
        a.min_rows_per_s.map(Dynamic::from_float),
    );
    insert_opt(&mut m, "max_failed", a.max_failed.map(Dynamic::from_int));
    m.insert("json".into(), Dynamic::from_bool(a.json));
    if a.no_progress {
        m.insert("progress".into(), Dynamic::FALSE);
    }
    m
}

/// A seed-compatible alias: `./scripts/<name>.rhai` when present, else the bundled script.
fn run_flow(config: Config, name: &str, args: Map) -> Result<i32> {
    run_resolved(config, bundled::resolve_flow(name), args)
}

/// Build the host, run one script, tear everything down, and choose the exit status.
fn run_resolved(config: Config, resolved: Resolved, args: Map) -> Result<i32> {
    if resolved.overrides_bundled {
        eprintln!(
            "dsqlsh: running {} (a local copy that overrides the bundled script)",
            resolved.source.name
        );
    }
    with_session(config, |session| {
        script::run_source(session, &resolved.source, args).map(|_| ())
    })
}

fn eval(config: Config, code: String) -> Result<i32> {
    let source = Source {
        name: "<eval>".into(),
        text: code,
        dir: None,
    };
    with_session(config, |session| {
        let value = script::run_source(session, &source, Map::new())?;
        if !value.is_unit() {
            output::line(&output::display_value(&value));
        }
        Ok(())
    })
}

/// Runs `f` with a fresh host and session, then releases connections, closes pools and stops
/// the local server if this process was its last user, whatever `f` returned.
pub fn with_session(config: Config, f: impl FnOnce(&Arc<Session>) -> Result<()>) -> Result<i32> {
    let host = Host::new(Runtime::new()?, config);
    let outcome = {
        let _enter = host.rt.enter();
        let session = Session::new(host.clone());
        let outcome = f(&session);
        session.release_connections();
        host.shutdown();
        outcome
    };
    outcome?;
    if let Some(why) = output::write_failure() {
        return Err(Error::Io {
            path: "standard output".into(),
            source: std::io::Error::other(why),
        });
    }
    if host.load_interrupted() {
        return Err(Error::Interrupted);
    }
    if host.threshold_breached() {
        return Err(Error::Threshold(
            "a threshold was breached (see the report)".into(),
        ));
    }
    Ok(EXIT_OK)
}

fn scripts(action: ScriptsCommand) -> Result<i32> {
    match action {
        ScriptsCommand::List => {
            let width = bundled::BUNDLED
                .iter()
                .map(|b| b.name.len())
                .max()
                .unwrap_or(0);
            for b in bundled::BUNDLED {
                output::line(&format!("{:width$}  {}", b.name, b.summary()));
            }
        }
        ScriptsCommand::Show { name } => {
            let stem = name.strip_suffix(".rhai").unwrap_or(&name);
            let b = bundled::find(stem).ok_or_else(|| unknown_bundled(&name))?;
            output::raw(b.text);
        }
        ScriptsCommand::Eject { dir, force } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("scripts"));
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
            let existing: Vec<String> = bundled::BUNDLED
                .iter()
                .map(|b| dir.join(b.file_name()))
                .filter(|p| p.exists())
                .map(|p| p.display().to_string())
                .collect();
            if !existing.is_empty() && !force {
                return Err(Error::Usage(format!(
                    "not overwriting {}; pass --force to replace them",
                    existing.join(", ")
                )));
            }
            for b in bundled::BUNDLED {
                let path = dir.join(b.file_name());
                std::fs::write(&path, b.text).map_err(|e| Error::io(path.display(), e))?;
                output::line(&path.display().to_string());
            }
        }
    }
    Ok(EXIT_OK)
}

fn unknown_bundled(name: &str) -> Error {
    let names: Vec<&str> = bundled::BUNDLED.iter().map(|b| b.name).collect();
    Error::Usage(format!(
        "no bundled script `{name}` (bundled: {})",
        names.join(", ")
    ))
}

fn local_dir(config: &Config) -> Result<PathBuf> {
    match config
        .conn
        .local_dir
        .clone()
        .or_else(|| ProcessEnv.first(&["DSQLSH_LOCAL_DIR"]).map(PathBuf::from))
    {
        Some(d) => Ok(d),
        None => local::default_dir(),
    }
}

fn local_command(config: &Config, action: LocalCommand) -> Result<i32> {
    let dir = local_dir(config)?;
    match action {
        LocalCommand::Status => {
            output::raw(&local::status(&dir)?);
        }
        LocalCommand::Reap => local::reap(&dir)?,
        LocalCommand::Stop => {
            if local::stop(&dir)? {
                output::line(&format!("stopped the local server in {}", dir.display()));
            } else {
                output::line(&format!(
                    "the local server in {} is not running",
                    dir.display()
                ));
            }
        }
    }
    Ok(EXIT_OK)
}

fn token(config: &Config, args: &TokenArgs) -> Result<i32> {
    let conn = &config.conn;
    let env = ProcessEnv;
    let req = auth::resolve_request(
        conn.endpoint.clone(),
        conn.region.clone(),
        conn.user.clone(),
        args.admin,
        args.expires_in,
        conn.profile.clone(),
        &env,
    )?;
    let rt = Runtime::new()?;
    let token = rt.block_on(async {
        let sdk = auth::load_sdk_config(req.profile.as_deref(), &req.spec.region).await;
        auth::generate(&sdk, &req.spec).await
    })??;
    if args.token_only {
        output::line(token.expose());
        return Ok(EXIT_OK);
    }
    let database = conn
        .database
        .clone()
        .or_else(|| env.first(&["DB_NAME"]))
        .unwrap_or_else(|| "postgres".into());
    let port = conn.port.unwrap_or(5432);
    let (endpoint, region, user) = (&req.spec.endpoint, &req.spec.region, &req.user);
    let expires_in = req.spec.expires_in;
    let expiry = chrono::Utc::now() + chrono::Duration::seconds(expires_in as i64);
    let admin_flag = if req.spec.admin == (user == "admin") {
        String::new()
    } else {
        format!(" --admin {}", req.spec.admin)
    };
    let lines = [
        format!("host:     {endpoint}"),
        format!("port:     {port}"),
        format!("user:     {user}"),
        format!("database: {database}"),
        format!("region:   {region}"),
        format!("action:   {}", req.spec.action()),
        format!(
            "expires:  {} ({expires_in} s)",
            expiry.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        format!("token:    {}", token.expose()),
        String::new(),
        "connect with psql (the command generates the token; it is not pasted):".into(),
        format!(
            "  PGPASSWORD=\"$(dsqlsh token --endpoint {endpoint} --region {region} --user {user}{admin_flag} --token-only)\" \\\n    psql \"host={endpoint} port={port} user={user} dbname={database} sslmode=verify-full sslrootcert=system\""
        ),
    ];
    for l in lines {
        output::line(&l);
    }
    Ok(EXIT_OK)
}
