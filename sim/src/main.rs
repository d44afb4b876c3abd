//! The `baton` command: check scenarios, replay counterexamples, measure
//! the explorer. All of it is [`baton_sim::cli`]; a user's own binary adds
//! its algorithms with [`baton_sim::cli::run_with`].

use std::process::ExitCode;

/// The explorer builds and frees millions of small worlds on every core;
/// glibc's allocator spent a third of its time on that, and serialised
/// the cores on frees of memory another thread allocated.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    baton_sim::cli::run()
}
