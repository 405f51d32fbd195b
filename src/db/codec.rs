//! Values between PostgreSQL's binary wire format and Rhai (PRODUCT.md §2).
//!
//! Decoding works on the raw bytes of a column plus its type OID, so widths, exact numerics,
//! NaN/infinite floats and NULLs inside arrays come through unchanged. A type without a mapping
//! here is reported as `None`; the executor then asks the server for its text form, so nothing
//! is dropped or turned into `()`.
//!
//! Encoding targets the parameter type the server inferred for each `$n`. Where a value cannot
//! be encoded natively (a string bound to `interval`, a domain, an enum, a timestamp without an
//! offset), it comes back as `Encoded::Text` and the executor lets the server parse it with the
//! type's own input function, which is exactly what the same literal would do in SQL.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use rhai::{Array, Dynamic, Map};

use super::numeric;

/// Type OIDs of the built-in types dsqlsh maps (from pg_type.dat; stable across versions).
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const NUMERIC: u32 = 1700;
    pub const VOID: u32 = 2278;
    pub const RECORD: u32 = 2249;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
    pub const INET: u32 = 869;
    pub const CIDR: u32 = 650;

    pub const BOOL_ARRAY: u32 = 1000;
    pub const INT8_ARRAY: u32 = 1016;
    pub const INT4_ARRAY: u32 = 1007;
    pub const FLOAT8_ARRAY: u32 = 1022;

    /// (array type, element type) for the built-in arrays.
    pub const ARRAYS: &[(u32, u32)] = &[
        (1000, BOOL),
        (1001, BYTEA),
        (1002, CHAR),
        (1003, NAME),
        (1005, INT2),
        (1007, INT4),
        (1009, TEXT),
        (1014, BPCHAR),
        (1015, VARCHAR),
        (1016, INT8),
        (1021, FLOAT4),
        (1022, FLOAT8),
        (1028, OID),
        (143, XML),
        (199, JSON),
        (1115, TIMESTAMP),
        (1182, DATE),
        (1183, TIME),
        (1185, TIMESTAMPTZ),
        (1187, INTERVAL),
        (1231, NUMERIC),
        (1270, TIMETZ),
        (2951, UUID),
        (3807, JSONB),
        (1041, INET),
        (651, CIDR),
    ];

    pub fn element_of(array: u32) -> Option<u32> {
        ARRAYS.iter().find(|(a, _)| *a == array).map(|(_, e)| *e)
    }
}

/// SQL name of a type, for messages.
pub fn type_name(type_oid: u32) -> String {
    let name = match type_oid {
        oid::BOOL => "boolean",
        oid::BYTEA => "bytea",
        oid::CHAR => "\"char\"",
        oid::NAME => "name",
        oid::INT8 => "bigint",
        oid::INT2 => "smallint",
        oid::INT4 => "integer",
        oid::TEXT => "text",
        oid::OID => "oid",
        oid::JSON => "json",
        oid::XML => "xml",
        oid::FLOAT4 => "real",
        oid::FLOAT8 => "double precision",
        oid::UNKNOWN => "unknown",
        oid::BPCHAR => "character",
        oid::VARCHAR => "character varying",
        oid::DATE => "date",
        oid::TIME => "time",
        oid::TIMESTAMP => "timestamp",
        oid::TIMESTAMPTZ => "timestamptz",
        oid::INTERVAL => "interval",
        oid::TIMETZ => "timetz",
        oid::NUMERIC => "numeric",
        oid::UUID => "uuid",
        oid::INET => "inet",
        oid::CIDR => "cidr",
        oid::JSONB => "jsonb",
        other => {
            return match oid::element_of(other) {
                Some(e) => format!("{}[]", type_name(e)),
                None => format!("type with oid {other}"),
            }
        }
    };
    name.to_string()
}

/// Microseconds and days between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i64 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;

fn be_i16(b: &[u8]) -> Result<i16, String> {
    b.try_into()
        .map(i16::from_be_bytes)
        .map_err(|_| "bad int2".to_string())
}
fn be_i32(b: &[u8]) -> Result<i32, String> {
    b.try_into()
        .map(i32::from_be_bytes)
        .map_err(|_| "bad 4-byte value".to_string())
}
fn be_i64(b: &[u8]) -> Result<i64, String> {
    b.try_into()
        .map(i64::from_be_bytes)
        .map_err(|_| "bad 8-byte value".to_string())
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "text is not valid UTF-8".to_string())
}

/// A value of a type without a mapping inside an array or a record: the executor replaces it
/// with the server's text form (see `exec::decode_rows`), so it never reaches a script.
#[derive(Debug, Clone)]
pub struct Deferred {
    pub type_oid: u32,
    pub bytes: Vec<u8>,
}

