//! Connections: one `Database` per target, wrapping a sqlx pool.
//!
//! For Aurora DSQL every new physical connection must present an unexpired IAM token. The pool's
//! connect options carry the current token; `acquire` replaces it once it is older than a
//! quarter of its lifetime, and a background task does the same for connections the pool opens
//! while callers wait. So the password of a new connection is never older than lifetime/4 plus
//! a connect, whatever the token lifetime. Connections are recycled before DSQL's 60-minute cut
//! with per-acquire jitter so a pool opened in one burst does not reconnect in one burst.
//!
//! This module knows targets and pools; running SQL lives in `exec`.

pub mod codec;
pub mod error;
pub mod exec;
mod numeric;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use rand::Rng;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection, Postgres};

use crate::auth::{self, TokenSpec};
use crate::config::{DsqlTarget, Target};
use crate::error::{DbError, Error, Result};
use crate::local::LocalServer;

/// How long opening one connection may take (TCP, TLS, authentication).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// DSQL closes every connection after 60 minutes; recycle between 50 and 55.
const DSQL_MAX_LIFETIME: Duration = Duration::from_secs(55 * 60);
const DSQL_RECYCLE_FROM: Duration = Duration::from_secs(50 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Dsql,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// Overrides the flavor's default maximum connection lifetime.
    pub max_lifetime: Option<Duration>,
    /// Overrides the DSQL token lifetime (seconds).
    pub token_expires_in: Option<u64>,
}

impl PoolSettings {
    /// Defaults, refined by `DSQLSH_POOL_MAX` (connections) and `DSQLSH_POOL_MAX_LIFETIME`
    /// (seconds) from the environment.
    pub fn from_env() -> Result<PoolSettings> {
        let mut s = PoolSettings::default();
        if let Ok(v) = std::env::var("DSQLSH_POOL_MAX") {
            s.max_connections = v
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| {
                    Error::Config(format!(
                        "`DSQLSH_POOL_MAX` must be from 1 to 10000, got `{v}`"
                    ))
                })?;
        }
        if let Ok(v) = std::env::var("DSQLSH_POOL_MAX_LIFETIME") {
            let secs: f64 = v
                .trim()
                .parse()
                .ok()
                .filter(|s: &f64| *s > 0.0 && *s < 1e9)
                .ok_or_else(|| {
                    Error::Config(format!(
                    "`DSQLSH_POOL_MAX_LIFETIME` must be a number of seconds above 0 and below 1e9, got `{v}`"
                ))
                })?;
            s.max_lifetime = Some(Duration::from_secs_f64(secs));
        }
        Ok(s)
    }
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            max_lifetime: None,
            token_expires_in: None,
        }
    }
}

/// Token state shared by a DSQL pool and its background refresher.
struct DsqlAuth {
    sdk: SdkConfig,
    spec: TokenSpec,
    /// Connect options without a password.
    base: PgConnectOptions,
    issued: tokio::sync::Mutex<Instant>,
    refresh_after: Duration,
}

impl DsqlAuth {
    async fn options_with_fresh_token(&self) -> Result<PgConnectOptions> {
        let token = auth::generate(&self.sdk, &self.spec).await?;
        Ok(self.base.clone().password(token.expose()))
    }

    /// The same token source for another pool. The token's age is tracked per pool: each pool
    /// carries its own token in its connect options, so a refresh of one pool must not make
    /// another pool's older token look fresh.
    fn for_another_pool(&self) -> DsqlAuth {
        DsqlAuth {
            sdk: self.sdk.clone(),
            spec: self.spec.clone(),
            base: self.base.clone(),
            issued: tokio::sync::Mutex::new(Instant::now()),
            refresh_after: self.refresh_after,
        }
    }

    /// Replace the pool's token when it has aged past `refresh_after`.
    async fn refresh_if_stale(&self, pool: &PgPool) -> Result<()> {
        let mut issued = self.issued.lock().await;
        if issued.elapsed() >= self.refresh_after {
            pool.set_connect_options(self.options_with_fresh_token().await?);
            *issued = Instant::now();
        }
        Ok(())
    }
}

