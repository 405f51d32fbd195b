//! Everything written to stdout: results only (diagnostics go to stderr).
//!
//! Writes go through `line`, which remembers a closed pipe (`dsqlsh ... | head`) instead of
//! panicking; the script is then stopped and dsqlsh exits 0, as ripgrep does.
//!
//! Tables are rendered in psql's aligned style by hand rather than with comfy-table: the layout
//! must match psql's (`(N rows)` footer, right-aligned numbers, no outer border) so output can be
//! diffed against psql, and widths use display width so CJK and emoji line up.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use rhai::{Array, Dynamic, Map};
use unicode_width::UnicodeWidthStr;

static BROKEN_PIPE: AtomicBool = AtomicBool::new(false);

/// Server notices and warnings (NOTICE, WARNING) on stderr, as psql shows them. sqlx reports
/// them as log records under one target; everything else logged by dependencies is dropped.
struct Notices;

const NOTICE_TARGET: &str = "sqlx::postgres::notice";

impl log::Log for Notices {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.target() == NOTICE_TARGET && m.level() <= log::Level::Info
    }

    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let captured = CAPTURED.with(|c| {
                c.borrow_mut()
                    .as_mut()
                    .map(|v| v.push(r.args().to_string()))
                    .is_some()
            });
            if captured {
                return;
            }
            let label = match r.level() {
                log::Level::Error => "ERROR",
                log::Level::Warn => "WARNING",
                _ => "NOTICE",
            };
            diag(&format!("{label}:  {}", r.args()));
        }
    }

    fn flush(&self) {}
}

thread_local! {
    /// Notices raised while `capture_notices` runs on this thread (sqlx logs them on the thread
    /// that polls the connection, which is the one blocked in the statement).
    static CAPTURED: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

/// Run `f`, keeping the server notices it raises instead of printing them.
pub fn capture_notices<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let outer = CAPTURED.with(|c| c.borrow_mut().replace(Vec::new()));
    let value = f();
    let notices = CAPTURED.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    (value, notices.unwrap_or_default())
}

/// Route server notices to stderr; called once at start-up.
pub fn show_server_notices() {
    static NOTICES: Notices = Notices;
    if log::set_logger(&NOTICES).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

/// A line on stderr that cannot fail the program: a closed or full stderr is ignored (there is
/// nowhere left to report it).
pub fn diag(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// The first write error on stdout other than a closed pipe (a full disk, say): the run fails
/// with it instead of reporting success with a truncated file.
static WRITE_FAILURE: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Print one line on stdout. Returns false once stdout is unusable.
pub fn line(text: &str) -> bool {
    write_out(|out| writeln!(out, "{text}"))
}

/// Print text that already ends in a newline (or should not get one).
pub fn raw(text: &str) -> bool {
    write_out(|out| out.write_all(text.as_bytes()))
}

fn write_out(f: impl FnOnce(&mut std::io::StdoutLock) -> std::io::Result<()>) -> bool {
    if stdout_failed() {
        return false;
    }
    let mut out = std::io::stdout().lock();
    match f(&mut out).and_then(|_| out.flush()) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            BROKEN_PIPE.store(true, Ordering::Relaxed);
            false
        }
        Err(e) => {
            WRITE_FAILURE
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| e.to_string());
            false
        }
    }
}

/// The reader went away (`dsqlsh ... | head`): stop quietly, exit 0.
pub fn broken_pipe() -> bool {
    BROKEN_PIPE.load(Ordering::Relaxed)
}

/// Why stdout could not be written, other than a closed pipe.
pub fn write_failure() -> Option<String> {
    WRITE_FAILURE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// Either way, there is no point running on.
pub fn stdout_failed() -> bool {
    broken_pipe() || write_failure().is_some()
}

pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// Pad to a display width.
pub fn pad_right(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

pub fn pad_left(s: &str, w: usize) -> String {
    format!("{}{s}", " ".repeat(w.saturating_sub(width(s))))
}

/// How a value prints as a result (`eval`, the REPL): strings bare, collections as JSON.
pub fn display_value(v: &Dynamic) -> String {
    if v.is_unit() {
        String::new()
    } else if v.is_string() {
        v.clone().into_string().unwrap_or_default()
    } else if v.is_array() || v.is_map() || v.is_blob() {
        serde_json::to_string_pretty(&crate::json::to_json(v)).unwrap_or_default()
    } else if let Ok(f) = v.as_float() {
        float_text(f)
    } else {
        crate::script::host_value_text(v).unwrap_or_else(|| v.to_string())
    }
}

pub fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        // Very large and very small magnitudes in exponent form (1e300, not 301 digits), as
        // Rhai and psql print them.
        let a = f.abs();
        let s = if a != 0.0 && !(1e-5..1e16).contains(&a) {
            format!("{f:e}")
        } else {
            f.to_string()
        };
        // Rhai prints 1.0 as "1.0"; so does this.
        if s.contains(['.', 'e']) {
            s
        } else {
            format!("{s}.0")
        }
    }
}

/// One table cell: NULL is empty, as in psql.
fn cell(v: &Dynamic) -> String {
    if v.is_unit() {
        String::new()
    } else if v.is_blob() {
        let blob = v
            .read_lock::<rhai::Blob>()
            .map(|b| b.clone())
            .unwrap_or_default();
        crate::json::blob_to_hex(&blob)
    } else if v.is_string() {
        v.clone().into_string().unwrap_or_default()
    } else if v.is_array() || v.is_map() || v.is_blob() {
        crate::json::to_json(v).to_string()
    } else if let Ok(f) = v.as_float() {
        float_text(f)
    } else {
        v.to_string()
    }
}

