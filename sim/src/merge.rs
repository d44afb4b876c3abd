//! `baton merge`: one verdict from the JSON results of sharded `baton check
//! --shard i/n --format json` runs (a CI matrix job per shard, then one job
//! that merges; see `docs/explorer-shards.yml`).
//!
//! Results are grouped by scenario file, scenario, algorithm and checker.
//! A group's verdict: a violation if any shard found one (its replay file
//! and diagram come with it: a counterexample needs no other shard); a
//! proof that every invariant holds only if every shard `1..=n` is present
//! and held; otherwise what the first inconclusive shard said (a spent
//! budget, say), which proves nothing. A missing or repeated shard is an
//! error, not a verdict.

use std::collections::BTreeSet;

use serde_json::{json, Value};

fn text<'a>(result: &'a Value, field: &str) -> &'a str {
    result.get(field).and_then(Value::as_str).unwrap_or("")
}

fn found_kind(result: &Value) -> &str {
    result
        .get("found")
        .and_then(|f| f.get("found"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Parses `i/n` as `check` writes it in `shard`.
fn shard_of(result: &Value) -> Result<Option<(u64, u64)>, String> {
    let Some(shard) = result.get("shard").and_then(Value::as_str) else {
        return Ok(None);
    };
    let (i, n) = shard
        .split_once('/')
        .ok_or_else(|| format!("shard `{shard}` is not i/n"))?;
    let parse = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| format!("shard `{shard}` is not i/n"))
    };
    Ok(Some((parse(i)?, parse(n)?)))
}

/// Merges the results of every run in `runs` (each an array, as `check
/// --format json` prints it) into one result per group.
pub fn merge(runs: &[Value]) -> Result<Vec<Value>, String> {
    let mut groups: Vec<(String, Vec<&Value>)> = Vec::new();
    for run in runs {
        let results = run
            .as_array()
            .ok_or("a run's JSON is not an array of results (was it --coverage?)")?;
        for result in results {
            let key = ["path", "scenario", "algorithm", "checker"]
                .map(|f| text(result, f))
                .join(" | ");
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, parts)) => parts.push(result),
                None => groups.push((key, vec![result])),
            }
        }
    }
    groups
        .into_iter()
        .map(|(key, parts)| merge_group(&key, &parts))
        .collect()
}

