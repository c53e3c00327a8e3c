//! Nothing strata writes for Excel can run as a formula: hostile text in
//! every text column that reaches an output (pseudonymised ids, practice
//! codes, PCN names, code-list categories, rule-file labels, rejected rows'
//! ids) arrives in the CSVs neutralised and in the workbooks as plain text.

mod util;

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Date32Array, Int8Array, StringArray};
use util::*;

/// Values a spreadsheet would run, one per kind of leading character.
const HOSTILE: [&str; 6] = [
    "=HYPERLINK(\"http://x.invalid\",\"click\")",
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
];

fn text(values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values.iter().copied()))
}

fn fixture(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    let n = HOSTILE.len();
    let ids: Vec<String> = HOSTILE.iter().map(|h| format!("{h}#id")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let patients = batch(vec![
        ("person_id", text(&ids)),
        (
            "birth_date",
            Arc::new(Date32Array::from_iter_values(
                (0..n).map(|_| day("1950-01-01")),
            )),
        ),
        ("sex", text(&vec!["F"; n])),
        ("practice_code", text(&HOSTILE)),
        ("pcn_code", text(&vec!["P1"; n])),
        ("lsoa_code", text(&HOSTILE)),
        (
            "imd_decile",
            Arc::new(Int8Array::from_iter_values((0..n).map(|_| 1))),
        ),
        (
            "care_home",
            Arc::new(BooleanArray::from_iter((0..n).map(|_| Some(false)))),
        ),
        (
            "date_of_death",
            Arc::new(Date32Array::from_iter((0..n).map(|_| None::<i32>))),
        ),
    ]);
    write_parquet(&data.join("patients.parquet"), &[patients]);
    write_parquet(
        &data.join("pcns.parquet"),
        &[batch(vec![
            ("pcn_code", text(&["P1"])),
            ("pcn_name", text(&[HOSTILE[0]])),
        ])],
    );
    // Everyone has both listed codes; one event belongs to nobody known, so
    // its hostile id reaches rejects/.
    let mut persons: Vec<&str> = ids.iter().flat_map(|id| [*id, *id]).collect();
    persons.push("=unknown()");
    let codes: Vec<&str> = (0..persons.len())
        .map(|i| if i % 2 == 0 { "C1" } else { "C2" })
        .collect();
    let events = batch(vec![
        ("person_id", text(&persons)),
        (
            "event_date",
            Arc::new(Date32Array::from_iter_values(
                persons.iter().map(|_| day("2024-06-01")),
            )),
        ),
        ("snomed_code", text(&codes)),
    ]);
    write_parquet(&data.join("gp_events.parquet"), &[events]);

    std::fs::write(
        dir.join("list.csv"),
        format!(
            "code,term,category\nC1,\"{}\",\"{}\"\nC2,term,\"@evil\"\n",
            HOSTILE[1], "=cmd"
        ),
    )
    .unwrap();
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        r#"
[model]
name = "hostile"
title = "=Hostile title"
source = "test"

[sources.gp]
table = "gp_events"
date = "event_date"
code = "snomed_code"

[codelists.l]
file = "list.csv"
system = "other"
category_column = "category"

[features.categories]
label = "-Categories"
source = "gp"
aggregate = "list_categories"
codelist = "l"

[features.events]
label = "@Events"
source = "gp"
aggregate = "count"
codelist = "l"

[cohorts.everyone]
title = "+Everyone"
description = "=Everyone with a listed code"
when = "events >= 1"
rank = ["events desc"]
reasons = ["categories", "events"]
columns = ["practice_code", "categories", "events"]
"#,
    )
    .unwrap();
    rules
}

/// A field a spreadsheet would run: starts (after spaces) with `=`, `+`,
/// `-`, `@`, a tab or a carriage return, and is not a number.
fn runs_as_formula(field: &str) -> bool {
    let start = field.trim_start_matches(' ');
    start.starts_with(['=', '+', '-', '@', '\t', '\r']) && start.trim().parse::<f64>().is_err()
}

fn csv_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            csv_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "csv") {
            out.push(path);
        }
    }
}

#[test]
fn hostile_text_never_reaches_an_output_as_a_formula() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = fixture(tmp.path());
    let out = tmp.path().join("out");
    let o = run_rules(&rules, &tmp.path().join("data"), &out, "2025-03-31");
    assert!(o.status.success(), "{}", stderr(&o));
    // A run before anyone's events, and a diff from it: everyone enters,
    // so the hostile ids reach changes.csv.
    let before = tmp.path().join("before");
    let o = run_rules(&rules, &tmp.path().join("data"), &before, "2024-01-01");
    assert!(o.status.success(), "{}", stderr(&o));
    let diff = tmp.path().join("diff");
    let o = diff_runs(&before, &out, &diff, &["--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let mut files = Vec::new();
    csv_files(&out, &mut files);
    csv_files(&diff, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("pcn/P1/everyone.csv")),
        "{files:?}"
    );
    assert!(
        files.iter().any(|f| f.starts_with(out.join("rejects"))),
        "{files:?}"
    );
    let changes = std::fs::read_to_string(diff.join("pcn/P1/changes.csv")).unwrap();
    assert!(changes.contains("'=HYPERLINK"), "{changes}");
    let mut neutralised = 0;
    for file in &files {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_path(file)
            .unwrap();
        for record in reader.records() {
            for field in record.unwrap().iter() {
                assert!(!runs_as_formula(field), "{}: {field:?}", file.display());
                if field.starts_with('\'') {
                    neutralised += 1;
                }
            }
        }
    }
    // Ids, practice codes and categories were all hostile.
    assert!(
        neutralised >= 3 * HOSTILE.len(),
        "only {neutralised} fields neutralised"
    );

    // Workbooks: every cell is a value, none a formula, and the hostile
    // practice codes arrive as the exact text.
    use calamine::Reader;
    let workbook = out.join("pcn/P1/P1.xlsx");
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(&workbook).unwrap();
    let mut texts = Vec::new();
    for sheet in book.sheet_names() {
        let formulas = book.worksheet_formula(&sheet).unwrap();
        assert!(
            formulas.used_cells().all(|(_, _, f)| f.is_empty()),
            "{sheet} holds a formula"
        );
        let range = book.worksheet_range(&sheet).unwrap();
        texts.extend(range.used_cells().filter_map(|(_, _, c)| match c {
            calamine::Data::String(s) => Some(s.clone()),
            _ => None,
        }));
    }
    for hostile in HOSTILE {
        assert!(
            texts.iter().any(|t| t == hostile),
            "{hostile:?} not kept as text"
        );
    }
}