/// Decode one non-NULL value. `Ok(None)`: no mapping here, fetch the text form instead.
pub fn decode(type_oid: u32, bytes: &[u8]) -> Result<Option<Dynamic>, String> {
    let v = match type_oid {
        oid::BOOL => Dynamic::from_bool(bytes.first().is_some_and(|&b| b != 0)),
        oid::INT2 => Dynamic::from_int(be_i16(bytes)? as i64),
        oid::INT4 => Dynamic::from_int(be_i32(bytes)? as i64),
        oid::INT8 => Dynamic::from_int(be_i64(bytes)?),
        oid::OID => Dynamic::from_int(be_i32(bytes)? as u32 as i64),
        oid::FLOAT4 => {
            let b: [u8; 4] = bytes.try_into().map_err(|_| "bad float4")?;
            // Widen through the shortest decimal text so 0.1::float4 reads 0.1, as psql shows,
            // not 0.10000000149011612.
            let f = f32::from_be_bytes(b);
            let wide = if f.is_finite() {
                f.to_string().parse::<f64>().unwrap_or(f as f64)
            } else {
                f as f64
            };
            Dynamic::from_float(wide)
        }
        oid::FLOAT8 => {
            let b: [u8; 8] = bytes.try_into().map_err(|_| "bad float8")?;
            Dynamic::from_float(f64::from_be_bytes(b))
        }
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::XML | oid::UNKNOWN => {
            Dynamic::from(utf8(bytes)?)
        }
        // One byte, as `charout` prints it: empty for 0, octal for bytes above 127.
        oid::CHAR => Dynamic::from(match bytes.first() {
            None | Some(0) => String::new(),
            Some(&b) if b < 128 => (b as char).to_string(),
            Some(&b) => format!("\\{b:03o}"),
        }),
        oid::BYTEA => Dynamic::from_blob(bytes.to_vec()),
        oid::UUID => {
            let u = uuid::Uuid::from_slice(bytes).map_err(|e| e.to_string())?;
            Dynamic::from(u.hyphenated().to_string())
        }
        oid::JSON => json_value(bytes),
        oid::JSONB => match bytes.split_first() {
            Some((1, rest)) => json_value(rest),
            _ => return Err("unknown jsonb version".into()),
        },
        oid::NUMERIC => Dynamic::from(numeric::decode(bytes)?),
        oid::TIMESTAMPTZ => match timestamp_text(be_i64(bytes)?, true) {
            Some(t) => Dynamic::from(t),
            None => return Ok(None),
        },
        oid::TIMESTAMP => match timestamp_text(be_i64(bytes)?, false) {
            Some(t) => Dynamic::from(t),
            None => return Ok(None),
        },
        oid::DATE => match date_text(be_i32(bytes)?) {
            Some(t) => Dynamic::from(t),
            None => return Ok(None),
        },
        oid::TIME => Dynamic::from(time_text(be_i64(bytes)?)),
        oid::TIMETZ => {
            if bytes.len() != 12 {
                return Err("bad timetz".into());
            }
            let micros = be_i64(&bytes[..8])?;
            // The wire carries seconds WEST of UTC; ISO offsets count east.
            let east = -be_i32(&bytes[8..])?;
            Dynamic::from(format!("{}{}", time_text(micros), offset_text(east)))
        }
        oid::INTERVAL => {
            if bytes.len() != 16 {
                return Err("bad interval".into());
            }
            Dynamic::from(interval_text(
                be_i64(&bytes[..8])?,
                be_i32(&bytes[8..12])?,
                be_i32(&bytes[12..])?,
            ))
        }
        oid::INET | oid::CIDR => Dynamic::from(inet_text(bytes)?),
        oid::VOID => Dynamic::UNIT,
        oid::RECORD => decode_record(bytes)?,
        other => match oid::element_of(other) {
            Some(_) => return decode_array(bytes),
            // An array of a type dsqlsh does not know (an enum's, a domain's): the binary array
            // layout is the same for every element type, and only an array parses as one
            // exactly to its last byte.
            None if is_array_layout(bytes) => return decode_array(bytes),
            None => return Ok(None),
        },
    };
    Ok(Some(v))
}

/// inet/cidr as PostgreSQL's output function writes them (the `::text` cast would add `/32`
/// to a host address): family, mask bits, is-cidr flag, address length, address bytes.
fn inet_text(bytes: &[u8]) -> Result<String, String> {
    let [family, bits, is_cidr, len, addr @ ..] = bytes else {
        return Err("bad inet".into());
    };
    let (bits, max) = (*bits as u32, if *family == 2 { 32 } else { 128 });
    if addr.len() != *len as usize || addr.len() * 8 != max as usize {
        return Err("bad inet".into());
    }
    let text = if *family == 2 {
        std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string()
    } else {
        let octets: [u8; 16] = addr.try_into().map_err(|_| "bad inet")?;
        let v6 = std::net::Ipv6Addr::from(octets);
        let w = v6.segments();
        // PostgreSQL (like BIND) writes an IPv4-compatible address as ::a.b.c.d; Rust as hex.
        if w[..6] == [0; 6] && w[6] != 0 {
            format!(
                "::{}",
                std::net::Ipv4Addr::new(addr[12], addr[13], addr[14], addr[15])
            )
        } else {
            v6.to_string()
        }
    };
    Ok(if *is_cidr != 0 || bits != max {
        format!("{text}/{bits}")
    } else {
        text
    })
}

/// JSON text to a Rhai value; text that serde cannot hold (say a number beyond f64) stays text.
fn json_value(bytes: &[u8]) -> Dynamic {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v) => crate::json::from_json(v),
        Err(_) => Dynamic::from(String::from_utf8_lossy(bytes).to_string()),
    }
}