pub struct Database {
    pool: PgPool,
    pub flavor: Flavor,
    label: String,
    dsql: Option<Arc<DsqlAuth>>,
    /// `format_type` names of parameter types the server parses for us (see exec).
    pub(crate) type_names: Mutex<HashMap<u32, String>>,
    /// Keeps the --local server running while any pool on it exists.
    local: Option<Arc<LocalServer>>,
    target: Target,
    settings: PoolSettings,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({})", self.label)
    }
}

impl Database {
    /// Open a pool on `target` after checking that one connection can be made.
    pub async fn open(target: &Target, settings: PoolSettings) -> Result<Arc<Database>> {
        let label = target.label();
        let (options, flavor, dsql, local) = match target {
            Target::Local(l) => {
                let dir = l.dir.clone();
                let server = tokio::task::spawn_blocking(move || LocalServer::acquire(&dir))
                    .await
                    .map_err(|e| Error::Local(e.to_string()))??;
                let options = server.connect_options(&l.user, &l.database);
                (options, Flavor::Postgres, None, Some(Arc::new(server)))
            }
            Target::Postgres(p) => (p.options.clone(), Flavor::Postgres, None, None),
            Target::Dsql(d) => {
                let auth = Arc::new(dsql_auth(d, &settings).await?);
                let options = auth.options_with_fresh_token().await?;
                (options, Flavor::Dsql, Some(auth), None)
            }
        };
        first_connect(&options, target).await?;
        Ok(Arc::new(Self::with_pool(
            options,
            flavor,
            label,
            dsql,
            local,
            target.clone(),
            settings,
        )))
    }

    fn with_pool(
        options: PgConnectOptions,
        flavor: Flavor,
        label: String,
        dsql: Option<Arc<DsqlAuth>>,
        local: Option<Arc<LocalServer>>,
        target: Target,
        settings: PoolSettings,
    ) -> Database {
        let mut pool_options = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .min_connections(0)
            .acquire_timeout(CONNECT_TIMEOUT)
            .idle_timeout(Some(Duration::from_secs(300)))
            // A ping per acquire would double the round trips of every short transaction;
            // lifetimes and idle timeouts retire connections before servers drop them.
            .test_before_acquire(false);
        match (flavor, settings.max_lifetime) {
            (_, Some(lifetime)) => pool_options = pool_options.max_lifetime(lifetime),
            (Flavor::Dsql, None) => {
                pool_options =
                    pool_options
                        .max_lifetime(DSQL_MAX_LIFETIME)
                        .before_acquire(|_conn, meta| {
                            Box::pin(async move {
                                let window =
                                    (DSQL_MAX_LIFETIME - DSQL_RECYCLE_FROM).as_millis() as u64;
                                let jitter = rand::rng().random_range(0..window);
                                Ok(meta.age < DSQL_RECYCLE_FROM + Duration::from_millis(jitter))
                            })
                        })
            }
            (Flavor::Postgres, None) => {}
        }
        let pool = pool_options.connect_lazy_with(options);
        if let Some(auth) = &dsql {
            spawn_refresher(pool.clone(), auth.clone());
        }
        Database {
            pool,
            flavor,
            label,
            dsql,
            type_names: Mutex::new(HashMap::new()),
            local,
            target,
            settings,
        }
    }

    /// A second pool on the same target with its own size (the stress engine sizes its pool to
    /// its concurrency). Shares the credentials and the local server; keeps its own token.
    pub async fn sibling(&self, max_connections: u32) -> Result<Arc<Database>> {
        let (options, dsql) = match &self.dsql {
            Some(a) => {
                let auth = Arc::new(a.for_another_pool());
                (auth.options_with_fresh_token().await?, Some(auth))
            }
            None => ((*self.pool.connect_options()).clone(), None),
        };
        let settings = PoolSettings {
            max_connections,
            ..self.settings.clone()
        };
        Ok(Arc::new(Self::with_pool(
            options,
            self.flavor,
            self.label.clone(),
            dsql,
            self.local.clone(),
            self.target.clone(),
            settings,
        )))
    }

