//! Test helpers: small Parquet fixtures written inside each test, and a
//! command builder for the real `strata` binary.

#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Int8Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;

pub fn day(date: &str) -> i32 {
    strata::dates::to_day(strata::dates::parse_date(date).expect("test dates are valid"))
}

fn opt_day(date: Option<&str>) -> Option<i32> {
    date.map(day)
}

#[derive(Clone)]
pub struct Person {
    pub id: i64,
    pub birth: &'static str,
    pub sex: &'static str,
    pub pcn: &'static str,
    pub death: Option<&'static str>,
}

pub fn person(id: i64, birth: &'static str, pcn: &'static str) -> Person {
    Person {
        id,
        birth,
        sex: "F",
        pcn,
        death: None,
    }
}

pub fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap()
}

/// Writes `batches` as one Parquet file, one row group per batch.
pub fn write_parquet(path: &Path, batches: &[RecordBatch]) {
    let file = std::fs::File::create(path).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    let mut w = ArrowWriter::try_new(file, batches[0].schema(), Some(props)).unwrap();
    for b in batches {
        w.write(b).unwrap();
        w.flush().unwrap();
    }
    w.close().unwrap();
}

pub fn patients_batch(people: &[Person]) -> RecordBatch {
    batch(vec![
        (
            "person_id",
            Arc::new(Int64Array::from_iter_values(people.iter().map(|p| p.id))),
        ),
        (
            "birth_date",
            Arc::new(Date32Array::from_iter_values(
                people.iter().map(|p| day(p.birth)),
            )),
        ),
        (
            "sex",
            Arc::new(StringArray::from_iter_values(people.iter().map(|p| p.sex))),
        ),
        (
            "practice_code",
            Arc::new(StringArray::from_iter_values(
                people.iter().map(|p| format!("{}-GP", p.pcn)),
            )),
        ),
        (
            "pcn_code",
            Arc::new(StringArray::from_iter_values(people.iter().map(|p| p.pcn))),
        ),
        (
            "lsoa_code",
            Arc::new(StringArray::from_iter_values(
                people.iter().map(|_| "E01000001"),
            )),
        ),
        (
            "imd_decile",
            Arc::new(Int8Array::from_iter_values(people.iter().map(|_| 5))),
        ),
        (
            "care_home",
            Arc::new(BooleanArray::from_iter(people.iter().map(|_| Some(false)))),
        ),
        (
            "date_of_death",
            Arc::new(Date32Array::from_iter(
                people.iter().map(|p| opt_day(p.death)),
            )),
        ),
    ])
}

/// `(person_id, arrival_date)`; a `None` date writes a null.
pub fn ae_batch(rows: &[(i64, Option<&str>)]) -> RecordBatch {
    batch(vec![
        (
            "person_id",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        ),
        (
            "arrival_date",
            Arc::new(Date32Array::from_iter(rows.iter().map(|r| opt_day(r.1)))),
        ),
    ])
}

/// `(person_id, admission_date, method, diagnoses)`.
pub fn admissions_batch(rows: &[(i64, &str, &str, &[&str])]) -> RecordBatch {
    let mut diagnoses = ListBuilder::new(StringBuilder::new());
    for r in rows {
        for d in r.3 {
            diagnoses.values().append_value(d);
        }
        diagnoses.append(true);
    }
    batch(vec![
        (
            "person_id",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        ),
        (
            "admission_date",
            Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| day(r.1)))),
        ),
        (
            "discharge_date",
            Arc::new(Date32Array::from_iter_values(
                rows.iter().map(|r| day(r.1) + 2),
            )),
        ),
        (
            "admission_method",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
        ),
        ("diagnoses", Arc::new(diagnoses.finish())),
    ])
}

/// `(person_id, event_date, snomed_code)`.
pub fn gp_batch(rows: &[(i64, &str, &str)]) -> RecordBatch {
    batch(vec![
        (
            "person_id",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        ),
        (
            "event_date",
            Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| day(r.1)))),
        ),
        (
            "snomed_code",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
        ),
    ])
}

