//! Integration tests: the real `dsqlsh` binary against a real PostgreSQL server.
//!
//! `main` starts one throwaway cluster (initdb + postgres, as the `postgres` user when run as
//! root), runs every test in parallel with a database of its own, and stops the cluster at the
//! end, also when tests fail. Nothing needs to be set up by hand.

mod support;

mod cli;
mod dsql;
mod dsql_fixture;
mod errors;
mod examples;
mod flows;
mod local;
mod repl;
mod stats;
mod stress;
mod transactions;
mod values;

use libtest_mimic::{Arguments, Failed, Trial};

macro_rules! trials {
    ($($module:ident :: $test:ident),* $(,)?) => {
        vec![$(
            Trial::test(concat!(stringify!($module), "::", stringify!($test)), || -> Result<(), Failed> {
                $module::$test();
                Ok(())
            }),
        )*]
    };
}

fn main() {
    let args = Arguments::from_args();
    let trials = trials![
        cli::help_and_version,
        cli::scripts_list_show_eject,
        cli::eval_prints_values,
        cli::args_are_typed,
        cli::exit_sets_the_status,
        cli::connect_takes_psql_names,
        cli::pools_are_reused_only_for_identical_settings,
        dsql::fixture_verifier_matches_every_vector,
        dsql::fixture_requires_tls_and_sni,
        dsql::fixture_rejects_forged_expired_and_wrong_action_tokens,
        dsql::stress_over_tls_with_verified_tokens,
        dsql::short_token_lifetime_long_run,
        dsql::non_admin_role_connects_with_db_connect,
        dsql::token_command_signs_for_region_and_role,
        dsql::token_lifetime_is_validated,
        dsql::token_names_are_validated,
        dsql::error_no_aws_credentials,
        dsql::error_region_missing_for_a_non_dsql_host,
        dsql::error_auth_rejected_names_the_token_kind_and_action,
        dsql::error_tls_failure_names_host_and_root,
        dsql::error_server_without_tls_is_named,
        dsql::nothing_printed_leaks_a_token_or_secret,
        errors::syntax_error,
        errors::wrong_argument_type,
        errors::unknown_bundled_script,
        errors::no_database_configured,
        errors::unreachable_server,
        errors::sql_error,
        errors::parameter_count_mismatch,
        errors::errors_are_catchable_maps,
        errors::bad_script_arguments,
        errors::stdout_write_failure_is_an_error,
        errors::server_notices_on_stderr,
        examples::every_example_runs,
        flows::stress_on_local_adds_exactly_the_rows,
        flows::repopulate_then_stats_and_list,
        flows::repopulate_refuses_without_confirmation,
        flows::add_user_from_flags_and_refuses_to_prompt,
        flows::empty_and_missing_table,
        local::two_processes_share_one_server,
        local::missing_binaries_name_the_package,
        local::status_and_stop,
        local::killed_process_leaves_no_server,
        local::unsafe_directory_names_are_refused,
        stats::exact_values_in_utc_and_another_zone,
        stats::text_report_lines_up_wide_characters,
        stats::edited_copy_wins_and_says_so,
        stats::bad_zone_and_options_are_named,
        stress::failed_plus_succeeded_is_attempted,
        stress::hot_row_conflicts_are_retried_exactly,
        stress::bench_transaction_and_autocommit_modes,
        stress::bench_closures_use_handles_and_exit,
        stress::server_stall_shows_in_p99,
        stress::thresholds_exit_3_and_say_which,
        stress::seed_lines_and_json_only,
        stress::bad_options_are_named,
        stress::interrupt_still_reports,
        stress::lost_connections_keep_the_count_exact,
        stress::stuck_statements_are_cancelled_after_the_deadline,
        stress::a_partition_does_not_outlast_the_duration,
        repl::typed_entries_keep_their_state,
        repl::tab_completes_function_names,
        repl::ctrl_c_cancels_the_running_query,
        repl::history_survives_a_restart,
        repl::history_defaults_to_the_state_directory,
        repl::piped_entries_print_results_only,
        repl::piped_errors_continue_and_set_the_status,
        repl::piped_interrupt_cancels_one_entry,
        repl::psql_commands_say_what_to_use,
        repl::connect_meta_takes_url_and_names,
        repl::run_shares_the_pool_and_session,
        transactions::commit_rollback_and_caught_errors,
        transactions::conflicts_are_retried,
        transactions::transaction_on_a_handle,
        transactions::transaction_refuses_to_nest_in_a_manual_one,
        transactions::a_lost_manual_transaction_is_not_continued,
        transactions::nested_calls_in_every_mode,
        transactions::lost_connection_ends_the_transaction,
        values::round_trip_in_run,
        values::round_trip_in_eval,
        values::binding_strings_to_typed_parameters,
        values::duplicate_column_names_keep_every_value,
        values::inet_and_cidr_read_as_the_server_writes_them,
        values::parameters_bind_like_literals,
        values::system_catalogs_can_be_explored,
    ];
    let cluster = support::Cluster::start();
    let conclusion = libtest_mimic::run(&args, trials);
    cluster.stop();
    conclusion.exit();
}
