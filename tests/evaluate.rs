//! Back-testing (`strata evaluate`): outcomes look forward from the as-of
//! date with exact edges, the evaluated population is the one that existed
//! on that date, and nothing a list is made from can read an outcome.

mod util;

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use util::*;

const AS_OF: &str = "2025-03-31";

const RULES: &str = r#"
[model]
name = "back-test"
title = "Back-test"
source = "test"

[params]
threshold = 1

[sources.admissions]
table = "admissions"
date = "admission_date"
code = "diagnoses"

[sources.deaths]
table = "patients"
date = "date_of_death"

[features.admissions_12m]
description = "Emergency admissions in the last year"
source = "admissions"
aggregate = "count"
where = "admission_method = 'emergency'"
window = "365 days"

[cohorts.admitted]
title = "Admitted"
description = "An emergency admission in the last year"
when = "admissions_12m >= threshold"

[outcomes.admission_next_year]
description = "An emergency admission in the 365 days after the as-of date"
source = "admissions"
aggregate = "exists"
where = "admission_method = 'emergency'"
window = "next 365 days"

[outcomes.death_next_year]
description = "Died in the 365 days after the as-of date"
source = "deaths"
aggregate = "exists"
window = "next 365 days"
"#;

/// Persons 1-3 have an emergency admission on the as-of date, 365 days
/// after it and 366 days after; 4 an elective one after 10 days; 5 and 6
/// die 365 and 366 days after; 7 died the day before the as-of date and 8
/// was born the day after it (neither is in the population then); 9 had an
/// admission in the year before.
fn fixture(dir: &Path) {
    let mut people: Vec<Person> = (1..=9).map(|id| person(id, "1950-01-01", "P1")).collect();
    people[4].death = Some("2026-03-31");
    people[5].death = Some("2026-04-01");
    people[6].death = Some("2025-03-30");
    people[7].birth = "2025-04-01";
    write_parquet(&dir.join("patients.parquet"), &[patients_batch(&people)]);
    let admissions: Vec<(i64, &str, &str, &[&str])> = vec![
        (1, "2025-03-31", "emergency", &["I509"]),
        (2, "2026-03-31", "emergency", &["I509"]),
        (3, "2026-04-01", "emergency", &["I509"]),
        (4, "2025-04-10", "elective", &["I509"]),
        // The table's first event: its history begins a year before the
        // earliest as-of date any test takes.
        (4, "2023-03-31", "elective", &["I509"]),
        (9, "2024-06-01", "emergency", &["I509"]),
        (9, "2025-06-01", "emergency", &["I509"]),
    ];
    write_parquet(
        &dir.join("admissions.parquet"),
        &[admissions_batch(&admissions)],
    );
}

/// Writes `rows` as `dir`'s admissions table.
fn write_admissions(dir: &Path, rows: &[(i64, &str, &str, &[&str])]) {
    write_parquet(&dir.join("admissions.parquet"), &[admissions_batch(rows)]);
}

/// Writes `people` and `admissions` into `dir`, and [`RULES`] beside
/// them: returns the rule file's path.
fn case(
    dir: &Path,
    people: &[Person],
    admissions: &[(i64, &str, &str, &[&str])],
) -> std::path::PathBuf {
    write_parquet(&dir.join("patients.parquet"), &[patients_batch(people)]);
    write_admissions(dir, admissions);
    let rules = dir.join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    rules
}

fn evaluate(dir: &Path, rules: &Path, extra: &[&str]) -> std::process::Output {
    let out = dir.join("evaluation");
    let mut args = vec![
        "evaluate",
        "--rules",
        rules.to_str().unwrap(),
        "--data",
        dir.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--outcome",
        "admission_next_year",
        "--outcome",
        "death_next_year",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend(extra);
    strata(&args)
}

#[test]
fn a_data_folder_that_is_not_there_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let missing = tmp.path().join("no-such-folder");
    let o = strata(&[
        "evaluate",
        "--rules",
        rules.to_str().unwrap(),
        "--data",
        missing.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--outcome",
        "admission_next_year",
        "--out",
        tmp.path().join("evaluation").to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("data folder") && err.contains("no-such-folder") && err.contains("not found"),
        "{err}"
    );
}

/// An evaluation holds the output folder's lock as `strata run` does: a
/// folder another run is writing is refused with nothing written, and the
/// lock's file and staging folder a killed evaluation left beside `--out`
/// (with a partial `predictions.parquet`) do not stop the next, which
/// clears that folder and nothing else.
#[test]
fn an_evaluation_takes_the_output_lock_and_clears_what_a_killed_one_left() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let rules = tmp.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let lock = tmp.path().join(".evaluation.strata-lock");

    // A live process (this test) holds the lock.
    let held = hold_lock(&lock);
    let o = evaluate(tmp.path(), &rules, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "another strata run (process {})",
            std::process::id()
        )),
        "{err}"
    );
    assert!(!tmp.path().join("evaluation").exists());
    drop(held);

    // A killed evaluation left its lock's file, naming a process that may
    // still exist (this test's) or a machine this one cannot see, and its
    // staging folder. Neither stops the next: nobody holds the lock, so
    // nobody is writing that staging folder.
    std::fs::write(&lock, format!("{} elsewhere\n", std::process::id())).unwrap();
    let stale = tmp
        .path()
        .join(format!(".evaluation.strata-staging-{}", std::process::id()));
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("predictions.parquet"), b"partial").unwrap();
    // Not cleared: another folder's, whose name begins alike.
    let other = tmp.path().join(".evaluation.2.strata-staging-1");
    std::fs::create_dir(&other).unwrap();
    let o = evaluate(tmp.path(), &rules, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        !stale.exists(),
        "the killed evaluation's staging folder is cleared"
    );
    assert!(other.exists());
    assert!(tmp.path().join("evaluation/predictions.parquet").exists());
    assert!(
        lock_let_go(&lock),
        "the lock is let go when the evaluation ends"
    );
}

