//! The algorithms the harness runs, behind one [`baton_core::RefreshMachine`]
//! interface: baton's own machine, and (as they are modelled) the
//! historical algorithms of DESIGN.md section 5 — the bug zoo.

use std::fmt;
use std::str::FromStr;

use baton_core::{Config, Effect, Input, InputError, Machine, RefreshMachine, Timestamp};

/// An algorithm the world can run on every replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// baton's machine: the algorithm of DESIGN.md section 2.
    Baton,
}

impl Algorithm {
    /// Every algorithm modelled.
    pub const ALL: [Algorithm; 1] = [Algorithm::Baton];

    /// The name scenarios use.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Baton => "baton",
        }
    }

    /// A fresh machine of this algorithm (one process, empty memory).
    pub fn machine(self, config: Config) -> AnyMachine {
        match self {
            Algorithm::Baton => AnyMachine::Baton(Machine::new(config)),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Algorithm::ALL.iter().map(|a| a.name()).collect();
                format!("unknown algorithm `{s}` (modelled: {})", names.join(", "))
            })
    }
}

/// A machine of any modelled algorithm.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AnyMachine {
    /// baton's machine.
    Baton(Machine),
}

impl RefreshMachine for AnyMachine {
    fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), InputError> {
        match self {
            AnyMachine::Baton(m) => m.handle_input(now, input),
        }
    }
    fn poll_output(&mut self) -> Option<Effect> {
        match self {
            AnyMachine::Baton(m) => m.poll_output(),
        }
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        match self {
            AnyMachine::Baton(m) => m.poll_timeout(),
        }
    }
}
