//! Connection configuration: command-line flags, then the environment, then a `.env` file, then
//! defaults (PRODUCT.md §1), resolved into one `Target`.
//!
//! The `.env` file is loaded into the process environment at start-up without overriding
//! variables that are already set, which gives "environment beats .env" for free and lets the
//! AWS credential chain and `PG*` handling see `.env` values too. Resolution itself reads
//! variables through the `Env` trait so its precedence rules are unit-tested without touching
//! the real environment. Nothing here opens a connection.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::cli::ConnectionArgs;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// Default DSQL token lifetime (seconds) and the largest one IAM accepts.
pub const DEFAULT_TOKEN_SECS: u64 = 900;
pub const MAX_TOKEN_SECS: u64 = 604_800;

/// Read access to environment variables.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;

    /// Whether `key` came from the `.env` file rather than the real environment.
    fn set_by_dotenv(&self, _key: &str) -> bool {
        false
    }

    /// The first of `keys` that is set to a non-empty value.
    fn first(&self, keys: &[&str]) -> Option<String> {
        keys.iter()
            .find_map(|k| self.var(k).filter(|v| !v.trim().is_empty()))
    }
}

pub struct ProcessEnv;

/// Keys that `load_env_file` put into the environment.
static DOTENV_KEYS: std::sync::OnceLock<std::collections::HashSet<String>> =
    std::sync::OnceLock::new();

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }

    fn set_by_dotenv(&self, key: &str) -> bool {
        DOTENV_KEYS.get().is_some_and(|k| k.contains(key))
    }
}

/// Load `path` (or `./.env` when it exists) into the process environment, never overriding a
/// variable that is already set, and remember which keys it set: a target named in the real
/// environment beats one named only in `.env`. Must run before any thread is started.
pub fn load_env_file(path: Option<&Path>) -> Result<()> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(".env"), false),
    };
    if !required && !path.is_file() {
        return Ok(());
    }
    let iter = dotenvy::from_path_iter(&path).map_err(|e| dotenv_error(&path, e))?;
    let mut set = std::collections::HashSet::new();
    for item in iter {
        let (key, value) = item.map_err(|e| dotenv_error(&path, e))?;
        if std::env::var_os(&key).is_none() {
            std::env::set_var(&key, value);
            set.insert(key);
        }
    }
    let _ = DOTENV_KEYS.set(set);
    Ok(())
}

/// dotenvy's parse errors quote the whole line, which may be `DATABASE_URL=...password...`:
/// name only the variable.
fn dotenv_error(path: &Path, e: dotenvy::Error) -> Error {
    match e {
        dotenvy::Error::Io(io) => Error::io(path.display(), io),
        dotenvy::Error::LineParse(line, _) => {
            let key = line.split('=').next().unwrap_or("").trim();
            let key: String = key.chars().take(64).collect();
            Error::Config(format!(
                "`{}`: cannot parse the line for `{key}` (an unterminated quote?)",
                path.display()
            ))
        }
        other => Error::Config(format!("`{}`: {other}", path.display())),
    }
}

/// What dsqlsh connects to.
#[derive(Debug, Clone)]
pub enum Target {
    Dsql(DsqlTarget),
    Postgres(PostgresTarget),
    Local(LocalTarget),
}

impl Target {
    /// What makes two targets the same connection (for reusing a pool): server, role and
    /// database, and everything else that changes what a connection is (TLS settings and
    /// roots, password, startup options), so that a `connect()` asking for verify-full TLS is
    /// never handed a plaintext pool opened earlier for the same host.
    pub fn identity(&self) -> String {
        match self {
            Target::Dsql(d) => format!(
                "dsql|{}|{}|{}|{}|{:?}|{:?}|{:?}|{}|{:?}",
                d.endpoint,
                d.port,
                d.user,
                d.database,
                d.region,
                d.profile,
                d.connect_addr,
                d.token_expires_in,
                d.ssl_root_cert
            ),
            // The options' Debug text holds the password, so only a keyed hash of it is kept.
            Target::Postgres(p) => format!(
                "pg|{}|{:016x}",
                p.label,
                secret_fingerprint(&format!("{:?}", p.options))
            ),
            Target::Local(l) => format!("local|{}|{}|{}", l.dir.display(), l.user, l.database),
        }
    }

