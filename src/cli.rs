//! The command line, as clap definitions only: no validation beyond what clap does, no I/O.
//!
//! `config.rs` turns `ConnectionArgs` (plus the environment) into a `Config`; `app.rs` executes
//! the `Command`. Connection options are global so they may come before or after the command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::secret::Secret;

/// A URL may carry a password: keep it out of every Debug print of the arguments.
fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

#[derive(Debug, Parser)]
#[command(
    name = "dsqlsh",
    version,
    about = "A scriptable shell for Amazon Aurora DSQL and any PostgreSQL",
    long_about = "A scriptable shell for Amazon Aurora DSQL and any PostgreSQL.\n\n\
                  Run a script (`dsqlsh run stress users=500`), evaluate a snippet (`dsqlsh -e CODE`), \
                  or start the REPL (`dsqlsh` on a terminal).",
    after_help = "Connection options also read DSQL_ENDPOINT, DB_HOST, DB_PORT, DB_USER, DB_NAME, \
                  AWS_REGION, AWS_PROFILE, DATABASE_URL, DSQLSH_LOCAL and PG* variables, \
                  from the environment or a .env file."
)]
pub struct Cli {
    #[command(flatten, next_help_heading = "Connection options")]
    pub conn: ConnectionArgs,

    /// Evaluate CODE and print its value (same as `dsqlsh eval CODE`)
    #[arg(short = 'e', value_name = "CODE")]
    pub eval: Option<String>,

    /// REPL history file, for `dsqlsh` without a command [default: <state dir>/dsqlsh/history]
    #[arg(long = "history-file", value_name = "PATH")]
    pub history_file: Option<PathBuf>,

    /// Do not read or write a REPL history file
    #[arg(long = "no-history")]
    pub no_history: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Where to connect. Every flag here beats its environment variable, which beats `.env`.
#[derive(Debug, Default, Clone, Args)]
pub struct ConnectionArgs {
    /// Cluster endpoint <id>.dsql.<region>.on.aws, or a PostgreSQL host [env: DSQL_ENDPOINT, DB_HOST]
    #[arg(long, global = true, value_name = "HOST")]
    pub endpoint: Option<String>,

    /// Port [env: DB_PORT] [default: 5432]
    #[arg(long, global = true, value_name = "N", allow_negative_numbers = true)]
    pub port: Option<u16>,

    /// Database role [env: DB_USER] [default: admin]
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,

    /// Database name [env: DB_NAME] [default: postgres]
    #[arg(long, global = true, value_name = "NAME")]
    pub database: Option<String>,

    /// AWS region (inferred from a DSQL endpoint when absent) [env: AWS_REGION, AWS_DEFAULT_REGION]
    #[arg(long, global = true, value_name = "R", allow_negative_numbers = true)]
    pub region: Option<String>,

    /// AWS credentials profile [env: AWS_PROFILE]
    #[arg(long, global = true, value_name = "P")]
    pub profile: Option<String>,

    /// Plain PostgreSQL URL (password or trust auth, no IAM token) [env: DATABASE_URL]
    #[arg(long = "database-url", global = true, value_name = "URL", value_parser = parse_secret)]
    pub database_url: Option<Secret>,

    /// Use the embedded default: a local PostgreSQL that dsqlsh starts itself [env: DSQLSH_LOCAL=1]
    #[arg(long, global = true)]
    pub local: bool,

    /// Directory of the --local cluster [env: DSQLSH_LOCAL_DIR]
    #[arg(long = "local-dir", global = true, value_name = "DIR")]
    pub local_dir: Option<PathBuf>,

    /// Custom root certificate for verify-full TLS [env: DSQL_SSL_ROOT_CERT]
    #[arg(long = "ssl-root-cert", global = true, value_name = "PATH")]
    pub ssl_root_cert: Option<PathBuf>,

    /// Open the TCP connection here while token and TLS name use --endpoint [env: DSQLSH_CONNECT_ADDR]
    #[arg(long = "connect-addr", global = true, value_name = "HOST[:PORT]")]
    pub connect_addr: Option<String>,

