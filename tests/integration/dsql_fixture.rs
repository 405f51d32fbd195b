//! A stand-in for the Aurora DSQL front door, so the DSQL path of dsqlsh is tested end to end
//! without AWS.
//!
//! The fixture listens on 127.0.0.1, expects the PostgreSQL SSLRequest, terminates TLS with a
//! certificate for the endpoint hostname issued by a test CA made at start-up (and refuses a
//! handshake whose SNI is missing or names another host), asks for a cleartext password and
//! verifies it as a DSQL IAM token: host, action for the role, access key, region, service,
//! expiry and the SigV4 signature recomputed with the test secret. A verified session is relayed
//! to the throwaway PostgreSQL over its unix socket (trust auth); a rejected one gets SQLSTATE
//! 28P01 and is closed. Counters and records tell the tests what happened.
//!
//! It runs on its own tokio runtime and thread, so sync tests use it directly; dropping the
//! `Fixture` stops the listener and every relayed session. It does not implement cancel
//! requests, GSS encryption or anything DSQL refuses.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};

/// The endpoint the fixture plays (its region is read from the name, as dsqlsh does).
pub const HOST: &str = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws";
pub const REGION: &str = "us-east-1";
/// Test credentials: dsqlsh gets them through `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
pub const ACCESS_KEY_ID: &str = "AKIDDSQLSHFIXTURE0001";
pub const SECRET_ACCESS_KEY: &str = "fIxTuReSeCrEt/dsqlsh+K7MDENG/bPxRfiCYTESTKEY";

/// How far past `X-Amz-Date + X-Amz-Expires` a token is still taken (the date has whole
/// seconds). Deliberately tight, so a pool that hands out stale tokens is caught.
pub const EXPIRY_SKEW_SECS: f64 = 1.0;
/// How far in the future `X-Amz-Date` may be (clock differences).
pub const FUTURE_SKEW_SECS: f64 = 5.0;

const SSL_REQUEST: i32 = 80_877_103;
const PROTOCOL_3_0: i32 = 196_608;
/// What DSQL answers for any bad token (it does not say why).
pub const ACCESS_DENIED: &str = "unable to accept connection, access denied";
pub const SSL_REQUIRED: &str = "unable to accept connection, SSL is required";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// ---------------------------------------------------------------------------------------------
// Token verification

/// The credentials a token must be signed with.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Temporary credentials: the token must carry exactly this `X-Amz-Security-Token`.
    pub session_token: Option<String>,
}

impl Credentials {
    pub fn test() -> Credentials {
        Credentials {
            access_key_id: ACCESS_KEY_ID.into(),
            secret_access_key: SECRET_ACCESS_KEY.into(),
            session_token: None,
        }
    }
}

/// What a token presented for one connection must match.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    pub host: &'a str,
    pub region: &'a str,
    /// The role connecting: `admin` needs DbConnectAdmin, every other role DbConnect.
    pub user: &'a str,
    pub creds: &'a Credentials,
    /// Seconds since the epoch.
    pub now: f64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Malformed(String),
    Host(String),
    Credential(String),
    Signature,
    Action { expected: &'static str, got: String },
    Expired,
    NotYetValid,
}

/// A token that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub action: String,
    /// `X-Amz-Date` as seconds since the epoch.
    pub issued: i64,
    pub expires_in: u64,
    pub signature: String,
}

pub fn required_action(user: &str) -> &'static str {
    if user == "admin" {
        "DbConnectAdmin"
    } else {
        "DbConnect"
    }
}

/// A token taken apart: host and decoded query parameters, in order.
#[derive(Debug, Clone)]
pub struct ParsedToken {
    pub host: String,
    pub params: Vec<(String, String)>,
}

