//! The binary's contract with people and schedulers: clear errors that name
//! the file, line and column, exit code 2 for user mistakes, and a previous
//! good output left untouched by a failed run.

mod util;

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, StringArray};
use util::*;

fn sample_fixture(dir: &Path) {
    let people = vec![person(1, "1980-01-01", "P1"), person(2, "2000-01-01", "P2")];
    write_parquet(&dir.join("patients.parquet"), &[patients_batch(&people)]);
    let ae: Vec<(i64, Option<&str>)> = (0..6).map(|_| (1, Some("2025-01-01"))).collect();
    write_parquet(&dir.join("ae_attendances.parquet"), &[ae_batch(&ae)]);
    write_parquet(
        &dir.join("admissions.parquet"),
        &[admissions_batch(&[(
            1,
            "2025-01-01",
            "emergency",
            &["I509"],
        )])],
    );
}

fn run_with(rules: &Path, data: &Path, out: &Path) -> std::process::Output {
    run_quietly(rules, data, out, &[])
}

/// The shipped HIU model with one substitution, written into `dir`.
fn hiu_with(dir: &Path, from: &str, to: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo_path("models/hiu.toml")).unwrap();
    assert!(text.contains(from), "the model no longer contains {from:?}");
    let path = dir.join("hiu.toml");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    path
}

fn line_col(text: &str, needle: &str) -> (usize, usize) {
    let offset = text.find(needle).unwrap();
    let line = text[..offset].matches('\n').count() + 1;
    let col = offset - text[..offset].rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[test]
fn a_typo_in_a_cohort_names_file_line_column_and_a_suggestion() {
    let tmp = tempfile::tempdir().unwrap();
    sample_fixture(tmp.path());
    let rules = hiu_with(
        tmp.path(),
        "and ae_attendances_12m >=",
        "and ae_attendence_12m >=",
    );
    let o = run_with(&rules, tmp.path(), &tmp.path().join("out"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let text = std::fs::read_to_string(&rules).unwrap();
    let (line, col) = line_col(&text, "ae_attendence_12m");
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{}:{line}:{col}: unknown name `ae_attendence_12m` (did you mean `ae_attendances_12m`?)",
            rules.display()
        )),
        "{err}"
    );
}

#[test]
fn syntax_and_type_errors_are_positioned() {
    let tmp = tempfile::tempdir().unwrap();
    sample_fixture(tmp.path());
    let out = tmp.path().join("out");
    for (from, to, needle, message) in [
        (
            ">= hiu_threshold\"",
            ">= \"",
            "\"\nrank",
            "expected a value but the expression ended",
        ),
        (
            "and ae_attendances_12m >= hiu_threshold",
            "and sex",
            "sex\"",
            "`and` needs a true/false value",
        ),
        (
            "admission_method = 'emergency'",
            "admission_mode = 'emergency'",
            "admission_mode",
            "has no column `admission_mode`",
        ),
        (
            "\"hiu_window_days days\"",
            "\"hiu_window_dayz days\"",
            "hiu_window_dayz",
            "(did you mean `hiu_window_days`?)",
        ),
    ] {
        let rules = hiu_with(tmp.path(), from, to);
        let o = run_with(&rules, tmp.path(), &out);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let text = std::fs::read_to_string(&rules).unwrap();
        let (line, col) = line_col(&text, needle);
        let err = stderr(&o);
        assert!(
            err.contains(&format!("{}:{line}:{col}: ", rules.display())),
            "{line}:{col} for {to}: {err}"
        );
        assert!(err.contains(message), "{message}: {err}");
    }
}

#[test]
fn missing_files_and_tables_are_user_errors_with_help() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run_with(&tmp.path().join("nope.toml"), tmp.path(), &out);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("nope.toml: cannot read rule file"),
        "{}",
        stderr(&o)
    );

    let people = vec![person(1, "1980-01-01", "P1")];
    write_parquet(
        &tmp.path().join("patients.parquet"),
        &[patients_batch(&people)],
    );
    let o = run_with(&repo_path("models/hiu.toml"), tmp.path(), &out);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("table `ae_attendances` not found"), "{err}");
    assert!(err.contains("help:"), "{err}");
    assert!(
        !out.exists(),
        "a failed first run must not create the output folder"
    );
}

