//! The one place that runs script-supplied SQL: binding, execution, decoding, error mapping.
//!
//! Parameters are always bound (`$1, $2, ...`), never spliced into the SQL text. A statement
//! with parameters is prepared first (sqlx caches it per connection, so this costs a round trip
//! only the first time) to learn the type the server inferred for each `$n`; values are then
//! encoded for exactly that type. Integers, floats, booleans and blobs are declared with their own
//! type at prepare time; strings and NULLs are left for the server to infer, which is what lets a
//! string stand for a uuid, timestamptz, numeric or date. An integer is declared as a SQL literal
//! would be typed: integer when it fits in 32 bits, else bigint, so `current_date + $1` and
//! `left($1, $2)` work as they do with literals (and, like literals, `$1 * $2` on two integers is
//! integer arithmetic).

use std::sync::Arc;

use futures_util::TryStreamExt;
use rhai::Dynamic;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgArguments, PgRow, PgTypeInfo, PgValueFormat, Postgres};
use sqlx::{
    Arguments, AssertSqlSafe, Column, Either, Encode, Executor, PgConnection, Row, SqlSafeStr,
    Statement, Type, TypeInfo, ValueRef,
};

use super::codec::{self, oid, Encoded};
use super::error::{client_error, from_sqlx};
use super::Database;
use crate::error::DbError;

/// Rows of one statement, with the column order of its SELECT list.
#[derive(Debug, Clone)]
pub struct ResultSet {
    pub columns: Arc<[String]>,
    /// Row maps tagged with `columns` (see `rows`).
    pub rows: Vec<Dynamic>,
    pub rows_affected: u64,
}

/// A value already in wire format, declared with an explicit type OID.
struct RawParam {
    type_oid: u32,
    bytes: Option<Vec<u8>>,
}

impl Type<Postgres> for RawParam {
    fn type_info() -> PgTypeInfo {
        // Never used: `produces` names the real type of each value.
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(0))
    }
}

impl Encode<'_, Postgres> for RawParam {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        match &self.bytes {
            None => Ok(IsNull::Yes),
            Some(b) => {
                buf.extend_from_slice(b);
                Ok(IsNull::No)
            }
        }
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(PgTypeInfo::with_oid(sqlx::postgres::types::Oid(
            self.type_oid,
        )))
    }
}

fn type_info(type_oid: u32) -> PgTypeInfo {
    PgTypeInfo::with_oid(sqlx::postgres::types::Oid(type_oid))
}

fn oid_of(t: &PgTypeInfo) -> u32 {
    t.oid().map(|o| o.0).unwrap_or(0)
}

/// Run one statement and return its rows.
pub async fn query(
    db: &Database,
    conn: &mut PgConnection,
    sql: &str,
    params: &[Dynamic],
) -> Result<ResultSet, DbError> {
    if params.is_empty() && has_text_only_columns(conn, sql).await {
        return query_text_results(db, conn, sql).await;
    }
    match query_binary(db, conn, sql, params).await {
        Err(e) if params.is_empty() && needs_text_results(&e) => {
            query_text_results(db, conn, sql).await
        }
        // With parameters there is no text-only protocol to fall back on.
        Err(e) if needs_text_results(&e) => Err(DbError {
            message: format!(
                "{}; a column of this type (a catalog type, a multirange) can only be read as \
                 text here: cast it in the query, as in `col::text`",
                e.message
            ),
            ..e
        }),
        other => other,
    }
}

/// Types the server cannot send in binary (aclitem) or that are pseudo-types (pg_stats'
/// anyarray columns): asking for them in binary would fail at execution, and inside a
/// transaction abort it, so the statement goes straight to text results.
const TEXT_ONLY_TYPES: &[u32] = &[1033, 1034, 2275, 2276, 2277, 2281, 2283];

