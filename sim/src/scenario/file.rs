//! The scenario file format as serde reads it: sections, keys and the
//! spelling of providers, expectations and invariants. Unknown keys are
//! errors.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::{Expectation, ThreadBudget};
use crate::invariants::Invariant;

pub(super) fn parse_via_fromstr<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(de::Error::custom)
}

pub(super) fn parse_invariants<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Invariant>>, D::Error> {
    let names: Option<Vec<String>> = Option::deserialize(d)?;
    names
        .map(|names| {
            names
                .iter()
                .map(|n| n.parse().map_err(de::Error::custom))
                .collect()
        })
        .transpose()
}

fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let n = u8::deserialize(d)?;
    if n == 0 {
        return Err(de::Error::custom("must be at least 1"));
    }
    Ok(n)
}

/// The provider models, as scenarios spell them.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(super) enum ProviderName {
    SingleUse,
    ReuseDetection,
    GraceIdempotent,
    GraceFork,
    GracePreviousValid,
    CountedReuse,
    RotatingNoRevocation,
    NonRotating,
}

impl ProviderName {
    /// The name as scenarios spell it.
    pub(super) fn label(self) -> &'static str {
        match self {
            ProviderName::SingleUse => "single_use",
            ProviderName::ReuseDetection => "reuse_detection",
            ProviderName::GraceIdempotent => "grace_idempotent",
            ProviderName::GraceFork => "grace_fork",
            ProviderName::GracePreviousValid => "grace_previous_valid",
            ProviderName::CountedReuse => "counted_reuse",
            ProviderName::RotatingNoRevocation => "rotating_no_revocation",
            ProviderName::NonRotating => "non_rotating",
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum SecondPresentationSetting {
    Fatal,
    AlwaysSafe,
    SafeWithinSecs(u64),
}

fn one() -> u8 {
    1
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WorldSection {
    #[serde(default = "one", deserialize_with = "at_least_one")]
    pub(super) replicas: u8,
    #[serde(default = "one", deserialize_with = "at_least_one")]
    pub(super) callers: u8,
    #[serde(default = "one", deserialize_with = "at_least_one")]
    pub(super) requests: u8,
    #[serde(default = "one", deserialize_with = "at_least_one")]
    pub(super) links: u8,
    /// Required, except in a matrix, whose `providers` axis sets it.
    pub(super) provider: Option<ProviderName>,
    pub(super) grace_window_secs: Option<u64>,
    pub(super) max_reuse: Option<u32>,
    #[serde(default)]
    pub(super) validate: bool,
    pub(super) skews_ms: Option<toml::Spanned<Vec<i64>>>,
    pub(super) second_presentation: Option<SecondPresentationSetting>,
    #[serde(default)]
    pub(super) server_error_after_send: ServerErrorSetting,
    #[serde(default)]
    pub(super) path_ignores_max_request_age: bool,
    #[serde(default)]
    pub(super) relink_keeps_lease: bool,
    pub(super) relink_tells_replica: Option<u8>,
    /// Per replica, the algorithm it runs: a name, or `"*"` for the
    /// algorithm the `[expect]` key names (a rolling deploy: `["*",
    /// "naive"]` runs each expected algorithm beside an old naive replica).
    pub(super) fleet: Option<toml::Spanned<Vec<String>>>,
}

/// `[world] server_error_after_send`: what the machines are told a 5xx
/// after sending means.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum ServerErrorSetting {
    #[default]
    Unknown,
    Retry,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TimingSection {
    pub(super) access_lifetime_secs: Option<u64>,
    pub(super) expiry_margin_secs: Option<u64>,
    pub(super) lease_secs: Option<u64>,
    pub(super) exchange_timeout_secs: Option<u64>,
    pub(super) poll_secs: Option<u64>,
    pub(super) max_request_age_secs: Option<u64>,
    pub(super) persist_attempts: Option<u32>,
}

/// Generates `[faults]`: one `u8` budget per fault kind, and the label a
/// matrix gives a combination (the kinds it uses, joined by `+`).
macro_rules! faults_section {
    ($($field:ident),* $(,)?) => {
        #[derive(Clone, Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct FaultsSection {
            $(#[serde(default)] pub(super) $field: u8,)*
        }

        impl FaultsSection {
            /// The budget the world gets.
            pub(super) fn budget(&self) -> crate::spec::FaultBudget {
                crate::spec::FaultBudget { $($field: self.$field,)* }
            }

            /// The fault kinds this section uses, as a matrix names them.
            pub(super) fn label(&self) -> String {
                let mut used = Vec::new();
                $(if self.$field > 0 {
                    used.push(if self.$field == 1 {
                        stringify!($field).to_string()
                    } else {
                        format!("{}x{}", stringify!($field), self.$field)
                    });
                })*
                if used.is_empty() {
                    "no_faults".into()
                } else {
                    used.join("+")
                }
            }
        }
    };
}

faults_section!(
    crashes,
    cancels,
    store_write_failures,
    store_read_failures,
    rate_limits,
    transients,
    lost_replies,
    gateway_after_forwarding,
    gateway_before_arrival,
    gateway_without_forwarding,
    timeouts,
    validation_failures,
    clock_jumps,
    relinks,
    unlinks,
    revocations,
);

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CheckSection {
    pub(super) max_states: Option<usize>,
    #[serde(default, deserialize_with = "parse_invariants")]
    pub(super) invariants: Option<Vec<Invariant>>,
    /// What the thread checkers need to reach the expected verdicts.
    #[serde(default, deserialize_with = "positive_opt")]
    pub(super) shuttle_iterations: Option<usize>,
    #[serde(default, deserialize_with = "positive_opt")]
    pub(super) loom_preemption_bound: Option<usize>,
}

impl CheckSection {
    pub(super) fn threads(&self) -> ThreadBudget {
        ThreadBudget {
            shuttle_iterations: self.shuttle_iterations,
            loom_preemption_bound: self.loom_preemption_bound,
        }
    }
}

fn positive_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let n = usize::deserialize(d)?;
    if n == 0 {
        return Err(de::Error::custom("must be at least 1"));
    }
    Ok(Some(n))
}

/// Per algorithm name, what is expected.
pub(super) type ExpectTable = std::collections::BTreeMap<String, toml::Spanned<Expectation>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScenarioFile {
    pub(super) description: String,
    pub(super) unavoidable: Option<String>,
    pub(super) world: WorldSection,
    #[serde(default)]
    pub(super) timing: TimingSection,
    #[serde(default)]
    pub(super) faults: FaultsSection,
    #[serde(default)]
    pub(super) check: CheckSection,
    pub(super) matrix: Option<toml::Spanned<MatrixSection>>,
    #[serde(default, rename = "rule")]
    pub(super) rules: Vec<Rule>,
    pub(super) expect: toml::Spanned<ExpectTable>,
}

/// `[matrix]`: the axes a matrix file crosses. Every combination of one
/// provider, one world and one fault set is a scenario of its own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MatrixSection {
    pub(super) providers: Vec<toml::Spanned<ProviderAxis>>,
    #[serde(default)]
    pub(super) worlds: Vec<toml::Spanned<WorldAxis>>,
    #[serde(default)]
    pub(super) faults: Vec<toml::Spanned<FaultsSection>>,
}

/// One provider of a matrix: a name, or a name with its parameters.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum ProviderAxis {
    Name(ProviderName),
    Detailed(ProviderDetail),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProviderDetail {
    pub(super) provider: ProviderName,
    pub(super) grace_window_secs: Option<u64>,
    pub(super) max_reuse: Option<u32>,
    /// The label rules and cell names use (default: the provider's name).
    pub(super) label: Option<String>,
}

/// One world of a matrix: what it changes in `[world]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WorldAxis {
    #[serde(default, deserialize_with = "at_least_one_opt")]
    pub(super) replicas: Option<u8>,
    #[serde(default, deserialize_with = "at_least_one_opt")]
    pub(super) callers: Option<u8>,
    #[serde(default, deserialize_with = "at_least_one_opt")]
    pub(super) requests: Option<u8>,
    #[serde(default, deserialize_with = "at_least_one_opt")]
    pub(super) links: Option<u8>,
    /// Whether the machines validate new tokens.
    pub(super) validate: Option<bool>,
    /// Per-replica clock offsets.
    pub(super) skews_ms: Option<toml::Spanned<Vec<i64>>>,
    /// Per replica, the algorithm it runs (as `[world] fleet`).
    pub(super) fleet: Option<toml::Spanned<Vec<String>>>,
    /// The label rules and cell names use (default: `{replicas}x{callers}`,
    /// then `,{requests}req` and `,{links}links` where more than one, and
    /// `,validate`, `,skew` and `,fleet` where set).
    pub(super) label: Option<String>,
}

