//! `OUT/pcn/<PCN_CODE>/`: what a PCN lead receives: `<cohort>.csv` for
//! each cohort (for systems that import them) and `<PCN_CODE>.xlsx` (see
//! [`super::packs`]), both with a reason in words for each person.
//!
//! Privacy by construction: each file is built from the cohort's members
//! *grouped by their registered PCN*, so a PCN's folder can only ever hold
//! that PCN's people. Persons with no PCN code are delivered nowhere (they
//! remain in `patients.parquet`) and are counted in the manifest. Every PCN
//! gets a file for every cohort it receives (every cohort, unless a cohort
//! names its PCNs), header only if empty, so "nobody" is distinguishable
//! from "not run".

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use arrow_array::ArrayRef;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use rayon::prelude::*;

use super::packs;
use super::reasons::Reasons;
use crate::engine::Results;
use crate::engine::plan::{AGE_SLOT, SEX_SLOT};
use crate::error::{Error, Result};
use crate::input::population::TextColumn;

/// Members delivered per cohort and PCN, and persons left undelivered.
#[derive(Debug, Default)]
pub struct Delivered {
    /// cohort name -> PCN code -> members
    pub counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Cohort members with no PCN code, per cohort.
    pub without_pcn: BTreeMap<String, u64>,
}

/// Writes each PCN's folder of lists under `dir` (in the staging folder);
/// `shown` is where `dir` will be once the run is published, for errors.
pub fn write(
    results: &Results,
    dir: &Path,
    shown: &Path,
    info: &super::RunInfo,
) -> Result<Delivered> {
    let model = results.plan.model;
    let population = &results.plan.population;
    let pcn = TextColumn::new(population.column("pcn_code"));

    // Every PCN in the population gets a folder, whether or not it has members.
    let mut distinct = pcn.distinct();
    distinct.remove("");
    // Each a plain folder name, none differing from another only in case:
    // refused with the population (`input::population`).
    let mut pcns: Vec<&str> = distinct.into_iter().collect();
    pcns.sort_by_cached_key(|c| c.to_ascii_uppercase());

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
    // Cohorts with members on no PCN's list, counted or not.
    let mut undelivered: Vec<&str> = Vec::new();
    for (cohort, result) in model.cohorts.iter().zip(&results.cohorts) {
        let mut groups: BTreeMap<&str, Vec<u32>> = pcns.iter().map(|p| (*p, Vec::new())).collect();
        let mut missing = 0;
        for &m in &result.members {
            let code = pcn.get(m as usize).unwrap_or("");
            match groups.get_mut(code) {
                Some(g) => g.push(m),
                None => {
                    missing += u64::from(results.counted(m as usize));
                    if undelivered.last() != Some(&cohort.name.as_str()) {
                        undelivered.push(&cohort.name);
                    }
                }
            }
        }
        // The counts are aggregates: people with an opt-out are on the
        // lists for their care (direct care) but not in the counts.
        delivered.counts.insert(
            cohort.name.clone(),
            groups
                .iter()
                .filter(|(p, _)| delivered_to(cohort, p))
                .map(|(p, g)| {
                    let counted = g.iter().filter(|&&m| results.counted(m as usize)).count();
                    (p.to_string(), counted as u64)
                })
                .collect(),
        );
        delivered.without_pcn.insert(cohort.name.clone(), missing);
        by_pcn.push(groups);
    }
    // Said, not only counted in the manifest (where a small count is
    // suppressed): a practice missing from the population table, or given
    // no PCN there, leaves its patients off every list.
    if !undelivered.is_empty() {
        tracing::warn!(
            cohorts = %undelivered.join(", "),
            "some cohort members have no PCN (their practice has no pcn_code in the population table) and are on no PCN's list; see members_without_pcn in manifest.json"
        );
    }

    let ranks: Vec<ArrayRef> = results
        .cohorts
        .iter()
        .map(|c| std::sync::Arc::new(c.ranks().clone()) as ArrayRef)
        .collect();
    // With a previous run: whether each member is new to their PCN's list
    // of the cohort (null for a cohort the previous run did not have).
    let news: Vec<Option<ArrayRef>> = match &info.previous {
        None => vec![None; model.cohorts.len()],
        Some(previous) => {
            let rows = previous.rows();
            let ids = super::previous::ids_as_text(population.column("person_id").as_ref());
            model
                .cohorts
                .iter()
                .zip(&results.cohorts)
                .map(|(cohort, result)| {
                    let new: arrow_array::BooleanArray = ids
                        .iter()
                        .enumerate()
                        .map(|(i, id)| {
                            // New to this PCN's list: one who moved PCN is
                            // new to the list they joined.
                            let before = previous.member_at(
                                &cohort.name,
                                rows.get(id.as_str()).copied(),
                                pcn.get(i),
                            );
                            before.map(|b| result.flags.value(i) && !b)
                        })
                        .collect();
                    Some(std::sync::Arc::new(new) as ArrayRef)
                })
                .collect()
        }
    };
    let reasons: Vec<Reasons> = model
        .cohorts
        .iter()
        .map(|c| Reasons::new(model, c))
        .collect();
    pcns.par_iter().try_for_each(|code| -> Result<()> {
        let folder = dir.join(code);
        std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, "cannot create", e))?;
        let mut texts: Vec<Vec<String>> = Vec::new();
        let mut delivered_here: Vec<usize> = Vec::new();
        for (c, cohort) in model.cohorts.iter().enumerate() {
            if !delivered_to(cohort, code) {
                continue;
            }
            let members = &by_pcn[c][code];
            let why = reasons[c].texts(results, members);
            let path = folder.join(format!("{}.csv", cohort.name));
            let columns = list_columns(results, c, &ranks[c], news[c].as_ref());
            write_list(&columns, members, &why, &path)?;
            texts.push(why);
            delivered_here.push(c);
        }
        let sheets: Vec<packs::Sheet> = delivered_here
            .iter()
            .zip(&texts)
            .map(|(&c, why)| {
                let cohort = &model.cohorts[c];
                packs::Sheet {
                    name: &cohort.name,
                    title: &cohort.title,
                    definition: super::reasons::definition(model, cohort),
                    columns: list_columns(results, c, &ranks[c], news[c].as_ref()),
                    members: &by_pcn[c][code],
                    reasons: why,
                }
            })
            .collect();
        let cover = packs::Cover {
            pcn_code: code,
            pcn_name: info.pcn_names.get(*code).map(String::as_str),
            run_date: info.run_date,
            as_of: results.plan.as_of,
            models: model_list(model),
        };
        let file = format!("{code}.xlsx");
        let named = shown.join(code).join(&file);
        packs::write(&folder.join(&file), &named, &cover, &sheets)
    })?;
    Ok(delivered)
}