/// Does the statement (prepared now, and cached by sqlx for its execution) return a column of
/// a text-only type? An error here is left for the execution to report.
async fn has_text_only_columns(conn: &mut PgConnection, sql: &str) -> bool {
    match conn
        .prepare(AssertSqlSafe(sql.to_string()).into_sql_str())
        .await
    {
        Ok(stmt) => stmt
            .columns()
            .iter()
            .any(|c| TEXT_ONLY_TYPES.contains(&oid_of(c.type_info()))),
        Err(_) => false,
    }
}

/// Failures of binary results that psql never sees, because it asks for text: system catalog
/// columns whose types have no binary output (`aclitem`), are pseudo-types (`anyarray` in
/// pg_stats), or that sqlx cannot describe (`pg_node_tree`, of type category `Z`).
fn needs_text_results(e: &DbError) -> bool {
    (e.sqlstate == "42883" && e.message.contains("no binary output function"))
        || (e.sqlstate == "0A000" && e.message.contains("anyarray"))
        || (e.sqlstate == "22000"
            && (e.message.contains("invalid category code")
                || e.message.contains("unknown type code")))
}

/// A statement without parameters run through the simple protocol, which returns every
/// value as text; common types are read back into Rhai values, the rest stay text.
async fn query_text_results(
    db: &Database,
    conn: &mut PgConnection,
    sql: &str,
) -> Result<ResultSet, DbError> {
    let mut raw_rows: Vec<PgRow> = Vec::new();
    let mut rows_affected = 0;
    {
        let mut stream = sqlx::raw_sql(AssertSqlSafe(sql.to_string())).fetch_many(&mut *conn);
        while let Some(item) = stream.try_next().await.map_err(from_sqlx)? {
            match item {
                Either::Left(done) => rows_affected += done.rows_affected(),
                Either::Right(row) => raw_rows.push(row),
            }
        }
    }
    let names = raw_rows.first().map_or_else(Vec::new, |row| {
        row.columns().iter().map(|c| c.name().to_string()).collect()
    });
    let columns: Arc<[String]> = unique_names(names).into();
    let rows = decode_rows(db, conn, &columns, raw_rows).await?;
    Ok(ResultSet {
        columns,
        rows,
        rows_affected,
    })
}

async fn query_binary(
    db: &Database,
    conn: &mut PgConnection,
    sql: &str,
    params: &[Dynamic],
) -> Result<ResultSet, DbError> {
    check_count(sql, params.len())?;
    let (arguments, mut columns, text) = if params.is_empty() {
        (None, None, sql.to_string())
    } else {
        let (args, cols, text) = bind(db, conn, sql, params).await?;
        (Some(args), Some(cols), text)
    };
    // The exact text bind() prepared, so execution reuses that cached statement.
    let statement = AssertSqlSafe(text);
    let q = match arguments {
        None => sqlx::query(statement),
        Some(a) => sqlx::query_with(statement, a),
    };
    let mut raw_rows: Vec<PgRow> = Vec::new();
    let mut rows_affected = 0;
    {
        let mut stream = conn.fetch_many(q);
        while let Some(item) = stream.try_next().await.map_err(from_sqlx)? {
            match item {
                Either::Left(done) => rows_affected += done.rows_affected(),
                Either::Right(row) => raw_rows.push(row),
            }
        }
    }
    if columns.is_none() {
        columns = Some(match raw_rows.first() {
            Some(row) => row.columns().iter().map(|c| c.name().to_string()).collect(),
            // No rows to read names from: the statement is in sqlx's cache now, so this
            // describe costs no round trip.
            None => describe_columns(conn, sql).await?,
        });
    }
    let columns: Arc<[String]> = unique_names(columns.unwrap_or_default()).into();
    let rows = decode_rows(db, conn, &columns, raw_rows).await?;
    Ok(ResultSet {
        columns,
        rows,
        rows_affected,
    })
}

