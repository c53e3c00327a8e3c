//! Reading back a previous run's output folder: who was in each cohort and
//! segment, and with which rule files and parameters. Used by `strata run
//! --previous` (who is new on a list) and `strata diff`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result};

pub struct SavedRun {
    pub dir: PathBuf,
    pub manifest: serde_json::Value,
    /// Person ids as text, in the table's row order.
    pub ids: Vec<String>,
    pub pcn: Vec<Option<String>>,
    /// Alive on the run's as-of date, by row.
    pub alive: Vec<bool>,
    /// Counted in aggregates (alive, and no opt-out that leaves them out).
    pub counted: Vec<bool>,
    /// Cohort name -> member or not, by row.
    pub cohorts: BTreeMap<String, Vec<bool>>,
    /// Segmentation feature -> segment, by row.
    pub segments: BTreeMap<String, Vec<Option<String>>>,
}

impl SavedRun {
    pub fn open(dir: &Path) -> Result<SavedRun> {
        let manifest_path = dir.join("manifest.json");
        let not_output = || {
            Error::usage(format!("{} is not a strata output folder", dir.display()))
                .with_help("give the --out folder of an earlier `strata run` (it holds manifest.json and patients.parquet)")
        };
        let text = std::fs::read_to_string(&manifest_path).map_err(|_| not_output())?;
        let manifest: serde_json::Value = serde_json::from_str(&text).map_err(|_| not_output())?;
        if manifest["kind"] == "diff" {
            return Err(Error::usage(format!(
                "{} is the output of `strata diff`, not of a run",
                dir.display()
            ))
            .with_help("give the --out folder of an earlier `strata run` (it holds manifest.json and patients.parquet)"));
        }
        if manifest.get("counts").is_none() {
            return Err(not_output());
        }
        let names = |key: &str, field: &str| -> Vec<String> {
            manifest["counts"][key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c[field].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let cohort_names = names("cohorts", "name");
        let segment_names = names("segments", "feature");

        let path = dir.join("patients.parquet");
        let fail = |e: &dyn std::fmt::Display| {
            Error::data(
                &path,
                format!("cannot read the previous run's patients: {e}"),
            )
            .with_help("the previous output may be incomplete; give another --previous folder")
        };
        let file = std::fs::File::open(&path).map_err(|e| fail(&e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| fail(&e))?;
        let mut run = SavedRun {
            dir: dir.to_path_buf(),
            manifest,
            ids: Vec::new(),
            pcn: Vec::new(),
            alive: Vec::new(),
            counted: Vec::new(),
            cohorts: cohort_names
                .iter()
                .map(|n| (n.clone(), Vec::new()))
                .collect(),
            segments: segment_names
                .iter()
                .map(|n| (n.clone(), Vec::new()))
                .collect(),
        };
        for batch in reader {
            let batch: RecordBatch = batch.map_err(|e| fail(&e))?;
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .ok_or_else(|| fail(&format!("no column `{name}`")))
            };
            let ids = column("person_id")?;
            let options = FormatOptions::default();
            let ids = ArrayFormatter::try_new(ids.as_ref(), &options).map_err(|e| fail(&e))?;
            run.ids
                .extend((0..batch.num_rows()).map(|r| ids.value(r).to_string()));
            // Plain or dictionary-encoded text, as the run wrote it.
            let pcn = arrow_cast::cast(column("pcn_code")?, &arrow_schema::DataType::Utf8)
                .map_err(|e| fail(&e))?;
            // A PCN code names a folder `strata diff` writes: one a run
            // would not have written (`..`, a path) is refused.
            if let Some(bad) = pcn
                .as_string::<i32>()
                .iter()
                .flatten()
                .find(|p| !p.is_empty() && !crate::input::population::is_plain_code(p))
            {
                return Err(fail(&format!(
                    "pcn_code `{bad}` is not one a run writes (letters, digits, `_` or `-`)"
                )));
            }
            run.pcn
                .extend(pcn.as_string::<i32>().iter().map(|p| p.map(str::to_string)));
            let alive = column("alive")?;
            run.alive
                .extend(alive.as_boolean().iter().map(|a| a == Some(true)));
            // Runs before opt-outs had no `counted`: everyone alive counted.
            match batch.column_by_name("counted") {
                Some(c) => run
                    .counted
                    .extend(c.as_boolean().iter().map(|a| a == Some(true))),
                None => run
                    .counted
                    .extend(alive.as_boolean().iter().map(|a| a == Some(true))),
            }
            for (name, flags) in &mut run.cohorts {
                let c = column(name)?;
                flags.extend(c.as_boolean().iter().map(|f| f == Some(true)));
            }
            for (name, segments) in &mut run.segments {
                let c = column(name)?;
                segments.extend(c.as_string::<i32>().iter().map(|s| s.map(str::to_string)));
            }
        }
        Ok(run)
    }

    /// Row of each person id.
    pub fn rows(&self) -> HashMap<&str, usize> {
        self.ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect()
    }

    /// The purpose the run was made for (runs before purposes existed kept
    /// everyone, as direct care's lists do).
    pub fn purpose(&self) -> &str {
        self.manifest["opt_outs"]["purpose"]
            .as_str()
            .unwrap_or("direct_care")
    }

    /// The rule files the run read, as (path, SHA-256), sorted by hash.
    pub fn rule_files(&self) -> Vec<(String, String)> {
        let mut files: Vec<(String, String)> = self.manifest["model"]["files"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| {
                        (
                            f["path"].as_str().unwrap_or("").to_string(),
                            f["sha256"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort_by(|a, b| a.1.cmp(&b.1));
        files
    }

    pub fn as_of(&self) -> &str {
        self.manifest["as_of"].as_str().unwrap_or("?")
    }

    /// Is person row `row` in a cohort that this run also has? `None` for a
    /// cohort the run did not have.
    pub fn member(&self, cohort: &str, row: Option<usize>) -> Option<bool> {
        let flags = self.cohorts.get(cohort)?;
        Some(row.is_some_and(|r| flags[r]))
    }

    /// [`SavedRun::member`] of `pcn`'s list: in the cohort at that PCN (a
    /// person who moved PCN is new to the one they joined and has left the
    /// other's list, though still in the cohort).
    pub fn member_at(&self, cohort: &str, row: Option<usize>, pcn: Option<&str>) -> Option<bool> {
        let member = self.member(cohort, row)?;
        Some(member && row.is_some_and(|r| self.pcn[r].as_deref() == pcn))
    }

    /// The number of person rows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Person ids of `column` formatted as text, as [`SavedRun::ids`] are.
pub fn ids_as_text(column: &dyn Array) -> Vec<String> {
    let options = FormatOptions::default();
    match ArrayFormatter::try_new(column, &options) {
        Ok(f) => (0..column.len()).map(|r| f.value(r).to_string()).collect(),
        Err(_) => vec![String::new(); column.len()],
    }
}