/// Each rule file's model: (name, title, version).
fn model_list(model: &crate::rules::Model) -> Vec<(String, String, Option<String>)> {
    model
        .files
        .iter()
        .map(|f| {
            (
                f.meta.name.clone(),
                f.meta.title.clone(),
                f.meta.version.clone(),
            )
        })
        .collect()
}

/// The columns of a cohort's list: rank, `new` (with a previous run),
/// person_id, then those the cohort's `columns` lists (by default
/// practice_code, age, sex and its reason features); nothing else from the
/// input.
fn list_columns<'r>(
    results: &'r Results,
    cohort: usize,
    rank: &'r ArrayRef,
    new: Option<&'r ArrayRef>,
) -> Vec<(&'r str, &'r ArrayRef)> {
    let model = results.plan.model;
    let population = &results.plan.population;
    let mut columns: Vec<(&str, &ArrayRef)> = vec![("rank", rank)];
    columns.extend(new.map(|n| ("new", n)));
    columns.push(("person_id", population.column("person_id")));
    let spec = &model.cohorts[cohort];
    let chosen: Vec<&str> = match &spec.columns {
        Some(listed) => listed.iter().map(|(n, _)| n.as_str()).collect(),
        None => crate::rules::PERSON_COLUMNS
            .into_iter()
            .chain(spec.reasons.iter().map(|(n, _)| n.as_str()))
            .collect(),
    };
    for name in chosen {
        let column = match name {
            "practice_code" => population.column("practice_code"),
            "age" => &results.slots[AGE_SLOT],
            "sex" => &results.slots[SEX_SLOT],
            _ => match model.feature_index(name) {
                Some(i) => results.feature(i),
                None => {
                    let a = results
                        .plan
                        .attributes
                        .iter()
                        .position(|a| a == name)
                        .expect("checked when loading: a feature, attribute or person column");
                    &results.slots[crate::engine::plan::FIRST_ATTRIBUTE_SLOT + a]
                }
            },
        };
        columns.push((name, column));
    }
    columns
}

/// One cohort list as CSV: its columns, then the reason in words.
fn write_list(
    columns: &[(&str, &ArrayRef)],
    members: &[u32],
    reasons: &[String],
    path: &Path,
) -> Result<()> {
    let options = FormatOptions::default();
    let formatters = columns
        .iter()
        .map(|(_, a)| ArrayFormatter::try_new(a.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Internal(format!("formatting {}: {e}", path.display())))?;

    let fail = |e: csv::Error| Error::io(path, "cannot write", super::csv_io(e));
    let mut writer = super::csv_writer(path).map_err(fail)?;
    writer
        .write_record(columns.iter().map(|(n, _)| *n).chain(["reason"]))
        .map_err(fail)?;
    // One text per column, written over for each member: no allocation
    // per value (these lists run to hundreds of thousands of rows).
    let mut record: Vec<String> = vec![String::new(); columns.len()];
    debug_assert_eq!(members.len(), reasons.len(), "a reason per member");
    for (&m, reason) in members.iter().zip(reasons) {
        for (text, f) in record.iter_mut().zip(&formatters) {
            text.clear();
            write!(text, "{}", f.value(m as usize))
                .map_err(|e| Error::Internal(format!("formatting {}: {e}", path.display())))?;
        }
        writer
            .write_record(record.iter().map(String::as_str).chain([reason.as_str()]))
            .map_err(fail)?;
    }
    writer
        .flush()
        .map_err(|e| Error::io(path, "cannot write", e))?;
    Ok(())
}

/// Whether PCN `code` receives `cohort`: every PCN, unless the cohort names
/// its PCNs.
fn delivered_to(cohort: &crate::rules::Cohort, code: &str) -> bool {
    cohort
        .pcns
        .as_ref()
        .is_none_or(|p| p.iter().any(|(c, _)| c == code))
}