/// Binary array: ndim, flags, element oid, (length, lower bound) per dimension, then elements.
fn decode_array(bytes: &[u8]) -> Result<Option<Dynamic>, String> {
    let mut pos = 0usize;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let s = bytes.get(pos..pos + n).ok_or("truncated array")?;
        pos += n;
        Ok(s)
    };
    let ndim = be_i32(take(4)?)?;
    let _flags = take(4)?;
    let elem = be_i32(take(4)?)? as u32;
    if ndim == 0 {
        return Ok(Some(Dynamic::from_array(Array::new())));
    }
    let mut dims = Vec::with_capacity(ndim as usize);
    for _ in 0..ndim {
        dims.push(be_i32(take(4)?)?.max(0) as usize);
        let _lower = take(4)?;
    }
    let total: usize = dims.iter().product();
    let mut flat = Vec::with_capacity(total);
    for _ in 0..total {
        let len = be_i32(take(4)?)?;
        if len < 0 {
            flat.push(Dynamic::UNIT);
        } else {
            flat.push(decode_or_defer(elem, take(len as usize)?)?);
        }
    }
    Ok(Some(nest(flat, &dims)))
}

/// A value the server sent as text (results of the simple protocol): read into the same Rhai
/// value the binary form would give for numbers, booleans, JSON, timestamps, bytea and arrays
/// of those; anything else stays the server's text.
pub fn decode_text(type_oid: u32, text: &str) -> Dynamic {
    let parsed = match type_oid {
        oid::BOOL => match text {
            "t" => Some(Dynamic::TRUE),
            "f" => Some(Dynamic::FALSE),
            _ => None,
        },
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID => {
            text.parse::<i64>().ok().map(Dynamic::from_int)
        }
        oid::FLOAT4 | oid::FLOAT8 => parse_float(text).map(Dynamic::from_float),
        oid::JSON | oid::JSONB => Some(json_value(text.as_bytes())),
        // The ISO DateStyle the server answers in, converted as the binary value would be.
        oid::TIMESTAMPTZ => DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z")
            .ok()
            .and_then(|dt| timestamp_text(dt.timestamp_micros() - PG_EPOCH_MICROS, true))
            .map(Dynamic::from),
        oid::TIMESTAMP => NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
            .ok()
            .and_then(|dt| timestamp_text(dt.and_utc().timestamp_micros() - PG_EPOCH_MICROS, false))
            .map(Dynamic::from),
        oid::BYTEA => text
            .strip_prefix("\\x")
            .and_then(|hex| {
                (0..hex.len())
                    .step_by(2)
                    .map(|i| {
                        hex.get(i..i + 2)
                            .and_then(|b| u8::from_str_radix(b, 16).ok())
                    })
                    .collect::<Option<Vec<u8>>>()
            })
            .map(Dynamic::from_blob),
        other => oid::element_of(other)
            .and_then(|elem| parse_array_text(text, elem))
            .map(Dynamic::from_array),
    };
    parsed.unwrap_or_else(|| Dynamic::from(text.to_string()))
}

/// An array's text form (`{1,2}`, `{{"a b",NULL}}`, `[0:1]={x,y}`), its elements read with
/// `decode_text`. None when the text is not one.
fn parse_array_text(text: &str, elem: u32) -> Option<Array> {
    // Bounds other than 1 are shown as a `[lo:hi]=` prefix; the elements are what count.
    let body = match text.find("={") {
        Some(i) if text.starts_with('[') => &text[i + 1..],
        _ => text,
    };
    let chars: Vec<char> = body.chars().collect();
    let mut pos = 0;
    let out = parse_array_level(&chars, &mut pos, elem)?;
    (pos == chars.len()).then_some(out)
}

fn parse_array_level(c: &[char], pos: &mut usize, elem: u32) -> Option<Array> {
    if c.get(*pos) != Some(&'{') {
        return None;
    }
    *pos += 1;
    let mut out = Array::new();
    if c.get(*pos) == Some(&'}') {
        *pos += 1;
        return Some(out);
    }
    loop {
        match c.get(*pos)? {
            '{' => out.push(Dynamic::from_array(parse_array_level(c, pos, elem)?)),
            '"' => {
                *pos += 1;
                let mut s = String::new();
                loop {
                    match c.get(*pos)? {
                        '\\' => {
                            s.push(*c.get(*pos + 1)?);
                            *pos += 2;
                        }
                        '"' => {
                            *pos += 1;
                            break;
                        }
                        ch => {
                            s.push(*ch);
                            *pos += 1;
                        }
                    }
                }
                out.push(decode_text(elem, &s));
            }
            _ => {
                let start = *pos;
                while !matches!(c.get(*pos)?, ',' | '}') {
                    *pos += 1;
                }
                let s: String = c[start..*pos].iter().collect();
                out.push(if s == "NULL" {
                    Dynamic::UNIT
                } else {
                    decode_text(elem, s.trim())
                });
            }
        }
        match c.get(*pos)? {
            ',' => *pos += 1,
            '}' => {
                *pos += 1;
                return Some(out);
            }
            _ => return None,
        }
    }
}

/// An element of an array or record: decoded, or deferred to its text form when unmapped.
fn decode_or_defer(type_oid: u32, raw: &[u8]) -> Result<Dynamic, String> {
    Ok(match decode(type_oid, raw)? {
        Some(v) => v,
        None => Dynamic::from(Deferred {
            type_oid,
            bytes: raw.to_vec(),
        }),
    })
}

