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
            Algorithm::BATON,
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
    assert!(e.contains("exchange_timeout"), "{e}");
}

const MATRIX: &str = r#"
description = "a matrix"
[world]
grace_window_secs = 30
[matrix]
providers = ["single_use", { provider = "counted_reuse", max_reuse = 1 }, "grace_fork"]
worlds = [{ replicas = 1, callers = 2 }, { replicas = 2, callers = 1, label = "pair" }]
faults = [{ lost_replies = 1 }, { crashes = 1, cancels = 2 }]
[expect]
baton = "holds"
naive = "holds"
[[rule]]
providers = ["single_use"]
faults = ["lost_replies"]
expect = { naive = { violates = "no_reuse" } }
[[rule]]
worlds = ["pair"]
invariants = ["no_reuse"]
unavoidable = "because"
"#;

#[test]
fn a_matrix_expands_into_one_scenario_per_cell_with_rules_applied() {
    let all = parse_all(Path::new("dir/m.toml"), MATRIX).unwrap();
    assert_eq!(all.len(), 3 * 2 * 2);
    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names[0], "m[single_use,1x2,lost_replies]");
    assert_eq!(names[1], "m[single_use,1x2,crashes+cancelsx2]");
    assert_eq!(names[2], "m[single_use,pair,lost_replies]");
    assert_eq!(names[4], "m[counted_reuse,1x2,lost_replies]");
    let cell = |name: &str| all.iter().find(|s| s.name == name).unwrap();

    let first = cell("m[single_use,1x2,lost_replies]");
    assert_eq!(first.world.provider, ProviderModel::SingleUse);
    assert_eq!((first.world.replicas, first.world.callers), (1, 2));
    assert_eq!(first.world.faults.lost_replies, 1);
    assert_eq!(
        first.expectations,
        vec![
            (Algorithm::BATON, Expectation::Holds),
            (Algorithm::NAIVE, Expectation::Violates(Invariant::NoReuse)),
        ]
    );
    assert_eq!(first.invariants, Invariant::ALL.to_vec());
    assert_eq!(first.unavoidable, None);

    let crash = cell("m[single_use,1x2,crashes+cancelsx2]");
    assert_eq!(
        (crash.world.faults.crashes, crash.world.faults.cancels),
        (1, 2)
    );
    assert_eq!(crash.world.faults.lost_replies, 0);
    assert_eq!(
        crash.expectations[1],
        (Algorithm::NAIVE, Expectation::Holds)
    );

    let pair = cell("m[counted_reuse,pair,lost_replies]");
    assert_eq!(
        pair.world.provider,
        ProviderModel::CountedReuse { max_reuse: 1 }
    );
    assert_eq!((pair.world.replicas, pair.world.callers), (2, 1));
    assert_eq!(pair.invariants, vec![Invariant::NoReuse]);
    assert_eq!(pair.unavoidable.as_deref(), Some("because"));
    assert_eq!(
        cell("m[grace_fork,1x2,lost_replies]").world.provider,
        ProviderModel::GraceFork {
            window: Duration::from_secs(30)
        }
    );

    // A matrix is not one scenario.
    assert!(parse(Path::new("m.toml"), MATRIX)
        .unwrap_err()
        .to_string()
        .contains("a matrix of 12 scenarios"));
}