#[test]
fn outcomes_look_forward_with_exact_edges_over_the_population_of_the_day() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let rules = tmp.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let o = evaluate(tmp.path(), &rules, &["--suppression", "none"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p = read_parquet(&tmp.path().join("evaluation/predictions.parquet"));
    let ids: Vec<i64> = p
        .column_by_name("person_id")
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec();
    // Dead before, or not yet born: not in the population on the day.
    assert_eq!(ids, vec![1, 2, 3, 4, 5, 6, 9]);
    let flags = |name: &str| -> Vec<bool> {
        let c = p.column_by_name(name).unwrap().as_boolean();
        (0..c.len()).map(|r| c.value(r)).collect()
    };
    // On the as-of date: known then, not an outcome; day 365 in; 366 out;
    // an elective admission is not an emergency one.
    assert_eq!(
        flags("outcome_admission_next_year"),
        vec![false, true, false, false, false, false, true]
    );
    assert_eq!(
        flags("outcome_death_next_year"),
        vec![false, false, false, false, true, false, false]
    );
    // The list is made from what was known on the day: person 1's admission
    // on the as-of date counts for the feature; person 9's earlier one too.
    assert_eq!(
        flags("admitted"),
        vec![true, false, false, false, false, false, true]
    );
    let evaluation: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("evaluation/evaluation.json")).unwrap(),
    )
    .unwrap();
    let f = &evaluation["figures"][0];
    assert_eq!(f["outcome"], "admission_next_year");
    assert_eq!(f["people"], "7");
    let list = &f["cohorts"][0]["as_list"];
    // On the list: 1 and 9; of them 9 was admitted again.
    assert_eq!(list["on_list"], "2");
    assert_eq!(list["with_outcome"], "1");
    assert_eq!(list["ppv"], 0.5);
    assert_eq!(list["sensitivity"], 0.5);
}

#[test]
fn small_numbers_are_suppressed_in_the_figures() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let rules = tmp.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let o = evaluate(tmp.path(), &rules, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(tmp.path().join("evaluation/evaluation.json")).unwrap();
    let evaluation: serde_json::Value = serde_json::from_str(&text).unwrap();
    let list = &evaluation["figures"][0]["cohorts"][0]["as_list"];
    assert_eq!(list["on_list"], "*");
    assert!(list["ppv"].is_null(), "{list}");
}

#[test]
fn nothing_a_list_is_made_from_can_read_an_outcome() {
    let tmp = tempfile::tempdir().unwrap();
    let check = |rules: &str| {
        let path = tmp.path().join("rules.toml");
        std::fs::write(&path, rules).unwrap();
        strata(&["check", path.to_str().unwrap()])
    };
    let o = check(&RULES.replace(
        "when = \"admissions_12m >= threshold\"",
        "when = \"death_next_year\"",
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`death_next_year` is an outcome"),
        "{}",
        stderr(&o)
    );
    let derived = RULES.replace(
        "[cohorts.admitted]",
        "[features.leak]\ndescription = \"leak\"\nexpr = \"admission_next_year\"\n\n[cohorts.admitted]",
    );
    let o = check(&derived);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is an outcome"), "{}", stderr(&o));
    // A feature cannot look forward, nor an outcome back.
    let o = check(&RULES.replacen("window = \"365 days\"", "window = \"next 365 days\"", 1));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("looks after the as-of date"),
        "{}",
        stderr(&o)
    );
    let o = check(&RULES.replacen("window = \"next 365 days\"", "window = \"365 days\"", 1));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not an outcome's window"),
        "{}",
        stderr(&o)
    );
    // An outcome's name is taken: no feature may have it.
    let o = check(
        &RULES
            .replace("[features.admissions_12m]", "[features.death_next_year]")
            .replace(
                "admissions_12m >= threshold",
                "death_next_year >= threshold",
            ),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`death_next_year` is defined as an outcome but is already a feature"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn run_ignores_outcomes() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let rules = tmp.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let out = tmp.path().join("out");
    let o = run_rules(&rules, tmp.path(), &out, AS_OF);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p = read_parquet(&out.join("patients.parquet"));
    assert!(p.column_by_name("death_next_year").is_none());
    assert!(p.column_by_name("admission_next_year").is_none());
}