/// The server accepts more declared parameters than the SQL uses, so the count is checked here,
/// against the `$n` placeholders outside quotes and comments.
fn check_count(sql: &str, given: usize) -> Result<(), DbError> {
    let expected = crate::sql_lex::max_placeholder(sql);
    if expected == given {
        return Ok(());
    }
    Err(client_error(
        "07001",
        format!(
            "the statement has {} parameter{} but {} value{} given",
            expected,
            if expected == 1 { "" } else { "s" },
            given,
            if given == 1 { " was" } else { "s were" }
        ),
    ))
}

/// Run a statement for its effect; returns the rows affected. Without parameters this uses the
/// simple protocol, so one call may hold several statements separated by `;`.
pub async fn execute(
    db: &Database,
    conn: &mut PgConnection,
    sql: &str,
    params: &[Dynamic],
) -> Result<u64, DbError> {
    if params.is_empty() && crate::sql_lex::max_placeholder(sql) == 0 {
        let done = sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?;
        return Ok(done.rows_affected());
    }
    Ok(query(db, conn, sql, params).await?.rows_affected)
}

/// Row maps need distinct keys, but `SELECT 1, 2` or a join can repeat a column name. Later
/// repeats get `_2`, `_3`, ... (skipping names already taken) so no value is lost.
fn unique_names(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let mut candidate = name.clone();
        let mut n = 1;
        while out.contains(&candidate) {
            n += 1;
            candidate = format!("{name}_{n}");
        }
        out.push(candidate);
    }
    out
}

async fn describe_columns(conn: &mut PgConnection, sql: &str) -> Result<Vec<String>, DbError> {
    let stmt = conn
        .prepare_with(AssertSqlSafe(sql.to_string()).into_sql_str(), &[])
        .await
        .map_err(from_sqlx)?;
    Ok(stmt
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect())
}

/// The text sent for a statement whose parameters are declared with `oids`.
///
/// sqlx caches prepared statements by their text, and a prepared statement keeps the parameter
/// types it was first declared with. So that `query("SELECT $1", [1])` followed by
/// `query("SELECT $1", ["a"])` does not reuse an int8 statement for a string, statements with
/// declared (non-string) parameters carry their type list in a leading comment.
fn statement_text(sql: &str, oids: &[u32]) -> String {
    if oids.iter().all(|&o| o == 0) {
        return sql.to_string();
    }
    let sig: Vec<String> = oids
        .iter()
        .map(|&o| {
            if o == 0 {
                "?".to_string()
            } else {
                o.to_string()
            }
        })
        .collect();
    format!("/* dsqlsh {} */ {sql}", sig.join(","))
}

/// Prepare `sql` with parameter types `oids` (0: the server infers it), or find it in the cache.
async fn prepare(
    conn: &mut PgConnection,
    sql: &str,
    oids: &[u32],
) -> Result<sqlx::postgres::PgStatement, DbError> {
    let declared: Vec<PgTypeInfo> = oids.iter().map(|&o| type_info(o)).collect();
    conn.prepare_with(
        AssertSqlSafe(statement_text(sql, oids)).into_sql_str(),
        &declared,
    )
    .await
    .map_err(from_sqlx)
}

