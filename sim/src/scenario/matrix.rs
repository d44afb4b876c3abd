//! Matrix files: one table that crosses providers × worlds × fault sets,
//! expanded into one scenario per cell, instead of dozens of hand-copied
//! files. The file's `[world]`, `[timing]`, `[faults]` and `[check]` are the
//! base every cell starts from; each axis entry overrides its part; the
//! file's `[expect]` holds for every cell unless a later `[[rule]]` that
//! matches the cell says otherwise.
//!
//! ```toml
//! description = "A gateway answers 5xx in front of the provider."
//!
//! [world]
//! grace_window_secs = 30
//!
//! [matrix]
//! providers = ["single_use", { provider = "counted_reuse", max_reuse = 1 }]
//! worlds = [{ replicas = 1, callers = 2 }, { replicas = 2, callers = 1 }]
//! faults = [{ gateway_after_forwarding = 1 }, { gateway_without_forwarding = 1 }]
//!
//! [expect]
//! baton = "holds"
//!
//! [[rule]]
//! providers = ["single_use"]
//! faults = ["gateway_after_forwarding"]
//! expect = { naive = { violates = "no_reuse" } }
//! ```
//!
//! A `worlds` entry may also set `validate`, `skews_ms` and `fleet`, as
//! `[world]` does.
//!
//! A cell is named `{file}[{provider},{world},{faults}]`, e.g.
//! `gateway[single_use,2x1,gateway_after_forwarding]`: the labels rules
//! match on. A rule naming a label no axis has is an error, so a typo
//! cannot silently match nothing.

use super::file::{ProviderAxis, ScenarioFile, WorldAxis};
use super::{build, expectations, thread_budgets, Cell, Errors, Scenario, ScenarioError};