#[test]
fn a_second_rule_set_is_compared_on_the_same_people() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let rules = tmp.path().join("rules.toml");
    // A score each rule set derives from a feature only the score and the
    // cohort read (so that each run lets that feature's column go).
    let score = r#"
[features.admission_score]
description = "Admissions in the last year, weighted by the threshold"
expr = "admissions_12m * threshold"
"#;
    std::fs::write(&rules, format!("{RULES}{score}")).unwrap();
    let o = evaluate(
        tmp.path(),
        &rules,
        &[
            "--suppression",
            "none",
            "--compare-set",
            "threshold=2",
            "--score",
            "admission_score",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(tmp.path().join("evaluation/evaluation.json")).unwrap();
    let evaluation: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(evaluation["compared_with"], "back-test with threshold=2");
    let c = &evaluation["figures"][0]["comparison"]["cohorts"][0];
    // Two people had one admission in the year: on the first list only.
    assert_eq!(c["cohort"], "admitted");
    assert_eq!(c["only_first"], "2");
    assert_eq!(c["only_second"], "0");
    assert_eq!(c["both"], "0");
    // The one of them admitted again is no longer seen coming.
    assert_eq!(c["sensitivity"]["difference"], -0.5);
    let p = read_parquet(&tmp.path().join("evaluation/predictions.parquet"));
    let second = p.column_by_name("compare_admitted").unwrap().as_boolean();
    assert_eq!(second.true_count(), 0);
    // Each rule set's score, for the same people.
    let score = |name: &str| -> Vec<Option<f64>> {
        let column = p.column_by_name(name).unwrap();
        let column = column.as_primitive::<arrow_array::types::Float64Type>();
        column.iter().collect()
    };
    let (first, second) = (score("admission_score"), score("compare_admission_score"));
    assert_eq!(first.iter().flatten().sum::<f64>(), 2.0, "{first:?}");
    let doubled: Vec<Option<f64>> = first.iter().map(|v| v.map(|v| 2.0 * v)).collect();
    assert_eq!(second, doubled);
}

/// A mistake in `--compare-set` is told as `--compare-set`, not as the
/// `--set` of the rule set evaluated first.
#[test]
fn a_wrong_compare_set_names_its_flag() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let rules = tmp.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    for (setting, told) in [
        (
            "treshold=2",
            "--compare-set treshold: no rule file of this run has a parameter `treshold`",
        ),
        ("threshold=two", "--compare-set threshold=two: `two` is not"),
    ] {
        let o = evaluate(tmp.path(), &rules, &["--compare-set", setting]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(told), "{setting}: {}", stderr(&o));
        assert!(!stderr(&o).contains("--set "), "{setting}: {}", stderr(&o));
    }
}

#[test]
fn lists_are_followed_from_one_date_to_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let rules = tmp.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let o = evaluate(
        tmp.path(),
        &rules,
        &["--suppression", "none", "--as-of", "2024-09-30"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(tmp.path().join("evaluation/evaluation.json")).unwrap();
    let evaluation: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Dates in order, whatever order they were given in.
    assert_eq!(
        evaluation["as_of"],
        serde_json::json!(["2024-09-30", AS_OF])
    );
    let c = &evaluation["between_dates"][0]["cohorts"][0];
    // Person 9 (admitted 2024-06-01) is on both lists; person 1 (admitted
    // on the later as-of date) joins.
    assert_eq!(c["on_earlier_list"], "1");
    assert_eq!(c["stayed"], "1");
    assert_eq!(c["left"], "0");
    assert_eq!(c["joined"], "1");
    // Person 9 was admitted again after the later date; person 1 was not.
    let admission = &c["outcomes"][0];
    assert_eq!(admission["ppv_already_listed"], 1.0);
    assert_eq!(admission["ppv_newly_listed"], 0.0);
}

/// `--scan-memory` reaches the scan: a budget no date's state fits takes
/// the dates one scan each (and says so in the log), with the same files,
/// byte for byte, as one scan of all of them.
#[test]
fn a_smaller_scan_memory_splits_the_dates_over_scans_with_the_same_files() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let rules = tmp.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let files = |memory: &str| {
        let out = tmp.path().join(format!("evaluation-{memory}"));
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["evaluate", "--rules", rules.to_str().unwrap()])
            .args(["--data", tmp.path().to_str().unwrap()])
            .args([
                "--as-of",
                "2024-09-30",
                "--as-of",
                "2024-12-31",
                "--as-of",
                AS_OF,
            ])
            .args([
                "--outcome",
                "admission_next_year",
                "--outcome",
                "death_next_year",
            ])
            .args(["--scan-memory", memory, "--out", out.to_str().unwrap()])
            .env("STRATA_LOG", "info")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let read = |name: &str| std::fs::read(out.join(name)).unwrap();
        let split = stderr(&o).contains("split over scans");
        (read("predictions.parquet"), read("evaluation.json"), split)
    };
    let (predictions, figures, split) = files("4GiB");
    assert!(!split, "nine persons' three dates fit one scan");
    let (one_each, figures_each, split) = files("8B");
    assert!(
        split,
        "8 bytes hold no date of nine persons: the log says so"
    );
    assert!(predictions == one_each, "predictions.parquet differs");
    assert!(figures == figures_each, "evaluation.json differs");
    let o = evaluate(tmp.path(), &rules, &["--scan-memory", "4 gigs"]);
    assert_eq!(o.status.code(), Some(2), "a usage error: {}", stderr(&o));
    assert!(stderr(&o).contains("--scan-memory"), "{}", stderr(&o));
}

