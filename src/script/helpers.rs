//! General-purpose script helpers: values (`uuid`, `now`, `random_name`, JSON), the process
//! (`env`, `sleep`, `exit`), the terminal (`prompt`, `confirm`, `eprint`, `is_interactive`) and
//! presentation (`print_table`, `bar_chart`, `format_number`, display-width padding).

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, Position};

use super::{host_error, script_error, RhaiResult, Session};
use crate::output;

pub fn random_name(rng: &mut impl rand::Rng) -> String {
    let (first, last) = crate::users::name_parts(rng.random());
    format!("{first} {last}")
}

fn number(v: &Dynamic, what: &str) -> RhaiResult<f64> {
    v.as_float()
        .or_else(|_| v.as_int().map(|i| i as f64))
        .map_err(|_| {
            script_error(format!(
                "{what} must be a number, got {}",
                super::db_api::type_label(v)
            ))
        })
}

/// Read one line from the terminal after printing `question` on stderr.
fn ask(question: &str) -> RhaiResult<String> {
    if !std::io::stdin().is_terminal() {
        return Err(script_error(format!(
            "cannot ask `{}`: stdin is not a terminal (pass the value as an argument instead)",
            question.trim().trim_end_matches(':')
        )));
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question}").and_then(|_| err.flush());
    drop(err);
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) => Err(script_error("no answer: end of input")),
        Ok(_) => Ok(line.trim_end_matches(['\r', '\n']).to_string()),
        Err(e) => Err(script_error(format!("cannot read from the terminal: {e}"))),
    }
}