    /// How long a connection may live: the explicit setting, else DSQL's recycle age, else none.
    /// Sessions and stress workers that hold a connection replace it after this.
    pub fn max_connection_age(&self) -> Option<Duration> {
        match (self.settings.max_lifetime, self.flavor) {
            (Some(l), _) => Some(l),
            (None, Flavor::Dsql) => Some(DSQL_RECYCLE_FROM),
            (None, Flavor::Postgres) => None,
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn is_dsql(&self) -> bool {
        self.flavor == Flavor::Dsql
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// `(size, idle, max)` of the pool.
    pub fn pool_status(&self) -> (u32, usize, u32) {
        (
            self.pool.size(),
            self.pool.num_idle(),
            self.settings.max_connections,
        )
    }

    /// A connection from the pool, with a token young enough for any new connection it opens.
    pub async fn acquire(&self) -> Result<PoolConnection<Postgres>, DbError> {
        if let Some(a) = &self.dsql {
            a.refresh_if_stale(&self.pool)
                .await
                .map_err(|e| error::client_error("08001", e.to_string()))?;
        }
        match self.pool.acquire().await {
            Ok(c) => Ok(c),
            // The pool retries refused connections until its timeout and then only says it
            // timed out; one direct attempt tells why (53300 too many clients, say).
            Err(sqlx::Error::PoolTimedOut) => {
                let options = self.pool.connect_options();
                let probe = tokio::time::timeout(
                    Duration::from_secs(10),
                    sqlx::ConnectOptions::connect(&*options),
                )
                .await;
                let e = match probe {
                    Ok(Err(why)) => why,
                    Ok(Ok(conn)) => {
                        let _ = sqlx::Connection::close(conn).await;
                        sqlx::Error::PoolTimedOut
                    }
                    Err(_) => sqlx::Error::PoolTimedOut,
                };
                Err(connect_failure(&self.label, e, &self.target))
            }
            Err(e) => Err(connect_failure(&self.label, e, &self.target)),
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Ask the server to cancel the statements that the server processes `pids` are running,
    /// from a new connection. Best effort, bounded by `within`: the caller is already
    /// reporting an interrupt or a stuck run, and the server may be what is stuck.
    pub async fn cancel_backends(&self, pids: &[i32], within: Duration) {
        let cancel = async {
            let mut conn = self.acquire().await.ok()?;
            sqlx::query("SELECT pg_cancel_backend(p) FROM unnest($1::int4[]) AS p")
                .bind(pids)
                .execute(&mut *conn)
                .await
                .ok()
        };
        let _ = tokio::time::timeout(within, cancel).await;
    }
}

fn spawn_refresher(pool: PgPool, auth: Arc<DsqlAuth>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(auth.refresh_after).await;
            if pool.is_closed() {
                break;
            }
            if let Err(e) = auth.refresh_if_stale(&pool).await {
                // The next acquire reports the same failure to the caller; note it once here.
                eprintln!("dsqlsh: warning: token refresh failed: {e}");
            }
        }
    });
}

async fn dsql_auth(d: &DsqlTarget, settings: &PoolSettings) -> Result<DsqlAuth> {
    let expires_in = settings.token_expires_in.unwrap_or(d.token_expires_in);
    let sdk = auth::load_sdk_config(d.profile.as_deref(), &d.region).await;
    let mut base = PgConnectOptions::new_without_pgpass()
        .host(&d.endpoint)
        .port(d.port)
        .username(&d.user)
        .database(&d.database)
        .ssl_mode(PgSslMode::VerifyFull)
        .application_name("dsqlsh");
    if let Some(cert) = &d.ssl_root_cert {
        if !cert.is_file() {
            return Err(Error::Config(format!(
                "the root certificate `{}` does not exist",
                cert.display()
            )));
        }
        base = base.ssl_root_cert(cert);
    }
    if let Some(addr) = d.connect_addr {
        base = base.hostaddr(addr.ip()).port(addr.port());
    }
    Ok(DsqlAuth {
        sdk,
        spec: TokenSpec {
            endpoint: d.endpoint.clone(),
            region: d.region.clone(),
            admin: d.is_admin(),
            expires_in,
            profile: d.profile.clone(),
        },
        base,
        issued: tokio::sync::Mutex::new(Instant::now()),
        refresh_after: Duration::from_millis(expires_in * 1000 / 4),
    })
}

/// One direct connection, so configuration errors surface at once and with their real cause
/// (a pool would retry until its timeout). DSQL clusters waking from idle are retried.
async fn first_connect(options: &PgConnectOptions, target: &Target) -> Result<()> {
    let label = target.label();
    let mut delay = Duration::from_millis(250);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // A server that accepts TCP but never answers must not hang a cron job forever.
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
            .await
            .unwrap_or_else(|_| {
                Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "timed out",
                )))
            });
        match attempt {
            Ok(conn) => {
                let _ = conn.close().await;
                return Ok(());
            }
            Err(e) if is_waking_up(&e) && Instant::now() < deadline => {
                eprintln!("dsqlsh: the cluster is waking up; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                let db = connect_failure(&label, e, target);
                return Err(Error::Connect {
                    target: label,
                    sqlstate: db.sqlstate,
                    message: db
                        .message
                        .split_once(": ")
                        .map(|(_, m)| m.to_string())
                        .unwrap_or(db.message),
                });
            }
        }
    }
}