/// Every cell of the matrix in `file`, in axis order.
pub(super) fn expand(
    errors: &Errors<'_>,
    stem: &str,
    file: &ScenarioFile,
) -> Result<Vec<Scenario>, ScenarioError> {
    let matrix = file.matrix.as_ref().expect("expand is called on matrices");
    let m = matrix.get_ref();
    if m.providers.is_empty() {
        return Err(errors.at(matrix.span(), "[matrix] names no provider".into()));
    }
    let base_world = toml::Spanned::new(0..0, WorldAxis::default());
    let worlds: Vec<_> = if m.worlds.is_empty() {
        vec![&base_world]
    } else {
        m.worlds.iter().collect()
    };
    let base_faults = toml::Spanned::new(0..0, file.faults.clone());
    let fault_sets: Vec<_> = if m.faults.is_empty() {
        vec![&base_faults]
    } else {
        m.faults.iter().collect()
    };

    let provider_labels: Vec<String> = m
        .providers
        .iter()
        .map(|p| provider_label(p.get_ref()))
        .collect();
    let world_labels: Vec<String> = worlds
        .iter()
        .map(|w| world_label(w.get_ref(), &file.world))
        .collect();
    let fault_labels: Vec<String> = fault_sets.iter().map(|f| f.get_ref().label()).collect();
    for (axis, labels) in [
        ("provider", &provider_labels),
        ("world", &world_labels),
        ("fault set", &fault_labels),
    ] {
        if let Some(twice) = labels
            .iter()
            .enumerate()
            .find(|(i, l)| labels[..*i].contains(l))
        {
            return Err(errors.at(
                matrix.span(),
                format!(
                    "two entries of the {axis} axis are both labelled `{}`",
                    twice.1
                ),
            ));
        }
    }
    for rule in &file.rules {
        for (axis, names, labels) in [
            ("providers", &rule.providers, &provider_labels),
            ("worlds", &rule.worlds, &world_labels),
            ("faults", &rule.faults, &fault_labels),
        ] {
            if let Some(unknown) = names.iter().find(|n| !labels.contains(n.get_ref())) {
                return Err(errors.at(
                    unknown.span(),
                    format!(
                        "rule names {axis} `{}`, which the matrix does not have (it has: {})",
                        unknown.get_ref(),
                        labels.join(", ")
                    ),
                ));
            }
        }
    }

    let mut cells = Vec::new();
    for (provider, provider_label) in m.providers.iter().zip(&provider_labels) {
        for (world, world_label) in worlds.iter().zip(&world_labels) {
            for (faults, fault_label) in fault_sets.iter().zip(&fault_labels) {
                let matches = |names: &[toml::Spanned<String>], label: &String| {
                    names.is_empty() || names.iter().any(|n| n.get_ref() == label)
                };
                let rules: Vec<_> = file
                    .rules
                    .iter()
                    .filter(|r| {
                        matches(&r.providers, provider_label)
                            && matches(&r.worlds, world_label)
                            && matches(&r.faults, fault_label)
                    })
                    .collect();
                let mut world_section = file.world.clone();
                let provider_name = match provider.get_ref() {
                    ProviderAxis::Name(name) => *name,
                    ProviderAxis::Detailed(detail) => {
                        if detail.grace_window_secs.is_some() {
                            world_section.grace_window_secs = detail.grace_window_secs;
                        }
                        if detail.max_reuse.is_some() {
                            world_section.max_reuse = detail.max_reuse;
                        }
                        detail.provider
                    }
                };
                let w = world.get_ref();
                world_section.replicas = w.replicas.unwrap_or(world_section.replicas);
                world_section.callers = w.callers.unwrap_or(world_section.callers);
                world_section.requests = w.requests.unwrap_or(world_section.requests);
                world_section.links = w.links.unwrap_or(world_section.links);
                world_section.validate = w.validate.unwrap_or(world_section.validate);
                if w.skews_ms.is_some() {
                    world_section.skews_ms = w.skews_ms.clone();
                }
                if w.fleet.is_some() {
                    world_section.fleet = w.fleet.clone();
                }
                let expectations =
                    expectations(errors, &file.expect, rules.iter().map(|r| &r.expect))?;
                let thread_budgets = thread_budgets(
                    file.check.threads(),
                    &expectations,
                    rules.iter().map(|r| (&r.expect, r.threads())),
                );
                let cell = Cell {
                    name: format!("{stem}[{provider_label},{world_label},{fault_label}]"),
                    world: world_section,
                    provider: provider_name,
                    faults: faults.get_ref().clone(),
                    invariants: rules
                        .iter()
                        .rev()
                        .find_map(|r| r.invariants.clone())
                        .or_else(|| file.check.invariants.clone()),
                    unavoidable: rules
                        .iter()
                        .rev()
                        .find_map(|r| r.unavoidable.clone())
                        .or_else(|| file.unavoidable.clone()),
                    expectations,
                    thread_budgets,
                };
                cells.push(build(errors, file, cell)?);
            }
        }
    }
    Ok(cells)
}

fn provider_label(provider: &ProviderAxis) -> String {
    match provider {
        ProviderAxis::Name(name) => name.label().into(),
        ProviderAxis::Detailed(detail) => detail
            .label
            .clone()
            .unwrap_or_else(|| detail.provider.label().into()),
    }
}

fn world_label(world: &WorldAxis, base: &super::file::WorldSection) -> String {
    if let Some(label) = &world.label {
        return label.clone();
    }
    let replicas = world.replicas.unwrap_or(base.replicas);
    let callers = world.callers.unwrap_or(base.callers);
    let requests = world.requests.unwrap_or(base.requests);
    let links = world.links.unwrap_or(base.links);
    let mut label = format!("{replicas}x{callers}");
    if requests > 1 {
        label.push_str(&format!(",{requests}req"));
    }
    if links > 1 {
        label.push_str(&format!(",{links}links"));
    }
    if world.validate == Some(true) {
        label.push_str(",validate");
    }
    if world.skews_ms.is_some() {
        label.push_str(",skew");
    }
    if world.fleet.is_some() {
        label.push_str(",fleet");
    }
    label
}
