//! Opt-outs by purpose: who is left out of which output. Direct care (case
//! finding) leaves people with a type 1 opt-out out of everything and
//! people with a National Data Opt-out out of every count, keeping them on
//! the lists; secondary use leaves both out of every output. Flags may be
//! booleans, 1/0 or Y/N; anything else is refused.

mod util;

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, BooleanArray, Int64Array, StringArray};
use util::*;

const AS_OF: &str = "2025-03-31";

/// Ten persons in P1, each with 5 A&E attendances (all HIU): 101 has a
/// type 1 opt-out, 102 a National Data Opt-out, 103 both, the rest none.
fn fixture(data: &Path, type1: ArrayRef, national: ArrayRef) {
    std::fs::create_dir_all(data).unwrap();
    let people: Vec<Person> = (101..=110)
        .map(|id| person(id, "1970-01-01", "P1"))
        .collect();
    let patients = patients_batch(&people);
    let patients = adding_column(&patients, "type1_opt_out", type1);
    let patients = adding_column(&patients, "national_data_opt_out", national);
    write_parquet(&data.join("patients.parquet"), &[patients]);
    let ae: Vec<(i64, Option<&str>)> = (101..=110)
        .flat_map(|id| {
            [
                "2024-06-01",
                "2024-08-01",
                "2024-10-01",
                "2024-12-01",
                "2025-02-01",
            ]
            .map(|d| (id, Some(d)))
        })
        .collect();
    write_parquet(&data.join("ae_attendances.parquet"), &[ae_batch(&ae)]);
    write_parquet(
        &data.join("admissions.parquet"),
        &[admissions_batch(&[(101, "2020-01-01", "elective", &[])])],
    );
}

fn flags(type1: &[bool], national: &[bool]) -> (ArrayRef, ArrayRef) {
    (
        Arc::new(BooleanArray::from(type1.to_vec())),
        Arc::new(BooleanArray::from(national.to_vec())),
    )
}

fn standard() -> (ArrayRef, ArrayRef) {
    let mut t = vec![false; 10];
    let mut n = vec![false; 10];
    t[0] = true;
    n[1] = true;
    t[2] = true;
    n[2] = true;
    flags(&t, &n)
}

fn run(data: &Path, out: &Path, purpose: &str) {
    let o = run_quietly(
        &repo_path("models/hiu.toml"),
        data,
        out,
        &[
            "--as-of",
            AS_OF,
            "--purpose",
            purpose,
            "--suppression",
            "none",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

fn listed(out: &Path) -> Vec<String> {
    let mut reader = csv::Reader::from_path(out.join("pcn/P1/hiu.csv")).unwrap();
    let column = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "person_id")
        .unwrap();
    let mut ids: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[column].to_string())
        .collect();
    ids.sort();
    ids
}

fn patients_rows(out: &Path) -> Vec<i64> {
    let p = read_parquet(&out.join("patients.parquet"));
    p.column_by_name("person_id")
        .unwrap()
        .as_primitive::<arrow_array::types::Int64Type>()
        .values()
        .to_vec()
}

#[test]
fn direct_care_respects_type_1_everywhere_and_the_national_opt_out_in_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    let (t, n) = standard();
    fixture(&data, t, n);
    run(&data, &out, "direct_care");
    // 101 and 103 (type 1) are on no list; 102 (National Data Opt-out
    // only) stays on the care team's list.
    let kept: Vec<String> = [102]
        .into_iter()
        .chain(104..=110)
        .map(|i| i.to_string())
        .collect();
    assert_eq!(listed(&out), kept);
    assert_eq!(
        patients_rows(&out),
        [102].into_iter().chain(104..=110).collect::<Vec<i64>>()
    );
    // patients.parquet says who counts, so a dashboard can do as strata does.
    let p = read_parquet(&out.join("patients.parquet"));
    let counted = p.column_by_name("counted").unwrap().as_boolean();
    assert!(
        !counted.value(0) && counted.value(1),
        "102 is listed but not counted"
    );
    let m = manifest(&out);
    assert_eq!(m["counts"]["alive"], "7", "three opted out of the counts");
    assert_eq!(m["counts"]["cohorts"][0]["members"], "7");
    assert_eq!(m["counts"]["cohorts"][0]["by_pcn"]["P1"], "7");
    let o = &m["opt_outs"];
    assert_eq!(o["purpose"], "direct_care");
    assert_eq!(o["purpose_from"], "--purpose");
    assert_eq!(o["with_type1_opt_out"], "2");
    assert_eq!(o["with_national_data_opt_out"], "2");
    assert_eq!(o["withheld_from_lists"], "2");
    assert_eq!(o["withheld_from_counts"], "3");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["opt_outs"]["withheld_from_counts"], "3");
    // The workbook's own cover counts its list, which holds eight.
    use calamine::Reader;
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(out.join("pcn/P1/P1.xlsx")).unwrap();
    let cover = book.worksheet_range("Cover").unwrap();
    assert!(
        cover
            .rows()
            .any(|r| r.get(2) == Some(&calamine::Data::Float(8.0)))
    );
    // The report counts seven and says why.
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        report.contains("7 people alive and registered and counted"),
        "report facts"
    );
}