    /// A short description for messages; never contains a secret.
    pub fn label(&self) -> String {
        match self {
            Target::Dsql(d) => match d.connect_addr {
                Some(addr) => format!("DSQL endpoint `{}` (via {addr})", d.endpoint),
                None => format!("DSQL endpoint `{}`", d.endpoint),
            },
            Target::Postgres(p) => format!("PostgreSQL {}", p.label),
            Target::Local(l) => format!("the local server in `{}`", l.dir.display()),
        }
    }
}

/// A per-process keyed hash of text that may hold a secret: equal texts give equal values,
/// and the value says nothing about the text outside this process.
fn secret_fingerprint(text: &str) -> u64 {
    use std::hash::BuildHasher;
    static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    KEY.get_or_init(Default::default).hash_one(text)
}

#[derive(Debug, Clone)]
pub struct DsqlTarget {
    pub endpoint: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub region: String,
    pub profile: Option<String>,
    pub ssl_root_cert: Option<PathBuf>,
    /// Where the TCP connection goes, when not to the endpoint itself.
    pub connect_addr: Option<SocketAddr>,
    pub token_expires_in: u64,
}

impl DsqlTarget {
    /// `admin` connects with DbConnectAdmin, every other role with DbConnect.
    pub fn is_admin(&self) -> bool {
        self.user == "admin"
    }
}

#[derive(Clone)]
pub struct PostgresTarget {
    pub options: PgConnectOptions,
    /// `host:port/database as user`, for messages.
    pub label: String,
}

// PgConnectOptions' Debug prints the password: never derive it.
impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct LocalTarget {
    pub dir: PathBuf,
    pub user: String,
    pub database: String,
}

/// Everything resolved from flags and environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// None when no database is configured; commands that need one report `no_database_error`.
    pub target: Option<Target>,
    /// Values the `token` command needs even without a full target.
    pub conn: ConnectionArgs,
}

impl Config {
    pub fn require_target(&self) -> Result<&Target> {
        self.target.as_ref().ok_or_else(no_database_error)
    }
}

pub fn no_database_error() -> Error {
    Error::Config(
        "no database configured: pass `--local` for the embedded PostgreSQL, set `DSQL_ENDPOINT` \
         (or --endpoint) for Aurora DSQL, or set `DATABASE_URL` (or --database-url) for PostgreSQL"
            .into(),
    )
}

/// How strongly a setting was given; a higher level wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    DotEnv = 1,
    Env = 2,
    Flag = 3,
}

fn env_level(env: &dyn Env, key: &str) -> Level {
    if env.set_by_dotenv(key) {
        Level::DotEnv
    } else {
        Level::Env
    }
}

/// Resolve flags and environment into a `Config`.
pub fn resolve(args: &ConnectionArgs, env: &dyn Env) -> Result<Config> {
    let local = if args.local {
        Some(Level::Flag)
    } else if env.var("DSQLSH_LOCAL").is_some_and(|v| truthy(&v)) {
        Some(env_level(env, "DSQLSH_LOCAL"))
    } else {
        None
    };
    let url = pick(
        args.database_url.as_ref().map(|u| u.expose().to_string()),
        env,
        &["DATABASE_URL"],
    );
    let endpoint = pick(args.endpoint.clone(), env, &["DSQL_ENDPOINT", "DB_HOST"]);

    // The strongest source wins; on a tie, --local beats a URL beats an endpoint.
    let best = [
        local,
        url.as_ref().map(|u| u.1),
        endpoint.as_ref().map(|e| e.1),
    ]
    .into_iter()
    .flatten()
    .max();
    let target = match best {
        None => {
            // PG* variables alone describe a plain PostgreSQL, as they do for psql.
            if env.first(&["PGHOST", "PGHOSTADDR"]).is_some() {
                Some(Target::Postgres(postgres_from_parts(None, args, env)?))
            } else {
                None
            }
        }
        Some(level) if local == Some(level) => Some(Target::Local(local_target(args, env)?)),
        Some(level) if url.as_ref().is_some_and(|u| u.1 == level) => {
            let (url, _) = url.expect("checked above");
            Some(Target::Postgres(postgres_from_url(
                &Secret::new(url),
                args,
            )?))
        }
        Some(_) => {
            let (host, _) = endpoint.expect("the only source left");
            reject_url_as_endpoint(&host)?;
            if dsql_region_from_host(&host).is_some() || is_cluster_id(&host) {
                Some(Target::Dsql(dsql_target(&host, args, env)?))
            } else {
                Some(Target::Postgres(postgres_from_parts(
                    Some(host),
                    args,
                    env,
                )?))
            }
        }
    };
    Ok(Config {
        target,
        conn: args.clone(),
    })
}