pub fn read_parquet(path: &Path) -> RecordBatch {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap()
}

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The `strata` binary, run from the repository root.
pub fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("STRATA_LOG", "warn")
        .output()
        .expect("the strata binary runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Holds the output lock at `path` as a run does (locked by the operating
/// system, this process's id and machine in it) until the file returned is
/// dropped.
pub fn hold_lock(path: &Path) -> std::fs::File {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    file.try_lock().expect("the lock is free");
    writeln!(file, "{} {}", std::process::id(), host_name()).unwrap();
    file
}

/// Whether the output lock at `path` is let go: its file empty (it stays
/// between runs) and free to take.
pub fn lock_let_go(path: &Path) -> bool {
    let file = std::fs::File::open(path).unwrap();
    file.metadata().unwrap().len() == 0 && file.try_lock().is_ok()
}

/// This machine's name, as strata's lock gives it.
pub fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// `strata generate --patients N --seed S --out OUT`, checked.
pub fn generate(out: &Path, patients: u32, seed: u64) {
    let o = strata(&[
        "generate",
        "--patients",
        &patients.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `strata run --rules RULES --data DATA --out OUT --as-of AS_OF --quiet`.
pub fn run_rules(rules: &Path, data: &Path, out: &Path, as_of: &str) -> Output {
    run_quietly(rules, data, out, &["--as-of", as_of])
}

/// `strata run --rules RULES --data DATA --out OUT --quiet EXTRA...`.
pub fn run_quietly(rules: &Path, data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = extra.to_vec();
    args.insert(0, "--quiet");
    run_printed(rules, data, out, &args)
}

/// `strata run --rules RULES --data DATA --out OUT EXTRA...`: the summary
/// it prints is in the output's stdout.
/// `strata diff OLD NEW --out OUT` and `extra`.
pub fn diff_runs(old: &Path, new: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "diff",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    strata(&args)
}

pub fn run_printed(rules: &Path, data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "--rules",
        rules.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    strata(&args)
}

/// A copy of `batch` with column `name` replaced by `array`.
pub fn with_column(batch: &RecordBatch, name: &str, array: ArrayRef) -> RecordBatch {
    let schema = batch.schema();
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| {
            (
                f.name().as_str(),
                if f.name() == name {
                    array.clone()
                } else {
                    c.clone()
                },
            )
        })
        .collect();
    self::batch(columns)
}

/// A copy of `batch` with column `name` added at the end.
pub fn adding_column(batch: &RecordBatch, name: &str, array: ArrayRef) -> RecordBatch {
    let schema = batch.schema();
    let mut columns: Vec<(&str, ArrayRef)> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| (f.name().as_str(), c.clone()))
        .collect();
    columns.push((name, array));
    self::batch(columns)
}

/// `batch` with its column `name` replaced by `array` (its field's type
/// taken from `array`).
pub fn replacing_column(batch: &RecordBatch, name: &str, array: ArrayRef) -> RecordBatch {
    let schema = batch.schema();
    let columns: Vec<(&str, ArrayRef)> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| match f.name() == name {
            true => (name, array.clone()),
            false => (f.name().as_str(), c.clone()),
        })
        .collect();
    assert!(schema.column_with_name(name).is_some(), "no column {name}");
    self::batch(columns)
}

/// A copy of `sample-data/` in `dir/data` (all but the tables in
/// `leaving_out`), for a test to reshape; returns the folder.
pub fn sample_data_copy(dir: &Path, leaving_out: &[&str]) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    for entry in std::fs::read_dir(repo_path("sample-data")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if !leaving_out.iter().any(|l| name == *l) {
            std::fs::copy(&path, data.join(name)).unwrap();
        }
    }
    data
}

/// `OUT/manifest.json`, parsed.
pub fn manifest(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap()
}

/// The `*.toml` files of a folder of the repository, sorted, as paths.
pub fn toml_files(folder: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo_path(folder))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        // Hidden files are scratch (the parser fuzz test writes some).
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

