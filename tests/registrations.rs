//! The population on a past date: with a `registrations` table, a run (and
//! a back-test) counts the people registered with a practice on the as-of
//! date, each at that practice and its PCN; both engines agree.

mod util;

use std::sync::Arc;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::{Date32Array, Int64Array, StringArray};
use util::*;

const AS_OF: &str = "2025-03-31";

/// (person, practice, start, end)
fn registrations(rows: &[(i64, &str, &str, Option<&str>)]) -> arrow_array::RecordBatch {
    let rows: Vec<_> = rows
        .iter()
        .map(|&(person, practice, start, end)| (Some(person), Some(practice), Some(start), end))
        .collect();
    registrations_with_nulls(&rows)
}

/// (person, practice, start, end), any of them null.
type Registration<'a> = (
    Option<i64>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

fn registrations_with_nulls(rows: &[Registration]) -> arrow_array::RecordBatch {
    batch(vec![
        (
            "person_id",
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.0))),
        ),
        (
            "practice_code",
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1))),
        ),
        (
            "start_date",
            Arc::new(Date32Array::from_iter(rows.iter().map(|r| r.2.map(day)))),
        ),
        (
            "end_date",
            Arc::new(Date32Array::from_iter(rows.iter().map(|r| r.3.map(day)))),
        ),
    ])
}

#[test]
fn the_population_is_the_one_registered_on_the_as_of_date() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // Practices PCN1-GP (PCN1) and PCN2-GP (PCN2), as the population gives them.
    let people: Vec<Person> = (1..=7)
        .map(|id| person(id, "1950-01-01", if id % 2 == 0 { "PCN2" } else { "PCN1" }))
        .collect();
    write_parquet(&data.join("patients.parquet"), &[patients_batch(&people)]);
    let ae: Vec<(i64, Option<&str>)> = (1..=7).map(|id| (id, Some("2025-01-10"))).collect();
    write_parquet(&data.join("ae_attendances.parquet"), &[ae_batch(&ae)]);
    write_parquet(&data.join("admissions.parquet"), &[admissions_batch(&[])]);
    write_parquet(
        &data.join("registrations.parquet"),
        &[registrations(&[
            // Registered throughout.
            (1, "PCN1-GP", "2020-01-01", None),
            // Joined the day after the as-of date.
            (2, "PCN2-GP", "2025-04-01", None),
            // Left the day before it; left on it (still registered that day).
            (3, "PCN1-GP", "2020-01-01", Some("2025-03-30")),
            (4, "PCN2-GP", "2020-01-01", Some("2025-03-31")),
            // Moved from PCN1's practice to PCN2's before the date.
            (5, "PCN1-GP", "2020-01-01", Some("2024-12-31")),
            (5, "PCN2-GP", "2025-01-01", None),
            // Moved after the date: still at the first practice then.
            (7, "PCN1-GP", "2020-01-01", Some("2025-06-30")),
            (7, "PCN2-GP", "2025-07-01", None),
            // Person 6 has no registration but one that ends before it
            // starts, which no date can use (said, as a warning).
            (6, "PCN1-GP", "2020-01-01", Some("2019-12-31")),
            // Person 99 is not in the population (one who left it).
            (99, "PCN1-GP", "2020-01-01", None),
        ])],
    );
    let rules = tmp.path().join("rules.toml");
    std::fs::write(
        &rules,
        r#"
[model]
name = "attenders"
title = "Attenders"
source = "test"

[sources.ae]
table = "ae_attendances"
date = "arrival_date"

[features.ae_12m]
description = "A&E attendances in the last year"
source = "ae"
aggregate = "count"
window = "365 days"

[cohorts.attenders]
title = "Attenders"
description = "Attended A&E in the last year"
when = "ae_12m >= 1"
rank = ["ae_12m desc"]
"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = run_rules(&rules, &data, &out, AS_OF);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("registrations skipped") && stderr(&o).contains("end_before_start=1"),
        "{}",
        stderr(&o)
    );
    // And counted in the manifest, each by why.
    let written = manifest(&out);
    let counted = &written["rejected"]["registrations"];
    assert_eq!(counted["end_before_start"], 1, "{written}");
    assert_eq!(counted["unknown_person"], 1, "{written}");
    assert_eq!(counted["null_practice_code"], 0, "{written}");
    // The table is among the run's inputs, with its file and rows.
    let inputs = written["inputs"].as_array().unwrap();
    let read = inputs
        .iter()
        .find(|i| i["table"] == "registrations")
        .unwrap_or_else(|| panic!("{written}"));
    assert_eq!(read["files"][0]["rows"], 10, "{written}");
    let p = read_parquet(&out.join("patients.parquet"));
    let alive = p.column_by_name("alive").unwrap().as_boolean();
    let alive: Vec<bool> = (0..alive.len()).map(|r| alive.value(r)).collect();
    assert_eq!(alive, vec![true, false, false, true, true, false, true]);
    let text = |name: &str| -> Vec<Option<String>> {
        (0..p.num_rows())
            .map(|r| {
                let v = value_text(p.column_by_name(name).unwrap(), r);
                (v != "null").then_some(v)
            })
            .collect()
    };
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        text("pcn_code"),
        vec![
            some("PCN1"),
            None,
            None,
            some("PCN2"),
            some("PCN2"),
            None,
            some("PCN1")
        ]
    );
    assert_eq!(text("practice_code")[4], some("PCN2-GP"));
    // Only people in the population then can be on a list.
    let members = p.column_by_name("attenders").unwrap().as_boolean();
    assert_eq!(members.true_count(), 4);
    let manifest = manifest(&out);
    assert!(
        manifest["registrations"]
            .as_str()
            .unwrap()
            .starts_with("applied")
    );
    // The compiled SQL gives the same table (where CI has DuckDB).
    if let Ok(python) = std::env::var("STRATA_DUCKDB_PYTHON") {
        check_sql(&python, &rules, &data, AS_OF, &p, tmp.path()).unwrap();
    }
    // Without the table, everyone is taken as registered, and the run says so.
    std::fs::remove_file(data.join("registrations.parquet")).unwrap();
    let out2 = tmp.path().join("out2");
    let o = run_printed(&rules, &data, &out2, &["--as-of", AS_OF]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("No registrations table"),
        "{}",
        stdout(&o)
    );
    let p = read_parquet(&out2.join("patients.parquet"));
    assert_eq!(
        p.column_by_name("alive").unwrap().as_boolean().true_count(),
        7
    );
}

