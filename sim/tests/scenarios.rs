//! Every scenario in `scenarios/` with every expectation it states: a change
//! that breaks one fails `cargo test`.

use std::path::PathBuf;

use baton_sim::run::{check_one, replay, CheckOptions};
use baton_sim::scenario::load_all;

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

#[test]
fn every_scenario_meets_its_expectations_and_every_counterexample_replays() {
    let scenarios = load_all(&[scenarios_dir()]).expect("scenarios load");
    assert!(scenarios.len() >= 10, "the shipped scenarios are missing");
    let out_dir = std::env::temp_dir().join(format!("baton-scenarios-{}", std::process::id()));
    let options = CheckOptions::explore(out_dir.clone());
    let mut failures = Vec::new();
    for scenario in &scenarios {
        for (algorithm, expected) in &scenario.expectations {
            let result = check_one(scenario, *algorithm, *expected, &options).unwrap();
            eprintln!(
                "{:<34} {:<21} expected {:<30} found {:<34} {:>8} states",
                result.scenario,
                result.algorithm,
                result.expected,
                result.found.to_string(),
                result.states
            );
            if !result.ok {
                failures.push(format!(
                    "{} × {}: expected {}, found {}\n{}",
                    result.scenario,
                    result.algorithm,
                    result.expected,
                    result.found,
                    result.timeline.unwrap_or_default()
                ));
            }
            if let Some(file) = &result.replay {
                let (text, reproduced) = replay(std::path::Path::new(file)).unwrap();
                assert!(reproduced, "replay of {file} did not reproduce:\n{text}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(out_dir);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
