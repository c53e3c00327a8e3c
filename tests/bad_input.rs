//! The bad-input matrix: each case breaks one thing about the data, the rule
//! file or the environment of a good run, and checks the exit code, that the
//! message names what and where (and says what to do where it applies), and
//! that the previous output is untouched. Row-level problems do not stop a
//! run: they are counted and written to `OUT/rejects/`.

mod util;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, StringArray};
use util::*;

const AS_OF: &str = "2025-03-31";

/// A good data folder and rule file in `dir`.
fn good(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let people = vec![
        person(1, "1980-01-01", "P1"),
        person(2, "1990-01-01", "P1"),
        person(3, "1970-01-01", "P2"),
    ];
    write_parquet(&data.join("patients.parquet"), &[patients_batch(&people)]);
    let ae: Vec<(i64, Option<&str>)> = (0..5).map(|_| (1, Some("2025-01-01"))).collect();
    write_parquet(&data.join("ae_attendances.parquet"), &[ae_batch(&ae)]);
    write_parquet(
        &data.join("admissions.parquet"),
        &[admissions_batch(&[(
            3,
            "2025-02-01",
            "emergency",
            &["I50.9"],
        )])],
    );
    let rules = dir.join("rules.toml");
    std::fs::copy(repo_path("models/hiu.toml"), &rules).unwrap();
    (data, rules)
}

