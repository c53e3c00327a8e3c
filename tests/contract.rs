//! The data contract's promises about awkward input: timestamp dates, text
//! pseudonyms, duplicated and null ids, ties in ranking, PCN codes that would
//! clash as folder names.

mod util;

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{
    ArrayRef, Date32Array, Int64Array, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray,
};
use util::*;

const MS_PER_DAY: i64 = 86_400_000;
const AS_OF: &str = "2025-03-31";

fn run_hiu(data: &Path, out: &Path) -> std::process::Output {
    run_rules(&repo_path("models/hiu.toml"), data, out, AS_OF)
}

fn empty_admissions(data: &Path) {
    write_parquet(
        &data.join("admissions.parquet"),
        &[admissions_batch(&[(1, "2020-01-01", "elective", &[])])],
    );
}

#[test]
fn utc_timestamps_are_read_as_their_utc_dates() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    // Birth dates as UTC millisecond timestamps at 23:30: still that day.
    let births: ArrayRef = Arc::new(
        TimestampMillisecondArray::from(vec![
            i64::from(day("2007-03-31")) * MS_PER_DAY + 84_600_000,
            i64::from(day("2007-04-01")) * MS_PER_DAY + 84_600_000,
        ])
        .with_timezone("UTC"),
    );
    let people = patients_batch(&[person(1, "2007-03-31", "P1"), person(2, "2007-04-01", "P1")]);
    write_parquet(
        &data.join("patients.parquet"),
        &[with_column(&people, "birth_date", births)],
    );
    // Arrivals as UTC microsecond timestamps with an offset zone, at 01:00.
    let arrivals = [
        "2024-04-01",
        "2024-06-01",
        "2024-09-01",
        "2025-01-01",
        "2025-03-31",
    ];
    let micros: Vec<i64> = arrivals
        .iter()
        .map(|d| i64::from(day(d)) * MS_PER_DAY * 1000 + 3_600_000_000)
        .collect();
    let ae = batch(vec![
        ("person_id", Arc::new(Int64Array::from(vec![1i64; 5]))),
        (
            "arrival_date",
            Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("+00:00")),
        ),
    ]);
    write_parquet(&data.join("ae_attendances.parquet"), &[ae]);
    empty_admissions(data);
    let out = data.join("out");
    let o = run_hiu(data, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = read_parquet(&out.join("patients.parquet"));
    let counts = p
        .column_by_name("ae_attendances_12m")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(counts.values().to_vec(), vec![5, 0]);
    // 18 on the as-of date (born 2007-03-31): in.
    let hiu: Vec<_> = p
        .column_by_name("hiu")
        .unwrap()
        .as_boolean()
        .iter()
        .collect();
    assert_eq!(hiu, vec![Some(true), Some(false)]);
}

#[test]
fn text_pseudonyms_work_as_person_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let ids: ArrayRef = Arc::new(StringArray::from(vec!["b7f3", "a1c9"]));
    let people = patients_batch(&[person(0, "1980-01-01", "P1"), person(0, "1980-01-01", "P2")]);
    write_parquet(
        &data.join("patients.parquet"),
        &[with_column(&people, "person_id", ids)],
    );
    let ae = batch(vec![
        ("person_id", Arc::new(StringArray::from(vec!["b7f3"; 6]))),
        (
            "arrival_date",
            Arc::new(Date32Array::from(vec![day("2025-01-01"); 6])),
        ),
    ]);
    write_parquet(&data.join("ae_attendances.parquet"), &[ae]);
    let admission = admissions_batch(&[(0, "2025-01-01", "emergency", &[])]);
    let unknown: ArrayRef = Arc::new(StringArray::from(vec!["zzzz"]));
    write_parquet(
        &data.join("admissions.parquet"),
        &[with_column(&admission, "person_id", unknown)],
    );
    let out = data.join("out");
    let o = run_hiu(data, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = read_parquet(&out.join("patients.parquet"));
    let ids: Vec<_> = p
        .column_by_name("person_id")
        .unwrap()
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(ids, vec!["a1c9", "b7f3"], "sorted by id");
    let hiu: Vec<_> = p
        .column_by_name("hiu")
        .unwrap()
        .as_boolean()
        .iter()
        .collect();
    assert_eq!(hiu, vec![Some(false), Some(true)]);
    let list = std::fs::read_to_string(out.join("pcn/P1/hiu.csv")).unwrap();
    assert!(list.contains("1,b7f3,"), "{list}");
    assert_eq!(
        manifest(&out)["rejected"]["admissions"]["unknown_person"],
        1
    );
}