impl ParsedToken {
    pub fn parse(token: &str) -> Result<ParsedToken, Rejection> {
        let bad = |why: &str| Rejection::Malformed(why.to_string());
        let (host, query) = token
            .split_once("/?")
            .ok_or_else(|| bad("not `<host>/?<query>`"))?;
        if host.is_empty() || host.contains("://") || host.contains('/') {
            return Err(bad("bad host part"));
        }
        let mut params = Vec::new();
        for pair in query.split('&') {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad("query pair without `=`"))?;
            let (k, v) = (
                percent_decode(k).ok_or_else(|| bad("bad escape"))?,
                percent_decode(v).ok_or_else(|| bad("bad escape"))?,
            );
            if params.iter().any(|(seen, _): &(String, String)| *seen == k) {
                return Err(Rejection::Malformed(format!("`{k}` given twice")));
            }
            params.push((k, v));
        }
        Ok(ParsedToken {
            host: host.to_string(),
            params,
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn require(&self, key: &str) -> Result<&str, Rejection> {
        self.get(key)
            .ok_or_else(|| Rejection::Malformed(format!("`{key}` is missing")))
    }

    /// SigV4's canonical request for a presigned `GET https://<host>/?...` with only `host`
    /// signed.
    pub fn canonical_request(&self) -> String {
        let mut pairs: Vec<(String, String)> = self
            .params
            .iter()
            .filter(|(k, _)| k != "X-Amz-Signature")
            .map(|(k, v)| (uri_encode(k), uri_encode(v)))
            .collect();
        pairs.sort();
        let query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        format!(
            "GET\n/\n{query}\nhost:{}\n\nhost\n{EMPTY_SHA256}",
            self.host
        )
    }

    /// The string to sign; fails when the date or credential scope is unreadable.
    pub fn string_to_sign(&self) -> Result<String, Rejection> {
        let date_time = self.require("X-Amz-Date")?;
        let credential = self.require("X-Amz-Credential")?;
        let (_, scope) = credential
            .split_once('/')
            .ok_or_else(|| Rejection::Credential(credential.to_string()))?;
        Ok(format!(
            "AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}",
            hex::encode(Sha256::digest(self.canonical_request().as_bytes()))
        ))
    }
}

/// Check `token` as DSQL would for a connection described by `e`.
pub fn verify(token: &str, e: &Expect) -> Result<Verified, Rejection> {
    let t = ParsedToken::parse(token)?;
    if t.require("X-Amz-Algorithm")? != "AWS4-HMAC-SHA256" {
        return Err(Rejection::Malformed("algorithm".into()));
    }
    if t.require("X-Amz-SignedHeaders")? != "host" {
        return Err(Rejection::Malformed("signed headers".into()));
    }
    let date_time = t.require("X-Amz-Date")?;
    let issued = chrono::NaiveDateTime::parse_from_str(date_time, "%Y%m%dT%H%M%SZ")
        .map_err(|_| Rejection::Malformed(format!("X-Amz-Date `{date_time}`")))?
        .and_utc()
        .timestamp();
    let expires_in: u64 = t
        .require("X-Amz-Expires")?
        .parse()
        .ok()
        .filter(|n| (1..=604_800).contains(n))
        .ok_or_else(|| Rejection::Malformed("X-Amz-Expires".into()))?;

    // <AKID>/<date>/<region>/dsql/aws4_request
    let credential = t.require("X-Amz-Credential")?;
    let parts: Vec<&str> = credential.split('/').collect();
    let expected_scope = [
        e.creds.access_key_id.as_str(),
        &date_time[..8],
        e.region,
        "dsql",
        "aws4_request",
    ];
    if parts != expected_scope {
        return Err(Rejection::Credential(credential.to_string()));
    }
    if t.get("X-Amz-Security-Token") != e.creds.session_token.as_deref() {
        return Err(Rejection::Credential("X-Amz-Security-Token".into()));
    }
    if t.host != e.host {
        return Err(Rejection::Host(t.host.clone()));
    }

    let signature = t.require("X-Amz-Signature")?;
    let expected = sign(&e.creds.secret_access_key, &date_time[..8], e.region, &t)?;
    if !constant_time_eq(signature.as_bytes(), expected.as_bytes()) {
        return Err(Rejection::Signature);
    }

    let action = t.require("Action")?;
    let needed = required_action(e.user);
    if action != needed {
        return Err(Rejection::Action {
            expected: needed,
            got: action.to_string(),
        });
    }
    if e.now > (issued as f64) + expires_in as f64 + EXPIRY_SKEW_SECS {
        return Err(Rejection::Expired);
    }
    if issued as f64 > e.now + FUTURE_SKEW_SECS {
        return Err(Rejection::NotYetValid);
    }
    Ok(Verified {
        action: action.to_string(),
        issued,
        expires_in,
        signature: signature.to_string(),
    })
}

/// The hex SigV4 signature of `t` (without its own `X-Amz-Signature`).
pub fn sign(secret: &str, date: &str, region: &str, t: &ParsedToken) -> Result<String, Rejection> {
    let string_to_sign = t.string_to_sign()?;
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, "dsql", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    Ok(hex::encode(hmac(&key, string_to_sign.as_bytes())))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SigV4 URI encoding: unreserved characters kept, everything else `%XX` in upper case.
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// Certificates

/// A test CA and a server certificate for `host` issued by it.
struct Pki {
    ca_pem: String,
    leaf: Vec<CertificateDer<'static>>,
    leaf_key: PrivateKeyDer<'static>,
}

fn make_ca(name: &str) -> (rcgen::CertificateParams, rcgen::KeyPair, rcgen::Certificate) {
    let key = rcgen::KeyPair::generate().expect("CA key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("CA certificate");
    (params, key, cert)
}

fn make_pki(host: &str) -> Pki {
    let (ca_params, ca_key, ca_cert) = make_ca("dsqlsh test CA");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("server key");
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()]).expect("server params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, host);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = params.signed_by(&key, &issuer).expect("server certificate");
    Pki {
        ca_pem: ca_cert.pem(),
        leaf: vec![leaf.der().clone()],
        leaf_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// A root certificate that did not issue the fixture's certificate (for the TLS failure test).
pub fn write_unrelated_ca(path: &Path) {
    let (_, _, cert) = make_ca("some other CA");
    std::fs::write(path, cert.pem()).expect("write CA");
}

/// Hands out the certificate only to a client that asked for `host` by SNI.
#[derive(Debug)]
struct SniResolver {
    host: String,
    key: Arc<rustls::sign::CertifiedKey>,
    state: Arc<State>,
}

impl rustls::server::ResolvesServerCert for SniResolver {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        match hello.server_name() {
            Some(name) if name.eq_ignore_ascii_case(&self.host) => Some(self.key.clone()),
            other => {
                // Counted before the handshake fails, so a client that saw the failure
                // can read the counter at once.
                self.state.sni_rejected.fetch_add(1, Ordering::SeqCst);
                self.state
                    .log
                    .lock()
                    .unwrap()
                    .sni_seen
                    .push(other.map(str::to_string));
                None
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server

/// One relayed session, as the fixture saw it.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub database: String,
    pub action: String,
    pub application_name: Option<String>,
    /// Seconds between the token's `X-Amz-Date` and its verification.
    pub token_age: f64,
    pub signature: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// TCP connections accepted.
    pub accepted: u64,
    /// Tokens verified (each such session was then relayed).
    pub verified: u64,
    /// Tokens rejected with 28P01.
    pub rejected: u64,
    /// StartupMessages sent without TLS.
    pub plaintext_refused: u64,
    /// TLS handshakes refused for a missing or wrong SNI.
    pub sni_rejected: u64,
}

#[derive(Debug, Default)]
struct Log {
    sessions: Vec<Session>,
    rejections: Vec<(String, Rejection)>,
    passwords: Vec<String>,
    sni_seen: Vec<Option<String>>,
    errors: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    accepted: AtomicU64,
    verified: AtomicU64,
    rejected: AtomicU64,
    plaintext_refused: AtomicU64,
    sni_rejected: AtomicU64,
    log: Mutex<Log>,
}

struct Ctx {
    host: String,
    region: String,
    creds: Credentials,
    acceptor: tokio_rustls::TlsAcceptor,
    upstream: PathBuf,
    state: Arc<State>,
}

pub struct Fixture {
    pub host: String,
    pub addr: SocketAddr,
    ca_path: PathBuf,
    state: Arc<State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// Start a front door for `HOST` relaying to the test cluster.
    pub fn start() -> Fixture {
        let (_, socket_dir) = crate::support::cluster();
        let upstream = socket_dir.join(format!(".s.PGSQL.{}", dsqlsh::local::SOCKET_PORT));
        Fixture::start_with(HOST, REGION, Credentials::test(), upstream)
    }

    pub fn start_with(host: &str, region: &str, creds: Credentials, upstream: PathBuf) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("dsql-fixture-")
            .tempdir()
            .expect("temp dir");
        let pki = make_pki(host);
        let ca_path = dir.path().join("fixture-ca.pem");
        std::fs::write(&ca_path, &pki.ca_pem).expect("write the CA");

        let state = Arc::new(State::default());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let signing_key = provider
            .key_provider
            .load_private_key(pki.leaf_key)
            .expect("load the server key");
        let resolver = SniResolver {
            host: host.to_string(),
            key: Arc::new(rustls::sign::CertifiedKey::new(pki.leaf, signing_key)),
            state: state.clone(),
        };
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let ctx = Arc::new(Ctx {
            host: host.to_string(),
            region: region.to_string(),
            creds,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            upstream,
            state: state.clone(),
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("dsql-fixture".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("fixture runtime");
                rt.block_on(serve(listener, ctx, rx));
                // Dropping the runtime drops every session task, closing both of its sockets.
                rt.shutdown_timeout(Duration::from_secs(5));
            })
            .expect("fixture thread");
        Fixture {
            host: host.to_string(),
            addr,
            ca_path,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// The fixture's root certificate (PEM), for `--ssl-root-cert`.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// The address dsqlsh dials (`--connect-addr`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connection flags that make dsqlsh treat the fixture as the cluster.
    pub fn flags(&self, database: &str) -> Vec<String> {
        vec![
            "--endpoint".into(),
            self.host.clone(),
            "--connect-addr".into(),
            self.addr.to_string(),
            "--ssl-root-cert".into(),
            self.ca_path.display().to_string(),
            "--database".into(),
            database.into(),
        ]
    }

    pub fn counts(&self) -> Counts {
        let s = &self.state;
        Counts {
            accepted: s.accepted.load(Ordering::SeqCst),
            verified: s.verified.load(Ordering::SeqCst),
            rejected: s.rejected.load(Ordering::SeqCst),
            plaintext_refused: s.plaintext_refused.load(Ordering::SeqCst),
            sni_rejected: s.sni_rejected.load(Ordering::SeqCst),
        }
    }

    pub fn sessions(&self) -> Vec<Session> {
        self.state.log.lock().unwrap().sessions.clone()
    }

    /// `(user, reason)` of every rejected token, in order.
    pub fn rejections(&self) -> Vec<(String, Rejection)> {
        self.state.log.lock().unwrap().rejections.clone()
    }

    /// Every password presented, verified or not (for the leak check).
    pub fn passwords(&self) -> Vec<String> {
        self.state.log.lock().unwrap().passwords.clone()
    }

    /// The SNI of every refused handshake (`None`: the client sent none).
    pub fn sni_seen(&self) -> Vec<Option<String>> {
        self.state.log.lock().unwrap().sni_seen.clone()
    }

    /// Protocol errors of sessions that ended abnormally before the relay.
    pub fn errors(&self) -> Vec<String> {
        self.state.log.lock().unwrap().errors.clone()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    ctx: Arc<Ctx>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                ctx.state.accepted.fetch_add(1, Ordering::SeqCst);
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, &ctx).await {
                        ctx.state.log.lock().unwrap().errors.push(e.to_string());
                    }
                });
            }
        }
    }
}

type Io<T> = std::io::Result<T>;

fn protocol_error(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

async fn handle(mut tcp: TcpStream, ctx: &Ctx) -> Io<()> {
    tcp.set_nodelay(true)?;
    let len = tcp.read_i32().await?;
    let code = tcp.read_i32().await?;
    if !(len == 8 && code == SSL_REQUEST) {
        // A plaintext StartupMessage (or anything else): DSQL only speaks TLS.
        ctx.state.plaintext_refused.fetch_add(1, Ordering::SeqCst);
        let rest = (len.clamp(8, 10_000) - 8) as usize;
        let mut skip = vec![0; rest];
        let _ = tcp.read_exact(&mut skip).await;
        tcp.write_all(&error_response("08P01", SSL_REQUIRED))
            .await?;
        return tcp.shutdown().await;
    }
    tcp.write_all(b"S").await?;
    let mut tls = match ctx.acceptor.accept(tcp).await {
        Ok(tls) => tls,
        // Refused SNI (counted by the resolver) or a client that gave up.
        Err(_) => return Ok(()),
    };

    let params = read_startup(&mut tls).await?;
    let param = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let user = param("user").ok_or_else(|| protocol_error("no user"))?;
    let database = param("database").unwrap_or_else(|| user.clone());

    // AuthenticationCleartextPassword
    tls.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await?;
    tls.flush().await?;
    let (tag, body) = read_message(&mut tls).await?;
    if tag != b'p' {
        return Err(protocol_error(format!(
            "expected a password, got {:?}",
            tag as char
        )));
    }
    let password = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body)).to_string();
    ctx.state
        .log
        .lock()
        .unwrap()
        .passwords
        .push(password.clone());

    let now = unix_now();
    let expect = Expect {
        host: &ctx.host,
        region: &ctx.region,
        user: &user,
        creds: &ctx.creds,
        now,
    };
    let verified = match verify(&password, &expect) {
        Ok(v) => v,
        Err(reason) => {
            ctx.state.rejected.fetch_add(1, Ordering::SeqCst);
            ctx.state
                .log
                .lock()
                .unwrap()
                .rejections
                .push((user.clone(), reason));
            tls.write_all(&error_response("28P01", ACCESS_DENIED))
                .await?;
            tls.flush().await?;
            let _ = tls.shutdown().await;
            return Ok(());
        }
    };
    ctx.state.verified.fetch_add(1, Ordering::SeqCst);
    ctx.state.log.lock().unwrap().sessions.push(Session {
        user: user.clone(),
        database: database.clone(),
        action: verified.action.clone(),
        application_name: param("application_name"),
        token_age: now - verified.issued as f64,
        signature: verified.signature.clone(),
    });

    // Relay: the same startup parameters upstream (trust auth), then bytes both ways.
    let mut up = UnixStream::connect(&ctx.upstream).await?;
    up.write_all(&startup_message(&params)).await?;
    loop {
        let (tag, body) = read_message(&mut up).await?;
        let raw = frame(tag, &body);
        match (tag, body.as_slice()) {
            (b'R', [0, 0, 0, 0]) => {
                tls.write_all(&raw).await?;
                break;
            }
            (b'E', _) => {
                tls.write_all(&raw).await?;
                tls.flush().await?;
                return Ok(());
            }
            (b'N', _) => tls.write_all(&raw).await?,
            _ => {
                tls.write_all(&error_response(
                    "28000",
                    "fixture: the test server asked for a password",
                ))
                .await?;
                return Ok(());
            }
        }
    }
    tls.flush().await?;
    // A client that drops the socket without close_notify ends the copy with an error; that is
    // an ordinary end of session here.
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
    Ok(())
}

async fn read_startup<S: AsyncRead + Unpin>(s: &mut S) -> Io<Vec<(String, String)>> {
    let len = s.read_i32().await?;
    if !(8..=10_000).contains(&len) {
        return Err(protocol_error(format!("startup length {len}")));
    }
    let mut body = vec![0; len as usize - 4];
    s.read_exact(&mut body).await?;
    let version = i32::from_be_bytes(body[..4].try_into().unwrap());
    if version != PROTOCOL_3_0 {
        return Err(protocol_error(format!("protocol {version}")));
    }
    let fields: Vec<String> = body[4..]
        .split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).to_string())
        .collect();
    let mut params = Vec::new();
    let mut it = fields.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if k.is_empty() {
            break;
        }
        params.push((k, v));
    }
    Ok(params)
}