/// Prepare (or find in the cache), check the parameter count, encode each value for the type
/// the server expects.
async fn bind(
    db: &Database,
    conn: &mut PgConnection,
    sql: &str,
    params: &[Dynamic],
) -> Result<(PgArguments, Vec<String>, String), DbError> {
    let oids: Vec<u32> = params.iter().map(codec::declared_oid).collect();
    let stmt = prepare(conn, sql, &oids).await?;
    let text = stmt.sql().as_str().to_string();
    let expected: Vec<u32> = match stmt.parameters() {
        Some(Either::Left(types)) => types.iter().map(oid_of).collect(),
        Some(Either::Right(n)) => vec![0; n],
        None => Vec::new(),
    };
    if expected.len() != params.len() {
        return Err(client_error(
            "07001",
            format!(
                "the server sees {} parameters but {} values were given",
                expected.len(),
                params.len()
            ),
        ));
    }
    let columns: Vec<String> = stmt
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let mut args = PgArguments::default();
    for (i, (value, &type_oid)) in params.iter().zip(&expected).enumerate() {
        let bytes = match codec::encode(value, type_oid) {
            Ok(Encoded::Null) => None,
            Ok(Encoded::Bytes(b)) => Some(b),
            Ok(Encoded::Text(text)) => Some(server_parse(db, conn, &text, type_oid).await?),
            Err(why) => {
                return Err(client_error(
                    "42804",
                    format!("parameter ${}: {why}", i + 1),
                ));
            }
        };
        args.add(RawParam { type_oid, bytes })
            .map_err(|e| client_error("42804", format!("parameter ${}: {e}", i + 1)))?;
    }
    Ok((args, columns, text))
}

/// Let the server turn text into a value of `type_oid` with the type's input function,
/// exactly as a quoted literal of that type would be read.
async fn server_parse(
    db: &Database,
    conn: &mut PgConnection,
    text: &str,
    type_oid: u32,
) -> Result<Vec<u8>, DbError> {
    let cached = db
        .type_names
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&type_oid)
        .cloned();
    let name = match cached {
        Some(n) => n,
        None => {
            let mut args = PgArguments::default();
            let _ = args.add(RawParam {
                type_oid: oid::OID,
                bytes: Some(type_oid.to_be_bytes().to_vec()),
            });
            let row = sqlx::query_with("SELECT format_type($1, NULL)", args)
                .fetch_one(&mut *conn)
                .await
                .map_err(from_sqlx)?;
            let name: String = row.try_get(0).map_err(from_sqlx)?;
            db.type_names
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(type_oid, name.clone());
            name
        }
    };
    let mut args = PgArguments::default();
    let _ = args.add(RawParam {
        type_oid: oid::TEXT,
        bytes: Some(text.as_bytes().to_vec()),
    });
    let row = sqlx::query_with(AssertSqlSafe(format!("SELECT $1::text::{name}")), args)
        .fetch_one(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    let raw = row.try_get_raw(0).map_err(from_sqlx)?;
    raw.as_bytes()
        .map(<[u8]>::to_vec)
        .map_err(|e| client_error("22000", e.to_string()))
}

/// A value with no mapping in `codec`, waiting for its text form.
struct Pending {
    row: usize,
    column: usize,
    type_oid: u32,
    bytes: Vec<u8>,
}