#[test]
fn duplicated_and_null_population_ids_are_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    // Person 7 twice: the first row (PCN P1) is kept, the second (P2) skipped.
    let people = patients_batch(&[
        person(7, "1980-01-01", "P1"),
        person(7, "1990-01-01", "P2"),
        person(8, "1980-01-01", "P2"),
    ]);
    let ids: ArrayRef = Arc::new(Int64Array::from(vec![Some(7), Some(7), None]));
    write_parquet(
        &data.join("patients.parquet"),
        &[with_column(&people, "person_id", ids)],
    );
    write_parquet(
        &data.join("ae_attendances.parquet"),
        &[ae_batch(&[(7, Some("2025-01-01"))])],
    );
    empty_admissions(data);
    let out = data.join("out");
    let o = run_hiu(data, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = manifest(&out);
    assert_eq!(
        m["counts"]["persons"], "*",
        "one person: a suppressed count"
    );
    assert_eq!(m["rejected"]["patients"]["duplicate_person_id"], 1);
    assert_eq!(m["rejected"]["patients"]["null_person_id"], 1);
    let p = read_parquet(&out.join("patients.parquet"));
    assert_eq!(
        text_column(&p, "pcn_code").as_string::<i32>().value(0),
        "P1"
    );
}

#[test]
fn ties_rank_by_person_id_and_nulls_rank_last() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let people: Vec<Person> = [30, 10, 20, 40]
        .iter()
        .map(|&id| person(id, "1980-01-01", "P1"))
        .collect();
    write_parquet(&data.join("patients.parquet"), &[patients_batch(&people)]);
    let mut ae = Vec::new();
    for id in [10, 20, 30, 40] {
        ae.extend((0..5).map(|_| (id, Some("2025-01-01"))));
    }
    ae.push((40, Some("2025-01-02"))); // 40 has 6: first
    write_parquet(&data.join("ae_attendances.parquet"), &[ae_batch(&ae)]);
    write_parquet(
        &data.join("admissions.parquet"),
        &[admissions_batch(&[(30, "2025-01-01", "emergency", &[])])],
    );
    // Rank ties on attendances by the last emergency admission, latest
    // first: only 30 has one, so 10 and 20 (null) come after it, by id.
    let rules = std::fs::read_to_string(repo_path("models/hiu.toml"))
        .unwrap()
        .replace(
            "rank = [\"ae_attendances_12m desc\", \"emergency_admissions_12m desc\"]",
            "rank = [\"ae_attendances_12m desc\", \"last_emergency desc\"]",
        )
        + "\n[features.last_emergency]\nsource = \"admissions\"\naggregate = \"last_date\"\nwhere = \"admission_method = 'emergency'\"\n";
    let rules_path = data.join("hiu.toml");
    std::fs::write(&rules_path, rules).unwrap();
    let out = data.join("out");
    let o = run_rules(&rules_path, data, &out, AS_OF);
    assert!(o.status.success(), "{}", stderr(&o));
    let list = std::fs::read_to_string(out.join("pcn/P1/hiu.csv")).unwrap();
    let order: Vec<&str> = list
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(order, vec!["40", "30", "10", "20"]);
    let p = read_parquet(&out.join("patients.parquet"));
    let ranks: Vec<_> = p
        .column_by_name("hiu_rank")
        .unwrap()
        .as_primitive::<Int32Type>()
        .iter()
        .collect();
    // Rows are in person_id order: 10, 20, 30, 40.
    assert_eq!(ranks, vec![Some(3), Some(4), Some(2), Some(1)]);
}

