//! The one-screen summary printed at the end of `strata run`: cohort counts
//! by PCN, with small-number suppression (it lands in terminals and
//! scheduler logs, which are not patient-level outputs).

use std::fmt::Write;

use crate::output::manifest::Manifest;

pub fn render(manifest: &Manifest, out: &std::path::Path) -> String {
    let mut s = String::new();
    // Every PCN any cohort is delivered to; a cohort that names its PCNs
    // shows `-` for the others.
    let counts = &manifest.counts;
    let pcns: Vec<&String> = counts
        .cohorts
        .iter()
        .flat_map(|c| c.by_pcn.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let _ = writeln!(
        s,
        "strata {}: model `{}`, as of {}{}, {} persons ({} alive and counted)",
        manifest.strata_version,
        manifest.model.name,
        manifest.as_of,
        if manifest.as_of_inferred {
            " (latest activity date)"
        } else {
            ""
        },
        counts.persons,
        counts.alive,
    );
    let width = counts
        .cohorts
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let cell = pcns.iter().map(|p| p.len()).max().unwrap_or(5).max(7);
    let _ = write!(s, "\n{:width$}", "cohort");
    for p in &pcns {
        let _ = write!(s, "  {p:>cell$}");
    }
    let _ = writeln!(s, "  {:>cell$}", "total");
    for c in &counts.cohorts {
        let _ = write!(s, "{:width$}", c.name);
        for p in &pcns {
            let shown = c.by_pcn.get(*p).map_or("-", String::as_str);
            let _ = write!(s, "  {shown:>cell$}");
        }
        let _ = writeln!(s, "  {:>cell$}", c.members);
    }
    for seg in &counts.segments {
        let width = seg.counts.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        let _ = writeln!(s, "\n{} (persons alive and counted):", seg.feature);
        for (name, n) in &seg.counts {
            let _ = writeln!(s, "  {name:width$}  {n:>cell$}");
        }
    }
    let named: Vec<String> = pcns
        .iter()
        .filter_map(|p| manifest.pcn_names.get(*p).map(|n| format!("{p} {n}")))
        .collect();
    if !named.is_empty() {
        let _ = writeln!(s, "\nPCNs: {}.", named.join(", "));
    }
    let _ = writeln!(s, "Counts: {}.", counts.suppression);
    let o = &manifest.opt_outs;
    let flags = match (o.type1_column, o.national_data_opt_out_column) {
        (true, true) => "both flags present".to_string(),
        (false, false) => "no opt-out flags in the data: none could be applied".to_string(),
        (true, false) => {
            "no National Data Opt-out flag in the data: it could not be applied".to_string()
        }
        (false, true) => "no type 1 flag in the data: it could not be applied".to_string(),
    };
    let _ = writeln!(
        s,
        "Purpose: {} (from {}); {flags}. Left out of the lists: {}; of the counts: {}.",
        o.purpose.replace('_', " "),
        o.purpose_from,
        o.withheld_from_lists,
        o.withheld_from_counts
    );
    if counts.cohorts.iter().any(|c| c.by_pcn.len() < pcns.len()) {
        let _ = writeln!(s, "-: the cohort is not delivered to that PCN.");
    }
    // One line per table: several sources (the eFI's measures) may read one.
    let mut absent: Vec<(&str, Vec<&str>)> = Vec::new();
    for a in &manifest.absent_optional_tables {
        match absent.iter_mut().find(|(t, _)| *t == a.table) {
            Some((_, sources)) => sources.push(&a.source),
            None => absent.push((&a.table, vec![&a.source])),
        }
    }
    for (table, sources) in absent {
        let named: Vec<String> = sources.iter().map(|s| format!("`{s}`")).collect();
        let _ = writeln!(
            s,
            "Optional table `{table}` is absent: the features of source{} {} are unknown (null) in this run.",
            if named.len() > 1 { "s" } else { "" },
            named.join(", ")
        );
    }
    for input in &manifest.inputs {
        if input.files.iter().all(|f| f.rows == 0) {
            // The PCNs' names and the registrations feed no feature (and
            // registrations with no usable row stop a run).
            let what = match input.table.as_str() {
                crate::input::pcns::TABLE => "PCNs are named by their codes only",
                crate::input::REGISTRATIONS => "no one is registered",
                _ => "every feature read from it is zero, false or null",
            };
            let _ = writeln!(
                s,
                "Table `{}` has no rows: {what}. Check the extract.",
                input.table
            );
        }
    }
    if !manifest.registrations.starts_with("applied") {
        let _ = writeln!(
            s,
            "No registrations table: everyone in the population table is taken as registered throughout (see docs/data-contract.md)."
        );
    }
    if manifest.computed_elsewhere {
        let _ = writeln!(
            s,
            "Published from a per-person table computed elsewhere ({}): the event tables were not read here, so rows they would skip are not counted.",
            manifest.inputs.last().map_or("", |i| i.table.as_str())
        );
    }
    let rejected = manifest.skipped_rows();
    if rejected > 0 {
        let _ = writeln!(
            s,
            "Rows skipped for problems in the data: {rejected} (null ids or dates, dates before 1900, unknown or duplicated persons, unusable measured values, registrations no date can use); see manifest.json, and rejects/ for all but the registrations."
        );
    }
    let unknown = manifest.values_read_as_unknown();
    if unknown > 0 {
        let _ = writeln!(
            s,
            "Values read as unknown for problems in the data: {} (birth dates before 1900, people: suppressed); see `read_as_unknown` in manifest.json.",
            manifest.suppression.count(unknown)
        );
    }
    let _ = writeln!(s, "Output: {}", out.display());
    s
}
