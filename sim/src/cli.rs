//! The `baton` command as a library function: [`run_with`] registers a
//! user's algorithms and then behaves exactly as `baton` does, every
//! subcommand and flag included. A user's whole checking binary:
//!
//! ```no_run
//! use baton_sim::registry::Registration;
//!
//! fn main() -> std::process::ExitCode {
//!     baton_sim::cli::run_with([
//!         Registration::new("ours", baton_core::Machine::new).takes_lease(true),
//!     ])
//! }
//! ```
//!
//! and then `cargo run --bin our-check -- check scenarios/ --algorithm ours`.
//! A scenario that gives no verdict for an algorithm named with
//! `--algorithm` expects of it what it expects of baton: the verdict of a
//! race-free algorithm in that world.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::checkers::{Budgets, Checker};
use crate::explore::Shard;
use crate::reached::ReachedByAlgorithm;
use crate::registry::{register, Algorithm, Registration};
use crate::run::{check_with, human_table, junit, replay, CheckOptions, CheckResult};
use crate::scenario::load_all;

#[derive(Parser)]
#[command(
    name = "baton",
    version,
    about = "Prove token-refresh algorithms race-free, or show the run that breaks them."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
    Junit,
}

/// Budgets of the bounded and sampling checkers.
#[derive(clap::Args)]
struct BudgetArgs {
    /// loom's preemption bound (default: 2). `LOOM_MAX_PERMUTATIONS` and `LOOM_MAX_DURATION`
    /// in the environment cap the search; a capped verdict is reported as bounded by them.
    /// A scenario that states a higher `loom_preemption_bound` runs with that.
    #[arg(long)]
    loom_preemption_bound: Option<usize>,
    /// Executions per shuttle mode (PCT, random, depth-first). A scenario that states more
    /// (`shuttle_iterations`) runs with that.
    #[arg(long, default_value_t = 1000)]
    shuttle_iterations: usize,
    /// proptest cases (2048: fewer miss grace_window_outlived's stall on some seeds).
    #[arg(long, default_value_t = 2048)]
    proptest_cases: u32,
    /// Seed of shuttle's schedulers and of proptest.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl BudgetArgs {
    fn budgets(&self) -> Budgets {
        Budgets {
            loom_preemption_bound: self.loom_preemption_bound,
            shuttle_iterations: self.shuttle_iterations,
            seed: self.seed,
            proptest_cases: self.proptest_cases,
        }
    }
}

fn parse_checkers(names: &[String]) -> Result<Vec<Checker>, String> {
    let mut checkers = Vec::new();
    for name in names {
        if name == "all" {
            checkers.extend(Checker::ALL);
        } else {
            checkers.push(name.parse()?);
        }
    }
    checkers.dedup();
    Ok(checkers)
}

#[derive(Subcommand)]
enum Command {
    /// Explore every scenario × algorithm and compare with the expected verdicts.
    Check {
        /// Scenario files or directories.
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
        /// Only these algorithms (comma-separated).
        #[arg(long, value_delimiter = ',')]
        algorithm: Vec<Algorithm>,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Explore only shard i of n (1-based), e.g. 2/4.
        #[arg(long)]
        shard: Option<Shard>,
        /// Override every scenario's state budget.
        #[arg(long)]
        max_states: Option<usize>,
        /// Where counterexamples (replay and diagram files) are written.
        #[arg(long, default_value = "target/baton")]
        out: PathBuf,
        /// Print the timeline of expected violations too.
        #[arg(long)]
        verbose: bool,
        /// Which checkers run: explore, loom, shuttle, proptest, or all (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "explore")]
        checker: Vec<String>,
        /// Explore every step in every state: no partial-order reduction.
        #[arg(long)]
        no_reduction: bool,
        /// Count worlds that differ only in replicas' names apart: no symmetry reduction.
        #[arg(long)]
        no_symmetry: bool,
        /// Report what the explorer's runs reached, per algorithm: fault kinds fired, outside
        /// writers that acted, (input × stage) pairs of the machine met; and what never was.
        #[arg(long)]
        coverage: bool,
        #[command(flatten)]
        budgets: BudgetArgs,
    },
    /// List the registered algorithms.
    List,
    /// Re-run a recorded counterexample step by step.
    Replay {
        /// A `.replay.json` file written by `baton check`.
        file: PathBuf,
    },
    /// Merge the JSON results of sharded `check --shard i/n --format json` runs into one verdict
    /// per scenario × algorithm (printed as JSON; exit status as `check`'s).
    Merge {
        /// The result files, one per shard.
        files: Vec<PathBuf>,
    },
    /// Measure the explorer: states, transitions, time and states/s per scenario × algorithm.
    Bench {
        /// Scenario files or directories.
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
        /// Only these algorithms (comma-separated).
        #[arg(long, value_delimiter = ',')]
        algorithm: Vec<Algorithm>,
        /// Compare the checkers instead: executions and time to each zoo
        /// failure under explore, loom, shuttle PCT, shuttle random and
        /// proptest, on the scenarios loom and shuttle apply to.
        #[arg(long)]
        checkers: bool,
        /// Explore every step in every state: no partial-order reduction.
        #[arg(long)]
        no_reduction: bool,
        /// Count worlds that differ only in replicas' names apart: no symmetry reduction.
        #[arg(long)]
        no_symmetry: bool,
        #[command(flatten)]
        budgets: BudgetArgs,
    },
}