#[test]
fn pcn_codes_that_differ_only_in_case_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let people = patients_batch(&[person(1, "1980-01-01", "U1"), person(2, "1980-01-01", "u1")]);
    write_parquet(&data.join("patients.parquet"), &[people]);
    write_parquet(
        &data.join("ae_attendances.parquet"),
        &[ae_batch(&[(1, Some("2025-01-01"))])],
    );
    empty_admissions(data);
    let o = run_hiu(data, &data.join("out"));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("differ only in case"), "{}", stderr(&o));
    assert!(!data.join("out").exists());
}

/// Rewrites one code column of a generated table as 64-bit integers, as a
/// warehouse export that stores SNOMED CT ids (or dm+d ids) as bigint does.
fn codes_as_int64(path: &Path, column: &str) {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<arrow_array::RecordBatch> = reader
        .map(|b| {
            let b = b.unwrap();
            let text = arrow_cast::cast(
                b.column_by_name(column).unwrap(),
                &arrow_schema::DataType::Utf8,
            )
            .unwrap();
            let ints: Int64Array = text
                .as_string::<i32>()
                .iter()
                .map(|s| s.map(|s| s.trim().parse::<i64>().unwrap()))
                .collect();
            with_column(&b, column, Arc::new(ints))
        })
        .collect();
    write_parquet(path, &batches);
}

/// Integer code columns are matched as the codes they spell: the default
/// model over a population whose GP events carry int64 codes and
/// prescriptions DECIMAL(38, 0) codes gives the same people, features and
/// cohorts as over text codes.
#[test]
fn integer_code_columns_give_the_same_results_as_text() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("text");
    generate(&text, 3000, 5);
    let ints = tmp.path().join("ints");
    std::fs::create_dir(&ints).unwrap();
    for entry in std::fs::read_dir(&text).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, ints.join(path.file_name().unwrap())).unwrap();
    }
    codes_as_int64(&ints.join("gp_events.parquet"), "snomed_code");
    codes_as_int64(&ints.join("medications.parquet"), "dmd_code");
    // Snowflake's NUMBER(38, 0): the prescriptions' codes as decimals.
    let meds = read_parquet(&ints.join("medications.parquet"));
    let decimals = arrow_cast::cast(
        meds.column_by_name("dmd_code").unwrap(),
        &arrow_schema::DataType::Decimal128(38, 0),
    )
    .unwrap();
    write_parquet(
        &ints.join("medications.parquet"),
        &[with_column(&meds, "dmd_code", decimals)],
    );
    let core = repo_path("models/core.toml");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let o = run_rules(&core, &text, &a, AS_OF);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_rules(&core, &ints, &b, AS_OF);
    assert!(o.status.success(), "{}", stderr(&o));
    let (pa, pb) = (
        read_parquet(&a.join("patients.parquet")),
        read_parquet(&b.join("patients.parquet")),
    );
    assert_eq!(
        pa, pb,
        "patients.parquet differs between text and int64 codes"
    );
    // Something was matched: the comparison is not between two empty runs.
    let deficits = pa.column_by_name("efi_coded_deficits").unwrap();
    assert!(
        deficits
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .any(|v| *v > 3),
        "no eFI deficits found"
    );
    let hypertension = pa
        .column_by_name("hypertension_register")
        .unwrap()
        .as_boolean();
    assert!(hypertension.true_count() > 100);
}

/// Whole numbers exported as DECIMAL(p, 0) (Snowflake's NUMBER, SQL
/// Server's numeric) are integers: the IMD decile as a decimal gives the
/// same Core20 flags as the integer column.
#[test]
fn decimal_whole_numbers_are_read_as_integers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample_data_copy(tmp.path(), &[]);
    let patients = read_parquet(&data.join("patients.parquet"));
    let decile = arrow_cast::cast(
        patients.column_by_name("imd_decile").unwrap(),
        &arrow_schema::DataType::Decimal128(4, 0),
    )
    .unwrap();
    write_parquet(
        &data.join("patients.parquet"),
        &[with_column(&patients, "imd_decile", decile)],
    );
    let rules = repo_path("models/core20plus5.toml");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let o = run_rules(&rules, &repo_path("sample-data"), &a, AS_OF);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_rules(&rules, &data, &b, AS_OF);
    assert!(o.status.success(), "{}", stderr(&o));
    let core20 = |out: &Path| {
        let p = read_parquet(&out.join("patients.parquet"));
        p.column_by_name("core20").unwrap().as_boolean().clone()
    };
    let (x, y) = (core20(&a), core20(&b));
    assert_eq!(x, y);
    assert!(x.true_count() > 1000);
}