fn pick(flag: Option<String>, env: &dyn Env, keys: &[&str]) -> Option<(String, Level)> {
    if let Some(v) = flag {
        return Some((v, Level::Flag));
    }
    // The first key set in the real environment, else the first from .env.
    let set: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| env.var(k).is_some_and(|v| !v.trim().is_empty()))
        .collect();
    let key = set.iter().find(|k| !env.set_by_dotenv(k)).or(set.first())?;
    env.var(key).map(|v| (v, env_level(env, key)))
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

fn port_from(args: &ConnectionArgs, env: &dyn Env) -> Result<Option<u16>> {
    if let Some(p) = args.port {
        return Ok(Some(p));
    }
    match env.first(&["DB_PORT"]) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::Config(format!("`DB_PORT` must be a port number, got `{v}`"))),
    }
}

fn user_from(args: &ConnectionArgs, env: &dyn Env) -> Option<String> {
    args.user.clone().or_else(|| env.first(&["DB_USER"]))
}

fn database_from(args: &ConnectionArgs, env: &dyn Env) -> Option<String> {
    args.database.clone().or_else(|| env.first(&["DB_NAME"]))
}

/// The region in a DSQL hostname `<id>.dsql[-suffix].<region>.on.aws`.
pub fn dsql_region_from_host(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let rest = host.strip_suffix(".on.aws")?;
    let mut parts = rest.split('.');
    let (id, service, region) = (parts.next()?, parts.next()?, parts.next()?);
    let well_formed = parts.next().is_none()
        && !id.is_empty()
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && service.starts_with("dsql")
        && !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    well_formed.then(|| region.to_string())
}

/// A region given for a DSQL hostname must be the hostname's own: a token signed for another
/// region is refused by the cluster.
pub fn check_region_matches(host: &str, given: Option<&str>) -> Result<()> {
    match (
        given.filter(|g| !g.trim().is_empty()),
        dsql_region_from_host(host),
    ) {
        (Some(given), Some(named)) if given != named => Err(Error::Config(format!(
            "the endpoint `{host}` is in {named}, but the region given is {given}: a token \
             signed for another region is refused, so drop --region (or `region`)"
        ))),
        _ => Ok(()),
    }
}

/// `dsqlsh` as the application name, unless the URL (or `PGAPPNAME`) names one.
fn default_application_name(options: PgConnectOptions) -> PgConnectOptions {
    if options.get_application_name().is_some() {
        options
    } else {
        options.application_name("dsqlsh")
    }
}

/// `--endpoint https://...` or `postgres://...`: a URL where a hostname belongs.
pub fn reject_url_as_endpoint(endpoint: &str) -> Result<()> {
    match endpoint.split_once("://") {
        Some((scheme, rest)) => Err(Error::Config(format!(
            "the endpoint `{endpoint}` is a URL: give the hostname alone (`{}`){}",
            rest.split(['/', ':', '?']).next().unwrap_or(rest),
            if scheme.starts_with("postgres") {
                ", or pass the URL as --database-url"
            } else {
                ""
            }
        ))),
        None => Ok(()),
    }
}

