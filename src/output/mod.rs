//! Writing a run's results: the per-person Parquet table, one folder of
//! cohort lists per PCN, and the manifest, all published atomically.
//!
//! Layout of `OUT/`:
//! - `patients.parquet`: one row per person, every feature, cohort flag and rank;
//! - `pcn/<PCN_CODE>/<cohort>.csv`: that PCN's members of each cohort, ranked;
//! - `manifest.json`: what ran, on what, with what result;
//! - `summary.json`: the counts (suppressed) and facts a scheduler needs;
//! - `report.html`: charts of the cohorts for people (suppressed);
//! - `rejects/<source>.csv`: rows skipped for problems in the data.

pub mod counts;
pub mod extracts;
pub mod manifest;
pub mod packs;
pub mod parquet;
pub mod patients;
pub mod previous;
pub mod publish;
pub mod reasons;
pub mod report;
// Suppression lives below the rule language, which names a method in
// `[output]`; outputs reach it here as before.
pub use crate::suppress;

use std::path::Path;
use std::time::Instant;

use crate::engine::Results;
use crate::error::Result;

/// What the caller knows about the run that the results don't.
pub struct RunInfo<'a> {
    pub data: &'a Path,
    pub threads: usize,
    pub pcn_names: std::collections::BTreeMap<String, String>,
    /// The `pcns` table the names were read from, if the data has one.
    pub pcns: Option<crate::input::Table>,
    pub suppression: suppress::Suppression,
    /// The date the run was made, for cover sheets.
    pub run_date: chrono::NaiveDate,
    /// A previous run to mark who is new on each list (`--previous`).
    pub previous: Option<previous::SavedRun>,
    /// Where to show progress (nowhere when not on a terminal).
    pub progress: &'a dyn crate::engine::Progress,
}

/// Per feature: whether an output other than `patients.parquet` reads its
/// column once the run is done, so that the run must hold it
/// ([`crate::engine::Sink`]): the lists' columns (those a cohort names, or
/// its reasons), the reasons' words, the report's banded scores and the
/// counts' segments. `patients.parquet` has every column as it is made.
pub fn features_read(model: &crate::rules::Model) -> Vec<bool> {
    let mut read = vec![false; model.features.len()];
    let mut mark = |name: &str| {
        if let Some(i) = model.feature_index(name) {
            read[i] = true;
        }
    };
    for cohort in &model.cohorts {
        // `extracts::columns`, `reasons::Reasons`.
        let listed = cohort.columns.iter().flatten();
        for (name, _) in listed.chain(&cohort.reasons) {
            mark(name);
        }
    }
    for feature in &model.features {
        // `report::score_distributions`: the score, evaluated again.
        if let Some(banding) = &feature.banding {
            for (name, _) in banding.score.expr.names() {
                mark(name);
            }
        }
        // `counts::segment_counts`.
        if matches!(feature.kind, crate::rules::FeatureKind::Segments { .. }) {
            mark(&feature.name);
        }
    }
    read
}

/// Runs one output stage under a spinner (where progress is shown).
fn staged<T>(info: &RunInfo, label: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let spinner = info.progress.stage(label);
    let out = f();
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    out
}

/// Writes every output into a staging folder and publishes it at `out`.
/// Returns the manifest that was written.
/// `patients`: the table the run handed its columns to as it made them
/// (`strata run`), or a new one (`strata publish`).
pub fn write(
    results: &Results,
    out: &Path,
    info: &RunInfo,
    patients: patients::Table,
) -> Result<manifest::Manifest> {
    let staging = publish::Staging::new(out, publish::Kind::Run)?;
    let mut timings = results.timings.clone();
    // `patients.parquet` and the PCN lists read the same results and
    // write different files, so they are written side by side: each has
    // stretches on one core (appending a row group's columns; a PCN's
    // workbook) that the other fills. Each is timed separately, so the two
    // times overlap in wall-clock time. Where both fail, the table's error
    // is told, as when the lists came second.
    let (written, delivered) = staged(info, "writing patients.parquet and the PCN lists", || {
        let (patients, lists) = rayon::join(
            || {
                let started = Instant::now();
                patients
                    .write(results, &staging.dir.join("patients.parquet"))
                    .map(|()| started.elapsed())
            },
            || -> Result<_> {
                let started = Instant::now();
                let delivered =
                    extracts::write(results, &staging.dir.join("pcn"), &out.join("pcn"), info)?;
                write_rejects(results, &staging.dir.join("rejects"))?;
                Ok((delivered, started.elapsed()))
            },
        );
        Ok((patients?, lists?))
    })?;
    let (delivered, lists_time) = delivered;
    timings.push(("write patients.parquet", written));
    timings.push(("write PCN lists and rejects", lists_time));
    let mut manifest = manifest::Manifest::new(results, info, &delivered, &timings);
    let started = Instant::now();
    let report = staging.dir.join("report.html");
    staged(info, "writing the report", || {
        std::fs::write(&report, report::render(results, &manifest))
            .map_err(|e| crate::error::Error::io(&report, "cannot write", e))
    })?;
    // The report's own time is in the manifest and summary, not the report.
    manifest
        .timings_seconds
        .push(("write report".to_string(), started.elapsed().as_secs_f64()));
    manifest.write(&staging.dir.join("manifest.json"))?;
    let summary = staging.dir.join("summary.json");
    std::fs::write(&summary, manifest.summary_json(out) + "\n")
        .map_err(|e| crate::error::Error::io(&summary, "cannot write", e))?;
    staging.commit()?;
    Ok(manifest)
}

