//! End-to-end runs of the shipped HIU model on hand-made fixtures, checking
//! cohort membership, window edges, deaths, unknown persons, ranking and the
//! per-PCN lists against values worked out by hand.

mod util;

use std::path::Path;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int32Type, Int64Type};
use util::*;

const AS_OF: &str = "2025-03-31";

/// Persons and events; the comment on each says what is expected of them.
fn fixture(dir: &Path, ae_parts: usize) {
    let mut people = vec![
        person(101, "1980-01-01", "P1"), // 5 in window, incl. 364 days back and on the as-of date: in
        person(102, "1980-01-01", "P1"), // 5, but one exactly 365 days back: 4, out
        person(103, "1980-01-01", "P2"), // 4 + one the day after the as-of date: out
        person(104, "1980-01-01", "P2"), // no events at all: 0, out
        person(105, "1950-06-01", "P1"), // 6, died on the as-of date: out, alive = false
        person(106, "1950-06-01", "P1"), // 6, died the day after: in
        person(107, "2007-04-01", "P2"), // 7, aged 17 on the as-of date: out
        person(108, "2007-03-31", "P2"), // 5, 18 on the as-of date: in
        person(109, "1990-01-01", "P3"), // nothing; P3 has no members at all
    ];
    people[4].death = Some("2025-03-31");
    people[5].death = Some("2025-04-01");
    write_parquet(&dir.join("patients.parquet"), &[patients_batch(&people)]);

    let mut ae: Vec<(i64, Option<&str>)> = Vec::new();
    let mid = [
        "2024-06-01",
        "2024-09-01",
        "2024-12-01",
        "2025-01-15",
        "2025-02-01",
        "2025-03-01",
    ];
    ae.extend([(101, Some("2024-04-01")), (101, Some("2025-03-31"))]);
    ae.extend(mid[..3].iter().map(|d| (101, Some(*d))));
    ae.push((101, None)); // null date: skipped and counted
    ae.push((102, Some("2024-03-31")));
    ae.extend(mid[..4].iter().map(|d| (102, Some(*d))));
    ae.extend(mid[..4].iter().map(|d| (103, Some(*d))));
    ae.push((103, Some("2025-04-01")));
    ae.extend(mid.iter().map(|d| (105, Some(*d))));
    ae.extend(mid.iter().map(|d| (106, Some(*d))));
    ae.extend(mid.iter().chain(&mid[..1]).map(|d| (107, Some(*d))));
    ae.extend(mid[..5].iter().map(|d| (108, Some(*d))));
    ae.extend((0..3).map(|_| (999, Some("2025-01-01")))); // unknown person
    ae.sort_by_key(|r| r.1);

    if ae_parts == 1 {
        write_parquet(&dir.join("ae_attendances.parquet"), &[ae_batch(&ae)]);
    } else {
        let folder = dir.join("ae_attendances");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("_SUCCESS"), "").unwrap();
        let per = ae.len().div_ceil(ae_parts);
        for (i, chunk) in ae.chunks(per).enumerate() {
            // Two row groups per part, to exercise both levels of parallelism.
            let half = chunk.len() / 2;
            let groups = [
                ae_batch(&chunk[..half.max(1)]),
                ae_batch(&chunk[half.max(1)..]),
            ];
            let groups: Vec<RecordBatch> =
                groups.into_iter().filter(|b| b.num_rows() > 0).collect();
            write_parquet(&folder.join(format!("part-{i:05}.parquet")), &groups);
        }
    }
    write_parquet(
        &dir.join("admissions.parquet"),
        &[admissions_batch(&[
            (101, "2024-05-01", "emergency", &["I509", "J44"]),
            (101, "2024-06-01", "elective", &["Z000"]),
            (101, "2024-03-31", "emergency", &["I509"]), // 365 days back: out
            (106, "2025-01-01", "emergency", &[]),
            (106, "2025-02-01", "emergency", &["R54"]),
        ])],
    );
}

/// Runs the HIU model with an adult age floor (the fixture's persons 107
/// and 108 sit on it), as an adult HIU service would.
fn run(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--as-of", AS_OF, "--set", "hiu_age_floor=18"];
    args.extend_from_slice(extra);
    let o = run_quietly(&repo_path("models/hiu.toml"), data, out, &args);
    assert!(o.status.success(), "strata failed: {}", stderr(&o));
    o
}

