//! Which scenario × algorithm pairs an equivalence test (a reduction
//! against the full search) compares: every pair of every hand-written
//! scenario, and a fixed quarter of the matrix cells, which are thousands
//! of small worlds of a few shapes (all of them with
//! `BATON_EVERY_MATRIX_CELL=1`). The 2-million-state scenario is the
//! benchmark's, not a test's.

use std::path::PathBuf;

use baton_sim::registry::Algorithm;
use baton_sim::scenario::Scenario;

/// The scenario the benchmarks explore and the tests leave out.
pub const BENCH_ONLY: &str = "three_replicas_crash_cancel";

/// Every scenario under `scenarios/`.
pub fn scenarios() -> Vec<Scenario> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    baton_sim::scenario::load_all(&[dir]).unwrap()
}

/// The pairs to compare, in file order.
pub fn sampled(scenarios: &[Scenario]) -> Vec<(&Scenario, Algorithm)> {
    let every_cell = std::env::var_os("BATON_EVERY_MATRIX_CELL").is_some();
    let mut cell_checks = 0usize;
    let mut pairs = Vec::new();
    for scenario in scenarios.iter().filter(|s| s.name != BENCH_ONLY) {
        for (algorithm, _) in &scenario.expectations {
            if scenario.name.contains('[') {
                cell_checks += 1;
                if !every_cell && cell_checks % 4 != 1 {
                    continue;
                }
            }
            pairs.push((scenario, *algorithm));
        }
    }
    pairs
}