/// The `baton` command, on the built-in algorithms.
pub fn run() -> ExitCode {
    run_with([])
}

/// The `baton` command with `registrations` added to the built-in
/// algorithms: parses the process's arguments, runs the subcommand, and
/// returns its exit code (0: every verdict as expected; 1: a verdict
/// differs; 2: bad input, with the reason on stderr).
pub fn run_with(registrations: impl IntoIterator<Item = Registration>) -> ExitCode {
    for registration in registrations {
        if let Err(error) = register(registration) {
            eprintln!("baton: {error}");
            return ExitCode::from(2);
        }
    }
    match execute(Cli::parse()) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("baton: {message}");
            ExitCode::from(2)
        }
    }
}

fn execute(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Check {
            paths,
            algorithm,
            format,
            shard,
            max_states,
            out,
            verbose,
            checker,
            no_reduction,
            no_symmetry,
            coverage,
            budgets,
        } => {
            let options = CheckOptions {
                algorithms: algorithm,
                shard,
                max_states,
                out_dir: out,
                progress: matches!(format, Format::Human),
                checkers: parse_checkers(&checker)?,
                budgets: budgets.budgets(),
                reduce: !no_reduction,
                record_reached: coverage,
                symmetry: !no_symmetry,
            };
            let results = check_all(&paths, &options)?;
            let reached = coverage.then(|| {
                let mut all = ReachedByAlgorithm::default();
                for r in &results {
                    if let Some(reached) = &r.reached {
                        all.add(&r.algorithm, reached);
                    }
                }
                all
            });
            match format {
                Format::Human => {
                    print_human(&results, verbose);
                    if let Some(reached) = &reached {
                        print!("{}", reached.human());
                    }
                }
                // With --coverage, one object: the results and what they
                // reached; without, the results array as before.
                Format::Json => {
                    let value = match &reached {
                        Some(reached) => serde_json::json!({
                            "results": results,
                            "coverage": reached.to_json(),
                        }),
                        None => serde_json::to_value(&results).map_err(|e| e.to_string())?,
                    };
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?
                    )
                }
                Format::Junit => print!("{}", junit(&results)),
            }
            Ok(if results.iter().all(|r| r.ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::List => {
            for algorithm in Algorithm::all() {
                println!("{:<22} {}", algorithm.name(), algorithm.description());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Merge { files } => {
            let runs = files
                .iter()
                .map(|f| {
                    let text =
                        std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
                    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))
                })
                .collect::<Result<Vec<serde_json::Value>, String>>()?;
            let merged = crate::merge::merge(&runs)?;
            for m in &merged {
                eprintln!(
                    "{} × {}: {} ({})",
                    m["scenario"].as_str().unwrap_or(""),
                    m["algorithm"].as_str().unwrap_or(""),
                    m["verdict"].as_str().unwrap_or(""),
                    if m["ok"] == true {
                        "as expected"
                    } else {
                        "NOT as expected"
                    }
                );
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&merged).map_err(|e| e.to_string())?
            );
            Ok(if merged.iter().all(|m| m["ok"] == true) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Replay { file } => {
            let (text, reproduced) = replay(&file)?;
            print!("{text}");
            Ok(if reproduced {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Bench {
            paths,
            algorithm,
            checkers: true,
            budgets,
            ..
        } => {
            compare_checkers(&paths, &algorithm, &budgets.budgets())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            paths,
            algorithm,
            no_reduction,
            no_symmetry,
            ..
        } => {
            let options = CheckOptions {
                algorithms: algorithm,
                reduce: !no_reduction,
                symmetry: !no_symmetry,
                ..CheckOptions::explore(std::env::temp_dir().join("baton-bench"))
            };
            let results = check_all(&paths, &options)?;
            println!(
                "{:<34} {:<21} {:>10} {:>12} {:>6} {:>9} {:>12} {:>8} {:>9}",
                "scenario",
                "algorithm",
                "states",
                "transitions",
                "depth",
                "time",
                "states/s",
                "B/state",
                "widest"
            );
            for r in &results {
                println!(
                    "{:<34} {:<21} {:>10} {:>12} {:>6} {:>8.3}s {:>12.0} {:>8.1} {:>9}",
                    r.scenario,
                    r.algorithm,
                    r.states,
                    r.transitions,
                    r.depth,
                    r.seconds,
                    r.states as f64 / r.seconds.max(1e-9),
                    r.stored_bytes as f64 / r.states.max(1) as f64,
                    r.widest_level
                );
            }
            // The process's peak, frontier worlds and all: per state, it is
            // only meaningful when one scenario × algorithm ran.
            if let Some(peak) = peak_rss_bytes() {
                let states: usize = results.iter().map(|r| r.states).sum();
                println!(
                    "peak RSS {:.1} MB for {states} states: {:.0} B/state (B/state above: \
                     visited set, paths and no_livelock's steps only)",
                    peak as f64 / 1e6,
                    peak as f64 / states.max(1) as f64
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The process's peak resident set (Linux's `VmHWM`), if known.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn compare_checkers(
    paths: &[PathBuf],
    algorithms: &[Algorithm],
    budgets: &Budgets,
) -> Result<(), String> {
    use crate::bench::{cell, efforts, ratios, COLUMNS};
    let scenarios = load_all(paths).map_err(|e| e.to_string())?;
    println!("runs to the first counterexample (explore: states) / wall time");
    println!(
        "{:<30} {:<21} {:<22} {}  {:>8} {:>8}",
        "scenario",
        "algorithm",
        "violates",
        COLUMNS
            .iter()
            .map(|c| format!("{c:<26}"))
            .collect::<String>(),
        "runs×",
        "time×"
    );
    let mut finishing = Vec::new();
    for scenario in &scenarios {
        if crate::concurrent::loom_checker::plan(&scenario.world).is_err() {
            continue;
        }
        for (algorithm, expected) in &scenario.expectations {
            if !algorithms.is_empty() && !algorithms.contains(algorithm) {
                continue;
            }
            let row = efforts(scenario, *algorithm, *expected, budgets);
            match expected {
                crate::scenario::Expectation::Holds => {
                    if scenario.name == "two_replicas_single_use" && *algorithm == Algorithm::BATON
                    {
                        finishing.push(row);
                    }
                }
                crate::scenario::Expectation::Violates(invariant) => {
                    let (runs, time) = ratios(&row)
                        .map(|(r, t)| (format!("{r:.1}"), format!("{t:.1}")))
                        .unwrap_or(("-".into(), "-".into()));
                    println!(
                        "{:<30} {:<21} {:<22} {}  {:>8} {:>8}",
                        scenario.name,
                        algorithm.to_string(),
                        invariant.name(),
                        row.iter()
                            .map(|e| format!("{:<26}", cell(e)))
                            .collect::<String>(),
                        runs,
                        time
                    );
                }
            }
        }
    }
    for row in finishing {
        println!("\nbaton on two_replicas_single_use, each checker's whole budget (runs / time):");
        for (column, effort) in COLUMNS.iter().zip(&row) {
            println!("  {column:<16} {}", cell(effort));
        }
    }
    println!("\nruns× and time×: the best other checker that found it, divided by the explorer");
    Ok(())
}

fn check_all(paths: &[PathBuf], options: &CheckOptions) -> Result<Vec<CheckResult>, String> {
    let scenarios = load_all(paths).map_err(|e| e.to_string())?;
    if scenarios.is_empty() {
        return Err(format!("no scenario files under {paths:?}"));
    }
    let mut results = Vec::new();
    for scenario in &scenarios {
        for (algorithm, expected) in scenario.expectations_for(&options.algorithms) {
            for checker in &options.checkers {
                results.push(check_with(
                    scenario, algorithm, expected, *checker, options,
                )?);
            }
        }
    }
    Ok(results)
}

fn print_human(results: &[CheckResult], verbose: bool) {
    print!("{}", human_table(results));
    for r in results {
        let show_timeline = !r.ok || verbose;
        if let (Some(replay), true) = (&r.replay, show_timeline || !r.ok) {
            println!("\n── {} × {}: {}", r.scenario, r.algorithm, r.verdict);
            if let crate::run::Found::Violates { reason, .. } = &r.found {
                println!("   {reason}");
            }
            if let Some(timeline) = &r.timeline {
                println!("\n{timeline}");
            }
            if !r.excused.is_empty() {
                println!("   excused in this world:");
                for line in &r.excused {
                    println!("     {line}");
                }
            }
            println!("   diagram: {}", r.diagram.as_deref().unwrap_or("-"));
            if let Some(drawing) = &r.drawing {
                println!("   drawing: {drawing} (open in a browser)");
            }
            println!("   replay:  {} replay {replay}", this_command());
        } else if !r.ok {
            println!(
                "\n── {} × {}: expected {}, found {} ({})",
                r.scenario, r.algorithm, r.expected, r.verdict, r.coverage
            );
            if let crate::run::Found::Inconclusive { reason } = &r.found {
                println!("   {reason}");
            }
        }
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    let unconfirmed = results.iter().filter(|r| r.ok && r.unconfirmed).count();
    let passed = results.len() - failed;
    if unconfirmed > 0 {
        println!("\n{passed} passed ({unconfirmed} unconfirmed), {failed} failed");
    } else {
        println!("\n{passed} passed, {failed} failed");
    }
}

/// How to run this command again: `baton`, or the user's own binary (which
/// alone knows the algorithms it registered), as it was invoked.
fn this_command() -> String {
    let invoked = std::env::args().next().unwrap_or_else(|| "baton".into());
    let stem = std::path::Path::new(&invoked)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned());
    match stem.as_deref() {
        Some("baton") | None => "baton".into(),
        Some(_) => invoked,
    }
}
