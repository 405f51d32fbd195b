//! dsqlsh: a scriptable shell for Amazon Aurora DSQL and any PostgreSQL.
//!
//! The binary calls `run`, the only place that prints errors and chooses the exit status.
//! Flow: raw arguments (`cli`) -> `config::Config` -> `app::execute`. Nothing touches the network
//! before the configuration is resolved.

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
    match app::execute(cli) {
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
