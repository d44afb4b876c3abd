//! Loading scenario files: good ones, and bad ones with errors that say where.
use super::*;

const GOOD: &str = r#"
description = "two replicas"
[world]
replicas = 2
provider = "single_use"
[faults]
clock_jumps = 1
[expect]
baton = { violates = "no_poisoned_failure" }
"#;

fn err(text: &str) -> String {
    parse(Path::new("s.toml"), text).unwrap_err().to_string()
}

#[test]
fn a_good_scenario_loads() {
    let s = parse(Path::new("dir/two.toml"), GOOD).unwrap();
    assert_eq!(s.name, "two");
    assert_eq!(s.world.replicas, 2);
    assert_eq!(s.world.faults.clock_jumps, 1);
    assert_eq!(
        s.expectations,
        vec![(
            Algorithm::Baton,
            Expectation::Violates(Invariant::NoPoisonedFailure)
        )]
    );
}

#[test]
fn errors_name_file_line_and_column() {
    let unknown_key = GOOD.replace("replicas = 2", "replicaz = 2");
    let e = err(&unknown_key);
    assert!(
        e.starts_with("s.toml: line 4, column 1: unknown field `replicaz`"),
        "{e}"
    );
    let bad_value = GOOD.replace("replicas = 2", "replicas = 0");
    let e = err(&bad_value);
    assert!(
        e.starts_with("s.toml: line 4, column 12: must be at least 1"),
        "{e}"
    );
    let bad_invariant = GOOD.replace("no_poisoned_failure", "no_such_thing");
    let e = err(&bad_invariant);
    assert!(
        e.contains("line 9") && e.contains("unknown invariant `no_such_thing`"),
        "{e}"
    );
    let bad_algorithm = GOOD.replace("baton =", "lease_everything =");
    let e = err(&bad_algorithm);
    assert!(
        e.contains("line 9") && e.contains("unknown algorithm `lease_everything`"),
        "{e}"
    );
    let bad_expectation = GOOD.replace("{ violates = \"no_poisoned_failure\" }", "\"fine\"");
    let e = err(&bad_expectation);
    assert!(e.contains("line 9") && e.contains(r#"found "fine""#), "{e}");
    let bad_provider = GOOD.replace("single_use", "singel_use");
    let e = err(&bad_provider);
    assert!(e.contains("line 5") && e.contains("singel_use"), "{e}");
    let bad_timing = format!("{GOOD}\n[timing]\nlease_secs = 5\n");
    let e = err(&bad_timing);
    assert!(e.contains("exchange timeout"), "{e}");
}
