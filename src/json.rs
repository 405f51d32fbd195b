//! Conversions between Rhai values and JSON, used by `to_json`, `parse_json`, json/jsonb
//! columns and every JSON report.
//!
//! JSON has no NaN, infinities or bytes: floats that are not finite become the strings
//! `"NaN"`, `"Infinity"` and `"-Infinity"` (as PostgreSQL's `to_json` writes them) and blobs
//! become `"\x..."` hex strings (bytea's text form), so nothing turns silently into `null`.

use rhai::{Array, Dynamic, Map};
use serde_json::Value;

pub fn to_json(value: &Dynamic) -> Value {
    to_json_at(value, 0)
}

/// Nesting deeper than this is written as a string instead of recursing further: a value built
/// 10,000 levels deep would otherwise overflow the stack.
const MAX_DEPTH: usize = 512;

fn to_json_at(value: &Dynamic, depth: usize) -> Value {
    if depth >= MAX_DEPTH {
        return Value::String("<nested too deeply>".into());
    }
    if value.is_unit() {
        return Value::Null;
    }
    if let Ok(b) = value.as_bool() {
        return Value::Bool(b);
    }
    if let Ok(i) = value.as_int() {
        return Value::from(i);
    }
    if let Ok(f) = value.as_float() {
        return float_to_json(f);
    }
    if value.is_string() {
        return Value::String(value.clone().into_string().unwrap_or_default());
    }
    if let Ok(c) = value.as_char() {
        return Value::String(c.to_string());
    }
    if value.is_blob() {
        let blob = value
            .read_lock::<rhai::Blob>()
            .map(|b| b.clone())
            .unwrap_or_default();
        return Value::String(blob_to_hex(&blob));
    }
    if let Some(arr) = value.read_lock::<Array>() {
        return Value::Array(arr.iter().map(|v| to_json_at(v, depth + 1)).collect());
    }
    if let Some(map) = value.read_lock::<Map>() {
        let mut obj = serde_json::Map::new();
        for key in crate::rows::ordered_keys(value, &map) {
            let v = map
                .get(key.as_str())
                .map(|v| to_json_at(v, depth + 1))
                .unwrap_or(Value::Null);
            obj.insert(key, v);
        }
        return Value::Object(obj);
    }
    Value::String(crate::script::host_value_text(value).unwrap_or_else(|| value.to_string()))
}

pub fn float_to_json(f: f64) -> Value {
    match serde_json::Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => Value::String("NaN".into()),
        None if f > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

pub fn blob_to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("\\x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

pub fn from_json(value: Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Dynamic::from(s),
        Value::Array(items) => Dynamic::from_array(items.into_iter().map(from_json).collect()),
        Value::Object(obj) => {
            let mut map = Map::new();
            for (k, v) in obj {
                map.insert(k.into(), from_json(v));
            }
            Dynamic::from_map(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_floats_and_blobs_survive_as_strings() {
        let arr: Array = vec![
            Dynamic::from_float(f64::NAN),
            Dynamic::from_float(f64::INFINITY),
            Dynamic::from_float(f64::NEG_INFINITY),
            Dynamic::from_float(1.5),
            Dynamic::from_blob(vec![0xde, 0xad]),
            Dynamic::UNIT,
        ];
        assert_eq!(
            to_json(&Dynamic::from_array(arr)).to_string(),
            r#"["NaN","Infinity","-Infinity",1.5,"\\xdead",null]"#
        );
    }

    #[test]
    fn round_trip_of_nested_values() {
        let v: Value = serde_json::from_str(r#"{"a":[1,2.5,null,true],"b":{"c":"x"}}"#).unwrap();
        assert_eq!(to_json(&from_json(v.clone())), v);
    }
}