async fn decode_rows(
    db: &Database,
    conn: &mut PgConnection,
    columns: &Arc<[String]>,
    raw_rows: Vec<PgRow>,
) -> Result<Vec<Dynamic>, DbError> {
    let _ = db;
    let mut table: Vec<Vec<Dynamic>> = Vec::with_capacity(raw_rows.len());
    let mut pending: Vec<Pending> = Vec::new();
    // Elements of unmapped types inside arrays and records, in visiting order.
    let mut nested: Vec<(u32, Vec<u8>)> = Vec::new();
    for (r, row) in raw_rows.iter().enumerate() {
        let mut values = Vec::with_capacity(row.len());
        for c in 0..row.len() {
            let raw = row.try_get_raw(c).map_err(from_sqlx)?;
            if raw.is_null() {
                values.push(Dynamic::UNIT);
                continue;
            }
            let type_oid = oid_of(&raw.type_info());
            let bytes = raw
                .as_bytes()
                .map_err(|e| client_error("22000", e.to_string()))?;
            if raw.format() == PgValueFormat::Text {
                let text = String::from_utf8_lossy(bytes);
                values.push(codec::decode_text(type_oid, &text));
                continue;
            }
            match codec::decode(type_oid, bytes) {
                Ok(Some(v)) => {
                    // Arrays and records may hold elements of unmapped types.
                    if v.is_array() {
                        collect_deferred(&v, &mut nested);
                    }
                    values.push(v)
                }
                Ok(None) => {
                    pending.push(Pending {
                        row: r,
                        column: c,
                        type_oid,
                        bytes: bytes.to_vec(),
                    });
                    values.push(Dynamic::UNIT);
                }
                Err(why) => {
                    return Err(client_error(
                        "22000",
                        format!(
                            "cannot decode column `{}` of type {}: {why}",
                            columns.get(c).map(String::as_str).unwrap_or("?"),
                            raw.type_info().name()
                        ),
                    ))
                }
            }
        }
        table.push(values);
    }
    drop(raw_rows);
    if !pending.is_empty() {
        let items: Vec<(u32, &[u8])> = pending
            .iter()
            .map(|p| (p.type_oid, p.bytes.as_slice()))
            .collect();
        let texts = text_forms(conn, &items).await?;
        for (p, text) in pending.iter().zip(texts) {
            table[p.row][p.column] = Dynamic::from(text);
        }
    }
    if !nested.is_empty() {
        let items: Vec<(u32, &[u8])> = nested.iter().map(|(o, b)| (*o, b.as_slice())).collect();
        let mut texts = text_forms(conn, &items).await?.into_iter();
        // Same visiting order as the collection above: row by row, column by column.
        for values in table.iter_mut() {
            for v in values.iter_mut().filter(|v| v.is_array()) {
                visit_deferred(v, &mut |e| {
                    *e = Dynamic::from(texts.next().unwrap_or_default());
                });
            }
        }
    }
    let tag = crate::rows::tag_for(columns);
    Ok(table
        .into_iter()
        .map(|values| crate::rows::make_row(columns, tag, values))
        .collect())
}

/// Every `codec::Deferred` inside `v`'s arrays, in the order `visit_deferred` visits them.
fn collect_deferred(v: &Dynamic, out: &mut Vec<(u32, Vec<u8>)>) {
    if let Some(arr) = v.read_lock::<rhai::Array>() {
        for e in arr.iter() {
            if let Some(d) = e.read_lock::<codec::Deferred>() {
                out.push((d.type_oid, d.bytes.clone()));
            } else if e.is_array() {
                collect_deferred(e, out);
            }
        }
    }
}

/// Call `f` on every element of `v`'s arrays (nested ones included) that is a
/// `codec::Deferred`, in order; `f` may replace it.
fn visit_deferred(v: &mut Dynamic, f: &mut impl FnMut(&mut Dynamic)) {
    if let Some(mut arr) = v.write_lock::<rhai::Array>() {
        for e in arr.iter_mut() {
            if e.is::<codec::Deferred>() {
                f(e);
            } else if e.is_array() {
                visit_deferred(e, f);
            }
        }
    }
}

/// Text forms of values whose types have no mapping, from the server's output functions,
/// a hundred values per round trip.
async fn text_forms(
    conn: &mut PgConnection,
    items: &[(u32, &[u8])],
) -> Result<Vec<String>, DbError> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(100) {
        let select: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}::text")).collect();
        // The statement's text names its parameter types: sqlx caches prepared statements by
        // text, and one prepared for a tsrange must not be reused for a tstzrange.
        let oids: Vec<String> = chunk.iter().map(|(o, _)| o.to_string()).collect();
        let mut args = PgArguments::default();
        for (type_oid, bytes) in chunk {
            let _ = args.add(RawParam {
                type_oid: *type_oid,
                bytes: Some(bytes.to_vec()),
            });
        }
        let sql = format!(
            "SELECT {} /* dsqlsh {} */",
            select.join(", "),
            oids.join(",")
        );
        let row = sqlx::query_with(AssertSqlSafe(sql), args)
            .fetch_one(&mut *conn)
            .await
            .map_err(from_sqlx)?;
        for i in 0..chunk.len() {
            out.push(row.try_get::<String, _>(i).map_err(from_sqlx)?);
        }
    }
    Ok(out)
}
