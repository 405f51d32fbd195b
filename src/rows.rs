//! Row maps and their column order.
//!
//! Rhai maps are sorted by key, but a row printed as a table or JSON must show the SELECT's
//! column order. Each row map returned by `query` carries a tag (Rhai's per-value `i32`) naming an
//! interned column list; printers look the order up here. A map without a tag (one a script built
//! itself) prints in key order. The tag survives copies and field edits, so `rows.map(...)` of
//! unchanged rows and a row with an edited field keep their order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rhai::{Dynamic, Map};

#[derive(Default)]
struct Registry {
    by_columns: HashMap<Arc<[String]>, i32>,
    lists: Vec<Arc<[String]>>,
}

fn registry() -> &'static Mutex<Registry> {
    static REG: OnceLock<Mutex<Registry>> = OnceLock::new();
    REG.get_or_init(Default::default)
}

/// The tag for this column list (tags start at 1; 0 means "no known order").
pub fn tag_for(columns: &Arc<[String]>) -> i32 {
    let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&tag) = reg.by_columns.get(columns) {
        return tag;
    }
    reg.lists.push(columns.clone());
    let tag = reg.lists.len() as i32;
    reg.by_columns.insert(columns.clone(), tag);
    tag
}

fn columns_of_tag(tag: i32) -> Option<Arc<[String]>> {
    if tag <= 0 {
        return None;
    }
    let reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    reg.lists.get(tag as usize - 1).cloned()
}

/// Build a row map tagged with its column order.
pub fn make_row(columns: &Arc<[String]>, tag: i32, values: Vec<Dynamic>) -> Dynamic {
    let mut map = Map::new();
    for (name, value) in columns.iter().zip(values) {
        map.insert(name.as_str().into(), value);
    }
    let mut row = Dynamic::from_map(map);
    row.set_tag(tag);
    row
}

/// The keys of a map in display order: its tagged column order first, then any other keys
/// in sorted order.
pub fn ordered_keys(value: &Dynamic, map: &Map) -> Vec<String> {
    let mut keys: Vec<String> = Vec::with_capacity(map.len());
    if let Some(cols) = columns_of_tag(value.tag()) {
        for c in cols.iter() {
            if map.contains_key(c.as_str()) && !keys.contains(c) {
                keys.push(c.clone());
            }
        }
    }
    for k in map.keys() {
        if !keys.iter().any(|x| x == k.as_str()) {
            keys.push(k.to_string());
        }
    }
    keys
}

/// The column order for a list of rows: the first row's order, extended by keys other rows add.
pub fn columns_of_rows(rows: &[Dynamic]) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for row in rows {
        if let Some(map) = row.read_lock::<Map>() {
            for k in ordered_keys(row, &map) {
                if !columns.contains(&k) {
                    columns.push(k);
                }
            }
        }
    }
    columns
}