fn column_i64(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    b.column_by_name(name)
        .unwrap()
        .as_primitive::<Int64Type>()
        .iter()
        .collect()
}

fn column_bool(b: &RecordBatch, name: &str) -> Vec<Option<bool>> {
    b.column_by_name(name)
        .unwrap()
        .as_boolean()
        .iter()
        .collect()
}

#[test]
fn hiu_membership_matches_hand_computed_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    std::fs::create_dir(&data).unwrap();
    fixture(&data, 1);
    run(&data, &out, &[]);

    let p = read_parquet(&out.join("patients.parquet"));
    assert_eq!(
        column_i64(&p, "person_id"),
        (101..=109).map(Some).collect::<Vec<_>>()
    );
    assert_eq!(
        column_i64(&p, "ae_attendances_12m"),
        [5, 4, 4, 0, 6, 6, 7, 5, 0].map(Some).to_vec()
    );
    assert_eq!(
        column_bool(&p, "hiu"),
        [true, false, false, false, false, true, false, true, false]
            .map(Some)
            .to_vec()
    );
    assert_eq!(
        column_bool(&p, "alive"),
        [true, true, true, true, false, true, true, true, true]
            .map(Some)
            .to_vec()
    );
    // Emergency only, in window, each admission once whatever its diagnoses.
    assert_eq!(
        column_i64(&p, "emergency_admissions_12m"),
        [1, 0, 0, 0, 0, 2, 0, 0, 0].map(Some).to_vec()
    );
    let last: Vec<Option<i32>> = p
        .column_by_name("last_ae_attendance")
        .unwrap()
        .as_primitive::<Date32Type>()
        .iter()
        .collect();
    assert_eq!(
        last[0],
        Some(day("2025-03-31")),
        "an event on the as-of date counts"
    );
    assert_eq!(
        last[2],
        Some(day("2025-01-15")),
        "an event after the as-of date is ignored"
    );
    assert_eq!(last[3], None, "no events: null, not a made-up date");
    // Ranked within PCN: P1 has 106 (6) before 101 (5); P2 has 108 alone.
    let rank: Vec<Option<i32>> = p
        .column_by_name("hiu_rank")
        .unwrap()
        .as_primitive::<Int32Type>()
        .iter()
        .collect();
    assert_eq!(
        rank,
        vec![
            Some(2),
            None,
            None,
            None,
            None,
            Some(1),
            None,
            Some(1),
            None
        ]
    );
}

#[test]
fn pcn_lists_hold_only_their_own_members_in_rank_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    std::fs::create_dir(&data).unwrap();
    fixture(&data, 1);
    run(&data, &out, &[]);

    let read =
        |pcn: &str| std::fs::read_to_string(out.join("pcn").join(pcn).join("hiu.csv")).unwrap();
    let p1 = read("P1");
    // RFC 4180: every record ends with CRLF.
    assert_eq!(p1.matches("\r\n").count(), p1.matches('\n').count());
    assert!(p1.ends_with("\r\n"));
    let lines: Vec<&str> = p1.lines().collect();
    assert_eq!(
        lines[0],
        "rank,person_id,practice_code,age,sex,ae_attendances_12m,emergency_admissions_12m,last_ae_attendance,reason"
    );
    assert_eq!(
        lines[1],
        "1,106,P1-GP,74,F,6,2,2025-03-01,A&E attendances in 12 months: 6 (threshold >= 5); \
         Emergency admissions in 12 months: 2; Last A&E attendance: 2025-03-01"
    );
    assert!(lines[2].starts_with("2,101,P1-GP,45,F,5,1,2025-03-31,"));
    assert_eq!(lines.len(), 3);
    let p2 = read("P2");
    let p2: Vec<&str> = p2.lines().skip(1).collect();
    assert_eq!(p2.len(), 1);
    assert!(
        p2[0].starts_with("1,108,P2-GP,18,F,5,0,2025-02-01,"),
        "{}",
        p2[0]
    );
    // A PCN with no members still gets its (header-only) list.
    assert_eq!(read("P3").lines().count(), 1);
}

