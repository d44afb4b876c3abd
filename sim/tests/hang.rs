//! A hang under the thread checkers ends in a verdict, not an abort.
//!
//! The hang is of the harness's making ([`ThreadPlan::lose_answers_to`]):
//! every answer to one caller is lost, so it waits forever while the rest
//! of the world runs dry. Before the runtime detected this, loom found the
//! deadlock, panicked, and a destructor run during the unwinding panicked
//! again: the process aborted (exit 134) with no verdict.

#![cfg(feature = "threads")]

use std::path::Path;

use baton_sim::concurrent::{loom_checker, shuttle_checker};
use baton_sim::invariants::Invariant;
use baton_sim::scenario::load;

fn hanging_plan(
    plan: impl Fn(&baton_sim::spec::WorldSpec) -> Result<baton_sim::concurrent::ThreadPlan, String>,
) -> (baton_sim::concurrent::ThreadPlan, Vec<Invariant>) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/two_replicas_single_use.toml");
    let scenario = load(&path).unwrap();
    let spec = scenario.spec_for(baton_sim::zoo::Algorithm::BATON);
    let mut plan = plan(&spec).unwrap();
    plan.lose_answers_to = Some(0);
    (plan, scenario.invariants.clone())
}

#[test]
fn a_hang_under_loom_is_a_callers_served_violation() {
    let (plan, invariants) = hanging_plan(loom_checker::plan);
    let report = loom_checker::check(&plan, &invariants, loom_checker::LoomOptions::default());
    let violation = report.violation.expect("the hang is reported");
    assert_eq!(violation.invariant, Invariant::CallersServed, "{violation}");
    assert!(violation.reason.contains("caller 0"), "{violation}");
}

#[test]
fn a_hang_under_shuttle_is_a_callers_served_violation() {
    let (plan, invariants) = hanging_plan(shuttle_checker::plan);
    let mode = shuttle_checker::ShuttleMode::Dfs {
        max_iterations: Some(50),
    };
    let report = shuttle_checker::check(&plan, &invariants, &mode);
    let violation = report.violation.expect("the hang is reported");
    assert_eq!(violation.invariant, Invariant::CallersServed, "{violation}");
}

/// `LOOM_MAX_PERMUTATIONS` in the environment caps loom's search; the
/// verdict says so instead of an unqualified "holds".
#[test]
fn a_loom_search_capped_by_the_environment_is_bounded_not_holds() {
    let scenario =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/two_replicas_single_use.toml");
    let out = std::env::temp_dir().join(format!("baton-capped-{}", std::process::id()));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_baton"))
        .env("LOOM_MAX_PERMUTATIONS", "3")
        .args([
            "check",
            "--checker",
            "loom",
            "--algorithm",
            "baton",
            "--format",
            "json",
        ])
        .arg("--out")
        .arg(&out)
        .arg(&scenario)
        .output()
        .unwrap();
    let results: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let result = &results[0];
    assert_eq!(result["coverage"]["kind"], "bounded", "{result}");
    let detail = result["coverage"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("LOOM_MAX_PERMUTATIONS=3 reached"),
        "{detail}"
    );
    assert_eq!(result["verdict"], "holds (bounded)", "{result}");
    assert_eq!(result["states"], 3, "{result}");
}
