//! `OUT/pcn/<PCN_CODE>/<cohort>.csv`: what a PCN lead receives.
//!
//! Privacy by construction: each file is built from the cohort's members
//! *grouped by their registered PCN*, so a PCN's folder can only ever hold
//! that PCN's people. Persons with no PCN code are delivered nowhere (they
//! remain in `patients.parquet`) and are counted in the manifest. Every PCN
//! gets a file for every cohort it receives (every cohort, unless a cohort
//! names its PCNs), header only if empty, so "nobody" is distinguishable
//! from "not run".

use std::collections::BTreeMap;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use rayon::prelude::*;

use crate::engine::Results;
use crate::engine::plan::{AGE_SLOT, SEX_SLOT};
use crate::error::{Error, Result};

/// Members delivered per cohort and PCN, and persons left undelivered.
#[derive(Debug, Default)]
pub struct Delivered {
    /// cohort name -> PCN code -> members
    pub counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Cohort members with no PCN code, per cohort.
    pub without_pcn: BTreeMap<String, u64>,
}

/// PCN codes become folder names, so they are limited to characters that
/// mean the same on every file system.
fn valid_folder_name(code: &str) -> bool {
    let mut chars = code.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

pub fn write(results: &Results, dir: &Path) -> Result<Delivered> {
    let model = results.plan.model;
    let population = &results.plan.population;
    let pcn = population.column("pcn_code").as_string::<i32>();

    // Every PCN in the population gets a folder, whether or not it has members.
    let distinct: std::collections::BTreeSet<&str> =
        pcn.iter().flatten().filter(|c| !c.is_empty()).collect();
    // Case-insensitive order puts codes that differ only in case side by side.
    let mut pcns: Vec<&str> = distinct.into_iter().collect();
    pcns.sort_by_cached_key(|c| c.to_ascii_uppercase());
    if let Some(bad) = pcns.iter().find(|c| !valid_folder_name(c)) {
        return Err(Error::data(
            &population.table.location,
            format!("pcn_code `{bad}` cannot be used as a folder name"),
        )
        .with_help(
            "PCN codes must be letters, digits, `_` or `-`, starting with a letter or digit",
        ));
    }
    // On a case-insensitive file system (Windows, macOS, most shares) `U1`
    // and `u1` would be one folder holding two PCNs' lists.
    if let Some(pair) = pcns.windows(2).find(|p| p[0].eq_ignore_ascii_case(p[1])) {
        return Err(Error::data(
            &population.table.location,
            format!(
                "pcn_codes `{}` and `{}` differ only in case, so their folders could mix",
                pair[0], pair[1]
            ),
        )
        .with_help("make PCN codes consistent in case (ODS codes are upper case)"));
    }

    // A cohort asked for by named PCNs must name PCNs that exist: a typo or
    // a renamed PCN would otherwise deliver the cohort to nobody, silently.
    for cohort in &model.cohorts {
        for (code, offset) in cohort.pcns.iter().flatten() {
            if !pcns.contains(&code.as_str()) {
                return Err(model
                    .error_at(
                        *offset,
                        format!(
                            "cohort `{}` is delivered to PCN `{code}`, but no one in the population is registered to it",
                            cohort.name
                        ),
                    )
                    .with_help(format!(
                        "the population's PCN codes are: {}",
                        pcns.join(", ")
                    )));
            }
        }
    }

    let mut delivered = Delivered::default();
    // cohort -> pcn -> member rows (already in PCN, rank order)
    let mut by_pcn: Vec<BTreeMap<&str, Vec<u32>>> = Vec::new();
    for (cohort, result) in model.cohorts.iter().zip(&results.cohorts) {
        let mut groups: BTreeMap<&str, Vec<u32>> = pcns.iter().map(|p| (*p, Vec::new())).collect();
        let mut missing = 0;
        for &m in &result.members {
            let code = if pcn.is_null(m as usize) {
                ""
            } else {
                pcn.value(m as usize)
            };
            match groups.get_mut(code) {
                Some(g) => g.push(m),
                None => missing += 1,
            }
        }
        delivered.counts.insert(
            cohort.name.clone(),
            groups
                .iter()
                .filter(|(p, _)| delivered_to(cohort, p))
                .map(|(p, g)| (p.to_string(), g.len() as u64))
                .collect(),
        );
        delivered.without_pcn.insert(cohort.name.clone(), missing);
        by_pcn.push(groups);
    }

    pcns.par_iter().try_for_each(|code| -> Result<()> {
        let folder = dir.join(code);
        std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, "cannot create", e))?;
        for (c, cohort) in model.cohorts.iter().enumerate() {
            if !delivered_to(cohort, code) {
                continue;
            }
            let path = folder.join(format!("{}.csv", cohort.name));
            write_list(results, c, &by_pcn[c][code], &path)?;
        }
        Ok(())
    })?;
    Ok(delivered)
}

/// Whether PCN `code` receives `cohort`: every PCN, unless the cohort names
/// its PCNs.
fn delivered_to(cohort: &crate::rules::Cohort, code: &str) -> bool {
    cohort
        .pcns
        .as_ref()
        .is_none_or(|p| p.iter().any(|(c, _)| c == code))
}

/// One cohort list: rank, person_id, practice_code, age, sex, then the
/// cohort's reason features.
fn write_list(results: &Results, cohort: usize, members: &[u32], path: &Path) -> Result<()> {
    let model = results.plan.model;
    let population = &results.plan.population;
    let spec = &model.cohorts[cohort];
    let rank: ArrayRef = std::sync::Arc::new(results.cohorts[cohort].rank.clone());
    let mut columns: Vec<(&str, &ArrayRef)> = vec![
        ("rank", &rank),
        ("person_id", population.column("person_id")),
        ("practice_code", population.column("practice_code")),
        ("age", &results.slots[AGE_SLOT]),
        ("sex", &results.slots[SEX_SLOT]),
    ];
    for (reason, _) in &spec.reasons {
        let i = model.feature_index(reason).expect("checked when loading");
        columns.push((reason, results.feature(i)));
    }
    let options = FormatOptions::default();
    let formatters = columns
        .iter()
        .map(|(_, a)| ArrayFormatter::try_new(a.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Internal(format!("formatting {}: {e}", path.display())))?;

    let fail = |e: csv::Error| Error::io(path, "cannot write", std::io::Error::other(e));
    let mut writer = csv::Writer::from_path(path).map_err(fail)?;
    writer
        .write_record(columns.iter().map(|(n, _)| *n))
        .map_err(fail)?;
    let mut record: Vec<String> = Vec::with_capacity(columns.len());
    for &m in members {
        record.clear();
        record.extend(formatters.iter().map(|f| f.value(m as usize).to_string()));
        writer.write_record(&record).map_err(fail)?;
    }
    writer
        .flush()
        .map_err(|e| Error::io(path, "cannot write", e))?;
    Ok(())
}
