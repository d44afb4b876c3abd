//! Every scenario in `scenarios/` with every expectation it states: a change
//! that breaks one fails `cargo test`.

use std::path::PathBuf;

use baton_core::{InputKind, Stage};
use baton_sim::reached::{FaultKind, ReachedByAlgorithm, WriterKind};
use baton_sim::run::{check_one, replay, CheckOptions};
use baton_sim::scenario::load_all;
use baton_sim::zoo::Algorithm;

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

#[test]
fn every_scenario_meets_its_expectations_and_every_counterexample_replays() {
    let scenarios = load_all(&[scenarios_dir()]).expect("scenarios load");
    assert!(scenarios.len() >= 10, "the shipped scenarios are missing");
    let out_dir = std::env::temp_dir().join(format!("baton-scenarios-{}", std::process::id()));
    let plain = CheckOptions::explore(out_dir.clone());
    // baton's runs also record what they reached, for the coverage check.
    let recording = CheckOptions {
        record_reached: true,
        ..plain.clone()
    };
    let mut reached = ReachedByAlgorithm::default();
    let mut failures = Vec::new();
    for scenario in &scenarios {
        for (algorithm, expected) in &scenario.expectations {
            let options = if *algorithm == Algorithm::BATON {
                &recording
            } else {
                &plain
            };
            let result = check_one(scenario, *algorithm, *expected, options).unwrap();
            if let Some(r) = &result.reached {
                reached.add(&result.algorithm, r);
            }
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
    assert_nothing_unreached(&reached);
}

/// The scenario suite leaves none of baton's decisions unjudged: every
/// fault kind fires on every provider where a second presentation is
/// fatal, every outside writer acts, and every (input × stage) pair the
/// machine can meet is met. A scenario removed or weakened so that a
/// decision goes unexercised fails here, naming it.
fn assert_nothing_unreached(reached: &ReachedByAlgorithm) {
    let baton = &reached.0["baton"];
    for (provider, fired) in &baton.faults {
        if !baton.fatal.contains(provider) {
            continue;
        }
        let missing: Vec<_> = FaultKind::ALL
            .iter()
            .filter(|k| !fired.contains(k))
            .collect();
        assert!(
            missing.is_empty(),
            "no scenario fires {missing:?} against baton on {provider}"
        );
    }
    assert!(
        baton.fatal.len() >= 3,
        "fatal providers missing: {:?}",
        baton.fatal
    );
    assert_eq!(baton.writers.len(), WriterKind::ALL.len(), "{baton:?}");
    let met = &baton.pairs["baton"];
    let never: Vec<String> = InputKind::ALL
        .iter()
        .flat_map(|i| Stage::ALL.iter().map(move |s| (*i, *s)))
        .filter(|(i, s)| i.meets(*s) && !met.contains(&(*i, *s)))
        .map(|(i, s)| format!("{i} × {s}"))
        .collect();
    assert!(
        never.is_empty(),
        "no scenario reaches these decisions of baton's machine:\n  {}",
        never.join("\n  ")
    );
    let outside: Vec<_> = met.iter().filter(|(i, s)| !i.meets(*s)).collect();
    assert!(
        outside.is_empty(),
        "met, though InputKind::meets rules them out: {outside:?}"
    );
}