/// An IMD decile that is no decile (0, 11) is not put in the nearest
/// quintile of the report's deprivation breakdown: it is left out, and the
/// report and the log say how many people that is (never who).
#[test]
fn deciles_outside_1_to_10_are_left_out_of_the_quintiles_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample_data_copy(tmp.path(), &[]);
    let patients = read_parquet(&data.join("patients.parquet"));
    let decile = arrow_cast::cast(
        patients.column_by_name("imd_decile").unwrap(),
        &arrow_schema::DataType::Int64,
    )
    .unwrap();
    // Every 10th person's decile becomes 0 or 11.
    let bad: arrow_array::Int64Array = decile
        .as_primitive::<Int64Type>()
        .iter()
        .enumerate()
        .map(|(i, d)| match i % 20 {
            0 => Some(0),
            10 => Some(11),
            _ => d,
        })
        .collect();
    write_parquet(
        &data.join("patients.parquet"),
        &[with_column(&patients, "imd_decile", Arc::new(bad))],
    );
    let core = repo_path("models/core.toml");
    let (good, out) = (tmp.path().join("good"), tmp.path().join("out"));
    let o = run_rules(&core, &repo_path("sample-data"), &good, AS_OF);
    assert!(o.status.success(), "{}", stderr(&o));
    let said = "is not a whole number from 1 to 10";
    assert!(!stderr(&o).contains(said), "{}", stderr(&o));
    let report = std::fs::read_to_string(good.join("report.html")).unwrap();
    assert!(!report.contains(said));
    let o = run_rules(&core, &data, &out, AS_OF);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(said), "{}", stderr(&o));
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains(said), "the report does not say so");
    // Deciles stored as text (off the contract) are said to be so, in the
    // log and the report, not read as no one's; text that is no number is
    // no decile, and counted as one.
    let text = arrow_cast::cast(&decile, &arrow_schema::DataType::Utf8).unwrap();
    write_parquet(
        &data.join("patients.parquet"),
        &[with_column(&patients, "imd_decile", text.clone())],
    );
    let out = tmp.path().join("text");
    let o = run_rules(&core, &data, &out, AS_OF);
    assert!(o.status.success(), "{}", stderr(&o));
    let said = "`imd_decile` is stored as Utf8 where the data contract asks for a number";
    assert!(stderr(&o).contains(said), "{}", stderr(&o));
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        report.contains("<code>imd_decile</code> is stored as Utf8"),
        "the report does not say so"
    );
    // ... and read as the numbers they hold: the same breakdown as the
    // numeric deciles give (the two reports' Inequalities sections).
    let section = |r: &str| {
        let from = r.find("<h2>Inequalities</h2>").unwrap();
        let to = r[from + 1..].find("<h2>").map_or(r.len(), |n| from + 1 + n);
        r[from..to].to_string()
    };
    let numeric = std::fs::read_to_string(good.join("report.html")).unwrap();
    let text_section = section(&report);
    let after_note = &text_section[text_section.find("</p>").unwrap() + 5..];
    assert!(section(&numeric).ends_with(after_note), "{text_section}");
    let words: StringArray = text
        .as_string::<i32>()
        .iter()
        .enumerate()
        .map(|(i, d)| if i % 20 == 5 { Some("abc") } else { d })
        .collect();
    let out = tmp.path().join("words");
    write_parquet(
        &data.join("patients.parquet"),
        &[with_column(&patients, "imd_decile", Arc::new(words))],
    );
    let o = run_rules(&core, &data, &out, AS_OF);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not a whole number from 1 to 10"),
        "{}",
        stderr(&o)
    );
}