/// Does `bytes` hold exactly one binary array (header, dimensions, then every element)?
fn is_array_layout(bytes: &[u8]) -> bool {
    let int = |at: usize| -> Option<i32> {
        bytes
            .get(at..at + 4)
            .map(|b| i32::from_be_bytes(b.try_into().expect("4 bytes")))
    };
    let (Some(ndim), Some(flags), Some(elem)) = (int(0), int(4), int(8)) else {
        return false;
    };
    if !(0..=6).contains(&ndim) || !(0..=1).contains(&flags) || elem <= 0 {
        return false;
    }
    let mut pos = 12;
    let mut total: usize = 1;
    for _ in 0..ndim {
        // A stored array with dimensions has no empty one (an empty array has ndim 0).
        match int(pos) {
            Some(n) if n > 0 => total = total.saturating_mul(n as usize),
            _ => return false,
        }
        pos += 8;
    }
    if ndim == 0 {
        return pos == bytes.len();
    }
    for _ in 0..total {
        match int(pos) {
            Some(-1) => pos += 4,
            Some(n) if n >= 0 => pos += 4 + n as usize,
            _ => return false,
        }
        if pos > bytes.len() {
            return false;
        }
    }
    pos == bytes.len()
}

/// An anonymous record (`SELECT row(1, 'x')`): count, then (type oid, length, bytes) per field.
/// Its fields become an array; the server cannot give an anonymous record's text form, so a
/// field of a type without a mapping is deferred to its own text form.
fn decode_record(bytes: &[u8]) -> Result<Dynamic, String> {
    let mut pos = 0usize;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let s = bytes.get(pos..pos + n).ok_or("truncated record")?;
        pos += n;
        Ok(s)
    };
    let count = be_i32(take(4)?)?.max(0) as usize;
    let mut fields = Array::with_capacity(count);
    for _ in 0..count {
        let field_oid = be_i32(take(4)?)? as u32;
        let len = be_i32(take(4)?)?;
        if len < 0 {
            fields.push(Dynamic::UNIT);
            continue;
        }
        fields.push(decode_or_defer(field_oid, take(len as usize)?)?);
    }
    Ok(Dynamic::from_array(fields))
}

/// Turn a flat element list into nested arrays, outermost dimension first.
fn nest(flat: Vec<Dynamic>, dims: &[usize]) -> Dynamic {
    if dims.len() <= 1 {
        return Dynamic::from_array(flat);
    }
    let inner: usize = dims[1..].iter().product();
    let mut out = Array::with_capacity(dims[0]);
    let mut it = flat.into_iter();
    for _ in 0..dims[0] {
        let chunk: Vec<Dynamic> = it.by_ref().take(inner).collect();
        out.push(nest(chunk, &dims[1..]));
    }
    Dynamic::from_array(out)
}

/// `None` outside the years 1..=9999, which ISO text cannot show the way PostgreSQL does
/// (BC dates, five-digit years): those take the server's own text form.
fn timestamp_text(micros: i64, with_zone: bool) -> Option<String> {
    match micros {
        i64::MAX => return Some("infinity".into()),
        i64::MIN => return Some("-infinity".into()),
        _ => {}
    }
    let dt = micros
        .checked_add(PG_EPOCH_MICROS)
        .and_then(DateTime::<Utc>::from_timestamp_micros)
        .filter(|dt| (1..=9999).contains(&chrono::Datelike::year(dt)))?;
    Some(if with_zone {
        dt.to_rfc3339_opts(SecondsFormat::AutoSi, false)
    } else {
        dt.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string()
    })
}

fn date_text(days: i32) -> Option<String> {
    match days {
        i32::MAX => Some("infinity".into()),
        i32::MIN => Some("-infinity".into()),
        _ => NaiveDate::from_num_days_from_ce_opt(
            (days as i64 + PG_EPOCH_DAYS + 719_163) as i32, // 719163 = days from 0001-01-01 to 1970-01-01
        )
        .filter(|d| (1..=9999).contains(&chrono::Datelike::year(d)))
        .map(|d| d.format("%Y-%m-%d").to_string()),
    }
}

fn time_text(micros: i64) -> String {
    if micros == MICROS_PER_DAY {
        return "24:00:00".into();
    }
    let secs = (micros / 1_000_000) as u32;
    let nanos = (micros % 1_000_000) as u32 * 1000;
    NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
        .map(|t| t.format("%H:%M:%S%.f").to_string())
        .unwrap_or_else(|| format!("{micros} microseconds"))
}

fn offset_text(east_secs: i32) -> String {
    let sign = if east_secs < 0 { '-' } else { '+' };
    let a = east_secs.unsigned_abs();
    if a.is_multiple_of(60) {
        format!("{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
    } else {
        format!("{sign}{:02}:{:02}:{:02}", a / 3600, a % 3600 / 60, a % 60)
    }
}

/// ISO 8601 duration, as PostgreSQL prints it with `intervalstyle = iso_8601`.
pub fn interval_text(micros: i64, days: i32, months: i32) -> String {
    if micros == 0 && days == 0 && months == 0 {
        return "PT0S".into();
    }
    let mut s = String::from("P");
    let (years, months) = (months / 12, months % 12);
    for (n, unit) in [
        (years as i64, 'Y'),
        (months as i64, 'M'),
        (days as i64, 'D'),
    ] {
        if n != 0 {
            s.push_str(&format!("{n}{unit}"));
        }
    }
    if micros != 0 {
        s.push('T');
        let hours = micros / 3_600_000_000;
        let minutes = micros % 3_600_000_000 / 60_000_000;
        let rest = micros % 60_000_000;
        if hours != 0 {
            s.push_str(&format!("{hours}H"));
        }
        if minutes != 0 {
            s.push_str(&format!("{minutes}M"));
        }
        if rest != 0 {
            let sign = if rest < 0 { "-" } else { "" };
            let a = rest.unsigned_abs();
            let mut secs = format!("{sign}{}.{:06}", a / 1_000_000, a % 1_000_000);
            while secs.ends_with('0') {
                secs.pop();
            }
            if secs.ends_with('.') {
                secs.pop();
            }
            s.push_str(&format!("{secs}S"));
        }
    }
    s
}

/// A parameter value ready for the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Encoded {
    Null,
    Bytes(Vec<u8>),
    /// Text for the server to parse with the parameter type's input function.
    Text(String),
}

