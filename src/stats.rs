//! The user-statistics report, computed by the server in one statement (one round trip) that
//! returns a single JSON document with one key per report section.
//!
//! Lengths are `length(name)`: characters (code points), not bytes. First names are the first
//! word of the trimmed name; email domains are lower-cased. Hour-of-day and daily counts use the
//! requested IANA time zone; every hour 0-23 and every day of the window is present, zeros
//! included. Nothing divides by the total unless a group exists, so an empty table yields
//! zeros and nulls, never NaN.

use rhai::Dynamic;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::db::codec;
use crate::db::error::{client_error, from_sqlx};
use crate::error::DbError;
use crate::users::{Ident, MISSING_TABLE_HINT};

#[derive(Debug, Clone)]
pub struct StatsOptions {
    pub tz: String,
    pub top: i32,
    pub days: i32,
    /// Last day of the daily window (`YYYY-MM-DD`); today in `tz` when absent.
    pub as_of: Option<String>,
    pub table: Ident,
}

impl Default for StatsOptions {
    fn default() -> Self {
        StatsOptions {
            tz: "UTC".into(),
            top: 5,
            days: 7,
            as_of: None,
            table: Ident::parse("users").expect("valid"),
        }
    }
}

/// The report's SQL for `table` ($1 time zone, $2 days, $3 top, $4 last day of the daily
/// window or NULL for today in the time zone).
pub fn sql(table: &Ident) -> String {
    let t = table.quoted();
    format!(
        r#"WITH total AS (SELECT count(*)::bigint AS n FROM {t}),
roles AS (SELECT role, count(*)::bigint AS n FROM {t} GROUP BY role),
hours AS (
  SELECT extract(hour FROM created_at AT TIME ZONE $1)::int AS h, count(*)::bigint AS n
  FROM {t} GROUP BY 1),
today AS (SELECT COALESCE($4::text::date, (now() AT TIME ZONE $1)::date) AS d),
days AS (
  SELECT (created_at AT TIME ZONE $1)::date AS d, count(*)::bigint AS n
  FROM {t}
  WHERE (created_at AT TIME ZONE $1)::date > (SELECT d FROM today) - $2
  GROUP BY 1),
firsts AS (
  SELECT split_part(btrim(name), ' ', 1) AS first, count(*)::bigint AS n
  FROM {t} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $3),
domains AS (
  SELECT lower(split_part(email, '@', 2)) AS domain, count(*)::bigint AS n
  FROM {t} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $3)
SELECT json_build_object(
  'total_users', (SELECT n FROM total),
  'roles', COALESCE((
    SELECT json_agg(json_build_object(
      'role', role, 'count', n,
      'share', round(100.0 * n / (SELECT n FROM total), 2)::float8) ORDER BY n DESC, role)
    FROM roles), '[]'::json),
  'newest_user', (
    SELECT json_build_object('name', name, 'email', email,
      'created_at', (to_json(created_at AT TIME ZONE 'UTC') #>> '{{}}') || '+00:00')
    FROM {t} ORDER BY created_at DESC, id DESC LIMIT 1),
  'oldest_user', (
    SELECT json_build_object('name', name, 'email', email,
      'created_at', (to_json(created_at AT TIME ZONE 'UTC') #>> '{{}}') || '+00:00')
    FROM {t} ORDER BY created_at ASC, id ASC LIMIT 1),
  'hourly', (
    SELECT json_build_object('tz', $1::text, 'counts',
      json_agg(json_build_object('hour', g, 'count', COALESCE(hours.n, 0)) ORDER BY g))
    FROM generate_series(0, 23) AS g LEFT JOIN hours ON hours.h = g),
  'daily', (
    SELECT json_build_object('tz', $1::text, 'days', $2, 'counts',
      json_agg(json_build_object('date', s.d, 'count', COALESCE(days.n, 0)) ORDER BY s.d))
    FROM (SELECT ((SELECT d FROM today) - k) AS d FROM generate_series(0, $2 - 1) AS k) AS s
    LEFT JOIN days ON days.d = s.d),
  'name_lengths', json_build_object(
    'longest', (SELECT json_build_object('name', name, 'length', length(name))
                FROM {t} ORDER BY length(name) DESC, name LIMIT 1),
    'shortest', (SELECT json_build_object('name', name, 'length', length(name))
                 FROM {t} ORDER BY length(name) ASC, name LIMIT 1),
    'average', (SELECT round(avg(length(name)), 2)::float8 FROM {t})),
  'first_names', COALESCE((
    SELECT json_agg(json_build_object('name', first, 'count', n,
      'share', round(100.0 * n / (SELECT n FROM total), 2)::float8) ORDER BY n DESC, first)
    FROM firsts), '[]'::json),
  'email_domains', COALESCE((
    SELECT json_agg(json_build_object('domain', domain, 'count', n,
      'share', round(100.0 * n / (SELECT n FROM total), 2)::float8) ORDER BY n DESC, domain)
    FROM domains), '[]'::json)
) AS stats"#
    )
}

/// Validate options that come from scripts and flags.
pub fn validate(opts: &StatsOptions) -> Result<(), String> {
    if !(1..=100).contains(&opts.top) {
        return Err(format!("`top` must be from 1 to 100, got {}", opts.top));
    }
    if !(1..=366).contains(&opts.days) {
        return Err(format!("`days` must be from 1 to 366, got {}", opts.days));
    }
    let tz = opts.tz.trim();
    if tz.is_empty() {
        return Err("`tz` must name a time zone, such as UTC or Europe/Paris".into());
    }
    // PostgreSQL reads `+05:30` or `UTC+3` as POSIX zones, whose sign is the opposite of ISO
    // offsets: the report would silently shift the wrong way. Only names are accepted.
    let upper = tz.to_ascii_uppercase();
    let posix_like = tz.starts_with(['+', '-'])
        || tz.starts_with(|c: char| c.is_ascii_digit())
        || ["UTC+", "UTC-", "GMT+", "GMT-"]
            .iter()
            .any(|p| upper.starts_with(p));
    if posix_like {
        return Err(format!(
            "`tz` `{tz}` is an offset, which PostgreSQL reads with the sign inverted; use an IANA \
             name such as Asia/Kolkata or America/New_York"
        ));
    }
    Ok(())
}

/// Run the report; the result is a map with one key per section.
pub async fn run(conn: &mut PgConnection, opts: &StatsOptions) -> Result<Dynamic, DbError> {
    let row = sqlx::query(AssertSqlSafe(sql(&opts.table)))
        .bind(&opts.tz)
        .bind(opts.days)
        .bind(opts.top)
        .bind(opts.as_of.as_deref())
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| explain(from_sqlx(e), opts))?;
    let raw = row.try_get_raw(0).map_err(from_sqlx)?;
    let bytes = sqlx::ValueRef::is_null(&raw)
        .then_some(&b"null"[..])
        .map(Ok)
        .unwrap_or_else(|| raw.as_bytes())
        .map_err(|e| client_error("22000", e.to_string()))?;
    let mut stats = codec::decode(codec::oid::JSON, bytes)
        .map_err(|e| client_error("22000", e))?
        .ok_or_else(|| client_error("22000", "the statistics query returned no JSON"))?;
    shares_as_floats(&mut stats);
    Ok(stats)
}

/// JSON does not say 60 from 60.0, so whole-number shares and averages arrive as integers;
/// the contract is floats.
fn shares_as_floats(v: &mut Dynamic) {
    if v.is_map() {
        if let Some(mut map) = v.write_lock::<rhai::Map>() {
            for (k, item) in map.iter_mut() {
                if matches!(k.as_str(), "share" | "average") {
                    if let Ok(i) = item.as_int() {
                        *item = Dynamic::from_float(i as f64);
                    }
                } else {
                    shares_as_floats(item);
                }
            }
        }
    } else if let Some(mut arr) = v.write_lock::<rhai::Array>() {
        arr.iter_mut().for_each(shares_as_floats);
    }
}

/// Turn the two errors users cause into instructions.
fn explain(e: DbError, opts: &StatsOptions) -> DbError {
    match e.sqlstate.as_str() {
        "42P01" => DbError {
            message: format!(
                "the `{}` table does not exist: {MISSING_TABLE_HINT}",
                opts.table.display()
            ),
            ..e
        },
        "22023" if e.message.contains("time zone") => DbError {
            message: format!(
                "unknown time zone `{}`: use an IANA name such as UTC, Europe/Paris or America/New_York",
                opts.tz
            ),
            ..e
        },
        "22007" | "22008" if opts.as_of.is_some() => DbError {
            message: format!(
                "`as_of` must be a date like 2025-01-31, got `{}`",
                opts.as_of.as_deref().unwrap_or_default()
            ),
            ..e
        },
        _ => e,
    }
}