#[test]
fn lists_are_also_followed_a_year_on() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let rules = tmp.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let out = tmp.path().join("evaluation");
    let o = strata(&[
        "evaluate",
        "--rules",
        rules.to_str().unwrap(),
        "--data",
        tmp.path().to_str().unwrap(),
        "--from",
        "2024-03-31",
        "--to",
        "2025-03-31",
        "--every",
        "6 months",
        "--outcome",
        "admission_next_year",
        "--suppression",
        "none",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(out.join("evaluation.json")).unwrap();
    let evaluation: serde_json::Value = serde_json::from_str(&text).unwrap();
    let pairs: Vec<(String, String)> = evaluation["between_dates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["from"].as_str().unwrap().into(),
                b["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    // Consecutive dates, then the pair a year apart.
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        pairs,
        vec![
            pair("2024-03-31", "2024-09-30"),
            pair("2024-09-30", "2025-03-31"),
            pair("2024-03-31", "2025-03-31"),
        ]
    );
    // Nobody was listed as of 2024-03-31; persons 1 and 9 are a year on.
    let c = &evaluation["between_dates"][2]["cohorts"][0];
    assert_eq!(c["on_earlier_list"], "0");
    assert_eq!(c["joined"], "2");
}

#[test]
fn a_series_of_dates_and_the_scores_the_rule_files_mark() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let rules = tmp.path().join("rules.toml");
    let marked = RULES.replace(
        "window = \"365 days\"\n",
        "window = \"365 days\"\nevaluate = \"score\"\n",
    );
    assert_ne!(marked, RULES);
    std::fs::write(&rules, marked).unwrap();
    let out = tmp.path().join("evaluation");
    let o = strata(&[
        "evaluate",
        "--rules",
        rules.to_str().unwrap(),
        "--data",
        tmp.path().to_str().unwrap(),
        "--from",
        "2024-09-30",
        "--to",
        "2025-03-31",
        "--every",
        "3 months",
        "--outcome",
        "admission_next_year",
        "--suppression",
        "none",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(out.join("evaluation.json")).unwrap();
    let evaluation: serde_json::Value = serde_json::from_str(&text).unwrap();
    // The same day of the month as --from, up to --to.
    assert_eq!(
        evaluation["as_of"],
        serde_json::json!(["2024-09-30", "2024-12-30", "2025-03-30"])
    );
    // The marked feature is evaluated as a score without --score.
    assert_eq!(evaluation["scores"], serde_json::json!(["admissions_12m"]));
    assert_eq!(
        evaluation["figures"][0]["scores"][0]["score"],
        "admissions_12m"
    );
    // Each PCN's first 50 among its own people: one PCN here, so the
    // same list as across the population.
    let top = &evaluation["figures"][0]["scores"][0]["top_per_pcn"];
    assert_eq!(top["pcns"][0]["pcn"], "P1");
    assert_eq!(top["pcns"].as_array().unwrap().len(), 1);
    assert_eq!(top["pcns"][0]["as_list"], top["as_list"]);

    // A step that is not one is a usage error.
    let o = strata(&[
        "evaluate",
        "--rules",
        rules.to_str().unwrap(),
        "--data",
        tmp.path().to_str().unwrap(),
        "--from",
        "2024-09-30",
        "--to",
        "2025-03-31",
        "--every",
        "quarterly",
        "--outcome",
        "admission_next_year",
        "--out",
        tmp.path().join("other").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--every"), "{}", stderr(&o));
}

#[test]
fn an_outcome_cannot_be_marked_for_evaluation() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules.toml");
    let marked = RULES.replace(
        "window = \"next 365 days\"\n\n[outcomes.death_next_year]",
        "window = \"next 365 days\"\nevaluate = \"score\"\n\n[outcomes.death_next_year]",
    );
    assert_ne!(marked, RULES);
    std::fs::write(&rules, marked).unwrap();
    let o = strata(&["check", rules.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("outcome `admission_next_year` cannot be evaluated"),
        "{}",
        stderr(&o)
    );
}

/// Emergency admissions counted, and those for heart failure as a part of
/// them: each list's share of its admissions beside the population's.
const PARTS: &str = r#"
[codelists.hf]
file = "hf.csv"
system = "icd10"
match = "prefix"

[outcomes.emergency_admissions_next_year]
description = "Emergency admissions in the 365 days after the as-of date"
source = "admissions"
aggregate = "count"
where = "admission_method = 'emergency'"
window = "next 365 days"

[outcomes.hf_admissions_next_year]
description = "Emergency admissions for heart failure in the 365 days after the as-of date"
source = "admissions"
aggregate = "count"
codelist = "hf"
where = "admission_method = 'emergency'"
window = "next 365 days"
part_of = "emergency_admissions_next_year"

[outcomes.readmitted_next_year]
description = "Two or more emergency admissions in the 365 days after the as-of date"
source = "admissions"
aggregate = "count"
where = "admission_method = 'emergency'"
window = "next 365 days"
at_least = 2
"#;

/// Evaluates `RULES` and `PARTS` on the data in `dir` (with the heart
/// failure list) as of `AS_OF` for `outcomes` under `suppression`; the
/// evaluation.json it wrote.
fn evaluate_parts(dir: &Path, outcomes: &[&str], suppression: &str) -> serde_json::Value {
    std::fs::write(dir.join("hf.csv"), "code\nI50\n").unwrap();
    let rules = dir.join("rules.toml");
    std::fs::write(&rules, format!("{RULES}{PARTS}")).unwrap();
    let out = dir.join("evaluation");
    let mut args = vec![
        "evaluate",
        "--rules",
        rules.to_str().unwrap(),
        "--data",
        dir.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--suppression",
        suppression,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    for o in outcomes {
        args.extend(["--outcome", o]);
    }
    let o = strata(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(out.join("evaluation.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_part_of_an_outcome_is_given_as_each_lists_share_of_the_whole() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    // Person 9 (on the list) has two more emergency admissions in the year,
    // one for heart failure: 2 of 3 on the list; person 2's (off it) is
    // for heart failure: 1 of 1 off it; 3 of 4 in all.
    let admissions: Vec<(i64, &str, &str, &[&str])> = vec![
        (1, "2025-03-31", "emergency", &["I509"]),
        (2, "2026-03-31", "emergency", &["I509"]),
        (3, "2026-04-01", "emergency", &["I509"]),
        (4, "2025-04-10", "elective", &["I509"]),
        (9, "2024-06-01", "emergency", &["I509"]),
        (9, "2025-06-01", "emergency", &["I509"]),
        (9, "2025-07-01", "emergency", &["S720"]),
        (9, "2025-08-01", "emergency", &["I500"]),
    ];
    write_parquet(
        &tmp.path().join("admissions.parquet"),
        &[admissions_batch(&admissions)],
    );
    // Asking for the part brings the whole.
    let evaluation = evaluate_parts(
        tmp.path(),
        &["hf_admissions_next_year", "readmitted_next_year"],
        "none",
    );
    let p = read_parquet(&tmp.path().join("evaluation/predictions.parquet"));
    let counts = |name: &str| -> Vec<i64> {
        p.column_by_name(name)
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    };
    // People 1, 2, 3, 4, 5, 6, 9.
    assert_eq!(
        counts("outcome_emergency_admissions_next_year_count"),
        vec![0, 1, 0, 0, 0, 0, 3]
    );
    assert_eq!(
        counts("outcome_hf_admissions_next_year_count"),
        vec![0, 1, 0, 0, 0, 0, 2]
    );
    // At least two: person 9 (three) only.
    let flags = p
        .column_by_name("outcome_readmitted_next_year")
        .unwrap()
        .as_boolean()
        .iter()
        .map(Option::unwrap)
        .collect::<Vec<bool>>();
    assert_eq!(flags, vec![false, false, false, false, false, false, true]);
    assert_eq!(
        evaluation["outcomes"],
        serde_json::json!([
            "hf_admissions_next_year",
            "readmitted_next_year",
            "emergency_admissions_next_year"
        ])
    );
    let f = &evaluation["figures"][0];
    assert_eq!(f["outcome"], "hf_admissions_next_year");
    let w = &f["share_of_whole"];
    assert_eq!(w["of"], "emergency_admissions_next_year");
    assert_eq!(w["population"]["events"], "4");
    assert_eq!(w["population"]["of_which_part"], "3");
    assert_eq!(w["population"]["share"], 0.75);
    let c = &w["cohorts"][0];
    assert_eq!(c["cohort"], "admitted");
    assert_eq!(c["on_list"]["share"], 2.0 / 3.0);
    assert_eq!(c["off_list"]["events"], "1");
    assert_eq!(c["off_list"]["share"], 1.0);
    // Two heart failure admissions among the two listed; one among the
    // five not.
    assert_eq!(c["on_list"]["part_per_100_people"], 100.0);
    assert_eq!(c["off_list"]["part_per_100_people"], 20.0);
    // The whole has no whole of its own.
    assert!(evaluation["figures"][1]["share_of_whole"].is_null());
    // Wilson's interval for 1 of 2 (PPV of the list for heart failure).
    let list = &f["cohorts"][0]["as_list"];
    assert_eq!(list["ppv"], 0.5);
    let ci: Vec<f64> = serde_json::from_value(list["ppv_95ci"].clone()).unwrap();
    assert!(
        (ci[0] - 0.094_531).abs() < 1e-6 && (ci[1] - 0.905_469).abs() < 1e-6,
        "{ci:?}"
    );
}

#[test]
fn shares_of_a_few_peoples_events_are_suppressed() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let evaluation = evaluate_parts(tmp.path(), &["hf_admissions_next_year"], "hes");
    // Seven people, two on the list, one or two admitted: every share and
    // interval hidden, on and off the list alike.
    let f = &evaluation["figures"][0];
    let w = &f["share_of_whole"];
    for side in [
        &w["population"],
        &w["cohorts"][0]["on_list"],
        &w["cohorts"][0]["off_list"],
    ] {
        assert_eq!(side["events"], "*", "{w}");
        assert!(side["share"].is_null(), "{w}");
    }
    let c = &f["cohorts"][0];
    assert!(c["events"]["share"].is_null(), "{c}");
    assert_eq!(c["events"]["on_list"], "*", "{c}");
    assert!(c["as_list"]["ppv_95ci"].is_null(), "{c}");
    assert!(c["as_list"]["sensitivity_95ci"].is_null(), "{c}");
}

#[test]
fn part_of_names_another_counted_outcome() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("hf.csv"), "code\nI50\n").unwrap();
    let check = |rules: &str| {
        let path = tmp.path().join("rules.toml");
        std::fs::write(&path, rules).unwrap();
        strata(&["check", path.to_str().unwrap()])
    };
    let parts = format!("{RULES}{PARTS}");
    assert_eq!(check(&parts).status.code(), Some(0));
    let o = check(&parts.replace(
        "part_of = \"emergency_admissions_next_year\"",
        "part_of = \"emergency_admissions_next_yeer\"",
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not another outcome of this file")
            && stderr(&o).contains("emergency_admissions_next_year"),
        "{}",
        stderr(&o)
    );
    let o = check(&parts.replace(
        "part_of = \"emergency_admissions_next_year\"",
        "part_of = \"admission_next_year\"",
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("both must be `aggregate = \"count\"`"),
        "{}",
        stderr(&o)
    );
    let o = check(&parts.replace("at_least = 2", "at_least = 0"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("needs a count of 1 or more"),
        "{}",
        stderr(&o)
    );
    let o = check(&RULES.replace(
        "window = \"next 365 days\"\n\n[outcomes.death_next_year]",
        "window = \"next 365 days\"\nat_least = 2\n\n[outcomes.death_next_year]",
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("needs a count of 1 or more"),
        "{}",
        stderr(&o)
    );
    let o = check(&parts.replacen(
        "window = \"next 365 days\"\npart_of",
        "window = \"next 12 months\"\npart_of",
        1,
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("their windows differ"),
        "{}",
        stderr(&o)
    );
    let o = check(&RULES.replace(
        "window = \"365 days\"",
        "window = \"365 days\"\npart_of = \"death_next_year\"",
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("which only an outcome can have"),
        "{}",
        stderr(&o)
    );
}

/// A date on which no one is alive (and registered) is refused, naming the
/// date, not answered with figures of nobody; nothing is written.
#[test]
fn a_date_with_no_one_in_the_population_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let rules = tmp.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    // Everyone in the fixture was born in 1950 (one in 2025). (Only the
    // death outcome: the admissions do not reach back to 1950.)
    let o = strata(&[
        "evaluate",
        "--rules",
        rules.to_str().unwrap(),
        "--data",
        tmp.path().to_str().unwrap(),
        "--as-of",
        "1949-12-31",
        "--outcome",
        "death_next_year",
        "--out",
        tmp.path().join("evaluation").to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "no one in the population is alive and registered on the as-of date 1949-12-31"
        ),
        "{}",
        stderr(&o)
    );
    assert!(!tmp.path().join("evaluation").exists());
}

/// An outcome counted from a table that ends well before the others (a
/// late feed) is refused, naming the table and its last date: its events
/// after that would be counted as not having happened. A few quiet days
/// at the end are not refused, nor is a death outcome (a week with no
/// deaths is no cut).
#[test]
fn an_outcome_whose_own_table_ends_early_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let rules = tmp.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let admissions = |last: &str| {
        let rows: Vec<(i64, &str, &str, &[&str])> = vec![
            (1, "2025-03-31", "emergency", &["I509"]),
            (9, "2024-06-01", "emergency", &["I509"]),
            (9, last, "emergency", &["I509"]),
        ];
        write_admissions(tmp.path(), &rows);
    };
    // Deaths reach 2026-04-01; admissions end half a year earlier.
    admissions("2025-09-30");
    let o = evaluate(tmp.path(), &rules, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("outcome `admission_next_year`")
            && err.contains("admissions.parquet")
            && err.contains("end on 2025-09-30")
            && err.contains("end as late as 2026-03-31"),
        "{err}"
    );
    assert!(!tmp.path().join("evaluation").exists());
    // The death outcome alone reads the population table: not refused.
    let o = strata(&[
        "evaluate",
        "--rules",
        rules.to_str().unwrap(),
        "--data",
        tmp.path().to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--outcome",
        "death_next_year",
        "--out",
        tmp.path().join("evaluation").to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::remove_dir_all(tmp.path().join("evaluation")).unwrap();
    // A week's quiet at the end is within the slack; eight days is not.
    admissions("2026-03-24");
    let o = evaluate(tmp.path(), &rules, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::remove_dir_all(tmp.path().join("evaluation")).unwrap();
    admissions("2026-03-23");
    let o = evaluate(tmp.path(), &rules, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// One event dated in a far year (a typo) is no evidence that the data
/// reach the end of the outcomes' windows: dates after today are passed
/// over, so windows past the real end of the data are refused.
#[test]
fn a_future_dated_event_does_not_hide_where_the_data_end() {
    let tmp = tempfile::tempdir().unwrap();
    let mut people: Vec<Person> = (1..=3).map(|id| person(id, "1950-01-01", "P1")).collect();
    people[2].death = Some("2025-06-01");
    let rules = case(
        tmp.path(),
        &people,
        &[
            (1, "2025-03-31", "emergency", &["I509"]),
            (2, "2025-07-01", "emergency", &["I509"]),
            (2, "2099-07-01", "emergency", &["I509"]),
        ],
    );
    let o = evaluate(tmp.path(), &rules, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("the data's events end on 2025-07-01"), "{err}");
}

/// Of those who left a list between two dates, the people no longer in
/// the population (here one who died) are told apart from those still in
/// it who came off the list: a frailty list's "leavers" are mostly deaths,
/// not people who got better.
#[test]
fn leaving_a_list_is_split_into_leaving_the_population_and_coming_off_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut people: Vec<Person> = (1..=4).map(|id| person(id, "1950-01-01", "P1")).collect();
    people[2].death = Some("2024-12-01");
    // On the list of 2024-09-30 (an emergency admission in the year
    // before): 1 and 3 (2024-06-01, still in the window on 2025-03-31) and
    // 2 (2023-12-01, out of it by then); 3 dies before the later date.
    let rules = case(
        tmp.path(),
        &people,
        &[
            (1, "2024-06-01", "emergency", &["I509"]),
            (2, "2023-12-01", "emergency", &["I509"]),
            (3, "2024-06-01", "emergency", &["I509"]),
            (4, "2026-03-31", "emergency", &["I509"]),
        ],
    );
    let o = evaluate(
        tmp.path(),
        &rules,
        &["--suppression", "none", "--as-of", "2024-09-30"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(tmp.path().join("evaluation/evaluation.json")).unwrap();
    let evaluation: serde_json::Value = serde_json::from_str(&text).unwrap();
    let c = &evaluation["between_dates"][0]["cohorts"][0];
    assert_eq!(c["on_earlier_list"], "3");
    assert_eq!(c["stayed"], "1");
    assert_eq!(c["left"], "2");
    assert_eq!(c["left_the_population"], "1");
    assert_eq!(c["came_off_the_list"], "1");
    assert_eq!(c["still_listed"], 1.0 / 3.0);
    assert_eq!(c["still_listed_of_those_still_in_population"], 0.5);
    let html = std::fs::read_to_string(tmp.path().join("evaluation/evaluation.html")).unwrap();
    assert!(html.contains("<td>2 (1 / 1)</td>"), "{html}");
}

/// A feature's window that reaches back before its table's first event is
/// named for each date it does (its values are lower for want of data),
/// in `evaluation.json`, `evaluation.html` and a warning; with more
/// history, none is.
#[test]
fn windows_that_reach_back_before_the_data_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let rules = tmp.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    // Admissions from 2024-06-01; the feature looks back 365 days.
    let mut admissions: Vec<(i64, &str, &str, &[&str])> = vec![
        (1, "2025-03-31", "emergency", &["I509"]),
        (2, "2026-03-31", "emergency", &["I509"]),
        (9, "2024-06-01", "emergency", &["I509"]),
        (3, "2026-04-01", "emergency", &["I509"]),
    ];
    write_admissions(tmp.path(), &admissions);
    let o = evaluate(tmp.path(), &rules, &["--as-of", "2024-09-30"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("as of 2024-09-30, 1 feature(s) the figures read look back before their table's first event (admissions_12m)"),
        "{}",
        stderr(&o)
    );
    let read = |dir: &Path| -> serde_json::Value {
        let text = std::fs::read_to_string(dir.join("evaluation/evaluation.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let history = &read(tmp.path())["history"];
    assert_eq!(
        history["tables"],
        serde_json::json!([
            {
                "table": "admissions",
                "date": "admission_date",
                "first_event": "2024-06-01",
                "last_event": "2026-04-01",
                "stray_dates_passed_over": 0,
            },
            // The death outcome's.
            {
                "table": "patients",
                "date": "date_of_death",
                "first_event": "2025-03-30",
                "last_event": "2026-04-01",
                "stray_dates_passed_over": 0,
            }
        ])
    );
    assert_eq!(history["data_end"], "2026-04-01");
    let cut = &history["dates"][0]["windows_cut_short"][0];
    assert_eq!(cut["feature"], "admissions_12m");
    assert_eq!(cut["window_from"], "2023-10-02");
    assert_eq!(cut["data_from"], "2024-06-01");
    let html = std::fs::read_to_string(tmp.path().join("evaluation/evaluation.html")).unwrap();
    assert!(
        html.contains("As of 2024-09-30, windows reach back before the data:"),
        "{html}"
    );
    // An admission a week after the window's start is within the slack
    // of a table's quiet first days: nothing is cut short.
    std::fs::remove_dir_all(tmp.path().join("evaluation")).unwrap();
    admissions[3] = (4, "2023-10-09", "elective", &["I509"]);
    admissions.push((3, "2026-04-01", "emergency", &["I509"]));
    write_admissions(tmp.path(), &admissions);
    let o = evaluate(tmp.path(), &rules, &["--as-of", "2024-09-30"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("look back before"), "{}", stderr(&o));
    let history = &read(tmp.path())["history"];
    assert_eq!(
        history["dates"][0]["windows_cut_short"],
        serde_json::json!([])
    );
    // A day later than that is not.
    std::fs::remove_dir_all(tmp.path().join("evaluation")).unwrap();
    admissions[3].1 = "2023-10-10";
    write_admissions(tmp.path(), &admissions);
    let o = evaluate(tmp.path(), &rules, &["--as-of", "2024-09-30"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("look back before"), "{}", stderr(&o));
}

/// One mistyped date between the data's real end and today (a November
/// admission in an extract that ends in March) does not move where the
/// data end: a run of 30-day stretches apart from the data and far
/// sparser than the data next to it is stray. Nor does an outcome table
/// that begins after the first window does pass.
#[test]
fn a_stray_date_does_not_move_where_the_data_end() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let rules = tmp.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    // An emergency admission a day from 2023-01-02 to 2026-03-31, and one
    // on 2026-11-01.
    let days: Vec<String> = (0..)
        .map(|k| chrono::NaiveDate::from_ymd_opt(2023, 1, 2).unwrap() + chrono::Days::new(k))
        .take_while(|d| *d <= chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap())
        .chain([chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()])
        .map(|d| d.to_string())
        .collect();
    let rows: Vec<(i64, &str, &str, &[&str])> = days
        .iter()
        .map(|d| (1, d.as_str(), "emergency", &["I509"][..]))
        .collect();
    write_admissions(tmp.path(), &rows);
    let o = evaluate(tmp.path(), &rules, &["--as-of", "2025-11-01"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("end as late as 2026-11-01, but the data's events end on 2026-04-01"),
        "{}",
        stderr(&o)
    );
    // Where the windows are covered, the stray is counted in the history.
    let o = evaluate(tmp.path(), &rules, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(tmp.path().join("evaluation/evaluation.json")).unwrap();
    let evaluation: serde_json::Value = serde_json::from_str(&text).unwrap();
    let admissions = &evaluation["history"]["tables"][0];
    assert_eq!(admissions["last_event"], "2026-03-31");
    assert_eq!(admissions["stray_dates_passed_over"], 1);
    std::fs::remove_dir_all(tmp.path().join("evaluation")).unwrap();
    // Admissions from 2024-06-01 cover no window from 2024-03-31.
    let late: Vec<(i64, &str, &str, &[&str])> =
        rows.into_iter().filter(|r| r.1 >= "2024-06-01").collect();
    write_admissions(tmp.path(), &late);
    let o = evaluate(tmp.path(), &rules, &["--as-of", "2024-03-31"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "admission_date begin on 2024-06-01, with few or no events before, after the first window begins (2024-04-01)"
        ),
        "{}",
        stderr(&o)
    );
}
