//! The checker suites need baton-sim's checker features: `threads.rs` and
//! `hang.rs` need `threads` (loom, shuttle), `proptest_worlds.rs` needs
//! `proptest`. `cargo test --workspace` builds them (the bring-your-own
//! example depends on baton-sim with `cli`, which has every checker);
//! `cargo test -p baton-sim` alone builds the harness without them, as
//! cargo-mutants does, and those suites compile to nothing. That must not
//! pass unnoticed: under CI it fails, elsewhere it says so loudly.

#[test]
fn every_checker_suite_is_built() {
    let missing: Vec<&str> = [
        ("threads", cfg!(feature = "threads")),
        ("proptest", cfg!(feature = "proptest")),
    ]
    .into_iter()
    .filter(|(_, built)| !built)
    .map(|(feature, _)| feature)
    .collect();
    if missing.is_empty() {
        return;
    }
    let message = format!(
        "SKIPPED: the loom, shuttle and proptest suites did not run: baton-sim was built \
         without the feature(s) {}. Run `cargo test --workspace`, or \
         `cargo test -p baton-sim --features cli`.",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}");
    }
    eprintln!("\n{}\n{message}\n{}\n", "!".repeat(72), "!".repeat(72));
}