/// `check_args(ARGS, ["users", ...])`: a script's first line, so that a misspelled
/// `KEY=VALUE` on the command line is a usage error (exit 2) instead of silently ignored.
fn check_args(args: &Map, known: &Array) -> RhaiResult<()> {
    let known: Vec<String> = known.iter().map(|k| k.to_string()).collect();
    let mut unknown: Vec<&str> = args
        .keys()
        .map(|k| k.as_str())
        .filter(|k| !known.iter().any(|n| n == k))
        .collect();
    unknown.sort();
    let Some(first) = unknown.first() else {
        return Ok(());
    };
    let hint = did_you_mean(first, known.iter().map(String::as_str))
        .map(|k| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    let listed = if known.is_empty() {
        "this script takes no arguments".to_string()
    } else {
        format!("this script takes {}", known.join(", "))
    };
    Err(super::usage_error(format!(
        "unknown script argument `{first}` ({listed}){hint}"
    )))
}

/// The known name `typed` was most likely meant to be: a near spelling, or one that it starts
/// (`max_p99` for `max_p99_ms`).
pub(super) fn did_you_mean<'a>(
    typed: &str,
    known: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    known
        .map(|k| {
            let d = if k.starts_with(typed) && typed.len() >= 3 {
                0
            } else {
                edit_distance(typed, k)
            };
            (d, k)
        })
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance in characters, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A table needs rows that are maps (as `query` returns); anything else is a mistake to report.
fn check_rows(rows: &Array) -> RhaiResult<()> {
    match rows.iter().position(|r| !r.is_map()) {
        None => Ok(()),
        Some(i) => Err(script_error(format!(
            "print_table: every row must be a map (like the rows `query` returns); row {} is {}",
            i + 1,
            super::db_api::type_label(&rows[i])
        ))),
    }
}

/// Entries for a bar chart from a map (in its display order) or an array of `[label, value]`.
fn chart_entries(data: &Dynamic) -> RhaiResult<Vec<(String, f64)>> {
    if let Some(map) = data.read_lock::<Map>() {
        return crate::rows::ordered_keys(data, &map)
            .into_iter()
            .map(|k| {
                Ok((
                    k.clone(),
                    number(&map[k.as_str()], "bar_chart: every value")?,
                ))
            })
            .collect();
    }
    if let Some(arr) = data.read_lock::<Array>() {
        return arr
            .iter()
            .map(|pair| {
                let p = pair
                    .read_lock::<Array>()
                    .filter(|p| p.len() == 2)
                    .ok_or_else(|| {
                        script_error("bar_chart: an array argument must hold [label, value] pairs")
                    })?;
                Ok((
                    output::display_value(&p[0]),
                    number(&p[1], "bar_chart: every value")?,
                ))
            })
            .collect();
    }
    Err(script_error(
        "bar_chart: expects a map of label => number, or an array of [label, value] pairs",
    ))
}

pub fn register(engine: &mut Engine, session: &Arc<Session>) {
    // From the thread's RNG (a CSPRNG seeded by the OS), as stress does: a workload calling
    // uuid() per transaction then pays no getrandom syscall for it.
    engine.register_fn("uuid", || {
        uuid::Builder::from_random_bytes(rand::random())
            .into_uuid()
            .to_string()
    });
    engine.register_fn("now", || {
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
    });
    engine.register_fn("random_name", || random_name(&mut rand::rng()));
    engine.register_fn("env", |name: &str| -> Dynamic {
        std::env::var(name)
            .map(Dynamic::from)
            .unwrap_or(Dynamic::UNIT)
    });
    let to_json = |v: &Dynamic, pretty: bool| {
        let j = crate::json::to_json(v);
        if pretty {
            serde_json::to_string_pretty(&j).unwrap_or_default()
        } else {
            j.to_string()
        }
    };
    engine.register_fn("to_json", move |v: Dynamic| to_json(&v, false));
    engine.register_fn("to_json", move |v: Dynamic, pretty: bool| {
        to_json(&v, pretty)
    });
    // Rhai's own `to_json` for maps sorts keys and turns NaN into null. A raw function for the
    // exact type shadows it and, unlike a typed one, sees the whole value with its column-order
    // tag (see rows.rs).
    engine.register_raw_fn(
        "to_json",
        [std::any::TypeId::of::<Map>()],
        move |_ctx, args| Ok(to_json(args[0], false)),
    );
    engine.register_fn("parse_json", |s: &str| -> RhaiResult<Dynamic> {
        serde_json::from_str::<serde_json::Value>(s)
            .map(crate::json::from_json)
            .map_err(|e| script_error(format!("parse_json: {e}")))
    });

    // Rhai has a built-in `sleep` that blocks the thread and ignores Ctrl-C; these, registered
    // for the exact types, shadow it with one that Ctrl-C and SIGTERM interrupt.
    let s = session.clone();
    let sleep = move |secs: f64| -> RhaiResult<()> {
        let d = std::time::Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|_| secs.is_finite())
            .ok_or_else(|| {
                let shown = if secs.abs() < 1e9 {
                    format!("{secs}")
                } else {
                    format!("{secs:e}")
                };
                script_error(format!(
                    "sleep: the duration must be a non-negative number of seconds, got {shown}"
                ))
            })?;
        s.rt().block_on(tokio::time::sleep(d)).map_err(host_error)
    };
    let sleep_int = sleep.clone();
    engine.register_fn("sleep", move |secs: i64| sleep_int(secs as f64));
    engine.register_fn("sleep", sleep);

    // Rhai's own exit() ends evaluation with a value; this one also sets the exit status.
    let s = session.clone();
    engine.register_fn("exit", move |code: i64| -> RhaiResult<()> {
        // Exit statuses are 0..=255; anything else (exit(-1) included) still means failure.
        let status = if (0..=255).contains(&code) {
            code as i32
        } else {
            eprintln!("dsqlsh: exit({code}): an exit status is 0 to 255; exiting with 1");
            1
        };
        s.host.set_exit_code(status);
        Err(Box::new(EvalAltResult::Exit(
            Dynamic::from_int(code),
            Position::NONE,
        )))
    });
    // Rhai's exit() accepts any value and prints it; a status must be an integer.
    engine.register_fn("exit", |v: Dynamic| -> RhaiResult<()> {
        Err(script_error(format!(
            "exit: the status must be an integer from 0 to 255, got {}",
            super::db_api::type_label(&v)
        )))
    });
    let s = session.clone();
    engine.register_fn("exit", move || -> RhaiResult<()> {
        s.host.set_exit_code(0);
        Err(Box::new(EvalAltResult::Exit(Dynamic::UNIT, Position::NONE)))
    });

    engine.register_fn("check_args", |args: Map, known: Array| {
        check_args(&args, &known)
    });
    engine.register_type_with_name::<super::UsageError>("UsageError");
    engine.register_fn("to_string", |e: &mut super::UsageError| e.0.clone());
    engine.register_fn("to_debug", |e: &mut super::UsageError| e.0.clone());
    engine.register_fn("eprint", |v: Dynamic| {
        eprintln!("{}", output::display_value(&v))
    });
    engine.register_fn("is_interactive", || std::io::stdin().is_terminal());
    engine.register_fn("prompt", |question: &str| ask(question));
    engine.register_fn("confirm", |question: &str| -> RhaiResult<bool> {
        let answer = ask(&format!("{question} [y/N] "))?;
        Ok(matches!(
            answer.trim().to_ascii_lowercase().as_str(),
            "y" | "yes"
        ))
    });

    engine.register_fn("print_table", |rows: Array| -> RhaiResult<()> {
        check_rows(&rows)?;
        output::raw(&output::render_table(&rows));
        Ok(())
    });
    engine.register_fn(
        "print_table",
        |rows: Array, columns: Array| -> RhaiResult<()> {
            check_rows(&rows)?;
            let cols: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
            output::raw(&output::render_table_with(&cols, &rows));
            Ok(())
        },
    );
    engine.register_fn("bar_chart", |data: Dynamic| -> RhaiResult<()> {
        output::raw(&output::render_bar_chart(&chart_entries(&data)?, 40));
        Ok(())
    });
    engine.register_fn("bar_chart", |data: Dynamic, opts: Map| -> RhaiResult<()> {
        let width = match opts.get("width") {
            None => 40,
            Some(w) => w
                .as_int()
                .ok()
                .filter(|w| (1..=500).contains(w))
                .ok_or_else(|| {
                    script_error("bar_chart: `width` must be an integer from 1 to 500")
                })? as usize,
        };
        output::raw(&output::render_bar_chart(&chart_entries(&data)?, width));
        Ok(())
    });
    engine.register_fn("format_number", |n: i64| output::group_thousands(n));
    engine.register_fn("format_number", |f: f64, decimals: i64| -> String {
        let decimals = decimals.clamp(0, 12) as usize;
        if !f.is_finite() {
            return output::float_text(f);
        }
        let text = format!("{:.*}", decimals, f.abs());
        let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
        let grouped = output::group_digits(int);
        let sign = if f < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
            "-"
        } else {
            ""
        };
        if frac.is_empty() {
            format!("{sign}{grouped}")
        } else {
            format!("{sign}{grouped}.{frac}")
        }
    });
    engine.register_fn("format_fixed", |f: f64, decimals: i64| -> String {
        if f.is_finite() {
            format!("{:.*}", decimals.clamp(0, 12) as usize, f)
        } else {
            output::float_text(f)
        }
    });
    engine.register_fn("format_fixed", |i: i64, decimals: i64| -> String {
        format!("{:.*}", decimals.clamp(0, 12) as usize, i as f64)
    });
    engine.register_fn("display_width", |s: &str| output::width(s) as i64);
    engine.register_fn("pad_right", |s: &str, w: i64| -> RhaiResult<String> {
        Ok(output::pad_right(s, pad_width("pad_right", w)?))
    });
    engine.register_fn("pad_left", |s: &str, w: i64| -> RhaiResult<String> {
        Ok(output::pad_left(s, pad_width("pad_left", w)?))
    });
    // A float's own digits, grouped: format_number(1234.5) is "1,234.5".
    engine.register_fn("format_number", |f: f64| -> String {
        if !f.is_finite() {
            return output::float_text(f);
        }
        let text = output::float_text(f.abs());
        let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
        let sign = if f < 0.0 { "-" } else { "" };
        let grouped = output::group_digits(int);
        if frac.is_empty() {
            format!("{sign}{grouped}")
        } else {
            format!("{sign}{grouped}.{frac}")
        }
    });
}

