//! The explorer's progress line on a terminal: states, transitions, depth
//! and rate, redrawn in place while a long search runs (indicatif, with the
//! `cli` feature; without it, a search is silent until its verdict).

use crate::explore::Stats;

/// A progress line for one (scenario, algorithm) search.
pub struct Progress {
    #[cfg(feature = "cli")]
    shown: Option<indicatif::ProgressBar>,
    #[cfg(feature = "cli")]
    enabled: bool,
    #[cfg(feature = "cli")]
    label: String,
}

impl Progress {
    /// A line labelled `label`, drawn only if `wanted` and stderr is a
    /// terminal, and only once a search has run for a second.
    #[cfg_attr(not(feature = "cli"), allow(unused_variables))]
    pub fn new(wanted: bool, label: String) -> Self {
        #[cfg(feature = "cli")]
        {
            use std::io::IsTerminal;
            Progress {
                shown: None,
                enabled: wanted && std::io::stderr().is_terminal(),
                label,
            }
        }
        #[cfg(not(feature = "cli"))]
        Progress {}
    }

    /// Redraws the line with the search's figures so far.
    #[cfg_attr(not(feature = "cli"), allow(unused_variables))]
    pub fn update(&mut self, stats: &Stats) {
        #[cfg(feature = "cli")]
        {
            use std::time::Duration;
            if !self.enabled || stats.elapsed < Duration::from_secs(1) {
                return;
            }
            let bar = self.shown.get_or_insert_with(|| {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.enable_steady_tick(Duration::from_millis(200));
                bar
            });
            bar.set_message(format!(
                "{}: {} states, {} transitions, depth {}, {:.0} states/s",
                self.label,
                stats.states,
                stats.transitions,
                stats.max_depth,
                stats.states_per_second()
            ));
        }
    }

    /// Clears the line once the search is over.
    pub fn finish(self) {
        #[cfg(feature = "cli")]
        if let Some(bar) = self.shown {
            bar.finish_and_clear();
        }
    }
}
