//! The one-screen summary printed at the end of `strata run`: cohort counts
//! by PCN, with small-number suppression (it lands in terminals and
//! scheduler logs, which are not patient-level outputs).

use std::fmt::Write;

use crate::output::manifest::Manifest;
use crate::output::suppress;

pub fn render(manifest: &Manifest, out: &std::path::Path) -> String {
    let mut s = String::new();
    let pcns: Vec<&String> = manifest
        .cohorts
        .first()
        .map(|c| c.by_pcn.keys().collect())
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "strata {}: model `{}`, as of {}{}, {} persons ({} alive)",
        manifest.strata_version,
        manifest.model.name,
        manifest.as_of,
        if manifest.as_of_inferred {
            " (latest activity date)"
        } else {
            ""
        },
        suppress::count(manifest.persons),
        suppress::count(manifest.alive),
    );
    let width = manifest
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
    for c in &manifest.cohorts {
        let _ = write!(s, "{:width$}", c.name);
        for p in &pcns {
            let n = c.by_pcn.get(*p).copied().unwrap_or(0);
            let _ = write!(s, "  {:>cell$}", suppress::count(n));
        }
        let _ = writeln!(s, "  {:>cell$}", suppress::count(c.members));
    }
    let named: Vec<String> = pcns
        .iter()
        .filter_map(|p| manifest.pcn_names.get(*p).map(|n| format!("{p} {n}")))
        .collect();
    if !named.is_empty() {
        let _ = writeln!(s, "\nPCNs: {}.", named.join(", "));
    }
    let _ = writeln!(s, "Counts: {}.", suppress::METHOD);
    let rejected: u64 = manifest
        .rejected
        .values()
        .flat_map(|r| {
            r.iter()
                .filter(|(k, _)| **k != "after_as_of")
                .map(|(_, v)| *v)
        })
        .sum();
    if rejected > 0 {
        let _ = writeln!(
            s,
            "Rows skipped (null ids or dates, unknown or duplicated persons): {rejected}; see manifest.json."
        );
    }
    let _ = writeln!(s, "Output: {}", out.display());
    s
}
