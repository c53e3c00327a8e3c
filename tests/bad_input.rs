//! The bad-input matrix: each case breaks one thing about the data, the rule
//! file or the environment of a good run. A case that must be refused is
//! checked for exit code 2, a message naming the file (and line and column,
//! row group or column where they apply) with a `help:` line saying what to
//! do, no patient-level value in the message, and a previous output left
//! exactly as it was, file for file and byte for byte. Row-level problems do
//! not stop a run: they are counted, written to `OUT/rejects/` and
//! summarised, and `--strict` turns them into exit code 1.

mod util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, BinaryArray, Date32Array, Float64Array, Int64Array, StringArray};
use util::*;

const AS_OF: &str = "2025-03-31";

/// Pseudonyms long enough that finding one in a message cannot be chance.
const IDS: [i64; 3] = [
    910_000_000_000_001,
    910_000_000_000_002,
    910_000_000_000_003,
];
const UNKNOWN: [i64; 2] = [910_000_000_000_077, 910_000_000_000_078];
const BIRTHS: [&str; 3] = ["1980-01-13", "1990-02-17", "1970-03-19"];

/// A good data folder and rule file in `dir`.
fn good(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let people = vec![
        person(IDS[0], BIRTHS[0], "P1"),
        person(IDS[1], BIRTHS[1], "P1"),
        person(IDS[2], BIRTHS[2], "P2"),
    ];
    write_parquet(&data.join("patients.parquet"), &[patients_batch(&people)]);
    let ae: Vec<(i64, Option<&str>)> = (0..5).map(|_| (IDS[0], Some("2025-01-01"))).collect();
    write_parquet(&data.join("ae_attendances.parquet"), &[ae_batch(&ae)]);
    write_parquet(
        &data.join("admissions.parquet"),
        &[admissions_batch(&[(
            IDS[2],
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

/// Everything at `path`: each file under it (or the file itself) by
/// relative path, with its size and SHA-256.
fn snapshot(path: &Path) -> BTreeMap<PathBuf, (usize, String)> {
    use sha2::Digest;
    contents(path)
        .into_iter()
        .map(|(p, bytes)| {
            let digest = sha2::Sha256::digest(&bytes);
            let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
            (p, (bytes.len(), hex))
        })
        .collect()
}

fn contents(path: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    if path.is_file() {
        files.insert(PathBuf::new(), std::fs::read(path).unwrap());
    } else if path.is_dir() {
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(path).unwrap().to_path_buf();
                    files.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
    }
    files
}

/// Asserts that a message names no person: no id, no date of birth.
fn assert_no_patient_values(name: &str, text: &str) {
    for id in IDS.iter().chain(&UNKNOWN) {
        assert!(!text.contains(&id.to_string()), "{name}: an id in\n{text}");
    }
    for birth in BIRTHS {
        assert!(!text.contains(birth), "{name}: a birth date in\n{text}");
    }
}

type Mutation = fn(&Path, &Path, &Path);

/// A case that must fail with exit code 2 and a message holding every
/// fragment given; a fragment `@TEXT` stands for `rules.toml:LINE:` (a
/// column follows), the line of TEXT in the rule file as the case left it.
fn refused(name: &str, mutate: Mutation, extra: &[&str], fragments: &[&str]) -> String {
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
    // there) must be exactly as it is after the failed run.
    let before = snapshot(&out);
    let o = run(&rules, &data, &out, extra);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{name}: {err}");
    for f in fragments {
        let want = match f.strip_prefix('@') {
            Some(needle) => {
                let text = std::fs::read_to_string(&rules).unwrap();
                let offset = text
                    .find(needle)
                    .unwrap_or_else(|| panic!("{name}: {needle}"));
                let line = text[..offset].matches('\n').count() + 1;
                format!("rules.toml:{line}:")
            }
            None => f.to_string(),
        };
        assert!(err.contains(&want), "{name}: no `{want}` in:\n{err}");
    }
    assert!(err.starts_with("error: "), "{name}: {err}");
    // What to do: a help line, or for a misspelt name the right one.
    assert!(
        err.contains("\n  help: ") || err.contains("(did you mean `"),
        "{name}: says what to do:\n{err}"
    );
    assert_no_patient_values(name, &err);
    assert_eq!(
        snapshot(&out),
        before,
        "{name}: the previous output changed"
    );
    err
}

/// A case that must run (exit 0), its problem rows counted under `reason`
/// in the manifest, listed in `OUT/rejects/`, and summarised; `--strict`
/// fails it with exit code 1.
fn counted(name: &str, mutate: Mutation, source: &str, reason: &str, rows: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let (data, rules) = good(tmp.path());
    mutate(tmp.path(), &data, &rules);
    let out = tmp.path().join("out");
    let o = run_printed(&rules, &data, &out, &["--as-of", AS_OF]);
    assert!(o.status.success(), "{name}: {}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("Rows skipped for problems in the data: {rows}")),
        "{name}: the summary says so:\n{}",
        stdout(&o)
    );
    assert_no_patient_values(name, &(stdout(&o) + &stderr(&o)));
    let m = manifest(&out);
    assert_eq!(m["rejected"][source][reason], rows, "{name}: {m}");
    let rejects = std::fs::read_to_string(out.join(format!("rejects/{source}.csv"))).unwrap();
    assert_eq!(
        rejects.lines().filter(|l| l.starts_with(reason)).count() as u64,
        rows,
        "{name}: {rejects}"
    );
    // --strict makes it a failure the scheduler sees, and says why.
    let o = run(&rules, &data, &out, &["--strict"]);
    assert_eq!(o.status.code(), Some(1), "{name} under --strict");
    assert!(
        stderr(&o).contains(&format!("{rows} input rows were skipped")),
        "{name}: {}",
        stderr(&o)
    );
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
                Arc::new(Int64Array::from(vec![IDS[0]])) as ArrayRef,
            )]);
            write_parquet(&data.join("ae_attendances.parquet"), &[b]);
        },
        &[],
        &["ae_attendances.parquet", "no column `arrival_date`"],
    );
    refused(
        "PCN names table without its names",
        |_, data, _| {
            let b = batch(vec![(
                "pcn_code",
                Arc::new(StringArray::from(vec!["P1"])) as ArrayRef,
            )]);
            write_parquet(&data.join("pcns.parquet"), &[b]);
        },
        &[],
        &[
            "pcns.parquet",
            "no column `pcn_name`",
            "export the table with columns pcn_code and pcn_name",
        ],
    );
    refused(
        "PCN names table giving a code two names",
        |_, data, _| {
            let b = batch(vec![
                (
                    "pcn_code",
                    Arc::new(StringArray::from(vec!["P1", "P1"])) as ArrayRef,
                ),
                (
                    "pcn_name",
                    Arc::new(StringArray::from(vec!["North", "South"])) as ArrayRef,
                ),
            ]);
            write_parquet(&data.join("pcns.parquet"), &[b]);
        },
        &[],
        &["pcns.parquet", "`P1` has two names: `North` and `South`"],
    );
    refused(
        "a person id mapped as the opt-out flag",
        |_, _, rules| {
            edit(
                rules,
                "[params]",
                "[population]\ntype1_opt_out = \"person_id\"\n\n[params]",
            )
        },
        &[],
        &[
            "patients.parquet",
            "type 1 opt-out column `person_id`",
            "on row 1",
            "true/false, 1/0 or Y/N",
        ],
    );
    refused(
        "registrations table without a column",
        |_, data, _| {
            let start = Arc::new(Date32Array::from(vec![day("2020-01-01")]));
            let b = one_registration(start, None);
            write_parquet(&data.join("registrations.parquet"), &[b]);
        },
        &[],
        &[
            "registrations.parquet",
            "no column `end_date`",
            "export the table with columns person_id, practice_code, start_date and end_date",
        ],
    );
    refused(
        "registrations column of the wrong type",
        |_, data, _| {
            let start = Arc::new(StringArray::from(vec!["2020-01-01"]));
            let end = Arc::new(Date32Array::from(vec![None::<i32>]));
            let b = one_registration(start, Some(end));
            write_parquet(&data.join("registrations.parquet"), &[b]);
        },
        &[],
        &[
            "registrations.parquet",
            "column `start_date`",
            "docs/data-contract.md",
        ],
    );
    refused(
        "column of the wrong type",
        |_, data, _| {
            let b = with_column(
                &ae_batch(&[(IDS[0], Some("2025-01-01"))]),
                "arrival_date",
                Arc::new(StringArray::from(vec!["2025-01-01"])),
            );
            write_parquet(&data.join("ae_attendances.parquet"), &[b]);
        },
        &[],
        &["ae_attendances.parquet", "`arrival_date`", "not a date"],
    );
    refused(
        "person ids of the wrong type",
        |_, data, _| {
            let b = with_column(
                &ae_batch(&[(IDS[0], Some("2025-01-01"))]),
                "person_id",
                Arc::new(Float64Array::from(vec![1.5])),
            );
            write_parquet(&data.join("ae_attendances.parquet"), &[b]);
        },
        &[],
        &["ae_attendances.parquet", "`person_id`", "integers or text"],
    );
    refused(
        "codes that are not text (bytes, not UTF-8)",
        |_, data, rules| {
            let b = with_column(
                &gp_batch(&[(IDS[0], "2024-01-01", "x")]),
                "snomed_code",
                Arc::new(BinaryArray::from(vec![&b"\xff\xfe"[..]])),
            );
            write_parquet(&data.join("gp_events.parquet"), &[b]);
            with_gp_feature(rules);
        },
        &[],
        &["gp_events.parquet", "`snomed_code`", "codes must be text"],
    );
    refused(
        "text that is not UTF-8 (a Windows-1252 export)",
        |_, data, rules| {
            // 0xE9 is "é" in Windows-1252, and no UTF-8 character.
            let bytes = b"12\xe9";
            let codes = unsafe {
                StringArray::new_unchecked(
                    arrow_buffer::OffsetBuffer::new(vec![0i32, 3].into()),
                    arrow_buffer::Buffer::from(&bytes[..]),
                    None,
                )
            };
            let b = with_column(
                &gp_batch(&[(IDS[0], "2024-01-01", "x")]),
                "snomed_code",
                Arc::new(codes),
            );
            write_parquet(&data.join("gp_events.parquet"), &[b]);
            with_gp_feature(rules);
        },
        &[],
        &["gp_events.parquet", "`snomed_code`", "not UTF-8"],
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
    let cuts: [Mutation; 3] = [
        |_, data, _| truncate(&data.join("ae_attendances.parquet"), 0.5),
        |_, data, _| truncate(&data.join("ae_attendances.parquet"), 0.9),
        |_, data, _| truncate(&data.join("ae_attendances.parquet"), 0.99),
    ];
    for cut in cuts {
        let err = refused(
            "truncated Parquet",
            cut,
            &[],
            &["ae_attendances.parquet", "truncated"],
        );
        assert!(err.contains("re-export"), "{err}");
    }
    refused(
        "a damaged data page, footer intact",
        |_, data, _| {
            // The values of the first column chunk start after the 4-byte
            // magic; zeroing them breaks the page but not the footer.
            let path = data.join("ae_attendances.parquet");
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[4..40].fill(0xff);
            std::fs::write(&path, bytes).unwrap();
        },
        &[],
        &["ae_attendances.parquet", "row group 0"],
    );
    refused(
        "parts with mismatched schemas",
        |_, data, _| {
            std::fs::remove_file(data.join("ae_attendances.parquet")).unwrap();
            let folder = data.join("ae_attendances");
            std::fs::create_dir(&folder).unwrap();
            write_parquet(
                &folder.join("part-0.parquet"),
                &[ae_batch(&[(IDS[0], Some("2025-01-01"))])],
            );
            let other = with_column(
                &ae_batch(&[(IDS[0], Some("2025-01-01"))]),
                "arrival_date",
                Arc::new(StringArray::from(vec!["2025-01-01"])),
            );
            write_parquet(&folder.join("part-1.parquet"), &[other]);
        },
        &[],
        &["ae_attendances", "part-1.parquet", "differ from those of"],
    );
    refused(
        "a table folder with no part files",
        |_, data, _| {
            std::fs::remove_file(data.join("ae_attendances.parquet")).unwrap();
            std::fs::create_dir(data.join("ae_attendances")).unwrap();
        },
        &[],
        &["ae_attendances", "no .parquet part files"],
    );
    refused(
        "a table both as a file and as a folder",
        |_, data, _| std::fs::create_dir(data.join("ae_attendances")).unwrap(),
        &[],
        &[
            "ae_attendances.parquet",
            "both as this file and as the folder",
        ],
    );
    refused(
        "data folder missing",
        |_, data, _| std::fs::remove_dir_all(data).unwrap(),
        &[],
        &["data folder not found"],
    );
}

/// A registrations table of one row (the first person, at practice A1)
/// with this start date column, and this end date column or none.
fn one_registration(start: ArrayRef, end: Option<ArrayRef>) -> arrow_array::RecordBatch {
    let mut columns = vec![
        (
            "person_id",
            Arc::new(Int64Array::from(vec![IDS[0]])) as ArrayRef,
        ),
        (
            "practice_code",
            Arc::new(StringArray::from(vec!["A1"])) as ArrayRef,
        ),
        ("start_date", start),
    ];
    columns.extend(end.map(|end| ("end_date", end)));
    batch(columns)
}

fn truncate(path: &Path, keep: f64) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..(bytes.len() as f64 * keep) as usize]).unwrap();
}