fn startup_message(params: &[(String, String)]) -> Vec<u8> {
    let mut body = PROTOCOL_3_0.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    msg.extend(body);
    msg
}

async fn read_message<S: AsyncRead + Unpin>(s: &mut S) -> Io<(u8, Vec<u8>)> {
    let tag = s.read_u8().await?;
    let len = s.read_i32().await?;
    if !(4..=1 << 20).contains(&len) {
        return Err(protocol_error(format!("message length {len}")));
    }
    let mut body = vec![0; len as usize - 4];
    s.read_exact(&mut body).await?;
    Ok((tag, body))
}

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn error_response(code: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    frame(b'E', &body)
}

/// Send a plaintext StartupMessage (no SSLRequest) and return the server's answer.
pub fn plaintext_startup(addr: SocketAddr, user: &str) -> BTreeMap<char, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let params = vec![
            ("user".to_string(), user.to_string()),
            ("database".to_string(), "postgres".to_string()),
        ];
        s.write_all(&startup_message(&params)).await.unwrap();
        let (tag, body) = read_message(&mut s).await.expect("an answer");
        assert_eq!(tag, b'E', "expected an ErrorResponse");
        let mut fields = BTreeMap::new();
        for f in body.split(|b| *b == 0).filter(|f| !f.is_empty()) {
            fields.insert(f[0] as char, String::from_utf8_lossy(&f[1..]).to_string());
        }
        // The server closes after the error.
        let mut rest = Vec::new();
        assert_eq!(s.read_to_end(&mut rest).await.unwrap_or(0), 0);
        fields
    })
}

/// SSLRequest, then a TLS handshake naming `server_name` (an IP address sends no SNI) and
/// trusting the fixture's CA. Ok when the handshake completed.
pub fn tls_handshake(fx: &Fixture, server_name: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(fx.ca_path()).unwrap();
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut s = TcpStream::connect(fx.addr).await.expect("connect");
        s.write_i32(8).await.unwrap();
        s.write_i32(SSL_REQUEST).await.unwrap();
        assert_eq!(s.read_u8().await.unwrap(), b'S');
        let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        match connector.connect(name, s).await {
            Ok(mut tls) => {
                let _ = tls.shutdown().await;
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    })
}