fn is_waking_up(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.message().to_ascii_lowercase().contains("waking up"))
}

/// Why a connection could not be opened, as a DbError whose message starts with
/// `cannot connect to <target>: `.
fn connect_failure(label: &str, e: sqlx::Error, target: &Target) -> DbError {
    let reason = match &e {
        sqlx::Error::Io(io) => match tls_handshake_error(io) {
            Some(t) => tls_reason(target, t),
            None => error::io_reason(io),
        },
        sqlx::Error::Tls(t) => tls_reason(target, t),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            match target {
                Target::Dsql(d)
                    if code.starts_with("28") || db.message().contains("authenticat") =>
                {
                    let action = if d.is_admin() {
                        "DbConnectAdmin"
                    } else {
                        "DbConnect"
                    };
                    format!(
                        "authentication rejected for role `{}` with {} token ({}); the IAM identity \
                         needs `dsql:{}` on this cluster{}",
                        d.user,
                        if d.is_admin() { "an admin" } else { "a non-admin" },
                        db.message(),
                        action,
                        if d.is_admin() { "" } else { ", and the role must be granted to it with AWS IAM GRANT" }
                    )
                }
                _ => format!("{} (SQLSTATE {code})", db.message()),
            }
        }
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".into(),
        other => other.to_string(),
    };
    let sqlstate = match &e {
        sqlx::Error::Database(db) => db.code().map(|c| c.to_string()).unwrap_or("08001".into()),
        _ => "08001".into(),
    };
    DbError {
        sqlstate,
        message: format!("cannot connect to {label}: {reason}"),
        retryable: false,
    }
}

/// A failed TLS handshake (bad certificate, alert from the server) reaches us from sqlx as an
/// I/O error wrapping the rustls error, not as `sqlx::Error::Tls`.
fn tls_handshake_error(io: &std::io::Error) -> Option<&rustls::Error> {
    io.get_ref()?.downcast_ref::<rustls::Error>()
}

fn tls_reason(target: &Target, t: &dyn std::fmt::Display) -> String {
    let text = t.to_string();
    match target {
        // The server refused TLS altogether: nothing was verified, so do not say it failed.
        Target::Dsql(d) if text.contains("does not support TLS") => format!(
            "the server at {} does not accept TLS, which every DSQL endpoint does; check the \
             address (--connect-addr, or what `{}` resolves to)",
            d.connect_addr
                .as_ref()
                .map_or_else(|| format!("`{}`", d.endpoint), |a| format!("`{a}`")),
            d.endpoint
        ),
        Target::Dsql(d) => format!(
            "TLS verification of `{}` failed using {}: {t}",
            d.endpoint,
            match &d.ssl_root_cert {
                Some(p) => format!("the root certificate `{}`", p.display()),
                None => "the public webpki roots".into(),
            }
        ),
        _ => format!("TLS error: {t}"),
    }
}

/// Class 08: the connection is gone, could not be made, or is out of step with the server;
/// also 57P01/57P02, the server's last words before it closes a session it terminated
/// (`pg_terminate_backend`, a shutdown).
pub fn is_connection_error(e: &DbError) -> bool {
    e.sqlstate.starts_with("08") || e.sqlstate == "57P01" || e.sqlstate == "57P02"
}
