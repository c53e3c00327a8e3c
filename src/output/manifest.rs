//! `OUT/manifest.json`: what ran, on what, and with what result, so a BI team
//! can audit a run and a later run can be compared with it.
//!
//! Counts of people here are suppressed like every other aggregate output
//! (see [`super::suppress`]); counts of rows are exact.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::RunInfo;
use super::counts::{Counts, Shown};
use super::extracts::Delivered;
use super::publish::MANIFEST_MARKER;
use super::suppress::Suppression;
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
    /// True when the per-person values were computed elsewhere and read
    /// from a table (`strata publish`): the event tables were not read, so
    /// there are no rejected-row counts for them. The table is the last
    /// of `inputs`.
    pub computed_elsewhere: bool,
    /// Who is in the population on the as-of date: from the data's
    /// `registrations`, or everyone in the population table.
    pub registrations: &'static str,
    pub inputs: Vec<Input>,
    /// Optional tables the data folder lacks: their sources' features are
    /// null in this run.
    pub absent_optional_tables: Vec<AbsentTable>,
    /// PCN code -> name, from the optional `pcns` table.
    pub pcn_names: BTreeMap<String, String>,
    /// table or source -> reason -> rows (rows, not people: exact)
    pub rejected: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// table -> reason -> rows whose value was read as unknown (the rows
    /// kept): birth dates before 1900.
    pub read_as_unknown: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// The run's purpose and the opt-outs it applied.
    pub opt_outs: OptOutsInfo,
    /// People in the population, its cohorts and segments, suppressed.
    pub counts: Shown,
    /// The same counts, exact, for strata's own use; never written.
    #[serde(skip)]
    pub exact: Counts,
    #[serde(skip)]
    pub suppression: Suppression,
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

/// What the run's purpose did with opt-outs (counts of people suppressed).
#[derive(Debug, Clone, Serialize)]
pub struct OptOutsInfo {
    /// `direct_care` or `secondary_use`.
    pub purpose: &'static str,
    /// Where the purpose came from.
    pub purpose_from: &'static str,
    /// What each purpose does with opt-outs, in words.
    pub rule: &'static str,
    /// Whether the population table has each flag; an absent flag cannot be
    /// applied.
    pub type1_column: bool,
    pub national_data_opt_out_column: bool,
    /// People in the population on the as-of date with each opt-out.
    pub with_type1_opt_out: String,
    pub with_national_data_opt_out: String,
    /// People left out of the lists and patients.parquet.
    pub withheld_from_lists: String,
    /// People left out of every count and the report.
    pub withheld_from_counts: String,
}