/// The type a value is declared with when the statement is prepared. Strings, NULLs and maps
/// are left unspecified (0) so that the server infers the type from the SQL around them.
/// The type a value is declared with when a statement is prepared (0: the server infers it).
/// Integers are typed the way SQL types a literal: integer when they fit in 32 bits, else bigint.
pub fn declared_oid(v: &Dynamic) -> u32 {
    let fits = |v: &Dynamic| v.as_int().is_ok_and(|i| i32::try_from(i).is_ok());
    if v.is_int() {
        if fits(v) {
            oid::INT4
        } else {
            oid::INT8
        }
    } else if v.is_float() {
        oid::FLOAT8
    } else if v.is_bool() {
        oid::BOOL
    } else if v.is_blob() {
        oid::BYTEA
    } else if let Some(arr) = v.read_lock::<Array>() {
        if arr.is_empty() {
            0
        } else if arr.iter().all(|e| e.is_int() || e.is_unit()) && arr.iter().any(|e| e.is_int()) {
            if arr.iter().all(|e| e.is_unit() || fits(e)) {
                oid::INT4_ARRAY
            } else {
                oid::INT8_ARRAY
            }
        } else if arr.iter().all(|e| e.is_float() || e.is_unit())
            && arr.iter().any(|e| e.is_float())
        {
            oid::FLOAT8_ARRAY
        } else if arr.iter().all(|e| e.is_bool() || e.is_unit()) && arr.iter().any(|e| e.is_bool())
        {
            oid::BOOL_ARRAY
        } else {
            0
        }
    } else {
        0
    }
}

/// Types whose binary form is the text's bytes. Not `"char"`: its binary form is one byte.
fn is_textual(type_oid: u32) -> bool {
    matches!(
        type_oid,
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::UNKNOWN | oid::XML
    )
}

fn kind_of(v: &Dynamic) -> &'static str {
    if v.is_int() {
        "integer"
    } else if v.is_float() {
        "float"
    } else if v.is_bool() {
        "bool"
    } else if v.is_string() {
        "string"
    } else if v.is_blob() {
        "blob"
    } else if v.is_array() {
        "array"
    } else if v.is_map() {
        "map"
    } else {
        "value"
    }
}

fn mismatch(v: &Dynamic, type_oid: u32) -> String {
    format!(
        "cannot bind {} {} to a parameter of type {}",
        match kind_of(v) {
            "integer" | "array" => "an",
            _ => "a",
        },
        kind_of(v),
        type_name(type_oid)
    )
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        format!("{f}")
    }
}