fn at_least_one_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    at_least_one(d).map(Some)
}

/// `[[rule]]`: expectations for the matrix cells it matches; later rules
/// override earlier ones and the file's `[expect]`. An axis a rule does not
/// name matches every cell.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Rule {
    #[serde(default)]
    pub(super) providers: Vec<toml::Spanned<String>>,
    #[serde(default)]
    pub(super) worlds: Vec<toml::Spanned<String>>,
    #[serde(default)]
    pub(super) faults: Vec<toml::Spanned<String>>,
    #[serde(default)]
    pub(super) expect: ExpectTable,
    #[serde(default, deserialize_with = "parse_invariants")]
    pub(super) invariants: Option<Vec<Invariant>>,
    pub(super) unavoidable: Option<String>,
    /// Thread-checker budgets for the algorithms this rule's `expect`
    /// names (every algorithm, if it names none).
    #[serde(default, deserialize_with = "positive_opt")]
    pub(super) shuttle_iterations: Option<usize>,
    #[serde(default, deserialize_with = "positive_opt")]
    pub(super) loom_preemption_bound: Option<usize>,
}

impl Rule {
    pub(super) fn threads(&self) -> ThreadBudget {
        ThreadBudget {
            shuttle_iterations: self.shuttle_iterations,
            loom_preemption_bound: self.loom_preemption_bound,
        }
    }
}