/// The endpoint and region a DSQL token is signed for: a DNS hostname (no scheme, port, path or
/// spaces; they would make the signed URL invalid) and a region name.
pub fn check_dsql_names(endpoint: &str, region: &str) -> Result<()> {
    let region_ok = !region.is_empty()
        && region.len() <= 64
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !region_ok {
        return Err(Error::Config(format!(
            "`{region}` is not an AWS region name (like us-east-1)"
        )));
    }
    let host = endpoint.trim_end_matches('.');
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        reject_url_as_endpoint(endpoint)?;
        return Err(Error::Config(format!(
            "`{endpoint}` is not a valid endpoint hostname: use letters, digits, `-` and `.`, \
             as in <cluster-id>.dsql.us-east-1.on.aws"
        )));
    }
    Ok(())
}

/// A bare 26-character DSQL cluster id (the endpoint is then built from the region).
pub fn is_cluster_id(s: &str) -> bool {
    s.len() == 26
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn dsql_target(host: &str, args: &ConnectionArgs, env: &dyn Env) -> Result<DsqlTarget> {
    // An explicit --region wins; then the hostname, which names the cluster's real region and so
    // beats an ambient AWS_REGION; then the environment.
    check_region_matches(host, args.region.as_deref())?;
    let region = args
        .region
        .clone()
        .or_else(|| dsql_region_from_host(host))
        .or_else(|| env.first(&["AWS_REGION", "AWS_DEFAULT_REGION"]))
        .ok_or_else(|| {
            Error::Config(format!(
                "no AWS region for `{host}`: pass --region or set `AWS_REGION`"
            ))
        })?;
    let endpoint = if is_cluster_id(host) {
        format!("{host}.dsql.{region}.on.aws")
    } else {
        host.trim_end_matches('.').to_ascii_lowercase()
    };
    check_dsql_names(&endpoint, &region)?;
    let port = port_from(args, env)?.unwrap_or(5432);
    let connect_addr = match args
        .connect_addr
        .clone()
        .or_else(|| env.first(&["DSQLSH_CONNECT_ADDR"]))
    {
        Some(a) => Some(parse_connect_addr(&a, port)?),
        None => None,
    };
    let token_expires_in = match env.first(&["DSQLSH_TOKEN_EXPIRES_IN"]) {
        None => DEFAULT_TOKEN_SECS,
        Some(v) => parse_token_secs(&v)?,
    };
    Ok(DsqlTarget {
        endpoint,
        port,
        user: user_from(args, env).unwrap_or_else(|| "admin".into()),
        database: database_from(args, env).unwrap_or_else(|| "postgres".into()),
        region,
        profile: args.profile.clone().or_else(|| env.first(&["AWS_PROFILE"])),
        ssl_root_cert: args
            .ssl_root_cert
            .clone()
            .or_else(|| env.first(&["DSQL_SSL_ROOT_CERT"]).map(PathBuf::from)),
        connect_addr,
        token_expires_in,
    })
}

/// Validate a token lifetime in seconds.
pub fn parse_token_secs(v: &str) -> Result<u64> {
    match v.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_TOKEN_SECS).contains(&n) => Ok(n),
        _ => Err(Error::Usage(format!(
            "token lifetime must be a whole number of seconds from 1 to {MAX_TOKEN_SECS}, got `{v}`"
        ))),
    }
}

