//! The drawn counterexample: a real run's SVG is well-formed XML, holds
//! every step of the timeline (numbered as printed), marks the breaking
//! step, and names the invariant and the lanes of the world — the
//! explorer's runs and, with the `threads` feature, shuttle's.

use std::path::PathBuf;

use baton_sim::run::{check_one, CheckOptions};
use baton_sim::scenario::Scenario;
use baton_sim::scenario::{load, Expectation};
use baton_sim::zoo::Algorithm;

/// `two_replicas_single_use.toml`, and what it expects of `algorithm`.
fn two_replicas_single_use(algorithm: Algorithm) -> (Scenario, Expectation) {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/two_replicas_single_use.toml");
    let scenario = load(&path).unwrap();
    let (_, expected) = scenario
        .expectations
        .iter()
        .find(|(a, _)| *a == algorithm)
        .copied()
        .unwrap();
    (scenario, expected)
}

#[test]
fn a_counterexample_is_drawn_as_well_formed_svg_with_every_step() {
    let (scenario, expected) = two_replicas_single_use(Algorithm::DB_LEASE);
    assert!(matches!(expected, Expectation::Violates(_)));
    let out = std::env::temp_dir().join(format!("baton-drawing-{}", std::process::id()));
    let result = check_one(
        &scenario,
        Algorithm::DB_LEASE,
        expected,
        &CheckOptions::explore(out.clone()),
    )
    .unwrap();
    assert!(result.ok, "{}: {}", result.scenario, result.verdict);

    let timeline = result.timeline.expect("a counterexample has a timeline");
    let drawing = result.drawing.expect("a counterexample is drawn");
    assert_drawn(
        &drawing,
        &timeline,
        "callers_served",
        &["store", "provider", "r0", "r1"],
    );
    let _ = std::fs::remove_dir_all(out);
}

/// Checks the drawing at `path`: well-formed SVG, one group per numbered
/// step of `timeline` in order with a hover title each, the breaking step
/// marked with `invariant`, and every lane in `lanes` drawn.
fn assert_drawn(path: &str, timeline: &str, invariant: &str, lanes: &[&str]) {
    assert!(path.ends_with(".svg"), "{path}");
    let svg = std::fs::read_to_string(path).unwrap();
    let document = roxmltree::Document::parse(&svg).expect("the drawing is well-formed XML");
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "svg");

    let steps = timeline
        .lines()
        .filter_map(|line| line.trim_start().split_once('.'))
        .filter_map(|(number, _)| number.parse::<usize>().ok())
        .max()
        .expect("numbered steps");
    let ids: Vec<&str> = document
        .descendants()
        .filter_map(|node| node.attribute("id"))
        .filter(|id| id.starts_with("step-"))
        .collect();
    let expected_ids: Vec<String> = (1..=steps).map(|n| format!("step-{n}")).collect();
    assert_eq!(ids, expected_ids, "one group per step, in order");

    let texts: String = document
        .descendants()
        .filter(|node| node.is_text())
        .filter_map(|node| node.text())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        texts.contains(&format!("{invariant} breaks here")),
        "{texts}"
    );
    for lane in lanes {
        assert!(
            document.descendants().any(|node| node.text() == Some(lane)),
            "lane {lane} is drawn"
        );
    }
    // Every step has a hover text (the explorer's: the store row after it).
    let titles = document
        .descendants()
        .filter(|node| node.tag_name().name() == "title")
        .filter(|node| node.text().is_some_and(|t| t.starts_with("step ")))
        .count();
    assert_eq!(titles, steps);
}

#[cfg(feature = "threads")]
#[test]
fn a_thread_checker_counterexample_is_drawn_too() {
    use baton_sim::checkers::Checker;
    use baton_sim::run::check_with;

    let (scenario, expected) = two_replicas_single_use(Algorithm::NAIVE);
    let Expectation::Violates(invariant) = expected else {
        panic!("naive is expected to break two_replicas_single_use");
    };
    let out = std::env::temp_dir().join(format!("baton-drawing-shuttle-{}", std::process::id()));
    let options = CheckOptions::explore(out.clone());
    let result = check_with(
        &scenario,
        Algorithm::NAIVE,
        expected,
        Checker::Shuttle,
        &options,
    )
    .unwrap();
    assert!(result.ok, "{}: {}", result.scenario, result.verdict);
    let timeline = result.timeline.expect("shuttle's run has a timeline");
    let drawing = result.drawing.expect("shuttle's counterexample is drawn");
    assert!(drawing.ends_with(".shuttle.svg"), "{drawing}");
    assert_drawn(
        &drawing,
        &timeline,
        invariant.name(),
        &["store", "provider", "r0", "r1"],
    );
    let _ = std::fs::remove_dir_all(out);
}