/// `strata test FILES...`, asserting it passed and that every file had tests.
pub fn assert_all_pass(files: &[String]) {
    let mut args = vec!["test"];
    args.extend(files.iter().map(String::as_str));
    let o = strata(&args);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    for file in files {
        let line = out
            .lines()
            .find(|l| l.starts_with(file.as_str()))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(!line.contains(" 0 tests"), "{file} has no tests");
    }
    assert!(out.trim_end().ends_with(", 0 failed"), "{out}");
}

/// A text column of an output file as plain utf8, whether it was written
/// plain or dictionary-encoded.
pub fn text_column(batch: &RecordBatch, name: &str) -> ArrayRef {
    arrow_cast::cast(
        batch.column_by_name(name).unwrap(),
        &arrow_schema::DataType::Utf8,
    )
    .unwrap()
}

/// Any value of a per-person table as text, whatever integer width or
/// text encoding the writer chose. Nulls are read logically: a typeless
/// null column (Arrow's `NullArray`) holds no validity of its own.
pub fn value_text(column: &ArrayRef, row: usize) -> String {
    if column.logical_nulls().is_some_and(|n| n.is_null(row)) {
        return "null".into();
    }
    let canonical = arrow_cast::cast(column, &canonical_type(column.data_type())).unwrap();
    let options = arrow_cast::display::FormatOptions::default();
    let formatter =
        arrow_cast::display::ArrayFormatter::try_new(canonical.as_ref(), &options).unwrap();
    formatter.value(row).to_string()
}

fn canonical_type(ty: &arrow_schema::DataType) -> arrow_schema::DataType {
    use arrow_schema::DataType::*;
    match ty {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 => Int64,
        Utf8 | LargeUtf8 | Utf8View | Dictionary(..) => Utf8,
        other => other.clone(),
    }
}

/// The rule file compiled to DuckDB SQL and run with `python`: its table
/// must equal the engine's.
pub fn check_sql(
    python: &str,
    rules: &Path,
    data: &Path,
    as_of: &str,
    engine: &RecordBatch,
    dir: &Path,
) -> Result<(), String> {
    let script = dir.join("case.sql");
    let o = strata(&[
        "compile",
        "--target",
        "duckdb",
        rules.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--as-of",
        as_of,
        "--out",
        script.to_str().unwrap(),
    ]);
    if !o.status.success() {
        return Err(format!("strata compile failed: {}", stderr(&o)));
    }
    let table = dir.join("sql.parquet");
    let run = "import duckdb, sys\n\
        s = [x for x in open(sys.argv[1]).read().split(';\\n') if x.strip()]\n\
        c = duckdb.connect()\n\
        [c.execute(x) for x in s[:-1]]\n\
        c.execute('COPY (' + s[-1].rstrip().rstrip(';') + ') TO \\'' + sys.argv[2] + '\\' (FORMAT parquet)')\n";
    let o = std::process::Command::new(python)
        .args(["-c", run, script.to_str().unwrap(), table.to_str().unwrap()])
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "DuckDB failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let sql = read_parquet(&table);
    let names = |b: &RecordBatch| -> Vec<String> {
        b.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    };
    if names(engine) != names(&sql) || engine.num_rows() != sql.num_rows() {
        return Err(format!(
            "columns {:?} ({} rows) natively, {:?} ({} rows) in SQL",
            names(engine),
            engine.num_rows(),
            names(&sql),
            sql.num_rows()
        ));
    }
    for (i, name) in names(engine).iter().enumerate() {
        for row in 0..engine.num_rows() {
            let (a, b) = (
                value_text(engine.column(i), row),
                value_text(sql.column(i), row),
            );
            if a != b {
                return Err(format!("`{name}` of row {row}: {a} natively, {b} in SQL"));
            }
        }
    }
    Ok(())
}

/// The head of a rule file with a feature the rules type as null
/// (`nothing`, `expr = "null"`) beside a count of A&E attendances in a year
/// (`ae_12m`); tests add the features and cohorts that use them.
pub const NULL_FEATURE_RULES: &str = r#"
[model]
name = "null_feature"
title = "A feature typed as null"
source = "test fixture"

[sources.ae]
table = "ae_attendances"
date = "arrival_date"

[features.ae_12m]
source = "ae"
aggregate = "count"
window = "365 days"

[features.nothing]
expr = "null"
"#;
