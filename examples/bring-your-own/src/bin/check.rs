//! The `baton` command with Go's `ReuseTokenSource` registered: every
//! subcommand and flag of `baton`, plus `--algorithm go_reuse_token_source`.
//!
//! ```text
//! cargo run -p bring-your-own --bin check -- check examples/bring-your-own/scenarios
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    baton_sim::cli::run_with([bring_your_own::registration()])
}