/// `patients.parquet` has one schema whether or not the registrations table
/// is there: the practice and PCN codes, read from the population file
/// (held dictionary-encoded) or from the registrations table, are plain
/// text either way, and every other column keeps its type.
#[test]
fn patients_parquet_has_one_schema_with_or_without_registrations() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample_data_copy(tmp.path(), &["registrations.parquet"]);
    let core = repo_path("models/core.toml");
    let (with, without) = (tmp.path().join("with"), tmp.path().join("without"));
    for (data, out) in [(&repo_path("sample-data"), &with), (&data, &without)] {
        let o = run_quietly(&core, data, out, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let with = read_parquet(&with.join("patients.parquet"));
    let without = read_parquet(&without.join("patients.parquet"));
    for field in with.schema().fields() {
        let other = without
            .schema()
            .field_with_name(field.name())
            .unwrap()
            .clone();
        assert_eq!(field.data_type(), other.data_type(), "{}", field.name());
    }
    assert_eq!(with.num_columns(), without.num_columns());
    for code in ["practice_code", "pcn_code"] {
        assert_eq!(
            with.schema().field_with_name(code).unwrap().data_type(),
            &arrow_schema::DataType::Utf8
        );
    }
}

/// A registrations table with no usable row registers nobody: every list
/// would be empty and, published, would replace the last good ones. The
/// run stops with a data error (exit 2) that names the table and says why
/// no row is usable (each row counted once, under its first reason), and
/// the previous output stays whole: here after a good run (without the
/// table), with a table of no rows, one whose rows name no person of the
/// population (an extract from another population), and one with a null
/// in each column a registration needs. `strata evaluate` stops on it too,
/// before its scan, leaving nothing.
#[test]
fn a_registrations_table_with_no_usable_row_is_an_error_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample_data_copy(tmp.path(), &["registrations.parquet"]);
    let out = tmp.path().join("out");
    let o = run_printed(&repo_path("models/core.toml"), &data, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let manifest = std::fs::read(out.join("manifest.json")).unwrap();
    let known = read_parquet(&data.join("patients.parquet"))
        .column_by_name("person_id")
        .unwrap()
        .as_primitive::<arrow_array::types::Int64Type>()
        .value(0);

    let patients = data.join("patients.parquet").display().to_string();
    for (table, why) in [
        (registrations(&[]), "(it has no rows)".to_string()),
        (
            registrations(&[
                (-5, "P1", "2020-01-01", None),
                (-6, "P1", "2020-01-01", None),
            ]),
            format!("(of its 2 rows, 2 with no id of a person in {patients})"),
        ),
        (
            registrations_with_nulls(&[
                (None, Some("P1"), Some("2020-01-01"), None),
                (Some(known), None, Some("2020-01-01"), None),
                (Some(known), Some("P1"), None, None),
                (Some(-5), None, None, None),
            ]),
            format!(
                "(of its 4 rows, 2 with no id of a person in {patients}, \
                 1 with no practice code, 1 with no start date)"
            ),
        ),
    ] {
        write_parquet(&data.join("registrations.parquet"), &[table]);
        let o = run_printed(&repo_path("models/core.toml"), &data, &out, &[]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("registrations.parquet"), "{err}");
        assert!(err.contains("no usable registration"), "{err}");
        assert!(err.contains(&why), "{err}");
        assert!(err.contains("\n  help: "), "{err}");
        assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), manifest);
    }

    let evaluation = tmp.path().join("evaluation");
    let evaluate = || {
        strata(&[
            "evaluate",
            "--rules",
            "core",
            "--rules",
            "models/outcomes.toml",
            "--data",
            data.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--outcome",
            "emergency_admission_365d",
            "--out",
            evaluation.to_str().unwrap(),
            "--quiet",
        ])
    };
    let o = evaluate();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("no usable registration"), "{err}");
    assert!(!evaluation.exists());
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".evaluation") && n != ".evaluation.strata-lock")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(lock_let_go(&tmp.path().join(".evaluation.strata-lock")));
    // Usable rows, but every registration starts after the as-of date: no
    // one to list, which must not replace the good output with empty lists.
    write_parquet(
        &data.join("registrations.parquet"),
        &[registrations(&[(known, "P1", "9999-01-01", None)])],
    );
    let o = run_printed(
        &repo_path("models/core.toml"),
        &data,
        &out,
        &["--as-of", AS_OF],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "no one in the population is alive and registered on the as-of date 2025-03-31"
        ),
        "{err}"
    );
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), manifest);

    // An evaluation from such a date has no one to follow (it had panicked
    // grouping them by practice, then written figures of nobody): refused.
    let o = evaluate();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no one in the population is alive and registered"));
}