/// A padding width that fits in a string (the engine's limit is 256 MiB): a width beyond it is
/// an error to catch, not an allocation that aborts the process.
fn pad_width(f: &str, w: i64) -> RhaiResult<usize> {
    const MAX: i64 = 16 * 1024 * 1024;
    if w > MAX {
        return Err(script_error(format!(
            "{f}: width {w} is too large (at most {MAX})"
        )));
    }
    Ok(w.max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_characters() {
        assert_eq!(edit_distance("concurency", "concurrency"), 1);
        assert_eq!(edit_distance("topp", "top"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("été", "ete"), 2);
        let known = ["max_p99_ms", "workers", "users"];
        assert_eq!(
            did_you_mean("max_p99", known.into_iter()),
            Some("max_p99_ms")
        );
        assert_eq!(did_you_mean("worker", known.into_iter()), Some("workers"));
        assert_eq!(did_you_mean("zebra", known.into_iter()), None);
    }

    #[test]
    fn unknown_arguments_are_named_with_a_hint() {
        let known: Array = ["users", "concurrency"]
            .iter()
            .map(|k| Dynamic::from(*k))
            .collect();
        let mut args = Map::new();
        args.insert("users".into(), Dynamic::from_int(1));
        assert!(check_args(&args, &known).is_ok());
        args.insert("concurency".into(), Dynamic::from_int(5));
        args.insert("zzz".into(), Dynamic::from_int(5));
        let err = check_args(&args, &known).unwrap_err();
        assert_eq!(
            super::super::report::message(&err),
            "unknown script argument `concurency` (this script takes users, concurrency); \
             did you mean `concurrency`?"
        );
        let mut args = Map::new();
        args.insert("x".into(), Dynamic::TRUE);
        let err = check_args(&args, &Array::new()).unwrap_err();
        assert_eq!(
            super::super::report::message(&err),
            "unknown script argument `x` (this script takes no arguments)"
        );
    }
}