#[test]
fn manifest_counts_inputs_rejects_and_cohorts() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    std::fs::create_dir(&data).unwrap();
    fixture(&data, 1);
    // Exact counts, for checking them; the default suppresses (below).
    run(&data, &out, &["--suppression", "none"]);
    let m: serde_json::Value = manifest(&out);
    assert_eq!(m["as_of"], AS_OF);
    assert_eq!(m["as_of_inferred"], false);
    let counts = &m["counts"];
    assert_eq!(counts["persons"], "9");
    assert_eq!(counts["alive"], "8");
    assert_eq!(m["rejected"]["ae"]["unknown_person"], 3);
    assert_eq!(m["rejected"]["ae"]["null_date"], 1);
    assert_eq!(m["rejected"]["ae"]["after_as_of"], 1);
    assert_eq!(counts["cohorts"][0]["name"], "hiu");
    assert_eq!(counts["cohorts"][0]["members"], "3");
    assert_eq!(counts["cohorts"][0]["by_pcn"]["P1"], "2");
    assert_eq!(counts["cohorts"][0]["by_pcn"]["P3"], "0");
    assert_eq!(
        counts["suppression"],
        "counts are exact (no small-number suppression)"
    );
    let sha = m["model"]["files"][0]["sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    let inputs = m["inputs"].as_array().unwrap();
    assert_eq!(inputs[0]["table"], "patients");
    assert_eq!(inputs[0]["files"][0]["rows"], 9);

    // The skipped rows themselves, with the reason and where each is.
    let mut rejects = csv::Reader::from_path(out.join("rejects/ae.csv")).unwrap();
    assert_eq!(
        rejects.headers().unwrap().iter().collect::<Vec<_>>(),
        ["reason", "file", "row_group", "row", "person_id", "date"]
    );
    let mut rows: Vec<(String, String, String)> = rejects
        .records()
        .map(|r| {
            let r = r.unwrap();
            assert!(r[1].ends_with("ae_attendances.parquet"));
            (r[0].to_string(), r[4].to_string(), r[5].to_string())
        })
        .collect();
    rows.sort();
    let row = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        rows,
        [
            row("null_date", "101", ""),
            row("unknown_person", "999", "2025-01-01"),
            row("unknown_person", "999", "2025-01-01"),
            row("unknown_person", "999", "2025-01-01"),
        ]
    );
    assert!(
        !out.join("rejects/admissions.csv").exists(),
        "only sources that skipped rows"
    );

    // By default every count of people is suppressed, in the manifest and
    // in summary.json alike; rows are not people and stay exact.
    run(&data, &out, &[]);
    for file in ["manifest.json", "summary.json"] {
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(file)).unwrap()).unwrap();
        let counts = &m["counts"];
        assert_eq!(counts["persons"], "10", "{file}: 9 rounds to 10");
        assert_eq!(counts["cohorts"][0]["members"], "*", "{file}");
        assert_eq!(counts["cohorts"][0]["by_pcn"]["P1"], "*", "{file}");
        assert!(
            counts["cohorts"][0].get("percent_of_alive").is_none(),
            "{file}: 3 of 8 would show a hidden count"
        );
        assert!(
            counts["suppression"]
                .as_str()
                .unwrap()
                .contains("1-7 shown as *"),
            "{file}"
        );
        let rejected = if file == "manifest.json" {
            &m["rejected"]
        } else {
            &m["rejected_rows"]
        };
        assert_eq!(rejected["ae"]["unknown_person"], 3, "{file}");
    }
}

#[test]
fn part_file_folders_give_the_same_results_as_one_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut tables = Vec::new();
    for parts in [1, 3] {
        let data = tmp.path().join(format!("data{parts}"));
        let out = tmp.path().join(format!("out{parts}"));
        std::fs::create_dir(&data).unwrap();
        fixture(&data, parts);
        run(&data, &out, &[]);
        tables.push(read_parquet(&out.join("patients.parquet")));
    }
    assert!(
        tmp.path()
            .join("data3/ae_attendances/part-00002.parquet")
            .exists()
    );
    assert_eq!(tables[0], tables[1]);
}