fn merge_group(key: &str, parts: &[&Value]) -> Result<Value, String> {
    let shards: Vec<Option<(u64, u64)>> = parts
        .iter()
        .map(|p| shard_of(p))
        .collect::<Result<_, _>>()?;
    let count = match shards.first().copied().flatten() {
        Some((_, n)) => n,
        None if parts.len() == 1 => 1,
        None => return Err(format!("{key}: several unsharded results")),
    };
    if count > 1 {
        let seen: BTreeSet<u64> = shards
            .iter()
            .map(|s| match s {
                Some((i, n)) if *n == count => Ok(*i),
                _ => Err(format!("{key}: shards of different counts")),
            })
            .collect::<Result<_, _>>()?;
        if seen.len() != parts.len() || seen != (1..=count).collect() {
            return Err(format!(
                "{key}: need shards 1..={count} once each, have {seen:?} of {} results",
                parts.len()
            ));
        }
    }
    let first = parts[0];
    let expected = text(first, "expected");
    let states: u64 = parts.iter().filter_map(|p| p["states"].as_u64()).sum();
    let transitions: u64 = parts.iter().filter_map(|p| p["transitions"].as_u64()).sum();
    let seconds = parts
        .iter()
        .filter_map(|p| p["seconds"].as_f64())
        .fold(0.0, f64::max);
    let mut merged = (*first).clone();
    let violation = parts.iter().find(|p| found_kind(p) == "violates");
    let all_hold = parts.iter().all(|p| found_kind(p) == "holds");
    let (chosen, coverage, verdict): (&Value, Value, String) = if let Some(v) = violation {
        let invariant = v["found"]["invariant"].as_str().unwrap_or("");
        (v, v["coverage"].clone(), format!("violates {invariant}"))
    } else if all_hold {
        // No shard saw the whole graph, so none could tell a loop.
        let unjudged = parts.iter().any(|p| {
            p["coverage"]["detail"]
                .as_str()
                .is_some_and(|d| d.contains("no_livelock not judged"))
        });
        let livelock = if unjudged {
            "; no_livelock not judged: each shard saw part of the graph"
        } else {
            ""
        };
        let detail = format!("explorer, every reachable state over {count} shards ({states} states in all, overlap included){livelock}");
        let verdict = if expected == "holds" {
            "holds (proof)".to_string()
        } else {
            "not found (proof)".to_string()
        };
        (first, json!({"kind": "proof", "detail": detail}), verdict)
    } else {
        let p = parts
            .iter()
            .find(|p| found_kind(p) != "holds")
            .expect("not all hold");
        (*p, p["coverage"].clone(), text(p, "verdict").to_string())
    };
    for field in ["found", "replay", "diagram", "depth"] {
        merged[field] = chosen[field].clone();
    }
    let ok = verdict == expected || (expected == "holds" && verdict == "holds (proof)");
    merged["coverage"] = coverage;
    merged["verdict"] = json!(verdict);
    merged["ok"] = json!(ok);
    merged["unconfirmed"] = json!(false);
    merged["states"] = json!(states);
    merged["transitions"] = json!(transitions);
    merged["seconds"] = json!(seconds);
    merged["shard"] = json!(format!("merged {count}"));
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(shard: &str, found: Value, expected: &str) -> Value {
        json!([{
            "path": "s.toml", "scenario": "s", "algorithm": "baton", "checker": "explore",
            "expected": expected, "found": found, "shard": shard, "states": 10,
            "transitions": 20, "seconds": 1.0, "verdict": "holds (bounded)",
            "coverage": {"kind": "bounded", "detail": format!("explorer shard {shard} only")},
            "ok": true, "replay": null, "diagram": null, "depth": 3,
        }])
    }

    #[test]
    fn every_shard_holding_is_a_proof_and_a_missing_one_is_an_error() {
        let holds = json!({"found": "holds"});
        let both = [
            part("1/2", holds.clone(), "holds"),
            part("2/2", holds.clone(), "holds"),
        ];
        let merged = merge(&both).unwrap();
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0]["verdict"], "holds (proof)");
        assert_eq!(merged[0]["coverage"]["kind"], "proof");
        assert_eq!(merged[0]["ok"], true);
        assert_eq!(merged[0]["states"], 20);
        let one = [part("1/2", holds.clone(), "holds")];
        assert!(merge(&one).unwrap_err().contains("need shards"));
        let twice = [
            part("1/2", holds.clone(), "holds"),
            part("1/2", holds, "holds"),
        ];
        assert!(merge(&twice).is_err());
    }

    #[test]
    fn one_shard_finding_a_violation_decides() {
        let holds = json!({"found": "holds"});
        let broke = json!({"found": "violates", "invariant": "no_reuse", "reason": "r"});
        let runs = [
            part("1/2", holds.clone(), "violates no_reuse"),
            part("2/2", broke.clone(), "violates no_reuse"),
        ];
        let merged = merge(&runs).unwrap();
        assert_eq!(merged[0]["verdict"], "violates no_reuse");
        assert_eq!(merged[0]["ok"], true);
        let runs = [part("1/2", holds, "holds"), part("2/2", broke, "holds")];
        assert_eq!(merge(&runs).unwrap()[0]["ok"], false);
    }

    #[test]
    fn a_spent_budget_in_one_shard_proves_nothing() {
        let runs = [
            part("1/2", json!({"found": "holds"}), "holds"),
            part("2/2", json!({"found": "budget_exhausted"}), "holds"),
        ];
        let merged = merge(&runs).unwrap();
        assert_eq!(merged[0]["ok"], false);
        assert_ne!(merged[0]["coverage"]["kind"], "proof");
    }
}