/// Adds a GP-events source and a feature reading it to the rule file.
fn with_gp_feature(rules: &Path) {
    edit(
        rules,
        "[features.ae_attendances_12m]",
        "[sources.gp]\ntable = \"gp_events\"\ndate = \"event_date\"\ncode = \"snomed_code\"\n\n\
         [features.gp_codes]\nsource = \"gp\"\naggregate = \"count_distinct_codes\"\n\n\
         [features.ae_attendances_12m]",
    );
}

#[test]
fn row_level_problems_are_counted_not_fatal() {
    counted(
        "null person ids in events",
        |_, data, _| {
            let b = with_column(
                &ae_batch(&[(IDS[0], Some("2025-01-01")), (IDS[0], Some("2025-01-02"))]),
                "person_id",
                Arc::new(Int64Array::from(vec![None, Some(IDS[0])])),
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
                    (IDS[0], Some("2025-01-01")),
                    (UNKNOWN[0], Some("2025-01-01")),
                    (UNKNOWN[1], Some("2025-01-01")),
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
                &[ae_batch(&[(IDS[0], None), (IDS[0], Some("2025-01-01"))])],
            )
        },
        "ae",
        "null_date",
        1,
    );
    counted(
        "impossible dates: before 1900",
        |_, data, _| {
            write_parquet(
                &data.join("ae_attendances.parquet"),
                &[ae_batch(&[
                    (IDS[0], Some("1850-01-01")),
                    (IDS[0], Some("1899-12-31")),
                    (IDS[0], Some("1900-01-01")),
                    (IDS[0], Some("2025-01-01")),
                ])],
            )
        },
        "ae",
        "date_before_1900",
        2,
    );
    counted(
        "impossible dates: far outside any calendar",
        |_, data, _| {
            let b = with_column(
                &ae_batch(&[(IDS[0], Some("2025-01-01")), (IDS[0], Some("2025-01-01"))]),
                "arrival_date",
                Arc::new(Date32Array::from(vec![i32::MIN + 1, day("2025-01-01")])),
            );
            write_parquet(&data.join("ae_attendances.parquet"), &[b]);
        },
        "ae",
        "date_before_1900",
        1,
    );
    counted(
        "duplicated person in the population",
        |_, data, _| {
            let people = vec![
                person(IDS[0], BIRTHS[0], "P1"),
                person(IDS[0], BIRTHS[1], "P1"),
                person(IDS[2], BIRTHS[2], "P2"),
            ];
            write_parquet(&data.join("patients.parquet"), &[patients_batch(&people)]);
        },
        "patients",
        "duplicate_person_id",
        1,
    );
    counted(
        "null person id in the population",
        |_, data, _| {
            let people = vec![
                person(IDS[0], BIRTHS[0], "P1"),
                person(IDS[1], BIRTHS[1], "P1"),
                person(IDS[2], BIRTHS[2], "P2"),
            ];
            let b = with_column(
                &patients_batch(&people),
                "person_id",
                Arc::new(Int64Array::from(vec![Some(IDS[0]), None, Some(IDS[2])])),
            );
            write_parquet(&data.join("patients.parquet"), &[b]);
        },
        "patients",
        "null_person_id",
        1,
    );
}

