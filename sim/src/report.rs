//! Making a run readable: the numbered timeline of a counterexample (step,
//! actor, what happened, the store row and the provider's live tokens after
//! it) and a Mermaid sequence diagram of the same run.
//!
//! The tokens printed are the fake provider's (`A1`, `R1`): simulated
//! tokens are not secrets, so the timeline names them.

use std::fmt::Write as _;

use baton_core::{CachedFailure, StoredLink};

use crate::spec::WorldSpec;
use crate::world::{Action, LogEntry, StepLog, World};

/// A row in words: `(A1 until t=…, R1, failure: …, lease: …)`.
pub fn describe_row(row: &StoredLink) -> String {
    let access = row.access.as_ref().map_or("∅".to_string(), |a| {
        format!("{} until {}", a.token.expose_secret(), a.expires_at)
    });
    let refresh = row
        .refresh_token
        .as_ref()
        .map_or("∅", |r| r.expose_secret());
    let mut out = format!("({access}, {refresh}");
    match &row.failure {
        Some(CachedFailure::Rejected { reason }) => {
            write!(out, ", failure: rejected {reason}").unwrap()
        }
        Some(CachedFailure::OutcomeUnknown { lease: None }) => {
            out.push_str(", failure: outcome unknown")
        }
        Some(CachedFailure::OutcomeUnknown { lease: Some(mark) }) => write!(
            out,
            ", failure: outcome unknown under {}'s lease until {}",
            mark.owner, mark.expires_at
        )
        .unwrap(),
        None => {}
    }
    if let Some(lease) = &row.lease {
        write!(
            out,
            ", lease: {} over {} until {}",
            lease.owner,
            lease.presenting.expose_secret(),
            lease.expires_at
        )
        .unwrap();
    }
    out.push(')');
    out
}

/// One numbered step of a run.
#[derive(Clone, Debug)]
pub struct TimelineStep {
    /// 1-based.
    pub number: usize,
    /// The action taken.
    pub action: Action,
    /// What happened.
    pub entries: Vec<LogEntry>,
    /// The world's clock after it.
    pub now: String,
    /// Every link's row after it.
    pub rows: Vec<String>,
    /// Every link's live refresh tokens at the provider after it.
    pub provider_live: Vec<String>,
}

/// Replays `actions` from the initial world, recording each step. Fails if
/// an action is not possible where the run says it is (the scenario changed
/// since the run was recorded).
pub fn timeline(
    spec: &WorldSpec,
    actions: &[Action],
) -> Result<(Vec<TimelineStep>, World), String> {
    let mut world = World::initial(spec)?;
    let mut steps = Vec::new();
    for (i, action) in actions.iter().enumerate() {
        if !world.actions(spec).contains(action) {
            return Err(format!(
                "step {} ({action:?}) is not possible in this world: the scenario no longer matches the recorded run",
                i + 1
            ));
        }
        let mut log = StepLog::default();
        world.apply(spec, *action, Some(&mut log));
        steps.push(TimelineStep {
            number: i + 1,
            action: *action,
            entries: log.entries,
            now: world.now.to_string(),
            rows: world
                .links
                .iter()
                .map(|l| world.store.row(l).map_or("no row".into(), describe_row))
                .collect(),
            provider_live: world
                .links
                .iter()
                .map(|l| {
                    let live: Vec<String> = world
                        .provider
                        .live_refresh_tokens(l)
                        .iter()
                        .map(|t| t.expose_secret().to_string())
                        .collect();
                    let revoked = if world.provider.family_revoked(l) {
                        " (family revoked)"
                    } else {
                        ""
                    };
                    format!("{{{}}}{revoked}", live.join(", "))
                })
                .collect(),
        });
    }
    Ok((steps, world))
}

/// The timeline as text, one block per step.
pub fn render_timeline(steps: &[TimelineStep]) -> String {
    let mut out = String::new();
    for step in steps {
        for (i, entry) in step.entries.iter().enumerate() {
            let number = if i == 0 {
                format!("{:>3}.", step.number)
            } else {
                "    ".to_string()
            };
            let actor = if entry.from == entry.to {
                entry.from.clone()
            } else {
                format!("{} → {}", entry.from, entry.to)
            };
            writeln!(out, "{number} {actor:<20} {}", entry.text).unwrap();
        }
        writeln!(
            out,
            "     {:<20} {}  store {}  provider live {}",
            "",
            step.now,
            step.rows.join(" | "),
            step.provider_live.join(" | ")
        )
        .unwrap();
    }
    out
}

/// The run as a Mermaid sequence diagram.
pub fn mermaid(steps: &[TimelineStep], title: &str) -> String {
    let mut participants: Vec<String> = Vec::new();
    for entry in steps.iter().flat_map(|s| &s.entries) {
        for name in [&entry.from, &entry.to] {
            if !participants.contains(name) {
                participants.push(name.clone());
            }
        }
    }
    let mut out = String::from("sequenceDiagram\n");
    writeln!(out, "    title {}", mermaid_text(title)).unwrap();
    for p in &participants {
        writeln!(out, "    participant {}", mermaid_id(p)).unwrap();
    }
    for step in steps {
        for entry in &step.entries {
            let text = format!("{}. {}", step.number, mermaid_text(&entry.text));
            if entry.from == entry.to {
                writeln!(out, "    Note over {}: {text}", mermaid_id(&entry.from)).unwrap();
            } else {
                writeln!(
                    out,
                    "    {}->>{}: {text}",
                    mermaid_id(&entry.from),
                    mermaid_id(&entry.to)
                )
                .unwrap();
            }
        }
    }
    out
}

fn mermaid_id(name: &str) -> String {
    name.replace(['.', ' '], "_")
}

fn mermaid_text(text: &str) -> String {
    text.replace([';', '#', '\n'], " ")
}
