//! The `baton` command: check scenarios, replay counterexamples, measure
//! the explorer.

use std::path::PathBuf;
use std::process::ExitCode;

use baton_sim::explore::Shard;
use baton_sim::run::{check_one, human_table, junit, replay, CheckOptions, CheckResult};
use baton_sim::scenario::load_all;
use baton_sim::zoo::Algorithm;
use clap::{Parser, Subcommand, ValueEnum};

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
    },
    /// Re-run a recorded counterexample step by step.
    Replay {
        /// A `.replay.json` file written by `baton check`.
        file: PathBuf,
    },
    /// Measure the explorer: states, transitions, time and states/s per scenario × algorithm.
    Bench {
        /// Scenario files or directories.
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
        /// Only these algorithms (comma-separated).
        #[arg(long, value_delimiter = ',')]
        algorithm: Vec<Algorithm>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("baton: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Check {
            paths,
            algorithm,
            format,
            shard,
            max_states,
            out,
            verbose,
        } => {
            let options = CheckOptions {
                algorithms: algorithm,
                shard,
                max_states,
                out_dir: out,
                progress: matches!(format, Format::Human),
            };
            let results = check_all(&paths, &options)?;
            match format {
                Format::Human => print_human(&results, verbose),
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?
                ),
                Format::Junit => print!("{}", junit(&results)),
            }
            Ok(if results.iter().all(|r| r.ok) {
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
        Command::Bench { paths, algorithm } => {
            let options = CheckOptions {
                algorithms: algorithm,
                shard: None,
                max_states: None,
                out_dir: std::env::temp_dir().join("baton-bench"),
                progress: false,
            };
            let results = check_all(&paths, &options)?;
            println!(
                "{:<34} {:<21} {:>10} {:>12} {:>6} {:>9} {:>12}",
                "scenario", "algorithm", "states", "transitions", "depth", "time", "states/s"
            );
            for r in &results {
                println!(
                    "{:<34} {:<21} {:>10} {:>12} {:>6} {:>8.3}s {:>12.0}",
                    r.scenario,
                    r.algorithm,
                    r.states,
                    r.transitions,
                    r.depth,
                    r.seconds,
                    r.states as f64 / r.seconds.max(1e-9)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check_all(paths: &[PathBuf], options: &CheckOptions) -> Result<Vec<CheckResult>, String> {
    let scenarios = load_all(paths).map_err(|e| e.to_string())?;
    if scenarios.is_empty() {
        return Err(format!("no scenario files under {paths:?}"));
    }
    let mut results = Vec::new();
    for scenario in &scenarios {
        for (algorithm, expected) in &scenario.expectations {
            if !options.algorithms.is_empty() && !options.algorithms.contains(algorithm) {
                continue;
            }
            results.push(check_one(scenario, *algorithm, *expected, options)?);
        }
    }
    Ok(results)
}

fn print_human(results: &[CheckResult], verbose: bool) {
    print!("{}", human_table(results));
    for r in results {
        let show_timeline = !r.ok || verbose;
        if let (Some(replay), true) = (&r.replay, show_timeline || !r.ok) {
            println!("\n── {} × {}: {}", r.scenario, r.algorithm, r.found);
            if let baton_sim::run::Found::Violates { reason, .. } = &r.found {
                println!("   {reason}");
            }
            if let Some(timeline) = &r.timeline {
                println!("\n{timeline}");
            }
            println!("   diagram: {}", r.diagram.as_deref().unwrap_or("-"));
            println!("   replay:  baton replay {replay}");
        } else if !r.ok {
            println!(
                "\n── {} × {}: expected {}, found {}",
                r.scenario, r.algorithm, r.expected, r.found
            );
        }
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    println!("\n{} passed, {} failed", results.len() - failed, failed);
}
