//! `strata diff PREV NEW`: what changed between two runs. Per cohort and
//! PCN, who entered and who left; per segmentation, how many moved from
//! each segment to each other; and which parameters differ.
//!
//! Runs made with different rule files are refused unless asked for, since
//! their differences would mix changes in people with changes in
//! definitions. Counts printed or written as summaries are suppressed like
//! every aggregate output; the lists of who entered and left are
//! patient-level and go to each PCN's own folder.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{Field, Schema};

use crate::error::{Error, Result};
use crate::output::parquet::writer_properties;
use crate::output::previous::SavedRun;
use crate::output::publish::{Kind, MANIFEST_MARKER, Staging};
use crate::output::suppress::Suppression;
use crate::output::write_csv;

/// One person entering or leaving one cohort.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub cohort: String,
    /// The PCN of the run where the person was a member: the new run for
    /// entrants, the previous one for leavers.
    pub pcn: String,
    pub person_id: String,
    /// `entered` or `left`.
    pub change: &'static str,
    /// Whether the change counts in aggregates (false for a person with an
    /// opt-out whom a direct-care run keeps on its lists).
    pub counted: bool,
}

pub struct Diff {
    pub changes: Vec<Change>,
    /// Cohorts in only one of the runs: (name, "previous" or "new").
    pub unmatched_cohorts: Vec<(String, &'static str)>,
    /// feature -> (from, to) -> persons alive in either run. `(none)` for
    /// a person not alive (or not registered) in one of them.
    pub transitions: BTreeMap<String, BTreeMap<(String, String), u64>>,
    /// Parameters whose values differ: (name, previous, new).
    pub params: Vec<(String, String, String)>,
    /// (cohort, PCN) -> members of the previous list whom it counted and
    /// who have no row in the new run at all. They are not named: a
    /// person withheld by an opt-out made since has no row, as has one
    /// gone from the extract, and the two cannot be told apart.
    pub gone: BTreeMap<(String, String), u64>,
}

pub fn compare(old: &SavedRun, new: &SavedRun, allow_different_rules: bool) -> Result<Diff> {
    let (a, b) = (old.rule_files(), new.rule_files());
    let hashes = |f: &[(String, String)]| f.iter().map(|(_, h)| h.clone()).collect::<Vec<_>>();
    if hashes(&a) != hashes(&b) && !allow_different_rules {
        let list = |f: &[(String, String)]| {
            f.iter()
                .map(|(p, h)| format!("{p} ({})", &h[..h.len().min(12)]))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(Error::usage(format!(
            "the runs used different rule files: {} read {}; {} read {}",
            old.dir.display(),
            list(&a),
            new.dir.display(),
            list(&b)
        ))
        .with_help("compare runs of the same rule files, or add --allow-different-rules to compare them anyway"));
    }

    if old.purpose() != new.purpose() && !allow_different_rules {
        return Err(Error::usage(format!(
            "the runs had different purposes: {} was {}, {} was {}; people with an opt-out would show as entering or leaving",
            old.dir.display(),
            old.purpose(),
            new.dir.display(),
            new.purpose()
        ))
        .with_help("compare runs made for the same purpose, or add --allow-different-rules to compare them anyway"));
    }
    let old_rows = old.rows();
    let new_rows = new.rows();
    let mut changes = Vec::new();
    let mut gone: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut unmatched = Vec::new();
    for (cohort, flags) in &new.cohorts {
        if !old.cohorts.contains_key(cohort) {
            unmatched.push((cohort.clone(), "new"));
            continue;
        }
        for (i, id) in new.ids.iter().enumerate() {
            let before = old_rows.get(id.as_str()).copied();
            if flags[i] && old.member_at(cohort, before, new.pcn[i].as_deref()) != Some(true) {
                changes.push(Change {
                    cohort: cohort.clone(),
                    pcn: new.pcn[i].clone().unwrap_or_default(),
                    person_id: id.clone(),
                    change: "entered",
                    counted: new.counted[i],
                });
            }
        }
        for (j, id) in old.ids.iter().enumerate() {
            if !old.cohorts[cohort][j] {
                continue;
            }
            let Some(&row) = new_rows.get(id.as_str()) else {
                if old.counted[j] {
                    let pcn = old.pcn[j].clone().unwrap_or_default();
                    *gone.entry((cohort.clone(), pcn)).or_default() += 1;
                }
                continue;
            };
            if new.member_at(cohort, Some(row), old.pcn[j].as_deref()) != Some(true) {
                changes.push(Change {
                    cohort: cohort.clone(),
                    pcn: old.pcn[j].clone().unwrap_or_default(),
                    person_id: id.clone(),
                    change: "left",
                    counted: old.counted[j],
                });
            }
        }
    }
    for cohort in old.cohorts.keys() {
        if !new.cohorts.contains_key(cohort) {
            unmatched.push((cohort.clone(), "previous"));
        }
    }
    changes.sort();

    let none = "(none)".to_string();
    let mut transitions = BTreeMap::new();
    for (feature, to) in &new.segments {
        let Some(from) = old.segments.get(feature) else {
            continue;
        };
        let mut matrix: BTreeMap<(String, String), u64> = BTreeMap::new();
        let segment = |run: &SavedRun, segments: &[Option<String>], row: Option<usize>| {
            row.filter(|&r| run.counted[r])
                .and_then(|r| segments[r].clone())
                .unwrap_or_else(|| none.clone())
        };
        for (i, id) in new.ids.iter().enumerate() {
            let before = segment(old, from, old_rows.get(id.as_str()).copied());
            let after = segment(new, to, Some(i));
            if before != none || after != none {
                *matrix.entry((before, after)).or_default() += 1;
            }
        }
        for (j, id) in old.ids.iter().enumerate() {
            let before = segment(old, from, Some(j));
            if !new_rows.contains_key(id.as_str()) && before != none {
                *matrix.entry((before, none.clone())).or_default() += 1;
            }
        }
        transitions.insert(feature.clone(), matrix);
    }

    let empty = serde_json::Map::new();
    let (pa, pb) = (
        old.manifest["params"].as_object().unwrap_or(&empty),
        new.manifest["params"].as_object().unwrap_or(&empty),
    );
    let mut params = Vec::new();
    for name in pa.keys().chain(pb.keys().filter(|k| !pa.contains_key(*k))) {
        let (x, y) = (pa.get(name), pb.get(name));
        if x != y {
            let shown =
                |v: Option<&serde_json::Value>| v.map_or("-".to_string(), |v| v.to_string());
            params.push((name.clone(), shown(x), shown(y)));
        }
    }
    Ok(Diff {
        changes,
        unmatched_cohorts: unmatched,
        transitions,
        params,
        gone,
    })
}

impl Diff {
    /// Entered, left and gone from the data ([`Diff::gone`]) per cohort
    /// and PCN (exact).
    pub fn counts(&self) -> BTreeMap<(&str, &str), (u64, u64, u64)> {
        let mut counts: BTreeMap<(&str, &str), (u64, u64, u64)> = BTreeMap::new();
        for c in self.changes.iter().filter(|c| c.counted) {
            let e = counts.entry((&c.cohort, &c.pcn)).or_default();
            if c.change == "entered" {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        for ((cohort, pcn), n) in &self.gone {
            counts.entry((cohort, pcn)).or_default().2 += n;
        }
        counts
    }

    /// The printed report, every count suppressed.
    pub fn render(&self, old: &SavedRun, new: &SavedRun, s: Suppression) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "strata diff: {} (as of {}) -> {} (as of {})",
            old.dir.display(),
            old.as_of(),
            new.dir.display(),
            new.as_of()
        );
        for (name, a, b) in &self.params {
            let _ = writeln!(out, "parameter {name}: {a} -> {b}");
        }
        for (name, run) in &self.unmatched_cohorts {
            let _ = writeln!(out, "cohort {name} is only in the {run} run: not compared");
        }
        let counts = self.counts();
        let mut totals: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
        for ((cohort, _), (e, l, g)) in &counts {
            let t = totals.entry(cohort).or_default();
            t.0 += e;
            t.1 += l;
            t.2 += g;
        }
        let _ = writeln!(
            out,
            "\n{:30} {:>8} {:>8} {:>8}",
            "cohort / PCN", "entered", "left", "gone"
        );
        let row = |(e, l, g): (u64, u64, u64)| {
            format!("{:>8} {:>8} {:>8}", s.count(e), s.count(l), s.count(g))
        };
        for (cohort, t) in &totals {
            let _ = writeln!(out, "{cohort:30} {}", row(*t));
            for ((c, pcn), n) in &counts {
                if c == cohort {
                    let pcn = if pcn.is_empty() { "(no PCN)" } else { pcn };
                    let _ = writeln!(out, "  {pcn:28} {}", row(*n));
                }
            }
        }
        if totals.is_empty() {
            let _ = writeln!(out, "(no one entered or left a cohort)");
        } else if totals.values().any(|t| t.2 > 0) {
            let _ = writeln!(
                out,
                "(gone: on the previous list and in no row of the new run, an opt-out since or \
                 gone from the extract; counted, not named)"
            );
        }
        for (feature, matrix) in &self.transitions {
            let _ = writeln!(out, "\n{feature}: from (rows) -> to (columns)");
            let mut names: Vec<&String> = matrix.keys().flat_map(|(a, b)| [a, b]).collect();
            names.sort();
            names.dedup();
            let width = names.iter().map(|n| n.len()).max().unwrap_or(4).max(4);
            let _ = write!(out, "{:width$}", "");
            for n in &names {
                let _ = write!(out, " {n:>width$}");
            }
            let _ = writeln!(out);
            for from in &names {
                let _ = write!(out, "{from:width$}");
                for to in &names {
                    let n = matrix
                        .get(&((*from).clone(), (*to).clone()))
                        .copied()
                        .unwrap_or(0);
                    let _ = write!(out, " {:>width$}", s.count(n));
                }
                let _ = writeln!(out);
            }
        }
        let _ = writeln!(out, "\nCounts: {}.", s.method());
        out
    }

    /// Writes `changes.parquet` (every change), `pcn/<PCN>/changes.csv`
    /// (each PCN's own), `summary.csv` and `transitions.csv` (suppressed)
    /// and a manifest, published atomically at `out`.
    pub fn write(&self, old: &SavedRun, new: &SavedRun, out: &Path, s: Suppression) -> Result<()> {
        let staging = Staging::new(out, Kind::Diff)?;
        let dir = &staging.dir;
        let column = |f: fn(&Change) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(self.changes.iter().map(f)))
        };
        let columns = [
            ("cohort", column(|c| &c.cohort)),
            ("pcn_code", column(|c| &c.pcn)),
            ("person_id", column(|c| &c.person_id)),
            ("change", column(|c| c.change)),
        ];
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), false))
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(
            schema.clone(),
            columns.iter().map(|(_, a)| a.clone()).collect(),
        )
        .map_err(|e| Error::Internal(format!("building the changes table: {e}")))?;
        let path = dir.join("changes.parquet");
        let file =
            std::fs::File::create(&path).map_err(|e| Error::io(&path, "cannot create", e))?;
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, schema, Some(writer_properties().build()))
                .map_err(|e| Error::Internal(format!("writing {}: {e}", path.display())))?;
        writer
            .write(&batch)
            .and_then(|_| writer.close().map(|_| ()))
            .map_err(|e| Error::io(&path, "cannot write", crate::output::parquet::parquet_io(e)))?;

        let mut by_pcn: BTreeMap<&str, Vec<&Change>> = BTreeMap::new();
        for c in &self.changes {
            if !c.pcn.is_empty() {
                by_pcn.entry(&c.pcn).or_default().push(c);
            }
        }
        for (pcn, changes) in by_pcn {
            let folder = dir.join("pcn").join(pcn);
            std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, "cannot create", e))?;
            write_csv(
                &folder.join("changes.csv"),
                &["cohort", "person_id", "change"],
                changes
                    .iter()
                    .map(|c| [c.cohort.as_str(), &c.person_id, c.change]),
            )?;
        }
        write_csv(
            &dir.join("summary.csv"),
            &["cohort", "pcn_code", "entered", "left", "gone"],
            self.counts().into_iter().map(|((cohort, pcn), (e, l, g))| {
                [
                    cohort.to_string(),
                    pcn.to_string(),
                    s.count(e),
                    s.count(l),
                    s.count(g),
                ]
            }),
        )?;
        write_csv(
            &dir.join("transitions.csv"),
            &["feature", "from", "to", "persons"],
            self.transitions.iter().flat_map(|(feature, matrix)| {
                matrix.iter().map(move |((from, to), n)| {
                    [feature.clone(), from.clone(), to.clone(), s.count(*n)]
                })
            }),
        )?;

        let manifest = serde_json::json!({
            MANIFEST_MARKER: env!("CARGO_PKG_VERSION"),
            "kind": "diff",
            "previous": { "folder": old.dir.display().to_string(), "as_of": old.as_of() },
            "new": { "folder": new.dir.display().to_string(), "as_of": new.as_of() },
            "parameters_changed": self.params.iter().map(|(n, a, b)| serde_json::json!({"name": n, "previous": a, "new": b})).collect::<Vec<_>>(),
            "counts": { "suppression": s.method() },
        });
        let path = dir.join("manifest.json");
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&manifest).expect("plain values") + "\n",
        )
        .map_err(|e| Error::io(&path, "cannot write", e))?;
        staging.commit()
    }
}