    /// Read this .env file instead of ./.env
    #[arg(long = "env-file", global = true, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a script file, or a bundled script by name, with KEY=VALUE arguments
    Run {
        /// A file path, ./scripts/<name>.rhai, or a bundled script name (`.rhai` optional)
        script: String,
        /// KEY=VALUE pairs, available to the script as the constant map ARGS
        #[arg(
            value_name = "KEY=VALUE",
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        args: Vec<String>,
    },
    /// Evaluate a snippet and print its value
    Eval {
        /// Rhai code
        code: String,
    },
    /// Interactive shell (the default on a terminal)
    Repl {
        /// History file [default: <state dir>/dsqlsh/history]
        #[arg(long = "history-file", value_name = "PATH")]
        history_file: Option<PathBuf>,
        /// Do not read or write a history file
        #[arg(long = "no-history")]
        no_history: bool,
    },
    /// List, show or eject the bundled scripts
    Scripts {
        #[command(subcommand)]
        action: ScriptsCommand,
    },
    /// Print an IAM auth token for a DSQL endpoint
    #[command(alias = "generate-token")]
    Token(TokenArgs),
    /// The local PostgreSQL behind --local
    Local {
        #[command(subcommand)]
        action: LocalCommand,
    },
    /// List users (runs the bundled list_users script)
    ListUsers {
        /// At most this many users [default: 1000]
        #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
        limit: Option<i64>,
    },
    /// Add one user (runs add_user; prompts for missing fields only on a terminal)
    AddUser {
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        name: Option<String>,
        #[arg(long, value_name = "E")]
        email: Option<String>,
        #[arg(long, value_name = "R", allow_negative_numbers = true)]
        role: Option<String>,
    },
    /// Drop, recreate and fill the users table (runs repopulate)
    Repopulate {
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
        /// Number of users to insert [default: the 5 sample users]
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        count: Option<i64>,
    },
    /// Print the user statistics report (runs user_stats)
    UserStats {
        /// Print the statistics as one JSON object
        #[arg(long)]
        json: bool,
        /// IANA time zone for the hour and day sections [default: UTC]
        #[arg(long, value_name = "ZONE")]
        tz: Option<String>,
        /// How many names and domains to list [default: 5]
        #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..=100))]
        top: Option<i64>,
        /// Days in the daily trend [default: 7]
        #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..=366))]
        days: Option<i64>,
        /// Last day of the daily trend, YYYY-MM-DD [default: today]
        #[arg(long = "as-of", value_name = "DATE", value_parser = date)]
        as_of: Option<String>,
    },
    /// Concurrent-insert load test (runs stress)
    StressTest(StressArgs),
}

#[derive(Debug, Subcommand)]
pub enum ScriptsCommand {
    /// List the bundled scripts
    List,
    /// Print a bundled script
    Show { name: String },
    /// Write the bundled scripts into DIR so they can be edited [default: ./scripts]
    Eject {
        dir: Option<PathBuf>,
        /// Overwrite files that already exist
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Show where the local cluster lives and whether it is running
    Status,
    /// Stop the local server
    Stop,
    /// Stop the server once no dsqlsh process uses it (started in the background by --local)
    #[command(hide = true)]
    Reap,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Generate a DbConnectAdmin token (default: when the user is `admin`)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub admin: Option<bool>,
    /// Token lifetime in seconds (1..=604800)
    #[arg(long = "expires-in", value_name = "SECS", default_value_t = 900)]
    pub expires_in: u64,
    /// Print only the token
    #[arg(long = "token-only")]
    pub token_only: bool,
}

#[derive(Debug, Args)]
pub struct StressArgs {
    /// Rows to insert [default: 1000]
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
    pub users: Option<i64>,
    /// Concurrent workers [default: 10]
    #[arg(long, value_name = "C", allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub concurrency: Option<i64>,
    /// Rows per transaction [default: 1; at most 3000 on DSQL]
    #[arg(long, value_name = "B", allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub batch: Option<i64>,
    /// Stop after this long (e.g. 30s, 5m)
    #[arg(long, value_name = "D", value_parser = duration)]
    pub duration: Option<String>,
    /// Start this many transactions per second (open model)
    #[arg(long, value_name = "R", allow_negative_numbers = true, value_parser = rate)]
    pub rate: Option<f64>,
    /// Retries per transaction on a serialization conflict [default: 10]
    #[arg(long = "max-retries", value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(0..=1000))]
    pub max_retries: Option<i64>,
    /// Seed for reproducible generated data
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub seed: Option<i64>,
    /// Table to insert into [default: users]
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
    /// Fail (exit 3) when p99 latency exceeds this many milliseconds
    #[arg(long = "max-p99-ms", value_name = "MS", allow_negative_numbers = true, value_parser = non_negative)]
    pub max_p99_ms: Option<f64>,
    /// Fail (exit 3) when fewer rows per second are inserted
    #[arg(
        long = "min-rows-per-s",
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = non_negative
    )]
    pub min_rows_per_s: Option<f64>,
    /// Fail (exit 3) when more rows fail
    #[arg(long = "max-failed", value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(0..))]
    pub max_failed: Option<i64>,
    /// Print only the JSON result object on stdout
    #[arg(long)]
    pub json: bool,
    /// No progress line on stderr (for cron jobs that mail stderr)
    #[arg(long = "no-progress")]
    pub no_progress: bool,
}

// Flag values are checked here, so that a mistyped value is a usage error (exit 2) named
// after its flag, not a failure inside the script the command runs.

fn duration(s: &str) -> Result<String, String> {
    crate::stress::parse_duration_text(s).map(|_| s.to_string())
}

fn rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if (0.001..=1e9).contains(&r) => Ok(r),
        _ => Err(format!(
            "`{s}` is not a rate from 0.001 to 1e9 transactions per second"
        )),
    }
}

fn non_negative(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a number of 0 or more")),
    }
}

fn date(s: &str) -> Result<String, String> {
    chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map(|_| s.trim().to_string())
        .map_err(|_| format!("`{s}` is not a date like 2025-01-31"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn admin_accepts_bare_and_valued_forms() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Some(Command::Token(t)) => t.admin,
            _ => panic!("not a token command"),
        };
        assert_eq!(parse(&["dsqlsh", "token", "--admin"]), Some(true));
        assert_eq!(parse(&["dsqlsh", "token", "--admin", "false"]), Some(false));
        assert_eq!(
            parse(&["dsqlsh", "generate-token", "--admin=no"]),
            Some(false)
        );
        assert_eq!(parse(&["dsqlsh", "token"]), None);
    }

    #[test]
    fn connection_flags_may_follow_the_command() {
        let cli = Cli::try_parse_from(["dsqlsh", "repopulate", "--yes", "--local"]).unwrap();
        assert!(cli.conn.local);
        let cli = Cli::try_parse_from(["dsqlsh", "run", "stress", "users=5", "--x=y"]).unwrap();
        match cli.command {
            Some(Command::Run { args, .. }) => assert_eq!(args, vec!["users=5", "--x=y"]),
            _ => panic!(),
        }
    }
}