/// `HOST[:PORT]` (or `[v6]:PORT`) to one socket address.
pub fn parse_connect_addr(s: &str, default_port: u16) -> Result<SocketAddr> {
    let bad = |why: &str| Error::Config(format!("--connect-addr `{s}`: {why}"));
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa);
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (
            h,
            p.parse::<u16>()
                .map_err(|_| bad("the port is not a number"))?,
        ),
        _ => (s, default_port),
    };
    (host, port)
        .to_socket_addrs()
        .map_err(|e| bad(&format!("cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| bad("the name resolves to no address"))
}

fn local_target(args: &ConnectionArgs, env: &dyn Env) -> Result<LocalTarget> {
    let dir = match args
        .local_dir
        .clone()
        .or_else(|| env.first(&["DSQLSH_LOCAL_DIR"]).map(PathBuf::from))
    {
        Some(d) => d,
        None => crate::local::default_dir()?,
    };
    Ok(LocalTarget {
        dir,
        user: user_from(args, env).unwrap_or_else(|| "admin".into()),
        database: database_from(args, env).unwrap_or_else(|| "postgres".into()),
    })
}

fn postgres_from_url(url: &Secret, args: &ConnectionArgs) -> Result<PostgresTarget> {
    let scheme = url.expose().split("://").next().unwrap_or("");
    if !matches!(scheme, "postgres" | "postgresql") || !url.expose().contains("://") {
        return Err(Error::Config(
            "the database URL must start with postgres:// or postgresql://".into(),
        ));
    }
    // The URL may hold a password, so the parse error is reported without the URL itself.
    let mut options: PgConnectOptions = url.expose().parse().map_err(|e: sqlx::Error| {
        Error::Config(format!(
            "invalid database URL: {}",
            redact_url_error(&e.to_string(), url)
        ))
    })?;
    // Explicit flags refine the URL, as psql lets options refine a connection string.
    if let Some(u) = &args.user {
        options = options.username(u);
    }
    if let Some(d) = &args.database {
        options = options.database(d);
    }
    if let Some(p) = args.port {
        options = options.port(p);
    }
    Ok(PostgresTarget {
        label: pg_label(&options),
        options: default_application_name(options),
    })
}

fn redact_url_error(message: &str, url: &Secret) -> String {
    if message.contains(url.expose()) {
        message.replace(url.expose(), "<url>")
    } else {
        message.to_string()
    }
}

fn postgres_from_parts(
    host: Option<String>,
    args: &ConnectionArgs,
    env: &dyn Env,
) -> Result<PostgresTarget> {
    // Starts from PG* variables, as libpq does; explicit settings override them.
    let mut options = PgConnectOptions::new_without_pgpass();
    if let Some(h) = host {
        options = options.host(&h);
    }
    if let Some(p) = port_from(args, env)? {
        options = options.port(p);
    }
    match user_from(args, env) {
        Some(u) => options = options.username(&u),
        None if env.var("PGUSER").is_none() => options = options.username("admin"),
        None => {}
    }
    match database_from(args, env) {
        Some(d) => options = options.database(&d),
        None if env.var("PGDATABASE").is_none() => options = options.database("postgres"),
        None => {}
    }
    if env.var("PGPASSWORD").is_none() {
        if let Some(pw) = crate::pgpass::lookup(&options, env) {
            options = options.password(pw.expose());
        }
    }
    if let Some(cert) = &args.ssl_root_cert {
        options = options.ssl_root_cert(cert).ssl_mode(PgSslMode::VerifyFull);
    }
    Ok(PostgresTarget {
        label: pg_label(&options),
        options: default_application_name(options),
    })
}

fn pg_label(o: &PgConnectOptions) -> String {
    let place = match o.get_socket() {
        Some(dir) => format!("socket `{}`", dir.display()),
        None => format!("`{}:{}`", o.get_host(), o.get_port()),
    };
    format!(
        "{place} database `{}` as `{}`",
        o.get_database().unwrap_or("postgres"),
        o.get_username()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<&'static str, &'static str>);

    impl Env for MapEnv {
        fn var(&self, key: &str) -> Option<String> {
            self.0.get(key).map(|v| v.to_string())
        }
    }

    fn env(pairs: &[(&'static str, &'static str)]) -> MapEnv {
        MapEnv(pairs.iter().copied().collect())
    }

    const HOST: &str = "abcdefghijklmnopqrstuvwxyz.dsql.eu-west-1.on.aws";

    #[test]
    fn region_is_read_from_dsql_hostnames() {
        assert_eq!(dsql_region_from_host(HOST).as_deref(), Some("eu-west-1"));
        assert_eq!(
            dsql_region_from_host("x.dsql-gamma.us-east-2.on.aws").as_deref(),
            Some("us-east-2")
        );
        assert_eq!(dsql_region_from_host("db.example.com"), None);
        assert_eq!(dsql_region_from_host("a.b.dsql.us-east-1.on.aws"), None);
    }

    #[test]
    fn nothing_configured_is_none() {
        let c = resolve(&ConnectionArgs::default(), &env(&[])).unwrap();
        assert!(c.target.is_none());
        let msg = c.require_target().unwrap_err().to_string();
        for needle in ["--local", "DSQL_ENDPOINT", "DATABASE_URL"] {
            assert!(msg.contains(needle), "{msg}");
        }
    }

    #[test]
    fn dsql_endpoint_from_env_with_seed_variables() {
        let c = resolve(
            &ConnectionArgs::default(),
            &env(&[
                ("DB_HOST", HOST),
                ("DB_USER", "reporter"),
                ("DB_NAME", "postgres"),
            ]),
        )
        .unwrap();
        let Some(Target::Dsql(d)) = c.target else {
            panic!("expected DSQL")
        };
        assert_eq!(d.endpoint, HOST);
        assert_eq!(d.region, "eu-west-1");
        assert_eq!(d.user, "reporter");
        assert!(!d.is_admin());
        assert_eq!(d.port, 5432);
        assert_eq!(d.token_expires_in, 900);
    }

    #[test]
    fn flag_beats_environment() {
        let args = ConnectionArgs {
            endpoint: Some("abcdefghijklmnopqrstuvwxyz".into()),
            user: Some("admin".into()),
            region: Some("us-west-2".into()),
            ..Default::default()
        };
        let c = resolve(
            &args,
            &env(&[
                ("DATABASE_URL", "postgres://u@h/db"),
                ("DB_USER", "other"),
                ("AWS_REGION", "ap-south-1"),
            ]),
        )
        .unwrap();
        let Some(Target::Dsql(d)) = c.target else {
            panic!("expected DSQL")
        };
        assert_eq!((d.user.as_str(), d.region.as_str()), ("admin", "us-west-2"));
    }

    /// A hostname names its cluster's region; another one given explicitly cannot work.
    #[test]
    fn a_region_contradicting_the_hostname_is_refused() {
        let args = ConnectionArgs {
            endpoint: Some(HOST.into()),
            region: Some("us-west-2".into()),
            ..Default::default()
        };
        let err = resolve(&args, &env(&[])).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "the endpoint `{HOST}` is in eu-west-1, but the region given is \
                 us-west-2: a token signed for another region is refused, so drop --region (or \
                 `region`)"
            )
        );
    }

    #[test]
    fn hostname_region_beats_ambient_region() {
        let c = resolve(
            &ConnectionArgs::default(),
            &env(&[("DSQL_ENDPOINT", HOST), ("AWS_REGION", "us-east-1")]),
        )
        .unwrap();
        let Some(Target::Dsql(d)) = c.target else {
            panic!()
        };
        assert_eq!(d.region, "eu-west-1");
    }

    #[test]
    fn cluster_id_needs_a_region() {
        let args = ConnectionArgs {
            endpoint: Some("abcdefghijklmnopqrstuvwxyz".into()),
            ..Default::default()
        };
        let err = resolve(&args, &env(&[])).unwrap_err().to_string();
        assert_eq!(
            err,
            "no AWS region for `abcdefghijklmnopqrstuvwxyz`: pass --region or set `AWS_REGION`"
        );
        let c = resolve(&args, &env(&[("AWS_REGION", "us-east-1")])).unwrap();
        let Some(Target::Dsql(d)) = c.target else {
            panic!()
        };
        assert_eq!(
            d.endpoint,
            "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"
        );
    }

    #[test]
    fn plain_host_is_postgres_with_contract_defaults() {
        let c = resolve(
            &ConnectionArgs::default(),
            &env(&[("DB_HOST", "db.internal"), ("DB_PORT", "6543")]),
        )
        .unwrap();
        let Some(Target::Postgres(p)) = c.target else {
            panic!()
        };
        assert_eq!(p.options.get_host(), "db.internal");
        assert_eq!(p.options.get_port(), 6543);
        assert_eq!(p.options.get_username(), "admin");
        assert_eq!(p.options.get_database(), Some("postgres"));
    }

    #[test]
    fn bad_port_is_named() {
        let err = resolve(
            &ConnectionArgs::default(),
            &env(&[("DB_HOST", "db"), ("DB_PORT", "http")]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`DB_PORT` must be a port number, got `http`"
        );
    }

    #[test]
    fn database_url_and_local_precedence() {
        let url_env = env(&[("DATABASE_URL", "postgres://me:pw@db.example.com:5433/app")]);
        let c = resolve(&ConnectionArgs::default(), &url_env).unwrap();
        let Some(Target::Postgres(p)) = &c.target else {
            panic!()
        };
        assert_eq!(p.label, "`db.example.com:5433` database `app` as `me`");
        assert!(!format!("{:?}", c).contains("pw"));

        let local_flag = ConnectionArgs {
            local: true,
            local_dir: Some("/tmp/x".into()),
            ..Default::default()
        };
        let c = resolve(&local_flag, &url_env).unwrap();
        assert!(matches!(c.target, Some(Target::Local(_))));

        // Same level: --local beats a URL beats an endpoint.
        let both = env(&[
            ("DSQLSH_LOCAL", "1"),
            ("DSQLSH_LOCAL_DIR", "/tmp/y"),
            ("DATABASE_URL", "postgres://me@h/app"),
        ]);
        let c = resolve(&ConnectionArgs::default(), &both).unwrap();
        assert!(matches!(c.target, Some(Target::Local(ref l)) if l.dir == Path::new("/tmp/y")));
    }

    struct DotEnv(HashMap<&'static str, (&'static str, bool)>);

    impl Env for DotEnv {
        fn var(&self, key: &str) -> Option<String> {
            self.0.get(key).map(|v| v.0.to_string())
        }
        fn set_by_dotenv(&self, key: &str) -> bool {
            self.0.get(key).is_some_and(|v| v.1)
        }
    }

    #[test]
    fn real_environment_beats_dotenv_across_target_kinds() {
        let env = DotEnv(
            [
                ("DSQLSH_LOCAL", ("1", true)),
                ("DSQLSH_LOCAL_DIR", ("/tmp/l", true)),
                ("DATABASE_URL", ("postgres://u@real/db", false)),
            ]
            .into_iter()
            .collect(),
        );
        let c = resolve(&ConnectionArgs::default(), &env).unwrap();
        assert!(
            matches!(c.target, Some(Target::Postgres(ref p)) if p.options.get_host() == "real")
        );
        let env = DotEnv(
            [
                ("DATABASE_URL", ("postgres://u@dotenv/db", true)),
                ("DB_HOST", ("realhost", false)),
            ]
            .into_iter()
            .collect(),
        );
        let c = resolve(&ConnectionArgs::default(), &env).unwrap();
        assert!(
            matches!(c.target, Some(Target::Postgres(ref p)) if p.options.get_host() == "realhost")
        );
    }

    #[test]
    fn bad_url_error_does_not_echo_the_url() {
        let args = ConnectionArgs {
            database_url: Some(Secret::new("postgres://me:s3cret@host:notaport/db")),
            ..Default::default()
        };
        assert!(!format!("{args:?}").contains("s3cret"));
        let err = resolve(&args, &env(&[])).unwrap_err().to_string();
        assert!(err.starts_with("invalid database URL"), "{err}");
        let mysql = ConnectionArgs {
            database_url: Some(Secret::new("mysql://u:pw@h/db")),
            ..Default::default()
        };
        assert_eq!(
            resolve(&mysql, &env(&[])).unwrap_err().to_string(),
            "the database URL must start with postgres:// or postgresql://"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn token_lifetime_is_validated() {
        assert_eq!(parse_token_secs("900").unwrap(), 900);
        assert_eq!(parse_token_secs("604800").unwrap(), 604_800);
        for bad in ["0", "604801", "-5", "abc"] {
            assert!(parse_token_secs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connect_addr_forms() {
        assert_eq!(
            parse_connect_addr("127.0.0.1:6000", 5432).unwrap(),
            "127.0.0.1:6000".parse().unwrap()
        );
        assert_eq!(
            parse_connect_addr("127.0.0.1", 5432).unwrap(),
            "127.0.0.1:5432".parse().unwrap()
        );
        assert_eq!(
            parse_connect_addr("localhost:7000", 5432).unwrap().port(),
            7000
        );
        assert!(parse_connect_addr("localhost:x", 5432).is_err());
    }
}