/// With a registrations table each practice's patients go to the PCN the
/// population table gives the practice: one row that gives it another (a
/// person who died before the practice moved PCN) stops the run, naming
/// the practice and both PCNs, rather than sending them all to one by a
/// guess; the previous output stays.
#[test]
fn a_practice_under_two_pcns_is_an_error_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample_data_copy(tmp.path(), &[]);
    let out = tmp.path().join("out");
    let o = run_printed(&repo_path("models/hiu.toml"), &data, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let manifest = std::fs::read(out.join("manifest.json")).unwrap();

    let patients = read_parquet(&data.join("patients.parquet"));
    let text = |name: &str| {
        let column = patients.column_by_name(name).unwrap();
        let column = arrow_cast::cast(column, &arrow_schema::DataType::Utf8).unwrap();
        column.as_string::<i32>().clone()
    };
    let (practices, pcns) = (text("practice_code"), text("pcn_code"));
    let practice = practices.value(0).to_string();
    let pcn = pcns.value(0).to_string();
    // Another PCN, on the first row only.
    let other = (0..pcns.len())
        .map(|r| pcns.value(r))
        .find(|p| *p != pcn)
        .expect("two PCNs in the sample data")
        .to_string();
    assert!(
        (1..practices.len()).any(|r| practices.value(r) == practice),
        "the practice has other patients"
    );
    let changed: StringArray = (0..pcns.len())
        .map(|r| {
            Some(if r == 0 {
                other.as_str()
            } else {
                pcns.value(r)
            })
        })
        .collect();
    write_parquet(
        &data.join("patients.parquet"),
        &[replacing_column(&patients, "pcn_code", Arc::new(changed))],
    );

    let o = run_printed(&repo_path("models/hiu.toml"), &data, &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("patients.parquet"), "{err}");
    let (a, b) = if pcn < other {
        (&pcn, &other)
    } else {
        (&other, &pcn)
    };
    assert!(
        err.contains(&format!("{practice} under {a} and {b}")),
        "{err}"
    );
    assert!(err.contains("\n  help: "), "{err}");
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), manifest);
    let o = strata(&["check", "hiu", "--data", data.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("{practice} under {a} and {b}")));
    // The compiled SQL fails there too (where CI has DuckDB).
    if let Ok(python) = std::env::var("STRATA_DUCKDB_PYTHON") {
        let err = check_sql(
            &python,
            &repo_path("models/hiu.toml"),
            &data,
            AS_OF,
            &patients,
            tmp.path(),
        )
        .unwrap_err();
        assert!(
            err.contains("DuckDB failed") && err.contains("more than one PCN"),
            "{err}"
        );
    }
    // Without the registrations table each person is at their own row's
    // PCN: nothing to choose, and the run goes ahead.
    std::fs::remove_file(data.join("registrations.parquet")).unwrap();
    let o = run_printed(&repo_path("models/hiu.toml"), &data, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Under `--strict`, registrations of people not in the population (who
/// have left it) are counted but accepted; a row no date can use for a
/// fault of its own (an end before its start) fails the run, as other
/// skipped rows do.
#[test]
fn strict_refuses_faulty_registrations_not_those_of_people_who_left() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let people: Vec<Person> = (1..=3).map(|id| person(id, "1950-01-01", "PCN1")).collect();
    write_parquet(&data.join("patients.parquet"), &[patients_batch(&people)]);
    let ae: Vec<(i64, Option<&str>)> = (1..=3).map(|id| (id, Some("2025-01-10"))).collect();
    write_parquet(&data.join("ae_attendances.parquet"), &[ae_batch(&ae)]);
    write_parquet(&data.join("admissions.parquet"), &[admissions_batch(&[])]);
    let mut rows: Vec<Registration> = vec![
        (Some(1), Some("PCN1-GP"), Some("2020-01-01"), None),
        (Some(2), Some("PCN1-GP"), Some("2020-01-01"), None),
        (Some(3), Some("PCN1-GP"), Some("2020-01-01"), None),
        // Someone who has left the population.
        (Some(99), Some("PCN1-GP"), Some("2020-01-01"), None),
    ];
    let write = |rows: &[Registration]| {
        write_parquet(
            &data.join("registrations.parquet"),
            &[registrations_with_nulls(rows)],
        )
    };
    write(&rows);
    let hiu = repo_path("models/hiu.toml");
    let out = tmp.path().join("out");
    let o = run_quietly(&hiu, &data, &out, &["--as-of", AS_OF, "--strict"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        manifest(&out)["rejected"]["registrations"]["unknown_person"],
        1
    );
    // The report does not call them skipped either.
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        report.contains("rows not used: registrations") && !report.contains("rows skipped"),
        "{report}"
    );
    rows.push((
        Some(2),
        Some("PCN1-GP"),
        Some("2020-01-01"),
        Some("2019-01-01"),
    ));
    write(&rows);
    let o = run_quietly(&hiu, &data, &out, &["--as-of", AS_OF, "--strict"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}