/// Encode `v` for a parameter whose type the server resolved to `type_oid`.
pub fn encode(v: &Dynamic, type_oid: u32) -> Result<Encoded, String> {
    use Encoded::{Bytes, Null, Text};
    if v.is_unit() {
        return Ok(Null);
    }
    if let Ok(i) = v.as_int() {
        let range = |lo: i64, hi: i64| {
            if (lo..=hi).contains(&i) {
                Ok(())
            } else {
                Err(format!(
                    "value {i} is out of range for type {}",
                    type_name(type_oid)
                ))
            }
        };
        return Ok(match type_oid {
            oid::INT2 => {
                range(i16::MIN as i64, i16::MAX as i64)?;
                Bytes((i as i16).to_be_bytes().to_vec())
            }
            oid::INT4 => {
                range(i32::MIN as i64, i32::MAX as i64)?;
                Bytes((i as i32).to_be_bytes().to_vec())
            }
            oid::INT8 => Bytes(i.to_be_bytes().to_vec()),
            oid::OID => {
                range(0, u32::MAX as i64)?;
                Bytes((i as u32).to_be_bytes().to_vec())
            }
            oid::FLOAT4 => Bytes((i as f32).to_be_bytes().to_vec()),
            oid::FLOAT8 => Bytes((i as f64).to_be_bytes().to_vec()),
            oid::NUMERIC => Bytes(numeric::encode(&i.to_string()).expect("an integer is numeric")),
            oid::JSON => Bytes(i.to_string().into_bytes()),
            oid::JSONB => Bytes(jsonb(&i.to_string())),
            oid::BOOL | oid::BYTEA | oid::UUID => return Err(mismatch(v, type_oid)),
            t if is_textual(t) => Bytes(i.to_string().into_bytes()),
            _ => Text(i.to_string()),
        });
    }
    if let Ok(f) = v.as_float() {
        return Ok(match type_oid {
            oid::FLOAT8 => Bytes(f.to_be_bytes().to_vec()),
            oid::FLOAT4 => Bytes((f as f32).to_be_bytes().to_vec()),
            oid::NUMERIC => {
                Bytes(numeric::encode(&float_text(f)).ok_or_else(|| mismatch(v, type_oid))?)
            }
            oid::INT2 | oid::INT4 | oid::INT8 => {
                if f.fract() == 0.0 && f.abs() < 9.2e18 {
                    return encode(&Dynamic::from_int(f as i64), type_oid);
                }
                return Err(format!(
                    "cannot bind the float {f} to a parameter of type {} without losing its fraction",
                    type_name(type_oid)
                ));
            }
            oid::JSON => Bytes(crate::json::float_to_json(f).to_string().into_bytes()),
            oid::JSONB => Bytes(jsonb(&crate::json::float_to_json(f).to_string())),
            oid::BOOL | oid::BYTEA | oid::UUID => return Err(mismatch(v, type_oid)),
            t if is_textual(t) => Bytes(float_text(f).into_bytes()),
            _ => Text(float_text(f)),
        });
    }
    if let Ok(b) = v.as_bool() {
        return Ok(match type_oid {
            oid::BOOL => Bytes(vec![b as u8]),
            oid::JSON => Bytes(b.to_string().into_bytes()),
            oid::JSONB => Bytes(jsonb(&b.to_string())),
            t if is_textual(t) => Bytes(b.to_string().into_bytes()),
            oid::INT2
            | oid::INT4
            | oid::INT8
            | oid::FLOAT4
            | oid::FLOAT8
            | oid::NUMERIC
            | oid::UUID
            | oid::BYTEA => return Err(mismatch(v, type_oid)),
            _ => Text(b.to_string()),
        });
    }
    if v.is_string() || v.is_char() {
        let s = v.to_string();
        return Ok(encode_str(&s, type_oid));
    }
    if v.is_blob() {
        let blob = v
            .read_lock::<rhai::Blob>()
            .map(|b| b.clone())
            .unwrap_or_default();
        return match type_oid {
            oid::BYTEA => Ok(Bytes(blob)),
            _ => Err(mismatch(v, type_oid)),
        };
    }
    if v.is_array() || v.is_map() {
        match type_oid {
            oid::JSON => return Ok(Bytes(crate::json::to_json(v).to_string().into_bytes())),
            oid::JSONB => return Ok(Bytes(jsonb(&crate::json::to_json(v).to_string()))),
            t if is_textual(t) && v.is_map() => {
                return Ok(Bytes(crate::json::to_json(v).to_string().into_bytes()))
            }
            _ => {}
        }
        if let Some(arr) = v.read_lock::<Array>() {
            return match oid::element_of(type_oid) {
                Some(elem) => encode_array(&arr, type_oid, elem),
                // An array type dsqlsh has no encoder for (inet[], an enum's array): the
                // server reads the array literal with the type's own input function.
                None if type_name(type_oid).starts_with("type with oid ") => {
                    Ok(Encoded::Text(array_literal(&arr)))
                }
                None => Err(mismatch(v, type_oid)),
            };
        }
        return Err(mismatch(v, type_oid));
    }
    Err(format!(
        "cannot bind a value of type `{}` as a SQL parameter",
        v.type_name()
    ))
}

fn jsonb(text: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(text.len() + 1);
    b.push(1);
    b.extend_from_slice(text.as_bytes());
    b
}

/// A string for `type_oid`: parsed here for the common types, otherwise left to the server.
fn encode_str(s: &str, type_oid: u32) -> Encoded {
    use Encoded::{Bytes, Text};
    let native = match type_oid {
        t if is_textual(t) => Some(s.as_bytes().to_vec()),
        // One byte natively; anything longer (or a multi-byte character) goes to the server,
        // whose input function keeps the first byte, as a `'ab'::"char"` literal does.
        oid::CHAR if s.len() == 1 => Some(s.as_bytes().to_vec()),
        oid::JSON => Some(s.as_bytes().to_vec()),
        oid::JSONB => Some(jsonb(s)),
        oid::INT2 => s
            .trim()
            .parse::<i16>()
            .ok()
            .map(|i| i.to_be_bytes().to_vec()),
        oid::INT4 => s
            .trim()
            .parse::<i32>()
            .ok()
            .map(|i| i.to_be_bytes().to_vec()),
        oid::INT8 => s
            .trim()
            .parse::<i64>()
            .ok()
            .map(|i| i.to_be_bytes().to_vec()),
        oid::FLOAT8 => parse_float(s).map(|f| f.to_be_bytes().to_vec()),
        oid::FLOAT4 => parse_float(s).map(|f| (f as f32).to_be_bytes().to_vec()),
        oid::NUMERIC => numeric::encode(s),
        oid::BOOL => match s.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "yes" | "on" | "1" => Some(vec![1]),
            "f" | "false" | "no" | "off" | "0" => Some(vec![0]),
            _ => None,
        },
        oid::UUID => uuid::Uuid::parse_str(s.trim())
            .ok()
            .map(|u| u.as_bytes().to_vec()),
        oid::DATE => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .ok()
            .filter(|d| (1..=9999).contains(&chrono::Datelike::year(d)))
            .map(|d| {
                let days =
                    d.signed_duration_since(NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid"));
                (days.num_days() as i32).to_be_bytes().to_vec()
            }),
        oid::TIMESTAMPTZ => parse_timestamptz(s).map(|m| m.to_be_bytes().to_vec()),
        oid::TIMESTAMP => parse_timestamp(s).map(|m| m.to_be_bytes().to_vec()),
        _ => None,
    };
    match native {
        Some(b) => Bytes(b),
        None => Text(s.to_string()),
    }
}