fn run(rules: &Path, data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = if extra.contains(&"--as-of") {
        vec![]
    } else {
        vec!["--as-of", AS_OF]
    };
    args.extend_from_slice(extra);
    run_quietly(rules, data, out, &args)
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no `{from}`", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

type Mutation = fn(&Path, &Path, &Path);

/// A case that must fail with exit code 2 and a message holding every
/// fragment given.
fn refused(name: &str, mutate: Mutation, extra: &[&str], fragments: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let (data, rules) = good(tmp.path());
    let out = tmp.path().join("out");
    let o = run(&rules, &data, &out, &[]);
    assert!(
        o.status.success(),
        "{name}: the good run failed: {}",
        stderr(&o)
    );
    mutate(tmp.path(), &data, &rules);
    // What stands at --out now (the previous output, or what a case put
    // there) must be exactly as it was after the failed run.
    let snapshot = |out: &Path| {
        std::fs::read(out.join("manifest.json"))
            .or_else(|_| std::fs::read(out))
            .unwrap_or_default()
    };
    let before = snapshot(&out);
    let o = run(&rules, &data, &out, extra);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{name}: {err}");
    for f in fragments {
        assert!(err.contains(f), "{name}: no `{f}` in:\n{err}");
    }
    assert!(
        err.contains("help:") || err.contains("-->") || err.contains(":"),
        "{name}"
    );
    assert_eq!(
        snapshot(&out),
        before,
        "{name}: the previous output changed"
    );
}

/// A case that must run (exit 0), its problem rows counted under `reason`.
fn counted(name: &str, mutate: Mutation, source: &str, reason: &str, rows: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let (data, rules) = good(tmp.path());
    mutate(tmp.path(), &data, &rules);
    let out = tmp.path().join("out");
    let o = run(&rules, &data, &out, &[]);
    assert!(o.status.success(), "{name}: {}", stderr(&o));
    let m = manifest(&out);
    assert_eq!(m["rejected"][source][reason], rows, "{name}: {m}");
    if source != "patients" {
        let rejects = std::fs::read_to_string(out.join(format!("rejects/{source}.csv"))).unwrap();
        assert_eq!(
            rejects.lines().filter(|l| l.starts_with(reason)).count() as u64,
            rows,
            "{name}: {rejects}"
        );
    }
    // --strict makes it a failure the scheduler sees.
    let o = run(&rules, &data, &out, &["--strict"]);
    assert_eq!(o.status.code(), Some(1), "{name} under --strict");
}

#[test]
fn data_problems() {
    refused(
        "missing table",
        |_, data, _| std::fs::remove_file(data.join("admissions.parquet")).unwrap(),
        &[],
        &["table `admissions` not found", "admissions.parquet"],
    );
    refused(
        "missing column",
        |_, data, _| {
            let b = batch(vec![(
                "person_id",
                Arc::new(Int64Array::from(vec![1])) as ArrayRef,
            )]);
            write_parquet(&data.join("ae_attendances.parquet"), &[b]);
        },
        &[],
        &["ae_attendances.parquet", "arrival_date"],
    );
    refused(
        "column of the wrong type",
        |_, data, _| {
            let b = with_column(
                &ae_batch(&[(1, Some("2025-01-01"))]),
                "arrival_date",
                Arc::new(StringArray::from(vec!["2025-01-01"])),
            );
            write_parquet(&data.join("ae_attendances.parquet"), &[b]);
        },
        &[],
        &["ae_attendances.parquet", "arrival_date", "not a date"],
    );
    refused(
        "empty population",
        |_, data, _| write_parquet(&data.join("patients.parquet"), &[patients_batch(&[])]),
        &[],
        &["patients.parquet", "no rows"],
    );
    refused(
        "corrupt Parquet",
        |_, data, _| {
            std::fs::write(data.join("admissions.parquet"), b"not parquet at all").unwrap()
        },
        &[],
        &["admissions.parquet", "not a readable Parquet file"],
    );
    refused(
        "truncated Parquet",
        |_, data, _| {
            let path = data.join("ae_attendances.parquet");
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        },
        &[],
        &["ae_attendances.parquet"],
    );
    refused(
        "parts with mismatched schemas",
        |_, data, _| {
            std::fs::remove_file(data.join("ae_attendances.parquet")).unwrap();
            let folder = data.join("ae_attendances");
            std::fs::create_dir(&folder).unwrap();
            write_parquet(
                &folder.join("part-0.parquet"),
                &[ae_batch(&[(1, Some("2025-01-01"))])],
            );
            let other = with_column(
                &ae_batch(&[(1, Some("2025-01-01"))]),
                "arrival_date",
                Arc::new(StringArray::from(vec!["2025-01-01"])),
            );
            write_parquet(&folder.join("part-1.parquet"), &[other]);
        },
        &[],
        &["ae_attendances", "part-1.parquet"],
    );
    refused(
        "data folder missing",
        |_, data, _| std::fs::remove_dir_all(data).unwrap(),
        &[],
        &["data folder not found"],
    );
}

#[test]
fn row_level_problems_are_counted_not_fatal() {
    counted(
        "null person ids in events",
        |_, data, _| {
            let b = with_column(
                &ae_batch(&[(1, Some("2025-01-01")), (1, Some("2025-01-02"))]),
                "person_id",
                Arc::new(Int64Array::from(vec![None, Some(1)])),
            );
            write_parquet(&data.join("ae_attendances.parquet"), &[b]);
        },
        "ae",
        "null_person_id",
        1,
    );
    counted(
        "events of persons not in the population",
        |_, data, _| {
            write_parquet(
                &data.join("ae_attendances.parquet"),
                &[ae_batch(&[
                    (1, Some("2025-01-01")),
                    (77, Some("2025-01-01")),
                    (78, Some("2025-01-01")),
                ])],
            )
        },
        "ae",
        "unknown_person",
        2,
    );
    counted(
        "null dates",
        |_, data, _| {
            write_parquet(
                &data.join("ae_attendances.parquet"),
                &[ae_batch(&[(1, None), (1, Some("2025-01-01"))])],
            )
        },
        "ae",
        "null_date",
        1,
    );
    counted(
        "duplicated person in the population",
        |_, data, _| {
            let people = vec![person(1, "1980-01-01", "P1"), person(1, "1981-01-01", "P1")];
            write_parquet(&data.join("patients.parquet"), &[patients_batch(&people)]);
        },
        "patients",
        "duplicate_person_id",
        1,
    );
}

#[test]
fn odd_but_valid_data_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, rules) = good(tmp.path());
    // An absurdly long code and dates far in the past match nothing, and
    // events after the as-of date are not yet known.
    let long = "X".repeat(100_000);
    let codes: [&[&str]; 2] = [&[long.as_str()], &["I50.9"]];
    write_parquet(
        &data.join("admissions.parquet"),
        &[admissions_batch(&[
            (3, "1850-01-01", "emergency", codes[0]),
            (3, "2030-01-01", "emergency", codes[1]),
        ])],
    );
    let out = tmp.path().join("out");
    let o = run(&rules, &data, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(manifest(&out)["rejected"]["admissions"]["after_as_of"], 1);
    // An as-of date before all the data (and before Excel's first date):
    // nothing is known yet, and every output is still written.
    let o = run(&rules, &data, &out, &["--as-of", "1800-01-01"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn rule_file_problems() {
    refused(
        "syntax error",
        |_, _, rules| edit(rules, "[params]", "[params"),
        &[],
        &["rules.toml:"],
    );
    refused(
        "unknown name",
        |_, _, rules| {
            edit(
                rules,
                "ae_attendances_12m >= hiu_threshold",
                "ae_attendance_12m >= hiu_threshold",
            )
        },
        &[],
        &[
            "rules.toml:",
            "unknown name `ae_attendance_12m`",
            "ae_attendances_12m",
        ],
    );
    refused(
        "type error",
        |_, _, rules| {
            edit(
                rules,
                "ae_attendances_12m >= hiu_threshold",
                "ae_attendances_12m >= 'five'",
            )
        },
        &[],
        &["rules.toml:"],
    );
    refused(
        "cycle",
        |_, _, rules| {
            let text = std::fs::read_to_string(rules).unwrap();
            let text = text.replacen(
                "[features.last_ae_attendance]",
                "[features.a]\nexpr = \"b + 1\"\n\n[features.b]\nexpr = \"a + 1\"\n\n[features.last_ae_attendance]",
                1,
            );
            std::fs::write(rules, text).unwrap();
        },
        &[],
        &["rules.toml:", "cycle"],
    );
    refused(
        "duplicate name",
        |_, _, rules| {
            let text = std::fs::read_to_string(rules).unwrap();
            let text = text.replacen(
                "[features.last_ae_attendance]",
                "[features.hiu]\nexpr = \"1\"\n\n[features.last_ae_attendance]",
                1,
            );
            std::fs::write(rules, text).unwrap();
        },
        &[],
        &["rules.toml:", "`hiu`"],
    );
    refused(
        "parameter override that does not exist",
        |_, _, _| {},
        &["--set", "hiu_treshold=3"],
        &["hiu_treshold", "hiu_threshold"],
    );
    refused(
        "parameter override of the wrong type",
        |_, _, _| {},
        &["--set", "hiu_threshold=three"],
        &["hiu_threshold"],
    );
}

/// A rule file with a code list written by the case.
fn with_codelist(rules: &Path, csv: &[u8]) {
    std::fs::write(rules.with_file_name("list.csv"), csv).unwrap();
    let text = std::fs::read_to_string(rules).unwrap();
    let text = text.replacen(
        "[features.ae_attendances_12m]",
        "[codelists.hf]\nfile = \"list.csv\"\nsystem = \"icd10\"\nmatch = \"prefix\"\nweight_column = \"points\"\n\n\
         [features.hf_points]\nsource = \"admissions\"\naggregate = \"sum_distinct_weights\"\ncodelist = \"hf\"\n\n\
         [features.ae_attendances_12m]",
        1,
    );
    std::fs::write(rules, text).unwrap();
}

#[test]
fn code_list_problems() {
    refused(
        "missing code list",
        |_, _, rules| {
            with_codelist(rules, b"code,term,points\nI50,Heart failure,1.5\n");
            std::fs::remove_file(rules.with_file_name("list.csv")).unwrap();
        },
        &[],
        &["list.csv"],
    );
    refused(
        "code list without a code column",
        |_, _, rules| with_codelist(rules, b"icd,term,points\nI50,Heart failure,1.5\n"),
        &[],
        &["list.csv", "code"],
    );
    refused(
        "one code with two weights",
        |_, _, rules| {
            with_codelist(
                rules,
                b"code,term,points\nI50,Heart failure,1.5\nI50,Heart failure,2.5\n",
            )
        },
        &[],
        &["list.csv", "I50"],
    );
    // A byte-order mark and CRLF line ends are accepted.
    let tmp = tempfile::tempdir().unwrap();
    let (data, rules) = good(tmp.path());
    with_codelist(
        &rules,
        b"\xEF\xBB\xBFcode,term,points\r\nI50,Heart failure,1.5\r\n",
    );
    let out = tmp.path().join("out");
    let o = run(&rules, &data, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = read_parquet(&out.join("patients.parquet"));
    let points = p.column_by_name("hf_points").unwrap();
    let points = points
        .as_any()
        .downcast_ref::<arrow_array::Float64Array>()
        .unwrap();
    assert_eq!(
        points.value(2),
        1.5,
        "I50.9 matched through the BOM and CRLF"
    );
}

#[test]
fn environment_problems() {
    refused(
        "output folder is a file",
        |dir, _, _| {
            let out = dir.join("out");
            std::fs::remove_dir_all(&out).unwrap();
            std::fs::write(&out, b"a file").unwrap();
        },
        &[],
        &["exists and is not a folder"],
    );
    refused(
        "output folder holds other files",
        |dir, _, _| std::fs::write(dir.join("out/notes.txt"), b"mine").unwrap(),
        &[],
        &["not empty and does not hold a previous strata output"],
    );
    refused(
        "as-of date that is not a date",
        |_, _, _| {},
        &["--as-of", "31/03/2025"],
        &["--as-of `31/03/2025` is not a date", "YYYY-MM-DD"],
    );
    refused(
        "another run holds the output",
        |dir, _, _| {
            std::fs::write(
                dir.join(".out.strata-lock"),
                format!("{}\n", std::process::id()),
            )
            .unwrap()
        },
        &[],
        &["being written by another strata run"],
    );
}
