//! The seed flows as functions: `insert_user`, `list_users`, `stats`, `stress`.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Engine, Map};

use super::db_api::type_label;
use super::{db_error, host_error, script_error, RhaiResult, Session};
use crate::error::DbError;
use crate::stats::{self, StatsOptions};
use crate::stress::{self, Options, Thresholds};
use crate::users::{self, Ident, MISSING_TABLE_HINT};

pub(super) fn check_keys(func: &str, opts: &Map, known: &[&str]) -> RhaiResult<()> {
    for k in opts.keys() {
        if !known.contains(&k.as_str()) {
            let hint = super::helpers::did_you_mean(k, known.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            return Err(script_error(format!(
                "{func}: unknown option `{k}` (known: {}){hint}",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

pub(super) fn opt_int(
    func: &str,
    opts: &Map,
    key: &str,
    min: i64,
    max: i64,
) -> RhaiResult<Option<i64>> {
    match opts.get(key) {
        None => Ok(None),
        Some(v) if v.is_unit() => Ok(None),
        Some(v) => match v.as_int() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(script_error(format!(
                "{func}: `{key}` must be an integer from {min} to {max}, got {}",
                show(v)
            ))),
        },
    }
}

pub(super) fn opt_float(func: &str, opts: &Map, key: &str) -> RhaiResult<Option<f64>> {
    match opts.get(key) {
        None => Ok(None),
        Some(v) if v.is_unit() => Ok(None),
        Some(v) => v
            .as_float()
            .or_else(|_| v.as_int().map(|i| i as f64))
            .map(Some)
            .map_err(|_| {
                script_error(format!("{func}: `{key}` must be a number, got {}", show(v)))
            }),
    }
}

pub(super) fn opt_str(func: &str, opts: &Map, key: &str) -> RhaiResult<Option<String>> {
    match opts.get(key) {
        None => Ok(None),
        Some(v) if v.is_unit() => Ok(None),
        Some(v) if v.is_string() => Ok(Some(v.to_string())),
        Some(v) => Err(script_error(format!(
            "{func}: `{key}` must be a string, got {}",
            type_label(v)
        ))),
    }
}

pub(super) fn show(v: &Dynamic) -> String {
    if v.is_string() {
        format!("\"{v}\"")
    } else if v.is_int() || v.is_float() || v.is_bool() {
        v.to_string()
    } else {
        type_label(v)
    }
}

/// `30`, `2.5`, `"30s"`, `"500ms"`, `"5m"`, `"1h"` as a duration.
pub(super) fn parse_duration(v: &Dynamic) -> Result<Duration, String> {
    let secs = if let Ok(i) = v.as_int() {
        i as f64
    } else if let Ok(f) = v.as_float() {
        f
    } else {
        return crate::stress::parse_duration_text(&v.to_string());
    };
    crate::stress::duration_from_secs(secs, &show(v))
}

pub fn stress_options(opts: &Map, dsql: bool) -> RhaiResult<Options> {
    const F: &str = "stress";
    check_keys(
        F,
        opts,
        &[
            "users",
            "concurrency",
            "batch",
            "duration",
            "rate",
            "max_retries",
            "seed",
            "table",
            "json",
            "max_p99_ms",
            "min_rows_per_s",
            "max_failed",
            "progress",
        ],
    )?;
    let duration = match opts.get("duration") {
        None => None,
        Some(v) if v.is_unit() => None,
        Some(v) => {
            Some(parse_duration(v).map_err(|e| script_error(format!("{F}: `duration`: {e}")))?)
        }
    };
    let users = opt_int(F, opts, "users", 1, i64::MAX)?.map(|n| n as u64);
    let o = Options {
        users: match (users, duration) {
            (None, None) => Some(1000),
            (u, _) => u,
        },
        concurrency: opt_int(F, opts, "concurrency", 1, 10_000)?.unwrap_or(10) as usize,
        batch: opt_int(F, opts, "batch", 1, 100_000)?.unwrap_or(1) as usize,
        duration,
        rate: opt_float(F, opts, "rate")?,
        max_retries: opt_int(F, opts, "max_retries", 0, 1000)?.unwrap_or(10) as u32,
        seed: opt_int(F, opts, "seed", i64::MIN, i64::MAX)?.map(|s| s as u64),
        table: Ident::parse(&opt_str(F, opts, "table")?.unwrap_or_else(|| "users".into()))
            .map_err(|e| script_error(format!("{F}: {e}")))?,
        thresholds: Thresholds {
            max_p99_ms: opt_float(F, opts, "max_p99_ms")?,
            min_rows_per_s: opt_float(F, opts, "min_rows_per_s")?,
            max_failed: opt_int(F, opts, "max_failed", 0, i64::MAX)?.map(|n| n as u64),
        },
        progress: match opts.get("progress") {
            None => true,
            Some(v) => v
                .as_bool()
                .map_err(|_| script_error("stress: `progress` must be true or false"))?,
        },
    };
    o.validate(dsql)
        .map_err(|e| script_error(format!("{F}: {e}")))?;
    Ok(o)
}

/// The stress result map (PRODUCT.md §4).
pub(super) fn report_map(r: &stress::Report) -> Map {
    let ms = |us: u64| us as f64 / 1000.0;
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    let mut latency = Map::new();
    for (k, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
        latency.insert(
            k.into(),
            Dynamic::from_float(ms(r.latency_us.value_at_quantile(q))),
        );
    }
    latency.insert("max".into(), Dynamic::from_float(ms(r.latency_us.max())));
    latency.insert(
        "mean".into(),
        Dynamic::from_float(round3(r.latency_us.mean() / 1000.0)),
    );
    let mut wait = Map::new();
    wait.insert(
        "p50".into(),
        Dynamic::from_float(ms(r.pool_wait_us.value_at_quantile(0.5))),
    );
    wait.insert(
        "p99".into(),
        Dynamic::from_float(ms(r.pool_wait_us.value_at_quantile(0.99))),
    );
    wait.insert("max".into(), Dynamic::from_float(ms(r.pool_wait_us.max())));
    wait.insert(
        "mean".into(),
        Dynamic::from_float(round3(r.pool_wait_us.mean() / 1000.0)),
    );
    let mut errors = Map::new();
    for (k, v) in &r.errors {
        errors.insert(k.as_str().into(), Dynamic::from_int(*v as i64));
    }
    let mut messages = Map::new();
    for (k, v) in &r.error_messages {
        messages.insert(k.as_str().into(), Dynamic::from(v.clone()));
    }
    let mut m = Map::new();
    m.insert(
        "users".into(),
        r.users
            .map(|u| Dynamic::from_int(u as i64))
            .unwrap_or(Dynamic::UNIT),
    );
    m.insert(
        "concurrency".into(),
        Dynamic::from_int(r.concurrency as i64),
    );
    m.insert("batch".into(), Dynamic::from_int(r.batch as i64));
    m.insert(
        "elapsed_s".into(),
        Dynamic::from_float(round3(r.elapsed.as_secs_f64())),
    );
    m.insert("succeeded".into(), Dynamic::from_int(r.succeeded as i64));
    m.insert("failed".into(), Dynamic::from_int(r.failed as i64));
    m.insert("retries".into(), Dynamic::from_int(r.retries as i64));
    m.insert(
        "transactions".into(),
        Dynamic::from_int(r.txn_succeeded as i64),
    );
    m.insert(
        "failed_transactions".into(),
        Dynamic::from_int(r.txn_failed as i64),
    );
    m.insert(
        "rows_per_s".into(),
        Dynamic::from_float(round3(r.rows_per_s())),
    );
    m.insert(
        "txn_per_s".into(),
        Dynamic::from_float(round3(r.txn_per_s())),
    );
    m.insert("latency_ms".into(), Dynamic::from_map(latency));
    m.insert("pool_wait_ms".into(), Dynamic::from_map(wait));
    m.insert("errors".into(), Dynamic::from_map(errors));
    m.insert("error_messages".into(), Dynamic::from_map(messages));
    m.insert(
        "breaches".into(),
        Dynamic::from_array(
            r.breaches
                .iter()
                .map(|b| Dynamic::from(b.clone()))
                .collect(),
        ),
    );
    m.insert("interrupted".into(), Dynamic::from_bool(r.interrupted));
    m
}

impl Session {
    fn missing_table(&self, e: DbError, table: &str) -> Box<rhai::EvalAltResult> {
        if e.sqlstate == "42P01" {
            db_error(DbError {
                message: format!("the `{table}` table does not exist: {MISSING_TABLE_HINT}"),
                ..e
            })
        } else {
            db_error(e)
        }
    }
}

pub fn register(engine: &mut Engine, session: &Arc<Session>) {
    let s = session.clone();
    engine.register_fn("insert_user", move |user: Map| -> RhaiResult<String> {
        check_keys("insert_user", &user, &["name", "email", "role"])?;
        let field = |k: &str| -> RhaiResult<String> {
            let v = opt_str("insert_user", &user, k)?.unwrap_or_default();
            let v = v.trim().to_string();
            if v.is_empty() && k != "role" {
                return Err(script_error(format!("insert_user: `{k}` is required")));
            }
            if v.chars().count() > if k == "role" { 50 } else { 100 } {
                return Err(script_error(format!("insert_user: `{k}` is too long")));
            }
            Ok(v)
        };
        let (name, email) = (field("name")?, field("email")?);
        let role = Some(field("role")?)
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "user".into());
        if !email.contains('@') {
            return Err(script_error(format!(
                "insert_user: `{email}` is not an email address"
            )));
        }
        let table = Ident::parse("users").expect("valid");
        let present = s.run_query(
            None,
            users::exists_sql(),
            vec![Dynamic::UNIT, Dynamic::from("users")],
        )?;
        let present = present
            .rows
            .first()
            .and_then(|r| {
                r.read_lock::<Map>()
                    .and_then(|m| m.get("present").and_then(|v| v.as_bool().ok()))
            })
            .unwrap_or(false);
        if !present {
            s.run_query(None, &users::create_sql(&table), Vec::new())?;
        }
        let id = uuid::Uuid::new_v4().to_string();
        s.run_query(
            None,
            "INSERT INTO users (id, name, email, role) VALUES ($1, $2, $3, $4)",
            vec![
                Dynamic::from(id.clone()),
                Dynamic::from(name),
                Dynamic::from(email),
                Dynamic::from(role),
            ],
        )?;
        Ok(id)
    });

    let s = session.clone();
    let list = move |opts: Map| -> RhaiResult<rhai::Array> {
        check_keys("list_users", &opts, &["limit"])?;
        let limit = opt_int("list_users", &opts, "limit", 0, i64::MAX)?;
        let sql = "SELECT id, name, email, role, created_at FROM users \
                   ORDER BY created_at, email LIMIT $1";
        let limit = limit.map(Dynamic::from_int).unwrap_or(Dynamic::UNIT);
        let db = s.default_db().map_err(host_error)?;
        s.with_conn(&db, async |db, conn| {
            crate::db::exec::query(db, conn, sql, &[limit]).await
        })
        .map(|rs| rs.rows)
        .map_err(|e| match super::rhai_db_error(&e) {
            Some(d) => s.missing_table(d, "users"),
            None => e,
        })
    };
    let l2 = list.clone();
    engine.register_fn("list_users", move || l2(Map::new()));
    engine.register_fn("list_users", list);

    let s = session.clone();
    let stats_fn = move |opts: Map| -> RhaiResult<Dynamic> {
        check_keys("stats", &opts, &["tz", "top", "days", "as_of", "table"])?;
        let mut o = StatsOptions::default();
        if let Some(tz) = opt_str("stats", &opts, "tz")? {
            o.tz = tz;
        }
        if let Some(top) = opt_int("stats", &opts, "top", i32::MIN as i64, i32::MAX as i64)? {
            o.top = top as i32;
        }
        if let Some(days) = opt_int("stats", &opts, "days", i32::MIN as i64, i32::MAX as i64)? {
            o.days = days as i32;
        }
        o.as_of = opt_str("stats", &opts, "as_of")?;
        if let Some(t) = opt_str("stats", &opts, "table")? {
            o.table = Ident::parse(&t).map_err(|e| script_error(format!("stats: {e}")))?;
        }
        stats::validate(&o).map_err(|e| script_error(format!("stats: {e}")))?;
        let db = s.default_db().map_err(host_error)?;
        s.with_conn(&db, async |_, conn| stats::run(conn, &o).await)
    };
    let s2 = stats_fn.clone();
    engine.register_fn("stats", move || s2(Map::new()));
    engine.register_fn("stats", stats_fn);

    let s = session.clone();
    let stress_fn = move |opts: Map| -> RhaiResult<Map> {
        let db = s.default_db().map_err(host_error)?;
        let o = stress_options(&opts, db.is_dsql())?;
        let thresholds_set = o.thresholds.max_p99_ms.is_some()
            || o.thresholds.min_rows_per_s.is_some()
            || o.thresholds.max_failed.is_some();
        let pool = s
            .host
            .rt
            .block_on(db.sibling(o.concurrency as u32 + 1))
            .map_err(host_error)?
            .map_err(host_error)?;
        let report = s
            .host
            .rt
            .block_on_uninterruptible(async {
                let r = stress::run(pool.clone(), o).await;
                // close() waits for every connection to come back; one held by a worker stuck
                // in a statement never does, and the report must not wait for it.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), pool.close()).await;
                r
            })
            .map_err(db_error)?;
        if thresholds_set && !report.breaches.is_empty() {
            s.host.set_threshold_breached();
        }
        if report.interrupted {
            s.host.load_interrupted_now();
        }
        Ok(report_map(&report))
    };
    engine.register_fn("stress", move |opts: Map| stress_fn(opts));
}
