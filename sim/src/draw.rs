//! A counterexample a person can look at: the run as a self-contained SVG
//! sequence diagram, one file, no script, no font or style fetched from
//! anywhere — open it in a browser.
//!
//! Lanes, left to right: the callers, the replicas, the store, the
//! provider, then anything else that acted (the clock, outside writers), in
//! the order they first appear. Each step of the timeline is one band,
//! numbered as in the printed timeline; an arrow is a message between two
//! lanes, a box on one lane is something that happened there. The store's
//! row, the clock and the provider's live refresh tokens after each step are
//! printed beside it and shown again on hover (an SVG `<title>`). The step
//! that breaks the invariant is marked in red.

use std::fmt::Write as _;

use crate::report::TimelineStep;
use crate::world::LogEntry;

const LANE_WIDTH: usize = 150;
const LEFT: usize = 60;
const TOP: usize = 92;
const ENTRY_HEIGHT: usize = 26;
const STEP_GAP: usize = 6;
/// Approximate width of one character of the 11 px monospace text.
const CHAR_WIDTH: f64 = 6.7;

/// What the diagram is about: its title and the breaking step.
pub struct Caption<'a> {
    /// The heading, e.g. `scenario × algorithm: invariant breaks`.
    pub title: &'a str,
    /// Why the invariant broke, in words.
    pub reason: &'a str,
    /// The invariant's name.
    pub invariant: &'a str,
}

/// One numbered band of the drawing: what happened in one step, and the
/// world after it (beside the band, and on hover).
#[derive(Clone, Debug)]
pub struct Band {
    /// 1-based, as in the printed timeline.
    pub number: usize,
    /// What happened, in order: arrows between lanes, or boxes on one.
    pub entries: Vec<LogEntry>,
    /// The world after the step, in words (empty when not known).
    pub after: String,
}

impl From<&TimelineStep> for Band {
    fn from(step: &TimelineStep) -> Band {
        Band {
            number: step.number,
            entries: step.entries.clone(),
            after: format!(
                "{}  store {}  provider live {}",
                step.now,
                step.rows.join(" | "),
                step.provider_live.join(" | ")
            ),
        }
    }
}

/// A thread checker's log (loom's or shuttle's, one line per step of an
/// execution) as bands. Callers are numbered across the whole execution
/// there (`caller 2 (r1) asks for …`); each gets the lane `r1.c2` of the
/// replica it asked. `r0: <effect> → <answer>` is an arrow from the
/// replica to the store or the provider; anything else is a note on the
/// lane it names, or on the store's.
pub fn thread_bands(log: &[String]) -> Vec<Band> {
    let mut replica_of: Vec<(String, String)> = Vec::new();
    let caller_lane = |caller: &str, replica_of: &[(String, String)]| match replica_of
        .iter()
        .find(|(c, _)| c == caller)
    {
        Some((_, replica)) => format!("{replica}.c{caller}"),
        None => format!("c{caller}"),
    };
    let entry = |from: String, to: String, text: &str| LogEntry {
        from,
        to,
        text: text.to_owned(),
    };
    log.iter()
        .enumerate()
        .map(|(i, line)| {
            let replica_step = line.split_once(": ").filter(|(who, _)| {
                who.strip_prefix('r')
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            });
            let caller = line.strip_prefix("caller ").and_then(|rest| {
                let (number, what) = rest.split_once(' ')?;
                Some((number.to_owned(), what))
            });
            let lost = line
                .strip_prefix("the answer to caller ")
                .and_then(|rest| rest.split_whitespace().next());
            let entries = if let Some((replica, what)) = replica_step {
                let to = if what.starts_with("exchange") || what.starts_with("validat") {
                    "provider"
                } else {
                    "store"
                };
                vec![entry(replica.to_owned(), to.to_owned(), what)]
            } else if let Some((number, what)) = caller {
                if let Some(replica) = what
                    .strip_prefix('(')
                    .and_then(|rest| rest.split_once(')'))
                    .map(|(replica, _)| replica.to_owned())
                {
                    replica_of.push((number.clone(), replica.clone()));
                    let lane = caller_lane(&number, &replica_of);
                    // The lane names the replica: `asks for github/u0`.
                    let what = what.split_once(") ").map_or(what, |(_, rest)| rest);
                    vec![entry(lane, replica, what)]
                } else {
                    let lane = caller_lane(&number, &replica_of);
                    match (what.starts_with("gets"), lane.split_once(".c")) {
                        (true, Some((replica, _))) => {
                            vec![entry(replica.to_owned(), lane.clone(), what)]
                        }
                        _ => vec![entry(lane.clone(), lane, what)],
                    }
                }
            } else if let Some(number) = lost {
                let lane = caller_lane(number, &replica_of);
                vec![entry(lane.clone(), lane, line)]
            } else {
                vec![entry("store".into(), "store".into(), line)]
            };
            Band {
                number: i + 1,
                entries,
                after: String::new(),
            }
        })
        .collect()
}

