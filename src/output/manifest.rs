//! `OUT/manifest.json`: what ran, on what, and with what result, so a BI team
//! can audit a run and a later run can be compared with it.
//!
//! Counts here are exact: the manifest sits beside patient-level output and
//! is for the team that owns that output. Summaries shown elsewhere (the
//! terminal) are suppressed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::RunInfo;
use super::extracts::Delivered;
use super::publish::MANIFEST_MARKER;
use crate::engine::Results;
use crate::error::{Error, Result};
use crate::rules::expr::Literal;

#[derive(Debug, Serialize)]
pub struct Manifest {
    pub strata_version: &'static str,
    pub model: ModelInfo,
    pub as_of: String,
    pub as_of_inferred: bool,
    /// Every parameter's value in this run, and those set on the command line.
    pub params: BTreeMap<String, serde_json::Value>,
    pub params_overridden: Vec<String>,
    pub data: String,
    pub threads: usize,
    pub inputs: Vec<Input>,
    /// PCN code -> name, from the optional `pcns` table.
    pub pcn_names: BTreeMap<String, String>,
    pub persons: u64,
    pub alive: u64,
    /// table or source -> reason -> rows
    pub rejected: BTreeMap<String, BTreeMap<&'static str, u64>>,
    pub cohorts: Vec<CohortCount>,
    /// Persons alive on the as-of date in each segment of each segmentation.
    pub segments: Vec<SegmentCount>,
    /// stage -> seconds
    pub timings_seconds: Vec<(String, f64)>,
}

#[derive(Debug, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub title: String,
    pub version: Option<String>,
    /// Every rule file the model was read from, with its SHA-256.
    pub files: Vec<RuleFileInfo>,
}

#[derive(Debug, Serialize)]
pub struct RuleFileInfo {
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Serialize)]
pub struct Input {
    pub table: String,
    pub files: Vec<InputFile>,
}

#[derive(Debug, Serialize)]
pub struct InputFile {
    pub path: String,
    pub rows: u64,
}

#[derive(Debug, Serialize)]
pub struct CohortCount {
    pub name: String,
    pub title: String,
    pub members: u64,
    pub by_pcn: BTreeMap<String, u64>,
    pub members_without_pcn: u64,
}

#[derive(Debug, Serialize)]
pub struct SegmentCount {
    /// The segmentation feature.
    pub feature: String,
    /// Segment name -> alive persons, in priority order, the default last.
    pub counts: Vec<(String, u64)>,
}

/// Alive persons per segment of every segmentation feature.
fn segment_counts(results: &Results) -> Vec<SegmentCount> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    let model = results.plan.model;
    model
        .features
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let crate::rules::FeatureKind::Segments { segments, default } = &f.kind else {
                return None;
            };
            let column = results.feature(i).as_string::<i32>();
            let mut counts: Vec<(String, u64)> = segments
                .iter()
                .map(|s| s.name.clone())
                .chain(std::iter::once(default.clone()))
                .map(|n| (n, 0))
                .collect();
            for row in 0..column.len() {
                if !results.alive.value(row) || column.is_null(row) {
                    continue;
                }
                let name = column.value(row);
                if let Some(c) = counts.iter_mut().find(|(n, _)| n == name) {
                    c.1 += 1;
                }
            }
            Some(SegmentCount {
                feature: f.name.clone(),
                counts,
            })
        })
        .collect()
}

fn literal_json(v: &Literal) -> serde_json::Value {
    match v {
        Literal::Int(i) => (*i).into(),
        Literal::Float(f) => (*f).into(),
        Literal::Bool(b) => (*b).into(),
        Literal::Str(s) => s.clone().into(),
        Literal::Date(d) => d.to_string().into(),
        Literal::Null => serde_json::Value::Null,
    }
}

impl Manifest {
    pub fn new(
        results: &Results,
        info: &RunInfo,
        delivered: &Delivered,
        timings: &[(&'static str, Duration)],
    ) -> Manifest {
        let plan = &results.plan;
        let model = plan.model;
        let table_input = |t: &crate::input::Table| Input {
            table: t.name.clone(),
            files: t
                .parts
                .iter()
                .map(|p| InputFile {
                    path: p.path.display().to_string(),
                    rows: p.rows(),
                })
                .collect(),
        };
        let mut inputs = vec![table_input(&plan.population.table)];
        inputs.extend(plan.sources.iter().map(|s| table_input(&s.table)));

        let mut rejected = BTreeMap::new();
        rejected.insert(
            plan.population.table.name.clone(),
            plan.population.rejected.iter().copied().collect(),
        );
        for (source, counts) in &results.rejected {
            rejected.insert(source.clone(), counts.iter().copied().collect());
        }
        let cohorts = model
            .cohorts
            .iter()
            .zip(&results.cohorts)
            .map(|(c, r)| CohortCount {
                name: c.name.clone(),
                title: c.title.clone(),
                members: r.members.len() as u64,
                by_pcn: delivered.counts.get(&c.name).cloned().unwrap_or_default(),
                members_without_pcn: delivered.without_pcn.get(&c.name).copied().unwrap_or(0),
            })
            .collect();
        Manifest {
            strata_version: env!("CARGO_PKG_VERSION"),
            model: ModelInfo {
                name: model.meta.name.clone(),
                title: model.meta.title.clone(),
                version: model.meta.version.clone(),
                files: model
                    .files
                    .iter()
                    .map(|f| RuleFileInfo {
                        path: f.path.display().to_string(),
                        sha256: f.sha256.clone(),
                    })
                    .collect(),
            },
            as_of: plan.as_of.to_string(),
            params: model
                .params
                .iter()
                .map(|(n, v)| (n.clone(), literal_json(v)))
                .collect(),
            params_overridden: model.overridden.clone(),
            as_of_inferred: plan.as_of_inferred,
            data: info.data.display().to_string(),
            threads: info.threads,
            inputs,
            pcn_names: info.pcn_names.clone(),
            persons: plan.population.len() as u64,
            alive: results.alive.true_count() as u64,
            rejected,
            cohorts,
            segments: segment_counts(results),
            timings_seconds: timings
                .iter()
                .map(|(s, d)| (s.to_string(), d.as_secs_f64()))
                .collect(),
        }
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Internal(format!("serialising the manifest: {e}")))?;
        debug_assert!(json.contains(MANIFEST_MARKER));
        std::fs::write(path, json + "\n").map_err(|e| Error::io(path, "cannot write", e))
    }
}