#[test]
fn a_diff_of_direct_care_runs_counts_only_counted_people_and_refuses_another_purpose() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (t, n) = standard();
    fixture(&data, t, n);
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    // As of a year earlier nobody is HIU; now everyone listed is.
    let o = run_quietly(
        &repo_path("models/hiu.toml"),
        &data,
        &a,
        &[
            "--as-of",
            "2024-03-31",
            "--purpose",
            "direct_care",
            "--suppression",
            "none",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    run(&data, &b, "direct_care");
    let diff = tmp.path().join("diff");
    let o = diff_runs(&a, &b, &diff, &["--suppression", "none", "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = std::fs::read_to_string(diff.join("summary.csv")).unwrap();
    assert!(
        summary.lines().any(|l| l.starts_with("hiu,P1,7,0")),
        "{summary}"
    );
    // changes.csv is the care team's list of who entered: 102 is on it.
    let changes = std::fs::read_to_string(diff.join("pcn/P1/changes.csv")).unwrap();
    assert!(changes.contains(",102,"), "{changes}");
    assert!(!changes.contains(",101,"), "{changes}");
    // A run for another purpose is not compared silently.
    run(&data, &c, "secondary_use");
    let o = diff_runs(&b, &c, &tmp.path().join("diff2"), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("different purposes"), "{}", stderr(&o));
}

#[test]
fn a_flag_column_the_rule_file_names_must_be_there() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (t, n) = standard();
    fixture(&data, t, n);
    let rules = tmp.path().join("hiu.toml");
    let text = std::fs::read_to_string(repo_path("models/hiu.toml")).unwrap();
    std::fs::write(
        &rules,
        text.replacen(
            "[params]",
            "[population]\ntype1_opt_out = \"t1_typo\"\n\n[params]",
            1,
        ),
    )
    .unwrap();
    let o = run_quietly(&rules, &data, &tmp.path().join("out"), &["--as-of", AS_OF]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("t1_typo"), "{}", stderr(&o));
}

#[test]
fn secondary_use_leaves_opted_out_people_out_of_every_output() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    let (t, n) = standard();
    fixture(&data, t, n);
    run(&data, &out, "secondary_use");
    let kept: Vec<String> = (104..=110).map(|i| i.to_string()).collect();
    assert_eq!(listed(&out), kept);
    assert_eq!(patients_rows(&out), (104..=110).collect::<Vec<i64>>());
    let m = manifest(&out);
    assert_eq!(m["counts"]["alive"], "7");
    assert_eq!(m["counts"]["cohorts"][0]["members"], "7");
    assert_eq!(m["opt_outs"]["withheld_from_lists"], "3");
    // Ranks close up: the first person kept is first.
    let mut reader = csv::Reader::from_path(out.join("pcn/P1/hiu.csv")).unwrap();
    let ranks: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[0].to_string())
        .collect();
    assert_eq!(ranks, (1..=7).map(|r| r.to_string()).collect::<Vec<_>>());
}