fn is_number(v: &Dynamic) -> bool {
    v.is_int() || v.is_float()
}

/// psql-style aligned table of row maps, with an `(N rows)` footer.
pub fn render_table(rows: &Array) -> String {
    let columns = crate::rows::columns_of_rows(rows);
    render_table_with(&columns, rows)
}

pub fn render_table_with(columns: &[String], rows: &Array) -> String {
    let mut cells: Vec<Vec<(String, bool)>> = Vec::with_capacity(rows.len());
    for row in rows {
        let map = row
            .read_lock::<Map>()
            .map(|m| m.clone())
            .unwrap_or_default();
        cells.push(
            columns
                .iter()
                .map(|c| match map.get(c.as_str()) {
                    Some(v) => (cell(v).replace('\n', "\\n"), is_number(v)),
                    None => (String::new(), false),
                })
                .collect(),
        );
    }
    let mut widths: Vec<usize> = columns.iter().map(|c| width(c)).collect();
    for row in &cells {
        for (i, (text, _)) in row.iter().enumerate() {
            widths[i] = widths[i].max(width(text));
        }
    }
    let mut out = String::new();
    if !columns.is_empty() {
        let header: Vec<String> = columns
            .iter()
            .zip(&widths)
            .map(|(c, &w)| {
                // Centered, as psql does.
                let total = w - width(c);
                let left = total / 2;
                format!("{}{}{}", " ".repeat(left), c, " ".repeat(total - left))
            })
            .collect();
        out.push_str(format!(" {}", header.join(" | ")).trim_end());
        out.push('\n');
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w + 2)).collect();
        out.push_str(&format!("{}\n", rule.join("+")));
        for row in &cells {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|((text, numeric), &w)| {
                    if *numeric {
                        pad_left(text, w)
                    } else {
                        pad_right(text, w)
                    }
                })
                .collect();
            out.push_str(format!(" {}", line.join(" | ")).trim_end());
            out.push('\n');
        }
    }
    out.push_str(&match rows.len() {
        1 => "(1 row)\n".to_string(),
        n => format!("({n} rows)\n"),
    });
    out
}

/// A horizontal bar chart: `label | ██████ 12`, bars scaled so the largest is `max_width`.
pub fn render_bar_chart(entries: &[(String, f64)], max_width: usize) -> String {
    let label_w = entries.iter().map(|(l, _)| width(l)).max().unwrap_or(0);
    let max = entries.iter().map(|(_, v)| *v).fold(0.0f64, f64::max);
    let mut out = String::new();
    for (label, value) in entries {
        let len = if max > 0.0 && value.is_finite() && *value > 0.0 {
            ((value / max) * max_width as f64).round().max(1.0) as usize
        } else {
            0
        };
        let number = if value.fract() == 0.0 && value.abs() < 1e15 {
            format!("{}", *value as i64)
        } else {
            format!("{value:.2}")
        };
        let bar = "█".repeat(len);
        out.push_str(format!("{} | {bar} {number}", pad_right(label, label_w)).as_str());
        out.push('\n');
    }
    out
}

/// `1234567` -> `1,234,567`.
pub fn group_thousands(n: i64) -> String {
    let grouped = group_digits(&n.unsigned_abs().to_string());
    if n < 0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

/// Commas between groups of three in a string of digits, however long.
pub fn group_digits(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Notices raised inside `capture_notices` are handed back instead of printed; outside it,
    /// they print as before (nothing is captured).
    #[test]
    fn notices_are_captured_on_this_thread_only() {
        show_server_notices();
        let notice = |text: &str| {
            log::logger().log(
                &log::Record::builder()
                    .target(NOTICE_TARGET)
                    .level(log::Level::Warn)
                    .args(format_args!("{text}"))
                    .build(),
            )
        };
        let ((), seen) = capture_notices(|| notice("there is already a transaction in progress"));
        assert_eq!(seen, ["there is already a transaction in progress"]);
        let ((), none) = capture_notices(|| ());
        assert!(none.is_empty());
    }

    fn row(pairs: &[(&str, Dynamic)]) -> Dynamic {
        let mut m = Map::new();
        for (k, v) in pairs {
            m.insert((*k).into(), v.clone());
        }
        Dynamic::from_map(m)
    }

    #[test]
    fn psql_style_table_with_wide_characters() {
        let rows: Array = vec![
            row(&[("id", Dynamic::from_int(1)), ("name", Dynamic::from("Ann"))]),
            row(&[
                ("id", Dynamic::from_int(22)),
                ("name", Dynamic::from("山田太郎")),
            ]),
            row(&[("id", Dynamic::UNIT), ("name", Dynamic::from("x"))]),
        ];
        assert_eq!(
            render_table(&rows),
            " id |   name\n----+----------\n  1 | Ann\n 22 | 山田太郎\n    | x\n(3 rows)\n"
        );
        assert_eq!(render_table(&Array::new()), "(0 rows)\n");
    }

    #[test]
    fn bars_scale_to_the_largest_value() {
        let chart = render_bar_chart(
            &[("a".into(), 2.0), ("bb".into(), 4.0), ("c".into(), 0.0)],
            4,
        );
        assert_eq!(chart, "a  | ██ 2\nbb | ████ 4\nc  |  0\n");
    }

    #[test]
    fn thousands() {
        assert_eq!(group_thousands(1234567), "1,234,567");
        assert_eq!(group_thousands(-1000), "-1,000");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(
            group_digits("100000000000000000000"),
            "100,000,000,000,000,000,000"
        );
    }
}