#[test]
fn matrix_mistakes_are_errors_that_say_where() {
    let err = |text: &str| {
        parse_all(Path::new("m.toml"), text)
            .unwrap_err()
            .to_string()
    };
    let typo = MATRIX.replace(r#"faults = ["lost_replies"]"#, r#"faults = ["lost_reply"]"#);
    let e = err(&typo);
    assert!(
        e.contains("line 14") && e.contains("rule names faults `lost_reply`"),
        "{e}"
    );
    assert!(e.contains("it has: lost_replies, crashes+cancelsx2"), "{e}");
    let bad_fault = MATRIX.replace("{ lost_replies = 1 }", "{ lost_replys = 1 }");
    let e = err(&bad_fault);
    assert!(e.contains("line 8") && e.contains("lost_replys"), "{e}");
    let no_window = MATRIX.replace("grace_window_secs = 30\n", "");
    let e = err(&no_window);
    assert!(
        e.contains("m[grace_fork,1x2,lost_replies]: grace providers need `grace_window_secs`"),
        "{e}"
    );
    let twice = MATRIX.replace(r#""grace_fork"]"#, r#""grace_fork", "single_use"]"#);
    assert!(err(&twice).contains("both labelled `single_use`"));
    let no_provider = GOOD.replace("provider = \"single_use\"\n", "");
    assert!(err(&no_provider).contains("[world] needs a `provider`"));
    let rule_alone = format!("{GOOD}\n[[rule]]\nexpect = {{ baton = \"holds\" }}\n");
    assert!(err(&rule_alone).contains("`[[rule]]` needs a `[matrix]`"));
}

#[test]
fn the_replica_a_relink_tells_must_exist() {
    let told = GOOD.replace("replicas = 2", "replicas = 2\nrelink_tells_replica = 1");
    let s = parse(Path::new("s.toml"), &told).unwrap();
    assert_eq!(s.world.relink_tells_replica, Some(1));
    // The told replica is not interchangeable with the other.
    assert!(!s.world.alike(0, 1) && s.world.alike(1, 1));
    let missing = GOOD.replace("replicas = 2", "replicas = 2\nrelink_tells_replica = 2");
    let e = err(&missing);
    assert!(
        e.contains("relink_tells_replica = 2, but the world has 2 replica(s) (0 to 1)"),
        "{e}"
    );
}

#[test]
fn thread_budgets_apply_to_the_algorithms_their_rule_expects() {
    let text = format!(
        "{MATRIX}[[rule]]\nproviders = [\"single_use\"]\nfaults = [\"lost_replies\"]\n\
         expect = {{ naive = {{ violates = \"no_reuse\" }} }}\nshuttle_iterations = 50000\n\
         loom_preemption_bound = 3\n[[rule]]\nworlds = [\"pair\"]\nshuttle_iterations = 7000\n"
    );
    let all = parse_all(Path::new("m.toml"), &text).unwrap();
    let cell = |name: &str| all.iter().find(|s| s.name == name).unwrap();
    let deep = cell("m[single_use,1x2,lost_replies]");
    assert_eq!(
        deep.thread_budget(Algorithm::NAIVE),
        ThreadBudget {
            shuttle_iterations: Some(50_000),
            loom_preemption_bound: Some(3),
        }
    );
    // The rule names naive only: baton's run keeps the default budget.
    assert_eq!(
        deep.thread_budget(Algorithm::BATON),
        ThreadBudget::default()
    );
    // A rule with no `expect` applies to every algorithm, over earlier ones.
    let pair = cell("m[single_use,pair,lost_replies]");
    assert_eq!(
        pair.thread_budget(Algorithm::NAIVE),
        ThreadBudget {
            shuttle_iterations: Some(7000),
            loom_preemption_bound: Some(3),
        }
    );
    assert_eq!(
        pair.thread_budget(Algorithm::BATON).shuttle_iterations,
        Some(7000)
    );
    assert_eq!(
        cell("m[grace_fork,1x2,lost_replies]").thread_budget(Algorithm::NAIVE),
        ThreadBudget::default()
    );
    // A stated budget raises a run's, never lowers it.
    let budget = deep.thread_budget(Algorithm::NAIVE);
    assert_eq!(budget.raise(1000, 2), (50_000, 3));
    assert_eq!(budget.raise(90_000, 4), (90_000, 4));

    // `[check]` states it for every algorithm of a plain file; zero is an
    // error that says where.
    let plain = parse(
        Path::new("s.toml"),
        &format!("{GOOD}[check]\nloom_preemption_bound = 4\n"),
    )
    .unwrap();
    assert_eq!(
        plain.thread_budget(Algorithm::BATON).loom_preemption_bound,
        Some(4)
    );
    let e = err(&format!("{GOOD}[check]\nshuttle_iterations = 0\n"));
    assert!(e.contains("line 11") && e.contains("at least 1"), "{e}");
}