fn parse_float(s: &str) -> Option<f64> {
    match s.trim().to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "+infinity" | "inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

/// Text parsed here only when it is unambiguous: a four-digit year from 0001 and at most six
/// fractional digits (PostgreSQL rounds a seventh; chrono would truncate). Anything else goes
/// to the server.
fn plain_timestamp_text(t: &str) -> bool {
    let year_ok = t
        .get(..4)
        .is_some_and(|y| y.bytes().all(|b| b.is_ascii_digit()) && y != "0000")
        && t.as_bytes().get(4) == Some(&b'-');
    let fraction_ok = match t.find('.') {
        None => true,
        Some(dot) => t[dot + 1..].bytes().take_while(u8::is_ascii_digit).count() <= 6,
    };
    year_ok && fraction_ok
}

/// RFC 3339 (or the same with a space) with an explicit offset; anything else is for the server,
/// which applies its session time zone to zone-less text.
fn parse_timestamptz(s: &str) -> Option<i64> {
    let t = s.trim();
    if !plain_timestamp_text(t) {
        return None;
    }
    let dt = DateTime::parse_from_rfc3339(t)
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .ok()?;
    dt.timestamp_micros().checked_sub(PG_EPOCH_MICROS)
}

fn parse_timestamp(s: &str) -> Option<i64> {
    let t = s.trim();
    if !plain_timestamp_text(t) {
        return None;
    }
    let dt = NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()?;
    dt.and_utc().timestamp_micros().checked_sub(PG_EPOCH_MICROS)
}

/// A Rhai array for an array parameter. Nested arrays of equal length become dimensions.
fn encode_array(arr: &Array, array_oid: u32, elem_oid: u32) -> Result<Encoded, String> {
    let mut dims = Vec::new();
    let mut flat = Vec::new();
    flatten(arr, 0, &mut dims, &mut flat)?;
    let mut elements: Vec<Option<Vec<u8>>> = Vec::with_capacity(flat.len());
    for v in &flat {
        match encode(v, elem_oid)? {
            Encoded::Null => elements.push(None),
            Encoded::Bytes(b) => elements.push(Some(b)),
            // One element needs the server's parser: send the whole array as an array literal.
            Encoded::Text(_) => return Ok(Encoded::Text(array_literal(arr))),
        }
    }
    let _ = array_oid;
    let mut buf = Vec::new();
    buf.extend_from_slice(
        &(if flat.is_empty() {
            0
        } else {
            dims.len() as i32
        })
        .to_be_bytes(),
    );
    buf.extend_from_slice(&(elements.iter().any(Option::is_none) as i32).to_be_bytes());
    buf.extend_from_slice(&elem_oid.to_be_bytes());
    if !flat.is_empty() {
        for d in &dims {
            buf.extend_from_slice(&(*d as i32).to_be_bytes());
            buf.extend_from_slice(&1i32.to_be_bytes());
        }
    }
    for e in elements {
        match e {
            None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(b) => {
                buf.extend_from_slice(&(b.len() as i32).to_be_bytes());
                buf.extend_from_slice(&b);
            }
        }
    }
    Ok(Encoded::Bytes(buf))
}

fn flatten(
    arr: &Array,
    depth: usize,
    dims: &mut Vec<usize>,
    flat: &mut Vec<Dynamic>,
) -> Result<(), String> {
    match dims.get(depth) {
        None => dims.push(arr.len()),
        Some(&n) if n != arr.len() => {
            return Err(
                "nested arrays must all have the same length (PostgreSQL arrays are rectangular)"
                    .into(),
            )
        }
        _ => {}
    }
    let nested = arr.iter().filter(|e| e.is_array()).count();
    if nested > 0 && nested != arr.len() {
        return Err("an array parameter mixes arrays and plain values".into());
    }
    for e in arr {
        match e.read_lock::<Array>() {
            Some(inner) => flatten(&inner, depth + 1, dims, flat)?,
            None => flat.push(e.clone()),
        }
    }
    Ok(())
}

/// PostgreSQL array literal text: `{"a","b",NULL}`, nested for nested arrays.
fn array_literal(arr: &Array) -> String {
    let items: Vec<String> = arr
        .iter()
        .map(|e| {
            if e.is_unit() {
                "NULL".to_string()
            } else if let Some(inner) = e.read_lock::<Array>() {
                array_literal(&inner)
            } else {
                let s = if e.is_float() {
                    float_text(e.as_float().unwrap_or_default())
                } else {
                    e.to_string()
                };
                format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
            }
        })
        .collect();
    format!("{{{}}}", items.join(","))
}

/// The keys of a map, for messages.
pub fn describe_map(m: &Map) -> String {
    m.keys()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(t: u32, b: &[u8]) -> Dynamic {
        decode(t, b).unwrap().unwrap()
    }

    #[test]
    fn integers_keep_their_width() {
        assert_eq!(dec(oid::INT2, &(-2i16).to_be_bytes()).as_int().unwrap(), -2);
        assert_eq!(
            dec(oid::INT4, &i32::MAX.to_be_bytes()).as_int().unwrap(),
            2147483647
        );
        assert_eq!(
            dec(oid::INT8, &5_000_000_000i64.to_be_bytes())
                .as_int()
                .unwrap(),
            5_000_000_000
        );
        assert_eq!(
            encode(&Dynamic::from_int(70000), oid::INT2).unwrap_err(),
            "value 70000 is out of range for type smallint"
        );
        assert_eq!(
            encode(&Dynamic::from_int(7), oid::INT4).unwrap(),
            Encoded::Bytes(vec![0, 0, 0, 7])
        );
    }

    #[test]
    fn floats_keep_nan_and_infinity() {
        assert!(dec(oid::FLOAT8, &f64::NAN.to_be_bytes())
            .as_float()
            .unwrap()
            .is_nan());
        assert_eq!(
            dec(oid::FLOAT4, &f32::NEG_INFINITY.to_be_bytes())
                .as_float()
                .unwrap(),
            f64::NEG_INFINITY
        );
        assert_eq!(
            encode_str("NaN", oid::FLOAT8),
            Encoded::Bytes(f64::NAN.to_be_bytes().to_vec())
        );
    }

    #[test]
    fn timestamps_dates_and_intervals() {
        // 2025-01-15T12:00:00Z is 790,257,600 s after 2000-01-01 (9146 days and 12 hours).
        let micros = 790_257_600_000_000i64;
        assert_eq!(
            dec(oid::TIMESTAMPTZ, &micros.to_be_bytes())
                .into_string()
                .unwrap(),
            "2025-01-15T12:00:00+00:00"
        );
        assert_eq!(
            dec(oid::TIMESTAMPTZ, &(micros + 123_456).to_be_bytes())
                .into_string()
                .unwrap(),
            "2025-01-15T12:00:00.123456+00:00"
        );
        assert_eq!(
            dec(oid::TIMESTAMP, &micros.to_be_bytes())
                .into_string()
                .unwrap(),
            "2025-01-15T12:00:00"
        );
        assert_eq!(
            dec(oid::TIMESTAMPTZ, &i64::MAX.to_be_bytes())
                .into_string()
                .unwrap(),
            "infinity"
        );
        assert_eq!(
            dec(oid::DATE, &9146i32.to_be_bytes())
                .into_string()
                .unwrap(),
            "2025-01-15"
        );
        assert_eq!(
            dec(oid::DATE, &(-1i32).to_be_bytes())
                .into_string()
                .unwrap(),
            "1999-12-31"
        );
        assert_eq!(parse_timestamptz("2025-01-15T13:00:00+01:00"), Some(micros));
        assert_eq!(
            parse_timestamptz("2025-01-15 12:00:00Z"),
            None.or(parse_timestamptz("2025-01-15T12:00:00Z"))
        );
        assert_eq!(
            encode_str("2025-01-15", oid::DATE),
            Encoded::Bytes(9146i32.to_be_bytes().to_vec())
        );
        assert_eq!(
            encode_str("2025-01-15 10:00", oid::TIMESTAMPTZ),
            Encoded::Text("2025-01-15 10:00".into())
        );
        assert_eq!(interval_text(0, 0, 0), "PT0S");
        assert_eq!(interval_text(3_723_500_000, 3, 14), "P1Y2M3DT1H2M3.5S");
        assert_eq!(interval_text(-1_000_000, 0, 0), "PT-1S");
        assert_eq!(time_text(45_296_000_001), "12:34:56.000001");
    }

    #[test]
    fn arrays_keep_nulls_and_nest() {
        // int4[] {1,NULL,3}
        let mut b = Vec::new();
        for w in [1i32, 1, 23, 3, 1] {
            b.extend_from_slice(&w.to_be_bytes());
        }
        b.extend_from_slice(&4i32.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&4i32.to_be_bytes());
        b.extend_from_slice(&3i32.to_be_bytes());
        let v = dec(1007, &b);
        assert_eq!(v.to_string(), "[1, (), 3]");
        // and back
        assert_eq!(encode(&v, 1007).unwrap(), Encoded::Bytes(b));

        let nested = Dynamic::from_array(vec![
            Dynamic::from_array(vec![Dynamic::from_int(1), Dynamic::from_int(2)]),
            Dynamic::from_array(vec![Dynamic::from_int(3)]),
        ]);
        assert!(encode(&nested, 1016).unwrap_err().contains("rectangular"));
        let strings = Dynamic::from_array(vec![Dynamic::from("a\"b"), Dynamic::UNIT]);
        assert_eq!(
            encode(&strings, 1185).unwrap(),
            Encoded::Text(r#"{"a\"b",NULL}"#.into())
        );
    }

    #[test]
    fn strings_parse_for_common_types() {
        let u = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        assert_eq!(
            encode_str(u, oid::UUID),
            Encoded::Bytes(uuid::Uuid::parse_str(u).unwrap().as_bytes().to_vec())
        );
        assert_eq!(
            encode_str("not-a-uuid", oid::UUID),
            Encoded::Text("not-a-uuid".into())
        );
        assert_eq!(
            encode_str("1 day", oid::INTERVAL),
            Encoded::Text("1 day".into())
        );
        assert_eq!(
            encode(&Dynamic::from_float(1.5), oid::INT4).unwrap_err(),
            "cannot bind the float 1.5 to a parameter of type integer without losing its fraction"
        );
        assert_eq!(
            encode(&Dynamic::from_bool(true), oid::UUID).unwrap_err(),
            "cannot bind a bool to a parameter of type uuid"
        );
    }
}