#[test]
fn odd_but_valid_data_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, rules) = good(tmp.path());
    // An absurdly long code matches nothing; events after the as-of date
    // are not yet known: counted, but not a problem with the data.
    let long = "X".repeat(100_000);
    let codes: [&[&str]; 2] = [&[long.as_str()], &["I50.9"]];
    write_parquet(
        &data.join("admissions.parquet"),
        &[admissions_batch(&[
            (IDS[2], "2020-01-01", "emergency", codes[0]),
            (IDS[2], "2030-01-01", "emergency", codes[1]),
        ])],
    );
    let out = tmp.path().join("out");
    let o = run(&rules, &data, &out, &["--strict"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(manifest(&out)["rejected"]["admissions"]["after_as_of"], 1);
    // An as-of date before everyone was born: no one to list or count,
    // which is a mistake in the date, not a run whose empty lists should
    // replace the last good ones.
    let before = std::fs::read(out.join("manifest.json")).unwrap();
    let o = run(&rules, &data, &out, &["--as-of", "1900-01-01"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no one in the population is alive"));
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), before);
    // With someone born before it, that date (before Excel's first) runs,
    // and every output is written.
    let people = vec![
        person(IDS[0], "1899-06-01", "P1"),
        person(IDS[1], BIRTHS[1], "P1"),
        person(IDS[2], BIRTHS[2], "P2"),
    ];
    write_parquet(&data.join("patients.parquet"), &[patients_batch(&people)]);
    let o = run(&rules, &data, &out, &["--as-of", "1900-01-01"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("pcn/P1/P1.xlsx").exists());
    write_parquet(
        &data.join("patients.parquet"),
        &[patients_batch(&[
            person(IDS[0], BIRTHS[0], "P1"),
            person(IDS[1], BIRTHS[1], "P1"),
            person(IDS[2], BIRTHS[2], "P2"),
        ])],
    );
    // An event table with no rows: every count from it is 0, and the run
    // says so rather than pass it by.
    write_parquet(&data.join("ae_attendances.parquet"), &[ae_batch(&[])]);
    let o = run_printed(&rules, &data, &out, &["--as-of", AS_OF]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Table `ae_attendances` has no rows"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn rule_file_problems() {
    refused(
        "an included file that is not there",
        |_, _, rules| {
            edit(
                rules,
                "[model]",
                "include = [\"other/nope.toml\"]\n\n[model]",
            )
        },
        &[],
        &[
            "@\"other/nope.toml\"",
            "cannot read included rule file",
            "nope.toml",
            "relative to the file that names it",
        ],
    );
    refused(
        "a source named as the registrations table (whose counts it would hide)",
        |_, _, rules| {
            let text = std::fs::read_to_string(rules).unwrap();
            std::fs::write(
                rules,
                text.replace("[sources.ae]", "[sources.registrations]")
                    .replace("source = \"ae\"", "source = \"registrations\""),
            )
            .unwrap();
        },
        &[],
        &["source `registrations`", "rename [sources.registrations]"],
    );
    refused(
        "syntax error",
        |_, _, rules| edit(rules, "[params]", "[params"),
        &[],
        &["@[params"],
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
            "@ae_attendance_12m >=",
            "unknown name `ae_attendance_12m`",
            "did you mean `ae_attendances_12m`",
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
        &["@ae_attendances_12m >= 'five'"],
    );
    refused(
        "cycle",
        |_, _, rules| {
            edit(
                rules,
                "[features.last_ae_attendance]",
                "[features.a]\nexpr = \"b + 1\"\n\n[features.b]\nexpr = \"a + 1\"\n\n[features.last_ae_attendance]",
            )
        },
        &[],
        &["@[features.a]", "cycle: a -> b -> a"],
    );
    refused(
        "duplicate name",
        |_, _, rules| {
            edit(
                rules,
                "[features.last_ae_attendance]",
                "[features.hiu]\nexpr = \"1\"\n\n[features.last_ae_attendance]",
            )
        },
        &[],
        &["rules.toml:", "`hiu`"],
    );
    refused(
        "unknown key",
        |_, _, rules| edit(rules, "aggregate = \"count\"", "aggregat = \"count\""),
        &[],
        &["@aggregat ", "aggregat"],
    );
    refused(
        "parameter override that does not exist",
        |_, _, _| {},
        &["--set", "hiu_treshold=3"],
        &["hiu_treshold", "did you mean `hiu_threshold`"],
    );
    refused(
        "parameter override of the wrong type",
        |_, _, _| {},
        &["--set", "hiu_threshold=three"],
        &["hiu_threshold", "three"],
    );
}

/// A rule file with a code list written by the case.
fn with_codelist(rules: &Path, csv: &[u8]) {
    std::fs::write(rules.with_file_name("list.csv"), csv).unwrap();
    edit(
        rules,
        "[features.ae_attendances_12m]",
        "[codelists.hf]\nfile = \"list.csv\"\nsystem = \"icd10\"\nmatch = \"prefix\"\nweight_column = \"points\"\n\n\
         [features.hf_points]\nsource = \"admissions\"\naggregate = \"sum_distinct_weights\"\ncodelist = \"hf\"\n\n\
         [features.ae_attendances_12m]",
    );
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
        &["list.csv", "@file = \"list.csv\""],
    );
    refused(
        "code list without a code column",
        |_, _, rules| with_codelist(rules, b"icd,term,points\nI50,Heart failure,1.5\n"),
        &[],
        &["list.csv", "`code`"],
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
        &["list.csv:3", "I50"],
    );
    refused(
        "a weight that is not a number",
        |_, _, rules| with_codelist(rules, b"code,term,points\nI50,Heart failure,high\n"),
        &[],
        &["list.csv:2", "high"],
    );
    refused(
        "a malformed CSV line",
        |_, _, rules| {
            with_codelist(
                rules,
                b"code,term,points\nI50,Heart failure,1.5\nI11,\"unclosed,2.0\nJ44,COPD\n",
            )
        },
        &[],
        &["list.csv"],
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
    let points = points.as_any().downcast_ref::<Float64Array>().unwrap();
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
        &["out", "exists and is not a folder"],
    );
    refused(
        "output folder holds other files",
        |dir, _, _| std::fs::write(dir.join("out/notes.txt"), b"mine").unwrap(),
        &[],
        &[
            "out",
            "not empty and does not hold a previous strata output",
        ],
    );
    refused(
        "as-of date that is not a date",
        |_, _, _| {},
        &["--as-of", "31/03/2025"],
        &["--as-of `31/03/2025` is not a date", "YYYY-MM-DD"],
    );
    for (date, why) in [("1899-12-31", "before 1900"), ("+10000-01-01", "a sign")] {
        let said = refused(
            &format!("as-of date with {why}"),
            |_, _, _| {},
            &["--as-of", date],
            &["is not a date from 1900 on", "YYYY-MM-DD"],
        );
        assert!(said.contains(date), "{said}");
    }
    refused(
        "far more threads than cores",
        |_, _, _| {},
        &["--threads", "100000"],
        &["--threads must be from 1 to 1024, not 100000"],
    );
    refused(
        "a parameter set twice",
        |_, _, _| {},
        &["--set", "hiu_threshold=3", "--set", "hiu_threshold=4"],
        &["--set `hiu_threshold` is given twice"],
    );
    refused(
        "a lock held by a live process",
        // Held until this test binary ends (a `Mutation` returns nothing).
        |dir, _, _| std::mem::forget(hold_lock(&dir.join(".out.strata-lock"))),
        &[],
        &[
            "being written by another strata run",
            &std::process::id().to_string(),
        ],
    );
}

/// Runs strata with its output on a file system of `size` bytes (a tmpfs
/// mounted for the test), or `None` where this machine cannot mount one.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, options: &str) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs", at.to_str().unwrap()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mount(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// The size in 4 KiB pages of everything under `dir`, as tmpfs counts it.
fn pages(dir: &Path) -> u64 {
    snapshot(dir)
        .values()
        .map(|(len, _)| (*len as u64).div_ceil(4096).max(1))
        .sum::<u64>()
}

/// The disk fills up while a run writes: exit 2, the file named, what to
/// do, and the previous output untouched. On a real small file system
/// where the machine lets the test mount one; otherwise with a file-size
/// limit on the process (EFBIG rather than ENOSPC), so that the case runs
/// everywhere.
#[test]
fn disk_full() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, rules) = good(tmp.path());
    let first = tmp.path().join("first");
    let o = run(&rules, &data, &first, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let size = pages(&first);

    // Room for the previous output and a few pages more.
    let small = tmp.path().join("small");
    let mount = Mount::tmpfs(&small, &format!("size={}", (size + 3) * 4096));
    let (err, code, out) = if mount.is_some() {
        let out = small.join("out");
        let o = run(&rules, &data, &out, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let before = snapshot(&out);
        let o = run(&rules, &data, &out, &[]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_eq!(snapshot(&out), before, "the previous output changed");
        (stderr(&o), o.status.code(), out)
    } else {
        eprintln!("disk_full: cannot mount a tmpfs here; limiting file size instead");
        let out = tmp.path().join("limited");
        let o = run(&rules, &data, &out, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let before = snapshot(&out);
        let command = format!(
            "trap '' XFSZ; ulimit -f 8; exec '{}' run --rules '{}' --data '{}' --out '{}' --as-of {AS_OF} --quiet",
            env!("CARGO_BIN_EXE_strata"),
            rules.display(),
            data.display(),
            out.display()
        );
        let o = std::process::Command::new("sh")
            .args(["-c", &command])
            .output()
            .unwrap();
        assert_eq!(snapshot(&out), before, "the previous output changed");
        (stderr(&o), o.status.code(), out)
    };
    assert_eq!(code, Some(2), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains(out.parent().unwrap().to_str().unwrap()),
        "{err}"
    );
    assert!(err.contains("\n  help: "), "{err}");
    assert!(
        err.contains("No space left") || err.contains("too large"),
        "{err}"
    );
    assert_eq!(err.matches("error: ").count(), 1, "one message: {err}");
    assert_no_patient_values("disk full", &err);
    drop(mount);
}

/// The output folder cannot be written (a read-only file system, which
/// even root cannot write; or permissions, for other users).
#[test]
fn output_folder_not_writable() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, rules) = good(tmp.path());
    let parent = tmp.path().join("readonly");
    let mount = Mount::tmpfs(&parent, "ro,size=1m");
    if mount.is_none() {
        std::fs::create_dir_all(&parent).unwrap();
        let mut perms = std::fs::metadata(&parent).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
        std::fs::set_permissions(&parent, perms).unwrap();
        if std::fs::write(parent.join("probe"), b"").is_ok() {
            eprintln!(
                "output_folder_not_writable: root without mount: cannot make a folder unwritable"
            );
            return;
        }
    }
    let out = parent.join("out");
    let o = run(&rules, &data, &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(parent.to_str().unwrap()), "{err}");
    assert!(err.contains("\n  help: "), "{err}");
    assert!(!out.exists());
    drop(mount);
}

/// Two real runs on one output folder: the second is refused, naming the
/// first's process, and the first completes.
#[test]
fn two_runs_on_one_output_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 20000, 2);
    let out = tmp.path().join("out");
    let args = [
        "run",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    let lock = tmp.path().join(".out.strata-lock");
    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    // Taken, and its holder written (the file stays between runs, so its
    // being there is not enough).
    while !std::fs::metadata(&lock).is_ok_and(|m| m.len() > 0) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the first run never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let second = strata(&args);
    let err = stderr(&second);
    assert!(first.wait().unwrap().success());
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(
        err.contains("being written by another strata run")
            && err.contains(&format!("process {}", first.id())),
        "{err}"
    );
    assert!(err.contains("\n  help: "), "{err}");
    manifest(&out);
}