#[test]
fn a_failed_run_leaves_the_previous_output_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    sample_fixture(tmp.path());
    let out = tmp.path().join("out");
    let good = run_with(&repo_path("models/hiu.toml"), tmp.path(), &out);
    assert!(good.status.success(), "{}", stderr(&good));
    let before = std::fs::read(out.join("manifest.json")).unwrap();
    let csv_before = std::fs::read(out.join("pcn/P1/hiu.csv")).unwrap();

    // Same rule file, but the data now breaks the contract mid-run.
    std::fs::write(tmp.path().join("admissions.parquet"), b"not parquet").unwrap();
    let bad = run_with(&repo_path("models/hiu.toml"), tmp.path(), &out);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("admissions.parquet: not a readable Parquet file"),
        "{}",
        stderr(&bad)
    );
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), before);
    assert_eq!(
        std::fs::read(out.join("pcn/P1/hiu.csv")).unwrap(),
        csv_before
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("staging"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "staging folders left behind: {leftovers:?}"
    );
}

#[test]
fn refuses_to_overwrite_a_folder_that_is_not_strata_output() {
    let tmp = tempfile::tempdir().unwrap();
    sample_fixture(tmp.path());
    let out = tmp.path().join("mine");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "keep me").unwrap();
    let o = run_with(&repo_path("models/hiu.toml"), tmp.path(), &out);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("does not hold a previous strata output"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn bad_arguments_exit_2() {
    let o = strata(&["run", "--as-of", "31/03/2025"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--as-of `31/03/2025` is not a date"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("YYYY-MM-DD"));
    let o = strata(&["run", "--threads", "0"]);
    assert_eq!(o.status.code(), Some(2));
    let o = strata(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    // No persons would make tables every command refuses: nothing written.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("data");
    let o = strata(&[
        "generate",
        "--patients",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--patients must be at least 1"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

#[test]
fn the_summary_suppresses_small_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    sample_fixture(tmp.path());
    let o = strata(&[
        "run",
        "--rules",
        "models/hiu.toml",
        "--data",
        tmp.path().to_str().unwrap(),
        "--out",
        tmp.path().join("out").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    // One HIU member in P1: shown as *, never as 1.
    let row = s
        .lines()
        .find(|l| l.starts_with("hiu "))
        .unwrap_or_else(|| panic!("{s}"));
    assert!(row.contains('*') && !row.contains(" 1 "), "{row}");
    assert!(s.contains("shown as *"));
}

#[test]
fn generate_then_run_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = strata(&[
        "generate",
        "--patients",
        "3000",
        "--seed",
        "7",
        "--out",
        data.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("gp_events"), "{}", stdout(&o));
    let out = tmp.path().join("out");
    let o = strata(&[
        "run",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Bitterne"),
        "PCN names from the pcns table: {}",
        stdout(&o)
    );

    // Every generated PCN has a folder, each holding only its own persons.
    let p = read_parquet(&out.join("patients.parquet"));
    let ids = p
        .column_by_name("person_id")
        .unwrap()
        .as_primitive::<arrow_array::types::Int64Type>()
        .clone();
    let pcns = text_column(&p, "pcn_code");
    let pcns = pcns.as_string::<i32>();
    // (No PCN for people not registered on the as-of date.)
    let pcn_of: std::collections::HashMap<i64, Option<&str>> =
        ids.values().iter().copied().zip(pcns.iter()).collect();
    let folders: Vec<_> = std::fs::read_dir(out.join("pcn"))
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(folders.len(), 7);
    let mut listed = 0;
    for folder in folders {
        let pcn = folder.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(folder.path().join("hiu.csv")).unwrap();
        for line in text.lines().skip(1) {
            let id: i64 = line.split(',').nth(1).unwrap().parse().unwrap();
            assert_eq!(
                pcn_of[&id],
                Some(pcn.as_str()),
                "person {id} listed under the wrong PCN"
            );
            listed += 1;
        }
    }
    let members = p.column_by_name("hiu").unwrap().as_boolean().true_count();
    assert!(members > 0, "a 3,000-person city has some HIU");
    assert_eq!(listed, members);
}

#[test]
fn a_run_failing_while_writing_leaves_the_previous_output_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    sample_fixture(tmp.path());
    let out = tmp.path().join("out");
    let good = run_with(&repo_path("models/hiu.toml"), tmp.path(), &out);
    assert!(good.status.success(), "{}", stderr(&good));
    let before = std::fs::read(out.join("patients.parquet")).unwrap();

    // A practice code longer than an Excel cell holds, on a person the
    // lists name, fails the run while the PCN's workbook is written, after
    // patients.parquet is in the staging folder.
    let people = vec![person(1, "1980-01-01", "P1"), person(2, "2000-01-01", "P2")];
    let long = "P".repeat(40_000);
    let practices: ArrayRef = Arc::new(StringArray::from(vec![long.as_str(), "P2-GP"]));
    write_parquet(
        &tmp.path().join("patients.parquet"),
        &[replacing_column(
            &patients_batch(&people),
            "practice_code",
            practices,
        )],
    );
    let bad = run_with(&repo_path("models/hiu.toml"), tmp.path(), &out);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("what Excel holds"),
        "{}",
        stderr(&bad)
    );
    // Named where it would have been, not in the staging folder, which is
    // gone.
    let workbook = out.join("pcn").join("P1").join("P1.xlsx");
    assert!(
        stderr(&bad).contains(&workbook.display().to_string()),
        "{}",
        stderr(&bad)
    );
    assert_eq!(std::fs::read(out.join("patients.parquet")).unwrap(), before);
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && !n.ends_with(".strata-lock"))
        .collect();
    assert!(names.is_empty(), "staging folders left behind: {names:?}");
}

/// Of several cohorts whose condition fails on the data (an overflow), the
/// first in the rule file is told, however the threads that work the
/// cohorts out side by side finish.
#[test]
fn of_several_failing_cohorts_the_first_is_told() {
    let tmp = tempfile::tempdir().unwrap();
    sample_fixture(tmp.path());
    // Person 1 has 6 attendances: 6 * 2^62 overflows.
    let cohorts: String = ["first", "second", "third", "fourth", "fifth", "sixth"]
        .iter()
        .map(|name| {
            format!(
                "[cohorts.{name}]\ntitle = \"{name}\"\ndescription = \"{name}\"\n\
                 when = \"ae_12m * 4611686018427387904 > 0\"\n\n"
            )
        })
        .collect();
    let rules = tmp.path().join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            r#"
[model]
name = "overflowing"
title = "Overflowing"
source = "test"

[sources.ae]
table = "ae_attendances"
date = "arrival_date"

[features.ae_12m]
source = "ae"
aggregate = "count"
window = "365 days"

{cohorts}"#
        ),
    )
    .unwrap();
    for run in 0..5 {
        let out = tmp.path().join(format!("out{run}"));
        let o = run_quietly(&rules, tmp.path(), &out, &["--threads", "2"]);
        assert!(!o.status.success(), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("computing cohort `first`")
                && stderr(&o).contains("or compute in floats"),
            "run {run}: {}",
            stderr(&o)
        );
        assert!(!out.exists());
    }
}

#[test]
fn check_marks_the_offending_text_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = hiu_with(
        tmp.path(),
        "and ae_attendances_12m >=",
        "and ae_attendence_12m >=",
    );
    let o = strata(&["check", rules.to_str().unwrap(), "models/hiu.toml"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    let text = std::fs::read_to_string(&rules).unwrap();
    let (line, col) = line_col(&text, "ae_attendence_12m");
    let source_line = text.lines().nth(line - 1).unwrap();
    // The gutter is as wide as the line number.
    let pad = " ".repeat(line.to_string().len());
    let expected = format!(
        "error: {}:{line}:{col}: unknown name `ae_attendence_12m` (did you mean `ae_attendances_12m`?)\n{pad} |\n{line} | {source_line}\n{pad} | {}{}",
        rules.display(),
        " ".repeat(col - 1),
        "^".repeat("ae_attendence_12m".len())
    );
    assert!(
        err.contains(&expected),
        "{err}\n--- expected ---\n{expected}"
    );
    // The other file is still checked and reported.
    assert!(stdout(&o).contains("models/hiu.toml: ok"), "{}", stdout(&o));
}

#[test]
fn check_warns_about_unused_declarations() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = hiu_with(
        tmp.path(),
        "hiu_threshold = 5\n",
        "hiu_threshold = 5\nspare = 3\n",
    );
    let o = strata(&["check", rules.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: ") && stderr(&o).contains("parameter `spare` is never used"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("ok (1 warnings)"), "{}", stdout(&o));
}

#[test]
fn check_with_data_refuses_pcn_codes_a_run_cannot_name_folders_by() {
    let tmp = tempfile::tempdir().unwrap();
    sample_fixture(tmp.path());
    for (pcns, says) in [
        (["P1", "../P2"], "cannot be used as a folder name"),
        (["U1", "u1"], "differ only in case"),
    ] {
        let people = vec![
            person(1, "1980-01-01", pcns[0]),
            person(2, "2000-01-01", pcns[1]),
        ];
        write_parquet(
            &tmp.path().join("patients.parquet"),
            &[patients_batch(&people)],
        );
        let o = strata(&[
            "check",
            "models/hiu.toml",
            "--data",
            tmp.path().to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(says), "{}", stderr(&o));
        // A code on one row is not shown (it may be one person's value in
        // the wrong column): its row is.
        assert!(stderr(&o).contains("the first on row"), "{}", stderr(&o));
        for code in pcns {
            assert!(!stderr(&o).contains(&format!("`{code}`")), "{}", stderr(&o));
        }
    }
}

#[test]
fn members_on_no_pcn_list_are_told() {
    let tmp = tempfile::tempdir().unwrap();
    sample_fixture(tmp.path());
    let out = tmp.path().join("out");
    let o = run_with(&repo_path("models/hiu.toml"), tmp.path(), &out);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("no PCN"), "{}", stderr(&o));
    // Person 1, an HIU member, at a practice with no PCN.
    let people = vec![person(1, "1980-01-01", ""), person(2, "2000-01-01", "P2")];
    write_parquet(
        &tmp.path().join("patients.parquet"),
        &[patients_batch(&people)],
    );
    let o = run_with(&repo_path("models/hiu.toml"), tmp.path(), &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("no PCN") && err.contains("hiu"), "{err}");
}

#[test]
fn data_that_is_a_file_is_told_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    sample_fixture(tmp.path());
    let file = tmp.path().join("patients.parquet");
    let o = strata(&["check", "models/hiu.toml", "--data", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--data names a file, not the folder of tables"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_with_data_finds_missing_columns() {
    let tmp = tempfile::tempdir().unwrap();
    sample_fixture(tmp.path());
    let rules = hiu_with(tmp.path(), "date = \"arrival_date\"", "date = \"arrived\"");
    let o = strata(&[
        "check",
        rules.to_str().unwrap(),
        "--data",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("has no column `arrived`"),
        "{}",
        stderr(&o)
    );
    // Without data the same file is fine: columns are the data's business.
    let o = strata(&["check", rules.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `check --data` reads the data as a run does before its scan, so a table
/// a run would refuse there is refused here too: a registrations table that
/// registers nobody, and a PCN names table without its columns.
#[test]
fn check_with_data_reads_what_a_run_reads_before_its_scan() {
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    sample_fixture(tmp.path());
    let rules = repo_path("models/hiu.toml");
    let check = || {
        strata(&[
            "check",
            rules.to_str().unwrap(),
            "--data",
            tmp.path().to_str().unwrap(),
        ])
    };
    let o = check();
    assert!(o.status.success(), "{}", stderr(&o));

    // Registered, but nobody of the population table's.
    let registrations = batch(vec![
        (
            "person_id",
            Arc::new(arrow_array::Int64Array::from(vec![77])) as _,
        ),
        (
            "practice_code",
            Arc::new(arrow_array::StringArray::from(vec!["A1"])) as _,
        ),
        (
            "start_date",
            Arc::new(arrow_array::Date32Array::from(vec![day("2020-01-01")])) as _,
        ),
        (
            "end_date",
            Arc::new(arrow_array::Date32Array::from(vec![None::<i32>])) as _,
        ),
    ]);
    let at = tmp.path().join("registrations.parquet");
    write_parquet(&at, &[registrations]);
    let o = check();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("registrations.parquet"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("no usable registration"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_file(&at).unwrap();

    let pcns = batch(vec![(
        "pcn_code",
        Arc::new(arrow_array::StringArray::from(vec!["P1"])) as _,
    )]);
    write_parquet(&tmp.path().join("pcns.parquet"), &[pcns]);
    let o = check();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("pcns.parquet") && stderr(&o).contains("no column `pcn_name`"),
        "{}",
        stderr(&o)
    );
    // Every rule file reads the data: its error is shown once, and each
    // file after the first (here the bundled copy) is pointed to it.
    let o = strata(&[
        "check",
        rules.to_str().unwrap(),
        "hiu",
        "--data",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.matches("no column `pcn_name`").count(), 1, "{err}");
    assert!(err.contains("hiu.toml: the same error as above"), "{err}");
}

#[test]
fn explain_lists_the_attendances_that_put_a_sample_person_in_the_hiu_cohort() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = strata(&["run", "--out", out.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = read_parquet(&out.join("patients.parquet"));
    let hiu = p.column_by_name("hiu").unwrap().as_boolean();
    let row = (0..p.num_rows())
        .find(|&r| hiu.value(r))
        .expect("the sample has HIU members");
    let id = p
        .column_by_name("person_id")
        .unwrap()
        .as_primitive::<arrow_array::types::Int64Type>()
        .value(row);
    let count = p
        .column_by_name("ae_attendances_12m")
        .unwrap()
        .as_primitive::<arrow_array::types::Int64Type>()
        .value(row);

    let o = strata(&["explain", "--person", &id.to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("  hiu: IN (rank "), "{text}");
    let section = text.split("  ae_attendances_12m = ").nth(1).unwrap();
    let listed = section
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with("        2"))
        .count();
    assert_eq!(listed as i64, count, "{text}");
    assert!(count >= 5);
}

#[test]
fn the_committed_json_schema_is_current() {
    let o = strata(&["schema"]);
    assert!(o.status.success());
    let committed = std::fs::read_to_string(repo_path("docs/rule-file.schema.json")).unwrap();
    assert!(
        stdout(&o) == committed,
        "docs/rule-file.schema.json is stale: run `cargo run -- schema > docs/rule-file.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&committed).unwrap();
    let aggregates = schema["$defs"]["Aggregate"]["enum"].as_array().unwrap();
    assert!(
        aggregates.iter().any(|a| a == "sum_distinct_weights"),
        "{aggregates:?}"
    );
}

#[test]
fn json_summary_on_stdout_and_suppression_from_the_rule_file_or_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    sample_fixture(tmp.path());
    let out = tmp.path().join("out");
    let hiu = std::fs::read_to_string(repo_path("models/hiu.toml")).unwrap();
    let rules = tmp.path().join("hiu.toml");
    let ehrql = hiu.replacen(
        "[params]",
        "[output]\nsuppression = \"ehrql\"\n\n[params]",
        1,
    );
    std::fs::write(&rules, &ehrql).unwrap();
    let json = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--rules",
            rules.to_str().unwrap(),
            "--data",
            tmp.path().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = strata(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(&stdout(&o))
            .unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
    };
    // ehrQL's method from the rule file: one member becomes 0.
    let s = json(&[]);
    assert_eq!(s["counts"]["cohorts"][0]["members"], "0");
    assert!(
        s["counts"]["suppression"]
            .as_str()
            .unwrap()
            .contains("ehrQL")
    );
    assert_eq!(s["outputs"]["folder"], out.display().to_string());
    assert_eq!(s["as_of"], "2025-01-01");
    // The command line wins.
    let s = json(&["--suppression", "hes"]);
    assert_eq!(s["counts"]["cohorts"][0]["members"], "*");

    // Files that run together must agree.
    let other = tmp.path().join("other.toml");
    std::fs::write(
        &other,
        ehrql.replace("suppression = \"ehrql\"", "suppression = \"none\""),
    )
    .unwrap();
    let o = strata(&["check", rules.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_quietly(
        &rules,
        tmp.path(),
        &out,
        &["--rules", other.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("suppression differs"), "{}", stderr(&o));
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, ehrql.replace("\"ehrql\"", "\"fuzzy\"")).unwrap();
    let o = strata(&["check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`fuzzy` is not a suppression method"),
        "{}",
        stderr(&o)
    );
}

/// A source named as the registrations table would hide its skipped-row
/// counts in `manifest.json`: `check` refuses it without data, as `compile`
/// and a run do.
#[test]
fn a_source_named_as_a_counted_table_is_refused_by_check_and_compile() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules.toml");
    let text = std::fs::read_to_string(repo_path("models/hiu.toml")).unwrap();
    std::fs::write(
        &rules,
        text.replace("[sources.ae]", "[sources.registrations]")
            .replace("source = \"ae\"", "source = \"registrations\""),
    )
    .unwrap();
    let o = strata(&["check", rules.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("rename [sources.registrations]"),
        "{}",
        stderr(&o)
    );
    let o = strata(&["compile", "--target", "duckdb", rules.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("rename [sources.registrations]"),
        "{}",
        stderr(&o)
    );
}