/// The lane of each actor: callers (`r0.c1`), replicas (`r0`), the store,
/// the provider, then the rest in order of appearance.
fn lanes(steps: &[Band]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for entry in steps.iter().flat_map(|s| &s.entries) {
        for name in [&entry.from, &entry.to] {
            if !seen.contains(name) {
                seen.push(name.clone());
            }
        }
    }
    let rank = |name: &str| {
        let replica = name.strip_prefix('r').filter(|rest| {
            let digits = rest.split('.').next().unwrap_or("");
            !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
        });
        match (replica, name) {
            (Some(rest), _) if rest.contains('.') => 0,
            (Some(_), _) => 1,
            (None, "store") => 2,
            (None, "provider") => 3,
            _ => 4,
        }
    };
    // Stable: within a rank, the order of first appearance.
    seen.sort_by_key(|name| rank(name));
    seen
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn text_width(text: &str) -> usize {
    (text.chars().count() as f64 * CHAR_WIDTH).ceil() as usize
}

/// The run as an SVG document. The last step is the one that breaks the
/// invariant (a breadth-first explorer and proptest both stop there).
pub fn svg(steps: &[TimelineStep], caption: &Caption<'_>) -> String {
    draw(&steps.iter().map(Band::from).collect::<Vec<_>>(), caption)
}

/// Bands as an SVG document; the last is the one that breaks the invariant
/// (a thread checker stops at the step where it saw the violation).
pub fn draw(steps: &[Band], caption: &Caption<'_>) -> String {
    let lanes = lanes(steps);
    let x = |name: &str| {
        let i = lanes.iter().position(|l| l == name).unwrap_or(0);
        LEFT + LANE_WIDTH / 2 + i * LANE_WIDTH
    };
    let lanes_right = LEFT + lanes.len().max(1) * LANE_WIDTH;
    let after = |step: &Band| {
        if step.after.is_empty() {
            // No world state beside a thread checker's step: hovering
            // still names it in full.
            step.entries
                .iter()
                .map(|e| e.text.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        } else {
            step.after.clone()
        }
    };
    // Arrow labels may be wider than a lane: the canvas grows to fit them.
    let widest_label = steps
        .iter()
        .flat_map(|s| s.entries.iter().map(move |e| (s, e)))
        .map(|(s, e)| {
            let label = format!("{}. {}", s.number, e.text);
            x(&e.from).min(x(&e.to)) + text_width(&label) + 8
        })
        .max()
        .unwrap_or(0);
    let beside_x = lanes_right.max(widest_label) + 16;
    let widest_after = steps
        .iter()
        .map(|s| text_width(&s.after))
        .chain([text_width(caption.invariant) + 13 * 8])
        .max()
        .unwrap_or(0);
    let width = (beside_x + widest_after + 24)
        .max(text_width(caption.title) + 2 * LEFT)
        .max(text_width(caption.reason) + 2 * LEFT);
    let body: usize = steps
        .iter()
        .map(|s| s.entries.len().max(1) * ENTRY_HEIGHT + STEP_GAP)
        .sum();
    let height = TOP + body + 40;

    let mut out = String::new();
    writeln!(
        out,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="ui-monospace, Menlo, Consolas, monospace" font-size="11">
<title>{title}</title>
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#333"/></marker></defs>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="{LEFT}" y="22" font-size="14" font-weight="bold">{title}</text>
<text x="{LEFT}" y="40" fill="#b00020">{invariant}: {reason}</text>"##,
        title = escape(caption.title),
        invariant = escape(caption.invariant),
        reason = escape(caption.reason),
    )
    .unwrap();

    // Lane heads and lifelines.
    for lane in &lanes {
        let cx = x(lane);
        writeln!(
            out,
            r##"<g class="lane"><rect x="{}" y="52" width="{}" height="22" rx="4" fill="#eef2f7" stroke="#8a99ad"/><text x="{cx}" y="67" text-anchor="middle" font-weight="bold">{}</text><line x1="{cx}" y1="74" x2="{cx}" y2="{}" stroke="#c3ccd8" stroke-dasharray="4 3"/></g>"##,
            cx - LANE_WIDTH / 2 + 8,
            LANE_WIDTH - 16,
            escape(lane),
            height - 30,
        )
        .unwrap();
    }

    let mut y = TOP;
    let last = steps.len();
    for step in steps {
        let breaking = step.number == last;
        let band = step.entries.len().max(1) * ENTRY_HEIGHT;
        let fill = if breaking {
            "#fde7ea"
        } else if step.number % 2 == 0 {
            "#f7f9fc"
        } else {
            "#ffffff"
        };
        writeln!(
            out,
            r##"<g class="step" id="step-{n}"><title>step {n}: {after}</title><rect x="4" y="{top}" width="{w}" height="{band}" fill="{fill}"/><text x="10" y="{label_y}" font-weight="bold" fill="{num_fill}">{n}.</text>"##,
            n = step.number,
            after = escape(&after(step)),
            top = y - 4,
            w = width - 8,
            label_y = y + 14,
            num_fill = if breaking { "#b00020" } else { "#333" },
        )
        .unwrap();
        for (i, entry) in step.entries.iter().enumerate() {
            let row_y = y + i * ENTRY_HEIGHT;
            let label = escape(&format!("{}. {}", step.number, entry.text));
            let (from, to) = (x(&entry.from), x(&entry.to));
            if from == to {
                let w = text_width(&format!("{}. {}", step.number, entry.text)) + 10;
                writeln!(
                    out,
                    r##"<rect x="{}" y="{}" width="{w}" height="18" rx="3" fill="#fff8dc" stroke="#d4b84a"/><text x="{}" y="{}">{label}</text>"##,
                    from - 6,
                    row_y + 1,
                    from - 1,
                    row_y + 14,
                )
                .unwrap();
            } else {
                let left = from.min(to);
                writeln!(
                    out,
                    r##"<text x="{}" y="{}">{label}</text><line x1="{from}" y1="{ly}" x2="{to}" y2="{ly}" stroke="#333" marker-end="url(#arrow)"/>"##,
                    left + 6,
                    row_y + 10,
                    ly = row_y + 16,
                )
                .unwrap();
            }
        }
        // A thread checker's step has no world state to show beside it;
        // its text is already on the arrow.
        let mark_y = if step.after.is_empty() {
            y + 14
        } else {
            writeln!(
                out,
                r##"<text x="{beside_x}" y="{}" fill="#556">{}</text>"##,
                y + 14,
                escape(&step.after),
            )
            .unwrap();
            y + band.max(ENTRY_HEIGHT) - 4
        };
        if breaking {
            writeln!(
                out,
                r##"<text x="{beside_x}" y="{mark_y}" fill="#b00020" font-weight="bold">✗ {} breaks here</text>"##,
                escape(caption.invariant),
            )
            .unwrap();
        }
        out.push_str("</g>\n");
        y += band + STEP_GAP;
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{Action, LogEntry};

    fn step(number: usize, entries: &[(&str, &str, &str)]) -> TimelineStep {
        TimelineStep {
            number,
            action: Action::AdvanceClock,
            entries: entries
                .iter()
                .map(|(from, to, text)| LogEntry {
                    from: (*from).into(),
                    to: (*to).into(),
                    text: (*text).into(),
                })
                .collect(),
            now: format!("t={number}000ms"),
            rows: vec!["(A1 until t=9ms, R1)".into()],
            provider_live: vec!["{R1}".into()],
        }
    }

    #[test]
    fn lanes_are_callers_replicas_store_provider_then_the_rest() {
        let steps = [
            step(
                1,
                &[("clock", "clock", "time passes"), ("r1", "store", "read")],
            ),
            step(2, &[("provider", "r0", "issued"), ("r0.c0", "r0", "asks")]),
            step(3, &[("relink", "store", "writes")]),
        ];
        let bands: Vec<Band> = steps.iter().map(Band::from).collect();
        assert_eq!(
            lanes(&bands),
            ["r0.c0", "r1", "r0", "store", "provider", "clock", "relink"]
        );
    }

    #[test]
    fn text_is_escaped_and_the_breaking_step_marked() {
        let steps = [
            step(1, &[("r0", "store", "compare <&> swap \"x\"")]),
            step(2, &[("r0", "r0", "caches 'unknown'")]),
        ];
        let svg = svg(
            &steps,
            &Caption {
                title: "s × baton: no_reuse breaks",
                reason: "R1 presented twice <oops>",
                invariant: "no_reuse",
            },
        );
        assert!(svg.contains("compare &lt;&amp;&gt; swap &quot;x&quot;"));
        assert!(svg.contains("&lt;oops&gt;"));
        assert!(svg.contains(r#"id="step-2""#) && svg.contains("✗ no_reuse breaks here"));
        assert_eq!(svg.matches("breaks here").count(), 1);
    }

    #[test]
    fn a_thread_log_draws_callers_on_the_replica_they_asked() {
        let log: Vec<String> = [
            "caller 0 (r0) asks for github/octocat",
            "caller 1 (r1) asks for github/octocat",
            "r0: read the row → row read",
            "r1: exchange R1 → issued",
            "caller 1 gets access token A2",
            "the answer to caller 0 is lost",
            "caller 0 goes away",
            "the clock moves to t=5s",
        ]
        .map(String::from)
        .to_vec();
        let bands = thread_bands(&log);
        let arrows: Vec<(&str, &str)> = bands
            .iter()
            .map(|b| (b.entries[0].from.as_str(), b.entries[0].to.as_str()))
            .collect();
        assert_eq!(
            arrows,
            [
                ("r0.c0", "r0"),
                ("r1.c1", "r1"),
                ("r0", "store"),
                ("r1", "provider"),
                ("r1", "r1.c1"),
                ("r0.c0", "r0.c0"),
                ("r0.c0", "r0.c0"),
                ("store", "store"),
            ]
        );
        assert_eq!(
            lanes(&bands),
            ["r0.c0", "r1.c1", "r0", "r1", "store", "provider"]
        );
        let svg = draw(
            &bands,
            &Caption {
                title: "t",
                reason: "r",
                invariant: "no_reuse",
            },
        );
        assert!(svg.contains(r#"id="step-8""#) && svg.contains("✗ no_reuse breaks here"));
    }
}