#[test]
fn without_flags_nothing_can_be_applied_and_the_run_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let people: Vec<Person> = (101..=103)
        .map(|id| person(id, "1970-01-01", "P1"))
        .collect();
    write_parquet(&data.join("patients.parquet"), &[patients_batch(&people)]);
    write_parquet(
        &data.join("ae_attendances.parquet"),
        &[ae_batch(&[(101, Some("2025-01-01"))])],
    );
    write_parquet(
        &data.join("admissions.parquet"),
        &[admissions_batch(&[(101, "2020-01-01", "elective", &[])])],
    );
    let out = tmp.path().join("out");
    let o = run_printed(
        &repo_path("models/hiu.toml"),
        &data,
        &out,
        &["--as-of", AS_OF, "--purpose", "secondary_use"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("no opt-out flags in the data: none could be applied"),
        "{}",
        stdout(&o)
    );
    let m = manifest(&out);
    assert_eq!(m["opt_outs"]["type1_column"], false);
    assert_eq!(m["opt_outs"]["with_type1_opt_out"], "not known");
}

#[test]
fn flags_may_be_one_zero_or_y_n_and_anything_else_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    let mut t = vec![0i64; 10];
    t[0] = 1;
    let n: Vec<&str> = (0..10)
        .map(|i| {
            if i == 1 {
                "Y"
            } else if i == 2 {
                ""
            } else {
                "n"
            }
        })
        .collect();
    fixture(
        &data,
        Arc::new(Int64Array::from(t)),
        Arc::new(StringArray::from(n)),
    );
    run(&data, &out, "secondary_use");
    assert_eq!(listed(&out).len(), 8, "101 (1) and 102 (Y) are left out");

    let bad = tmp.path().join("bad");
    let n: Vec<&str> = (0..10)
        .map(|i| if i == 3 { "maybe" } else { "N" })
        .collect();
    fixture(
        &bad,
        Arc::new(BooleanArray::from(vec![false; 10])),
        Arc::new(StringArray::from(n)),
    );
    let o = run_quietly(
        &repo_path("models/hiu.toml"),
        &bad,
        &tmp.path().join("bad-out"),
        &["--as-of", AS_OF],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    // The file, the column and the row; never the value, which may be
    // another column's (a person id mapped as the flag by mistake).
    assert!(
        err.contains("patients.parquet")
            && err.contains("`national_data_opt_out`")
            && err.contains("row 4"),
        "{err}"
    );
    assert!(!err.contains("maybe"), "{err}");
    assert!(err.contains("National Data Opt-out"), "{err}");
    // `strata check --data` refuses it too, before any run.
    let o = strata(&[
        "check",
        repo_path("models/hiu.toml").to_str().unwrap(),
        "--data",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("row 4"), "{}", stderr(&o));
}

#[test]
fn a_purpose_that_is_not_one_is_a_user_error() {
    let o = strata(&["run", "--purpose", "research"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("direct_care or secondary_use"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_previous_run_for_another_purpose_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (t, n) = standard();
    fixture(&data, t, n);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    run(&data, &a, "secondary_use");
    let o = run_quietly(
        &repo_path("models/hiu.toml"),
        &data,
        &b,
        &[
            "--as-of",
            AS_OF,
            "--purpose",
            "direct_care",
            "--previous",
            a.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("was made for secondary_use"),
        "{}",
        stderr(&o)
    );
    assert!(!b.exists(), "nothing written");
}

/// The person ids in the rejected rows written (`OUT/rejects/*.csv`), by
/// file and reason, sorted.
fn rejected(out: &Path) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for file in std::fs::read_dir(out.join("rejects")).unwrap() {
        let path = file.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let mut reader = csv::Reader::from_path(&path).unwrap();
        let headers = reader.headers().unwrap().clone();
        let at = |h: &str| headers.iter().position(|x| x == h).unwrap();
        let (reason, id) = (at("reason"), at("person_id"));
        for r in reader.records() {
            let r = r.unwrap();
            found.push((name.clone(), r[reason].to_string(), r[id].to_string()));
        }
    }
    found.sort();
    found
}

/// Rows rejected for a problem in the data name a person: those of a
/// person the purpose withholds are not written, whether the row is an
/// event's (a null date) or a second population row with their id. The
/// person index is freed before the outputs, so each rejected row carries
/// its person's row, found as it was kept.
#[test]
fn rejected_rows_of_withheld_people_are_not_written() {
    for (purpose, kept) in [
        ("direct_care", vec!["102", "104"]),
        ("secondary_use", vec!["104"]),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
        let (t, n) = standard();
        fixture(&data, t.clone(), n.clone());
        // A second population row each for 101 (type 1), 102 (national)
        // and 104 (none), and an A&E attendance with no date each. The
        // rows in descending id order, so that a person's row in the file
        // is not their row in the population (in id order).
        let ids: Vec<i64> = (101..=110).rev().chain([101, 102, 104]).collect();
        let people: Vec<Person> = ids
            .iter()
            .map(|&id| person(id, "1970-01-01", "P1"))
            .collect();
        let again = |flags: &ArrayRef| -> ArrayRef {
            let flags = flags.as_boolean();
            Arc::new(BooleanArray::from_iter(
                ids.iter().map(|&id| Some(flags.value((id - 101) as usize))),
            ))
        };
        let patients = patients_batch(&people);
        let patients = adding_column(&patients, "type1_opt_out", again(&t));
        let patients = adding_column(&patients, "national_data_opt_out", again(&n));
        write_parquet(&data.join("patients.parquet"), &[patients]);
        let ae: Vec<(i64, Option<&str>)> = (101..=110)
            .map(|id| (id, Some("2024-06-01")))
            .chain([(101, None), (102, None), (104, None)])
            .collect();
        write_parquet(&data.join("ae_attendances.parquet"), &[ae_batch(&ae)]);
        run(&data, &out, purpose);
        let got = rejected(&out);
        let ids = |reason: &str| -> Vec<&str> {
            got.iter()
                .filter(|(_, r, _)| r == reason)
                .map(|(_, _, id)| id.as_str())
                .collect()
        };
        assert_eq!(ids("duplicate_person_id"), kept, "{purpose}: {got:?}");
        assert_eq!(ids("null_date"), kept, "{purpose}: {got:?}");
        // Every such row was counted, written or not.
        let m = manifest(&out);
        assert_eq!(m["rejected"]["patients"]["duplicate_person_id"], 3);
        assert_eq!(m["rejected"]["ae"]["null_date"], 3);
    }
}

/// An opt-out recorded on a later copy of a person's population row holds:
/// the copy is dropped as a duplicate, its opt-out is not. 105's second
/// row gives a type 1 opt-out, 106's a National Data Opt-out (as text).
#[test]
fn an_opt_out_on_a_later_copy_of_a_persons_row_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    let (t, n) = flags(&[false; 10], &[false; 10]);
    fixture(&data, t, n);
    let ids: Vec<i64> = (101..=110).chain([105, 106]).collect();
    let people: Vec<Person> = ids
        .iter()
        .map(|&id| person(id, "1970-01-01", "P1"))
        .collect();
    let patients = patients_batch(&people);
    let type1: Vec<bool> = (0..12).map(|i| i == 10).collect();
    let national: Vec<&str> = (0..12).map(|i| if i == 11 { "Y" } else { "N" }).collect();
    let patients = adding_column(
        &patients,
        "type1_opt_out",
        Arc::new(BooleanArray::from(type1)),
    );
    let patients = adding_column(
        &patients,
        "national_data_opt_out",
        Arc::new(StringArray::from(national)),
    );
    write_parquet(&data.join("patients.parquet"), &[patients]);

    run(&data, &out, "direct_care");
    let lists = listed(&out);
    assert!(!lists.contains(&"105".to_string()), "{lists:?}");
    assert!(lists.contains(&"106".to_string()), "direct care lists 106");
    assert!(!patients_rows(&out).contains(&105));
    // 105's dropped row names no one withheld; 106 is counted by no one.
    let got = rejected(&out);
    assert!(got.iter().all(|(_, _, id)| id != "105"), "{got:?}");
    let m = manifest(&out);
    assert_eq!(m["rejected"]["patients"]["duplicate_person_id"], 2);

    let secondary = tmp.path().join("secondary");
    run(&data, &secondary, "secondary_use");
    let lists = listed(&secondary);
    assert!(
        !lists.contains(&"105".to_string()) && !lists.contains(&"106".to_string()),
        "{lists:?}"
    );
    assert_eq!(lists.len(), 8);
}

/// A person who opts out between two runs is not named by their diff: the
/// new run has no row for them, as for someone gone from the extract, and
/// the two cannot be told apart. They are counted as gone, not listed as
/// having left.
#[test]
fn a_diff_names_no_one_who_opted_out_since() {
    let tmp = tempfile::tempdir().unwrap();
    let (before, after) = (tmp.path().join("before"), tmp.path().join("after"));
    let (t, n) = flags(&[false; 10], &[false; 10]);
    fixture(&before, t, n);
    let mut type1 = [false; 10];
    type1[4] = true; // 105
    let (t, n) = flags(&type1, &[false; 10]);
    fixture(&after, t, n);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    run(&before, &a, "direct_care");
    run(&after, &b, "direct_care");
    assert!(listed(&a).contains(&"105".to_string()));
    assert!(!patients_rows(&b).contains(&105));
    let diff = tmp.path().join("diff");
    let o = diff_runs(&a, &b, &diff, &["--suppression", "none"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // No one else entered or left: no change at all, so no PCN's list.
    let file = std::fs::File::open(diff.join("changes.parquet")).unwrap();
    let rows = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .metadata()
        .file_metadata()
        .num_rows();
    assert_eq!(rows, 0);
    assert!(!diff.join("pcn/P1/changes.csv").exists());
    let summary = std::fs::read_to_string(diff.join("summary.csv")).unwrap();
    assert!(
        summary.starts_with("cohort,pcn_code,entered,left,gone"),
        "{summary}"
    );
    assert!(summary.contains("hiu,P1,0,0,1"), "{summary}");
    assert!(stdout(&o).contains("gone"), "{}", stdout(&o));
}

/// `strata explain` shows no more of a person than a list would: under
/// direct care a type 1 opt-out is refused and a National Data Opt-out
/// (kept on the lists) explained; under secondary use both are refused.
#[test]
fn explain_shows_no_one_a_list_withholds() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (t, n) = standard();
    fixture(&data, t, n);
    let hiu = repo_path("models/hiu.toml");
    // The purpose is the rule file's, unless `extra` gives --purpose.
    let explain = |person: &str, purpose: &str, extra: &[&str]| {
        let rules = tmp.path().join(format!("{purpose}.toml"));
        std::fs::write(
            &rules,
            format!(
                "include = [{:?}]\n\n[model]\nname = \"hiu_{purpose}\"\ntitle = \"HIU\"\nsource = \"a test\"\n\n[output]\npurpose = \"{purpose}\"\n",
                hiu.to_str().unwrap()
            ),
        )
        .unwrap();
        let mut args = vec![
            "explain",
            "--rules",
            rules.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--person",
            person,
        ];
        args.extend(extra);
        strata(&args)
    };
    for (person, purpose, shown) in [
        ("101", "direct_care", false),
        ("102", "direct_care", true),
        ("104", "direct_care", true),
        ("102", "secondary_use", false),
        ("104", "secondary_use", true),
    ] {
        let o = explain(person, purpose, &[]);
        if shown {
            assert!(o.status.success(), "{person} {purpose}: {}", stderr(&o));
            assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("Person {person}")));
        } else {
            assert_eq!(
                o.status.code(),
                Some(2),
                "{person} {purpose}: {}",
                stderr(&o)
            );
            assert!(stderr(&o).contains("is not explained"));
            assert!(o.stdout.is_empty());
        }
    }
    // --purpose overrides the rule file's, as for `run`.
    let o = explain("102", "direct_care", &["--purpose", "secondary_use"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("the `secondary_use` purpose keeps them off every list"));
}