/// A CSV file as RFC 4180 has it (UTF-8, CRLF line ends, fields quoted
/// where needed), for every CSV strata writes: the systems that import
/// lists expect the standard, and Excel reads it too. Every field goes
/// through [`excel_safe`], so nothing written can run as a formula.
pub fn csv_writer(path: &Path) -> csv::Result<SafeCsv> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_path(path)
        .map(SafeCsv)
}

/// A CSV writer whose fields cannot be read by a spreadsheet as formulas.
pub struct SafeCsv(csv::Writer<std::fs::File>);

impl SafeCsv {
    pub fn write_record<I, T>(&mut self, record: I) -> csv::Result<()>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        // Field by field: a field that needs no apostrophe (nearly all) is
        // written from where it is, not copied first.
        for field in record {
            self.0.write_field(excel_safe(field.as_ref()).as_bytes())?;
        }
        self.0.write_record(std::iter::empty::<&[u8]>())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// A field as a spreadsheet must read it: text that Excel (or LibreOffice,
/// Google Sheets) would take as a formula, because it starts with `=`, `+`,
/// `-`, `@`, a tab or a carriage return (after any spaces, line feeds or
/// NULs, which some readers drop), gets a leading apostrophe, as OWASP's
/// advice on CSV injection has it. A number (`-3`, `+1.5`) is left as it
/// is: it cannot run, and lists carry negative values.
pub fn excel_safe(field: &str) -> std::borrow::Cow<'_, str> {
    let start = field.trim_start_matches([' ', '\n', '\0']);
    let risky = start.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let number = {
        let t = start.trim();
        t.bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
            && t.parse::<f64>().is_ok()
    };
    if risky && !number {
        std::borrow::Cow::Owned(format!("'{field}"))
    } else {
        std::borrow::Cow::Borrowed(field)
    }
}

/// A CSV error as the I/O error it is (so a full disk is told as one), or
/// wrapped.
pub fn csv_io(e: csv::Error) -> std::io::Error {
    if e.is_io_error() {
        match e.into_kind() {
            csv::ErrorKind::Io(io) => io,
            _ => unreachable!("is_io_error"),
        }
    } else {
        std::io::Error::other(e)
    }
}

/// Writes a small table to `path` as CSV through [`csv_writer`]: `header`,
/// then one record per row. A failure names the file.
pub fn write_csv<R, T>(
    path: &Path,
    header: &[&str],
    rows: impl IntoIterator<Item = R>,
) -> Result<()>
where
    R: IntoIterator<Item = T>,
    T: AsRef<str>,
{
    let fail = |e: csv::Error| crate::error::Error::io(path, "cannot write", csv_io(e));
    let mut w = csv_writer(path).map_err(fail)?;
    w.write_record(header).map_err(fail)?;
    for row in rows {
        w.write_record(row).map_err(fail)?;
    }
    w.flush()
        .map_err(|e| crate::error::Error::io(path, "cannot write", e))
}

/// `OUT/rejects/<source>.csv` (and `<population table>.csv`): the rows each
/// source skipped (up to [`crate::input::REJECTS_KEPT`] per source, in file
/// order), with the reason and where each is, so the extract can be fixed.
/// Written only for tables that skipped rows; patient-level, like
/// `patients.parquet`.
fn write_rejects(results: &Results, dir: &Path) -> Result<()> {
    let population = &results.plan.population;
    let tables = std::iter::once((
        &population.table.name,
        &population.table,
        &population.rejected_rows,
    ))
    .chain(
        results
            .rejected_rows
            .iter()
            .zip(&results.plan.sources)
            .map(|((name, rows), source)| (name, &source.table, rows)),
    );
    for (name, table, rows) in tables {
        if rows.is_empty() {
            continue;
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| crate::error::Error::io(dir, "cannot create", e))?;
        // A row of a person the purpose withholds (an opt-out) is not
        // written: its person id would put them in an output.
        let withheld = |row: u32| results.opt_outs.withheld_from_lists.value(row as usize);
        let records = rows
            .iter()
            .filter(|r| !r.person.is_some_and(withheld))
            .map(|r| {
                let date = r
                    .date
                    .and_then(crate::dates::from_day)
                    .map_or(String::new(), |d| d.to_string());
                [
                    r.reason.to_string(),
                    table.parts[r.part].path.display().to_string(),
                    r.row_group.to_string(),
                    r.row.to_string(),
                    r.person_id.clone().unwrap_or_default(),
                    date,
                ]
            });
        write_csv(
            &dir.join(format!("{name}.csv")),
            &["reason", "file", "row_group", "row", "person_id", "date"],
            records,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::excel_safe;

    #[test]
    fn text_a_spreadsheet_would_run_gets_an_apostrophe_and_numbers_do_not() {
        for risky in [
            "=HYPERLINK(\"http://x\")",
            "+cmd",
            "-2+3",
            "@SUM(A1)",
            "\t=1",
            "\r=1",
            "  =1",
            "\n=1+2",
            "\0=1",
            " \n @A1",
            "-inf",
        ] {
            assert_eq!(excel_safe(risky), format!("'{risky}"), "{risky:?}");
        }
        for safe in [
            "-3",
            "+1.5",
            "-2.5e3",
            "U47158",
            "2025-03-31",
            "",
            "a=b",
            "x-1",
        ] {
            assert_eq!(excel_safe(safe), safe, "{safe:?}");
        }
    }
}