impl OptOutsInfo {
    fn new(results: &Results, s: Suppression) -> OptOutsInfo {
        let o = &results.opt_outs;
        let alive = |flags: &arrow_array::BooleanArray| {
            (results.alive.values() & flags.values()).count_set_bits() as u64
        };
        let with = |flags: &Option<arrow_array::BooleanArray>| {
            flags
                .as_ref()
                .map_or("not known".to_string(), |f| s.count(alive(f)))
        };
        OptOutsInfo {
            purpose: o.purpose.name(),
            purpose_from: o.purpose_from,
            rule: match o.purpose {
                crate::rules::Purpose::DirectCare => {
                    "direct care (case finding for the patient's own practice or PCN): people with a type 1 opt-out are in no output; people with a National Data Opt-out stay on the lists but are left out of every count and the report"
                }
                crate::rules::Purpose::SecondaryUse => {
                    "secondary use: people with a type 1 or National Data Opt-out are left out of every output"
                }
            },
            type1_column: o.type1.is_some(),
            national_data_opt_out_column: o.national.is_some(),
            with_type1_opt_out: with(&o.type1),
            with_national_data_opt_out: with(&o.national),
            withheld_from_lists: s.count(alive(&o.withheld_from_lists)),
            withheld_from_counts: s.count(alive(&o.withheld_from_aggregates)),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RuleFileInfo {
    pub path: String,
    /// `bundled` (compiled into strata, `bundled:/...`) or `file` (read
    /// from disk).
    pub origin: &'static str,
    pub sha256: String,
}

#[derive(Debug, PartialEq, Serialize)]
pub struct Input {
    pub table: String,
    pub files: Vec<InputFile>,
}

#[derive(Debug, Serialize)]
pub struct AbsentTable {
    pub table: String,
    pub source: String,
}

#[derive(Debug, PartialEq, Serialize)]
pub struct InputFile {
    pub path: String,
    pub rows: u64,
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
        // Each table once, in the order first read: several sources read
        // one table (the eFI's seven measures read `observations`), and the
        // manifest and the report had listed it once per source.
        let mut inputs: Vec<Input> = Vec::new();
        for input in std::iter::once(&plan.population.table)
            .chain(&results.registrations)
            .chain(&info.pcns)
            .chain(plan.sources.iter().map(|s| &s.table))
            .chain(&results.computed_elsewhere)
            .map(table_input)
        {
            if !inputs.contains(&input) {
                inputs.push(input);
            }
        }

        let mut rejected = BTreeMap::new();
        rejected.insert(
            plan.population.table.name.clone(),
            plan.population.rejected.iter().copied().collect(),
        );
        for (source, counts) in &results.rejected {
            rejected.insert(source.clone(), counts.iter().copied().collect());
        }
        let read_as_unknown = BTreeMap::from([(
            plan.population.table.name.clone(),
            plan.population.read_as_unknown.iter().copied().collect(),
        )]);
        let exact = Counts::new(results, delivered);
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
                        origin: if crate::rules::bundled::is_bundled(&f.path) {
                            "bundled"
                        } else {
                            "file"
                        },
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
            computed_elsewhere: results.computed_elsewhere.is_some(),
            registrations: if results.registrations.is_some() {
                "applied: the people registered with a practice on the as-of date, each at that practice and its PCN"
            } else {
                "absent: everyone in the population table is taken as registered throughout, at the practice it gives"
            },
            inputs,
            absent_optional_tables: plan
                .absent
                .iter()
                .map(|a| AbsentTable {
                    table: a.table.clone(),
                    source: a.source.clone(),
                })
                .collect(),
            pcn_names: info.pcn_names.clone(),
            rejected,
            read_as_unknown,
            opt_outs: OptOutsInfo::new(results, info.suppression),
            counts: exact.shown(info.suppression),
            exact,
            suppression: info.suppression,
            timings_seconds: timings
                .iter()
                .map(|(s, d)| (s.to_string(), d.as_secs_f64()))
                .collect(),
        }
    }

    /// Input rows skipped for a problem in the data: every reason but
    /// events after the as-of date, which are not yet known rather than
    /// wrong, and registrations of people not in the population (people
    /// who have left it), which are normal. These are what `--strict`
    /// refuses and, but for the registrations, `OUT/rejects/` lists.
    pub fn skipped_rows(&self) -> u64 {
        self.rejected
            .iter()
            .flat_map(|(table, r)| {
                r.iter()
                    .filter(move |(k, _)| skipped_for_a_problem(table, k))
                    .map(|(_, n)| n)
            })
            .sum()
    }

    /// Input values read as unknown for a problem in the data (the rows
    /// kept): `--strict` refuses these too.
    pub fn values_read_as_unknown(&self) -> u64 {
        self.read_as_unknown.values().flat_map(|r| r.values()).sum()
    }

    /// Whether `OUT/rejects/` lists any row: every skipped row but the
    /// registrations' (counted only) and those after the as-of date.
    fn rows_in_rejects(&self) -> bool {
        self.rejected
            .iter()
            .filter(|(table, _)| table.as_str() != crate::input::REGISTRATIONS)
            .flat_map(|(table, r)| r.iter().map(move |(k, n)| (table, k, n)))
            .any(|(table, k, n)| skipped_for_a_problem(table, k) && *n > 0)
    }

    /// `summary.json` (and `strata run --json`): what a scheduler or a
    /// dashboard needs, with every count of people suppressed.
    pub fn summary_json(&self, out: &Path) -> String {
        let outputs = serde_json::json!({
            "folder": out.display().to_string(),
            "patients": out.join("patients.parquet").display().to_string(),
            "pcn_lists": out.join("pcn").display().to_string(),
            "manifest": out.join("manifest.json").display().to_string(),
            "summary": out.join("summary.json").display().to_string(),
            "report": out.join("report.html").display().to_string(),
            "rejects": self.rows_in_rejects().then(|| out.join("rejects").display().to_string()),
        });
        let summary = serde_json::json!({
            "strata_version": self.strata_version,
            "model": { "name": self.model.name, "title": self.model.title, "version": self.model.version },
            "as_of": self.as_of,
            "as_of_inferred": self.as_of_inferred,
            "counts": self.counts,
            "rejected_rows": self.rejected,
            "read_as_unknown": self.read_as_unknown,
            "absent_optional_tables": self.absent_optional_tables,
            "opt_outs": self.opt_outs,
            "timings_seconds": self.timings_seconds,
            "outputs": outputs,
        });
        serde_json::to_string_pretty(&summary).expect("plain values serialise")
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Internal(format!("serialising the manifest: {e}")))?;
        debug_assert!(json.contains(MANIFEST_MARKER));
        std::fs::write(path, json + "\n").map_err(|e| Error::io(path, "cannot write", e))
    }
}

/// Whether rows of `table` set aside for `reason` were skipped for a
/// problem in the data. Two reasons are not problems: events after the
/// as-of date (not yet known on it) and registrations of people no longer
/// in the population (people who have left it).
pub fn skipped_for_a_problem(table: &str, reason: &str) -> bool {
    reason != "after_as_of" && !(table == crate::input::REGISTRATIONS && reason == "unknown_person")
}