#[test]
fn one_and_two_threads_write_byte_identical_output() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    fixture(&data, 3);
    let mut outputs = Vec::new();
    for threads in ["1", "2"] {
        let out = tmp.path().join(format!("out{threads}"));
        run(&data, &out, &["--threads", threads]);
        outputs.push((
            std::fs::read(out.join("patients.parquet")).unwrap(),
            std::fs::read(out.join("pcn/P1/hiu.csv")).unwrap(),
        ));
    }
    assert!(
        outputs[0] == outputs[1],
        "outputs differ between --threads 1 and 2"
    );
}

#[test]
fn as_of_defaults_to_the_latest_activity_date() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    std::fs::create_dir(&data).unwrap();
    fixture(&data, 1);
    let o = strata(&[
        "run",
        "--rules",
        "models/hiu.toml",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The latest event in the tables the model reads is the A&E attendance on 2025-04-01.
    assert!(
        stdout(&o).contains("as of 2025-04-01 (latest activity date)"),
        "{}",
        stdout(&o)
    );
    let m: serde_json::Value = manifest(&out);
    assert_eq!(m["as_of_inferred"], true);
}

#[test]
fn an_event_dated_after_today_is_not_taken_as_the_as_of_date() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    std::fs::create_dir(&data).unwrap();
    fixture(&data, 1);
    // One admission with a mistyped year.
    write_parquet(
        &data.join("admissions.parquet"),
        &[admissions_batch(&[(
            101,
            "9999-12-31",
            "emergency",
            &["I509"],
        )])],
    );
    let hiu = repo_path("models/hiu.toml");
    let refused = run_printed(&hiu, &data, &out, &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let err = stderr(&refused);
    assert!(
        err.contains("admissions.parquet")
            && err.contains("after today")
            && err.contains("--as-of"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
    // `strata check --data` reads as a run does, and takes its --as-of.
    let check = |extra: &[&str]| {
        let mut args = vec![
            "check",
            hiu.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ];
        args.extend(extra);
        strata(&args)
    };
    let o = check(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("after today"), "{}", stderr(&o));
    let o = check(&["--as-of", "2025-03-31"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // An as-of date given after today (a mistyped year) runs, with a warning.
    let o = run_printed(&hiu, &data, &out, &["--as-of", "2099-03-31"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--as-of 2099-03-31 is after today"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&out).unwrap();
    // Given an as-of date, the run counts the row as after it.
    let o = run_printed(&hiu, &data, &out, &["--as-of", "2025-03-31"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m: serde_json::Value = manifest(&out);
    assert_eq!(m["rejected"]["admissions"]["after_as_of"], 1);
    // A date the source declares a placeholder is no event's: the as-of
    // date is inferred from the others.
    let declared = tmp.path().join("hiu.toml");
    let text = std::fs::read_to_string(&hiu).unwrap();
    let from = "date = \"admission_date\"\n";
    assert!(text.contains(from));
    let text = text.replacen(from, &format!("{from}missing_dates = [9999-12-31]\n"), 1);
    std::fs::write(&declared, text).unwrap();
    let o = run_printed(&declared, &data, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(manifest(&out)["as_of"], "2025-04-01");
}

/// A rule file that runs the HIU model plus one cohort with delivery options.
fn delivery_rules(dir: &Path, options: &str) -> std::path::PathBuf {
    let rules = dir.join("delivery.toml");
    let text = format!(
        r#"include = [{hiu:?}]

[model]
name = "delivery"
title = "Delivery options"
source = "test"

[cohorts.hiu_top_p1]
title = "Top HIU in P1"
description = "The most frequent attender in P1 only."
when = "age >= 18 and ae_attendances_12m >= 5"
rank = ["ae_attendances_12m desc"]
{options}
"#,
        hiu = repo_path("models/hiu.toml"),
    );
    std::fs::write(&rules, text).unwrap();
    rules
}

#[test]
fn a_cohort_goes_only_to_its_pcns_and_keeps_its_top_members() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    std::fs::create_dir(&data).unwrap();
    fixture(&data, 1);
    let rules = delivery_rules(tmp.path(), "pcns = [\"P1\"]\ntop_per_pcn = 1");
    let o = run_rules(&rules, &data, &out, AS_OF);
    assert!(o.status.success(), "{}", stderr(&o));

    let p = read_parquet(&out.join("patients.parquet"));
    // HIU members are 101 (P1, 5), 106 (P1, 6) and 108 (P2, 5): P2 does not
    // receive the cohort and P1 keeps only its first.
    assert_eq!(
        column_bool(&p, "hiu_top_p1"),
        [false, false, false, false, false, true, false, false, false]
            .map(Some)
            .to_vec()
    );
    let list = std::fs::read_to_string(out.join("pcn/P1/hiu_top_p1.csv")).unwrap();
    assert_eq!(
        list.lines().skip(1).collect::<Vec<_>>(),
        ["1,106,P1-GP,74,F,"]
    );
    assert!(!out.join("pcn/P2/hiu_top_p1.csv").exists());
    use calamine::Reader;
    let sheets = |pcn: &str| {
        let book: calamine::Xlsx<_> =
            calamine::open_workbook(out.join(format!("pcn/{pcn}/{pcn}.xlsx"))).unwrap();
        book.sheet_names()
    };
    assert!(sheets("P1").contains(&"hiu_top_p1".to_string()));
    assert!(!sheets("P2").contains(&"hiu_top_p1".to_string()));
    assert!(
        out.join("pcn/P2/hiu.csv").exists(),
        "other cohorts still go everywhere"
    );
}

#[test]
fn a_cohort_for_a_pcn_nobody_is_registered_to_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    std::fs::create_dir(&data).unwrap();
    fixture(&data, 1);
    let rules = delivery_rules(tmp.path(), "pcns = [\"P1\", \"P9\"]");
    let o = run_rules(&rules, &data, &out, AS_OF);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("delivery.toml:13:"), "{err}");
    assert!(err.contains("PCN `P9`"), "{err}");
    assert!(err.contains("P1, P2, P3"), "{err}");
    assert!(!out.exists(), "nothing published");

    let rules = delivery_rules(tmp.path(), "top_per_pcn = -1");
    let o = run_rules(&rules, &data, &out, AS_OF);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("from 0 (no limit) to 4294967295, not -1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_top_n_option_keeps_each_pcns_most_frequent_attenders() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    std::fs::create_dir(&data).unwrap();
    fixture(&data, 1);
    run(&data, &out, &["--set", "hiu_top_per_pcn=1"]);
    let p = read_parquet(&out.join("patients.parquet"));
    // P1's members are 106 (6) and 101 (5): only 106 stays; P2 keeps 108.
    assert_eq!(
        column_bool(&p, "hiu"),
        [false, false, false, false, false, true, false, true, false]
            .map(Some)
            .to_vec()
    );
}

#[test]
fn each_pcn_gets_a_workbook_with_a_cover_sheet_and_its_own_lists() {
    use calamine::{Data, Reader, Xlsx, open_workbook};
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    std::fs::create_dir(&data).unwrap();
    fixture(&data, 1);
    run(&data, &out, &[]);

    let mut book: Xlsx<_> = open_workbook(out.join("pcn/P1/P1.xlsx")).unwrap();
    assert_eq!(book.sheet_names(), ["Cover", "hiu", "hiu_nhse"]);
    let cover = book.worksheet_range("Cover").unwrap();
    let text: Vec<String> = cover.cells().map(|(_, _, c)| c.to_string()).collect();
    assert!(text.iter().any(|t| t == "P1"), "{text:?}");
    assert!(
        text.iter()
            .any(|t| t.contains("High intensity users of A&E (hiu, version")),
        "{text:?}"
    );
    // The definition is worded from the condition itself, with the
    // parameters' values.
    assert!(
        text.iter().any(|t| t.ends_with(
            "On the list: age at least 18 and A&E attendances in 12 months at least 5, \
             alive on the as-of date."
        )),
        "{text:?}"
    );
    // P1 has 2 HIU members: its own cover sheet says so exactly (its sheet
    // lists both, so suppressing the count would hide nothing).
    let row = cover
        .rows()
        .find(|r| {
            r.first()
                .is_some_and(|c| *c == "High intensity users of A&E")
        })
        .unwrap();
    assert_eq!(row[2], Data::Float(2.0));

    let hiu = book.worksheet_range("hiu").unwrap();
    let rows: Vec<&[Data]> = hiu.rows().collect();
    assert_eq!(rows.len(), 3, "header and P1's two members, nobody else's");
    assert_eq!(rows[0][0].to_string(), "rank");
    assert_eq!(rows[0].last().unwrap().to_string(), "reason");
    assert_eq!(rows[1][1], Data::String("106".into()), "ids are exact text");
    assert_eq!(rows[2][1], Data::String("101".into()));
    assert_eq!(rows[1][3], Data::Float(74.0), "ages are numbers");
    // Counts too (a run holds them in 32 bits): 106's 6 attendances and 2
    // emergency admissions, 101's 5 and 1.
    assert_eq!(rows[0][5].to_string(), "ae_attendances_12m");
    assert_eq!(rows[0][6].to_string(), "emergency_admissions_12m");
    assert_eq!(rows[1][5], Data::Float(6.0), "counts are numbers");
    assert_eq!(rows[1][6], Data::Float(2.0));
    assert_eq!(rows[2][5], Data::Float(5.0));
    assert_eq!(rows[2][6], Data::Float(1.0));
    // The last attendance is an Excel date, not text.
    match &rows[1][7] {
        // Excel counts days from 1899-12-30: 2025-03-01 is 45717.
        Data::DateTime(d) => assert_eq!(d.as_f64(), 45717.0),
        other => panic!("not a date: {other:?}"),
    }
    assert!(
        rows[1][8]
            .to_string()
            .contains("A&E attendances in 12 months: 6")
    );
}

#[test]
fn diff_reports_the_exact_entrants_and_leavers_of_a_changed_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    fixture(&data, 1);
    let (five, six) = (tmp.path().join("five"), tmp.path().join("six"));
    run(&data, &five, &[]);
    run(&data, &six, &["--set", "hiu_threshold=6"]);
    let diff = tmp.path().join("diff");
    let o = diff_runs(&five, &six, &diff, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = stdout(&o);
    assert!(
        printed.contains("parameter hiu_threshold: 5 -> 6"),
        "{printed}"
    );
    // 101 (P1) and 108 (P2) had exactly 5; 106 had 6 and stays.
    let ids_of = |diff: &Path| -> Vec<(String, String, String)> {
        let changes = read_parquet(&diff.join("changes.parquet"));
        let text = |name: &str| -> Vec<String> {
            changes
                .column_by_name(name)
                .unwrap()
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap().to_string())
                .collect()
        };
        text("cohort")
            .into_iter()
            .zip(text("pcn_code"))
            .zip(text("person_id").into_iter().zip(text("change")))
            .filter(|((c, _), _)| c == "hiu")
            .map(|((_, p), (id, ch))| (p, id, ch))
            .collect()
    };
    let expect = |p: &str, id: &str, ch: &str| (p.to_string(), id.to_string(), ch.to_string());
    assert_eq!(
        ids_of(&diff),
        vec![expect("P1", "101", "left"), expect("P2", "108", "left")]
    );
    // Each PCN's folder holds only its own people.
    let p1 = std::fs::read_to_string(diff.join("pcn/P1/changes.csv")).unwrap();
    assert!(p1.contains("hiu,101,left") && !p1.contains("108"), "{p1}");
    // Counts are suppressed in what is printed and in summary.csv.
    let summary = std::fs::read_to_string(diff.join("summary.csv")).unwrap();
    assert!(summary.contains("hiu,P1,0,*"), "{summary}");

    // The other way round, the same people enter.
    let o = diff_runs(&six, &five, &diff, &["--suppression", "none"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = std::fs::read_to_string(diff.join("summary.csv")).unwrap();
    assert!(
        summary.contains("hiu,P1,1,0") && summary.contains("hiu,P2,1,0"),
        "{summary}"
    );
    assert_eq!(
        ids_of(&diff),
        vec![
            expect("P1", "101", "entered"),
            expect("P2", "108", "entered")
        ]
    );

    // Runs of different rule files are refused unless asked for.
    let other = tmp.path().join("other");
    let rules = tmp.path().join("hiu.toml");
    let text = std::fs::read_to_string(repo_path("models/hiu.toml")).unwrap();
    std::fs::write(&rules, format!("{text}\n# edited\n")).unwrap();
    let o = run_rules(&rules, &data, &other, AS_OF);
    assert!(o.status.success(), "{}", stderr(&o));
    let args = [
        "diff",
        five.to_str().unwrap(),
        other.to_str().unwrap(),
        "--out",
        diff.to_str().unwrap(),
    ];
    let o = strata(&args);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("different rule files"),
        "{}",
        stderr(&o)
    );
    let mut allowed = args.to_vec();
    allowed.push("--allow-different-rules");
    assert!(strata(&allowed).status.success());

    // A --out that is not strata's is refused as such, even while another
    // run holds its lock, and nothing is written.
    let mine = tmp.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), b"mine").unwrap();
    let held = hold_lock(&tmp.path().join(".mine.strata-lock"));
    let mut refused = allowed.clone();
    let at = refused.iter().position(|a| *a == "--out").unwrap() + 1;
    refused[at] = mine.to_str().unwrap();
    let o = strata(&refused);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not empty and does not hold a previous strata output"),
        "{}",
        stderr(&o)
    );
    drop(held);
    assert_eq!(std::fs::read_dir(&mine).unwrap().count(), 1);

    // A PCN code no run writes (a path, edited into a saved output) is
    // refused, naming the file, and no folder is made for it.
    let patients = five.join("patients.parquet");
    let saved = read_parquet(&patients);
    let pcns = arrow_cast::cast(
        saved.column_by_name("pcn_code").unwrap(),
        &arrow_schema::DataType::Utf8,
    )
    .unwrap();
    let escaping = arrow_array::StringArray::from_iter(
        pcns.as_string::<i32>()
            .iter()
            .map(|p| p.map(|p| if p == "P1" { "../../escaped" } else { p })),
    );
    let edited = replacing_column(&saved, "pcn_code", std::sync::Arc::new(escaping));
    write_parquet(&patients, &[edited]);
    let o = diff_runs(&five, &six, &tmp.path().join("diff2"), &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("patients.parquet") && err.contains("../../escaped"),
        "{err}"
    );
    // From a PCN's folder in the staging folder beside `--out`, two levels
    // up is the folder that holds them both.
    assert!(!tmp.path().join("escaped").exists());
    assert!(!tmp.path().join("diff2").exists());
}

#[test]
fn with_a_previous_run_the_lists_mark_who_is_new() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    std::fs::create_dir(&data).unwrap();
    fixture(&data, 1);
    run(&data, &out, &[]);
    // The same folder as previous and output: read before it is replaced.
    run(
        &data,
        &out,
        &[
            "--set",
            "hiu_threshold=4",
            "--previous",
            out.to_str().unwrap(),
        ],
    );
    let p1 = std::fs::read_to_string(out.join("pcn/P1/hiu.csv")).unwrap();
    let rows: Vec<Vec<&str>> = p1.lines().map(|l| l.split(',').take(3).collect()).collect();
    assert_eq!(rows[0], ["rank", "new", "person_id"]);
    // 106 (6) and 101 (5) were on the list; 102 (4) is new.
    assert_eq!(
        rows[1..],
        [
            ["1", "false", "106"],
            ["2", "false", "101"],
            ["3", "true", "102"]
        ]
    );
}

/// A person who moves PCN and stays in a cohort is new to the list of the
/// PCN they joined and has left the other's: both PCNs are told, by the
/// lists' `new` column and by `strata diff`.
#[test]
fn a_member_who_moved_pcn_is_new_to_one_list_and_has_left_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    fixture(&data, 1);
    let (before, after) = (tmp.path().join("before"), tmp.path().join("after"));
    run(&data, &before, &[]);
    // 101 (HIU, P1) moves to P2's practice.
    let patients = read_parquet(&data.join("patients.parquet"));
    let moved = |name: &str, to: &str| -> arrow_array::ArrayRef {
        let column = patients.column_by_name(name).unwrap();
        let text = arrow_cast::cast(column, &arrow_schema::DataType::Utf8).unwrap();
        let ids = patients.column_by_name("person_id").unwrap();
        let ids = ids.as_primitive::<Int64Type>();
        std::sync::Arc::new(arrow_array::StringArray::from_iter(
            text.as_string::<i32>()
                .iter()
                .enumerate()
                .map(|(r, v)| if ids.value(r) == 101 { Some(to) } else { v }),
        ))
    };
    let moved_pcn = replacing_column(&patients, "pcn_code", moved("pcn_code", "P2"));
    let moved_practice =
        replacing_column(&moved_pcn, "practice_code", moved("practice_code", "P2-GP"));
    write_parquet(&data.join("patients.parquet"), &[moved_practice]);
    run(&data, &after, &["--previous", before.to_str().unwrap()]);
    let p2 = std::fs::read_to_string(after.join("pcn/P2/hiu.csv")).unwrap();
    let rows: Vec<Vec<&str>> = p2.lines().map(|l| l.split(',').take(3).collect()).collect();
    assert!(rows.iter().any(|r| r[1..] == ["true", "101"]), "{p2}");
    assert!(rows.iter().any(|r| r[1..] == ["false", "108"]), "{p2}");

    let diff = tmp.path().join("diff");
    let o = diff_runs(&before, &after, &diff, &["--suppression", "none"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p1 = std::fs::read_to_string(diff.join("pcn/P1/changes.csv")).unwrap();
    let p2 = std::fs::read_to_string(diff.join("pcn/P2/changes.csv")).unwrap();
    assert!(p1.contains("hiu,101,left"), "{p1}");
    assert!(
        p2.contains("hiu,101,entered") && !p2.contains("108"),
        "{p2}"
    );
}

#[test]
fn strict_runs_exit_1_when_rows_were_skipped_but_still_write_the_output() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    std::fs::create_dir(&data).unwrap();
    fixture(&data, 1); // has a null date and unknown persons
    let o = run_quietly(
        &repo_path("models/hiu.toml"),
        &data,
        &out,
        &["--as-of", AS_OF, "--strict"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("4 input rows were skipped"),
        "{}",
        stderr(&o)
    );
    assert!(out.join("manifest.json").exists());
}

#[test]
fn a_cohorts_columns_are_exactly_those_its_rule_lists() {
    use calamine::{Reader, Xlsx, open_workbook};
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    std::fs::create_dir(&data).unwrap();
    fixture(&data, 1);
    let text = std::fs::read_to_string(repo_path("models/hiu.toml")).unwrap();
    let anchor = "top_per_pcn = \"hiu_top_per_pcn\"\n";
    assert!(text.contains(anchor));
    let rules = tmp.path().join("hiu.toml");
    std::fs::write(
        &rules,
        text.replacen(
            anchor,
            &format!("{anchor}columns = [\"age\", \"ae_attendances_12m\"]\n"),
            1,
        ),
    )
    .unwrap();
    let o = run_quietly(
        &rules,
        &data,
        &out,
        &["--as-of", AS_OF, "--set", "hiu_age_floor=18"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(out.join("pcn/P1/hiu.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "rank,person_id,age,ae_attendances_12m,reason"
    );
    assert!(lines.next().unwrap().starts_with("1,106,74,6,"));
    // The workbook's sheet has the same columns; the other cohort keeps
    // the default ones.
    let mut book: Xlsx<_> = open_workbook(out.join("pcn/P1/P1.xlsx")).unwrap();
    let header = |book: &mut Xlsx<_>, sheet: &str| -> Vec<String> {
        let range = book.worksheet_range(sheet).unwrap();
        range
            .rows()
            .next()
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect()
    };
    assert_eq!(
        header(&mut book, "hiu"),
        ["rank", "person_id", "age", "ae_attendances_12m", "reason"]
    );
    assert!(header(&mut book, "hiu_nhse").contains(&"practice_code".to_string()));

    // A column that is nothing the model knows is refused where it is written.
    std::fs::write(
        &rules,
        text.replacen(anchor, &format!("{anchor}columns = [\"nhs_number\"]\n"), 1),
    )
    .unwrap();
    let o = run_quietly(
        &rules,
        &data,
        &tmp.path().join("other"),
        &["--as-of", AS_OF],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("column `nhs_number` is not a feature"),
        "{}",
        stderr(&o)
    );
}
