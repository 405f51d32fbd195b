//! dsqlsh: a scriptable shell for Amazon Aurora DSQL and any PostgreSQL.
//!
//! The binary calls `run`, the only place that prints errors and chooses the exit status.
//! Flow: raw arguments (`cli`) -> `config::Config` -> `app::execute`. Nothing touches the network
//! before the configuration is resolved.

/// Every `eprintln!` in the crate goes through `output::diag`: the standard one panics when
/// stderr is closed or full (`2>/dev/full`, `2>&1 | head`), and a diagnostic must never turn
/// into a crash. Defined before the modules so that it shadows the standard macro in all of them.
macro_rules! eprintln {
    ($($arg:tt)*) => {
        $crate::output::diag(&format!($($arg)*))
    };
}

mod app;
pub mod auth;
mod cli;
pub mod config;
pub mod db;
pub mod error;
mod json;
pub mod local;
mod output;
mod pgpass;
mod repl;
pub mod rows;
pub mod runtime;
pub mod script;
pub mod secret;
mod sql_lex;
pub mod stats;
pub mod stress;
pub mod users;

use std::ffi::OsString;

use clap::Parser;

use crate::error::{Error, EXIT_OK, EXIT_USAGE};

/// Run dsqlsh with these arguments; returns the process exit status.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    output::show_server_notices();
    match app::execute(cli) {
        // Commands without a script (scripts show, token) write through `output` too.
        Ok(code) if code == EXIT_OK && output::write_failure().is_some() => {
            eprintln!(
                "error: cannot write to standard output: {}",
                output::write_failure().unwrap_or_default()
            );
            error::EXIT_RUNTIME
        }
        Ok(code) => code,
        Err(e) => {
            report(&e);
            e.exit_code()
        }
    }
}

fn report(e: &Error) {
    match e {
        // Nothing to say: the script chose its status, or the report already said it.
        Error::Exit(_) => {}
        Error::Threshold(msg) => eprintln!("dsqlsh: {msg}"),
        Error::Interrupted => eprintln!("dsqlsh: interrupted"),
        other => eprintln!("error: {other}"),
    }
}