/// A birth date before 1900 (a placeholder such as 1800-01-01) is read as
/// unknown: the person has no age (an age of 225 would put them in every
/// cohort of the old), and a warning says how many people, never who.
#[test]
fn birth_dates_before_1900_are_unknown_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample_data_copy(tmp.path(), &[]);
    let patients = read_parquet(&data.join("patients.parquet"));
    let births = patients.column_by_name("birth_date").unwrap();
    let births = births.as_primitive::<arrow_array::types::Date32Type>();
    let day = |s: &str| strata::dates::to_day(strata::dates::parse_date(s).unwrap());
    // Every 25th person born on 1800-01-01, every 25th (from the 1st) on
    // 1899-12-31, every 25th (from the 2nd) on 1900-01-01 (kept).
    let changed: arrow_array::Date32Array = births
        .iter()
        .enumerate()
        .map(|(i, d)| match i % 25 {
            0 => Some(day("1800-01-01")),
            1 => Some(day("1899-12-31")),
            2 => Some(day("1900-01-01")),
            _ => d,
        })
        .collect();
    write_parquet(
        &data.join("patients.parquet"),
        &[with_column(&patients, "birth_date", Arc::new(changed))],
    );
    let rules = tmp.path().join("ages.toml");
    std::fs::write(
        &rules,
        r#"
[model]
name = "ages"
title = "Ages"
source = "a test"

[features.age_known]
expr = "age is not null"
"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = run_rules(&rules, &data, &out, AS_OF);
    assert!(o.status.success(), "{}", stderr(&o));
    let n = patients.num_rows();
    let early = (0..n).filter(|i| i % 25 < 2).count();
    assert!(
        stderr(&o).contains(&format!("{early} rows' birth dates are before 1900-01-01")),
        "{}",
        stderr(&o)
    );
    let result = read_parquet(&out.join("patients.parquet"));
    let ids = result
        .column_by_name("person_id")
        .unwrap()
        .as_primitive::<Int64Type>();
    let known = result.column_by_name("age_known").unwrap().as_boolean();
    let input_ids = patients
        .column_by_name("person_id")
        .unwrap()
        .as_primitive::<Int64Type>();
    let row_of: std::collections::HashMap<i64, usize> =
        (0..n).map(|i| (input_ids.value(i), i)).collect();
    let alive = result.column_by_name("alive").unwrap().as_boolean();
    let mut checked = [0, 0];
    for r in (0..result.num_rows()).filter(|&r| alive.value(r)) {
        let i = row_of[&ids.value(r)];
        assert_eq!(known.value(r), i % 25 >= 2, "input row {i}");
        checked[usize::from(i % 25 >= 2)] += 1;
    }
    // Both kinds were there to check (and an unknown birth date does not
    // take a person out of the population).
    assert!(checked[0] > 100 && checked[1] > 1000, "{checked:?}");
    // Counted where a scheduler reads it, shown in the report, and refused
    // by --strict (the rows are kept, so nothing is in rejects/).
    assert_eq!(
        manifest(&out)["read_as_unknown"]["patients"]["birth_date_before_1900"],
        early
    );
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        report.contains(&format!("{early} (birth_date_before_1900)")),
        "{report}"
    );
    assert!(!out.join("rejects").exists());
    let o = run_printed(&rules, &data, &out, &["--as-of", AS_OF, "--strict"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("read_as_unknown"), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!(
            "Values read as unknown for problems in the data: {early}"
        )),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// Yes/no written as `Y`/`N` text is not guessed at for a population
/// attribute: the run stops (exit 2) naming the column and what to do.
#[test]
fn a_yes_no_attribute_stored_as_text_is_refused_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample_data_copy(tmp.path(), &[]);
    let patients = read_parquet(&data.join("patients.parquet"));
    let care_home: StringArray = patients
        .column_by_name("care_home")
        .unwrap()
        .as_boolean()
        .iter()
        .map(|v| v.map(|b| if b { "Y" } else { "N" }))
        .collect();
    write_parquet(
        &data.join("patients.parquet"),
        &[with_column(&patients, "care_home", Arc::new(care_home))],
    );
    let o = run_rules(
        &repo_path("models/core.toml"),
        &data,
        &tmp.path().join("out"),
        AS_OF,
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("population column `care_home`"), "{err}");
    assert!(err.contains("care_home = 'Y'"), "{err}");
}
