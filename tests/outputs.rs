//! What people receive, checked across every output of real runs: no
//! aggregate output anywhere shows a count of people from 1 to 7, the
//! report is self-contained with every chart, and each PCN's folder holds
//! only its own people.

mod util;

use std::path::Path;

use util::*;

/// A small generated city (where many counts are small) run through the
/// core models, twice with different thresholds, and diffed.
struct Runs {
    _tmp: tempfile::TempDir,
    data: std::path::PathBuf,
    first: std::path::PathBuf,
    second: std::path::PathBuf,
    diff: std::path::PathBuf,
    /// What the second run and the diff printed on the terminal.
    printed: Vec<(&'static str, String)>,
}

fn runs() -> Runs {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 4000, 3);
    let first = tmp.path().join("first");
    let second = tmp.path().join("second");
    let core = repo_path("models/core.toml");
    let o = run_quietly(&core, &data, &first, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The second run prints its summary table.
    let o = run_printed(&core, &data, &second, &["--set", "hiu_threshold=3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut printed = vec![("run summary", stdout(&o))];
    let diff = tmp.path().join("diff");
    let o = diff_runs(&first, &second, &diff, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    printed.push(("diff table", stdout(&o)));
    Runs {
        _tmp: tmp,
        data,
        first,
        second,
        diff,
        printed,
    }
}

/// Counts in a printed table: every cell that is a bare number, on the
/// lines that hold a cohort's or a segment's counts.
fn table_counts(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            !["Rows skipped", "strata ", "Counts:", "parameter "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .flat_map(|l| l.split_whitespace().skip(1))
        .map(str::to_string)
        .collect()
}

fn small(text: &str) -> bool {
    text.trim()
        .parse::<u64>()
        .is_ok_and(|n| (1..=7).contains(&n))
}

/// Every count under `counts` in a JSON output.
fn json_counts(value: &serde_json::Value, path: &str, bad: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) if small(s) => bad.push(format!("{path} = {s}")),
        serde_json::Value::Number(n) => {
            bad.push(format!("{path} = {n} is not a suppressed string"))
        }
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| json_counts(v, &format!("{path}[{i}]"), bad)),
        serde_json::Value::Object(o) => o
            .iter()
            .for_each(|(k, v)| json_counts(v, &format!("{path}.{k}"), bad)),
        _ => {}
    }
}

/// The texts a page shows that may be counts: the text between tags, each
/// `; `-separated part of it, what follows `: ` in a tooltip or sentence,
/// and a number that leads "N people ...".
fn html_texts(html: &str) -> Vec<String> {
    let mut texts: Vec<String> = html
        .split('>')
        .filter_map(|chunk| chunk.split('<').next())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    let parts: Vec<String> = texts
        .iter()
        .flat_map(|t| t.split("; "))
        .map(|p| p.trim_end_matches('.').to_string())
        .collect();
    let mut found: Vec<String> = parts
        .iter()
        .filter_map(|t| t.rsplit_once(": ").map(|(_, n)| n.to_string()))
        .collect();
    found.extend(
        parts
            .iter()
            .filter_map(|t| t.split_once(" people ").map(|(n, _)| n.to_string())),
    );
    texts.extend(parts);
    texts.extend(found);
    texts
}

fn check_output_folder(out: &Path, bad: &mut Vec<String>) {
    for file in ["manifest.json", "summary.json"] {
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(file)).unwrap()).unwrap();
        json_counts(&m["counts"], &format!("{file}:counts"), bad);
    }
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    for t in html_texts(&report) {
        if small(&t) {
            bad.push(format!("report.html shows {t}"));
        }
    }
    // A PCN's cover sheet counts only its own lists, exactly: the cover
    // names them in the order of the sheets, and each count is the number
    // of rows its sheet holds (suppressing it would hide nothing).
    use calamine::Reader;
    for pcn in std::fs::read_dir(out.join("pcn")).unwrap() {
        let pcn = pcn.unwrap();
        let code = pcn.file_name().to_string_lossy().into_owned();
        let mut book: calamine::Xlsx<_> =
            calamine::open_workbook(pcn.path().join(format!("{code}.xlsx"))).unwrap();
        let cover = book.worksheet_range("Cover").unwrap();
        let counts: Vec<usize> = cover
            .rows()
            .filter_map(|row| match row.get(2) {
                Some(calamine::Data::Float(f)) => Some(*f as usize),
                _ => None,
            })
            .collect();
        let listed: Vec<usize> = (1..book.sheet_names().len())
            .map(|i| book.worksheet_range_at(i).unwrap().unwrap().height() - 1)
            .collect();
        if counts != listed {
            bad.push(format!(
                "{code}.xlsx cover counts {counts:?}, its sheets list {listed:?}"
            ));
        }
    }
}

#[test]
fn no_aggregate_output_shows_a_count_from_1_to_7() {
    let r = runs();
    let mut bad = Vec::new();
    for out in [&r.first, &r.second] {
        check_output_folder(out, &mut bad);
    }
    for file in ["summary.csv", "transitions.csv"] {
        let text = std::fs::read_to_string(r.diff.join(file)).unwrap();
        for line in text.lines().skip(1) {
            if line.split(',').skip(2).any(small) {
                bad.push(format!("diff {file}: {line}"));
            }
        }
    }
    for (what, text) in &r.printed {
        let counts = table_counts(text);
        assert!(counts.len() > 20, "{what}: {text}");
        for n in counts.iter().filter(|n| small(n)) {
            bad.push(format!("the {what} shows {n}"));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");

    // The check can fail: the same outputs without suppression do show
    // small counts.
    let exact = r.first.with_file_name("exact");
    let o = run_quietly(
        &repo_path("models/core.toml"),
        &r.data,
        &exact,
        &["--suppression", "none"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let mut found = Vec::new();
    check_output_folder(&exact, &mut found);
    assert!(
        !found.is_empty(),
        "a 4,000-person city has small counts somewhere"
    );
    // ... and so does its printed summary, which the check would catch.
    let o = run_printed(
        &repo_path("models/core.toml"),
        &r.data,
        &exact,
        &["--suppression", "none"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(table_counts(&stdout(&o)).iter().any(|n| small(n)));
}

#[test]
fn the_report_is_self_contained_with_every_chart() {
    let r = runs();
    let html = std::fs::read_to_string(r.first.join("report.html")).unwrap();
    // Nothing fetched: no scripts, links, images or imports.
    for needle in [
        "<script", "src=", "href=", "url(", "@import", "<link", "<img",
    ] {
        assert!(!html.contains(needle), "report.html contains {needle}");
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.first.join("manifest.json")).unwrap())
            .unwrap();
    let cohorts: Vec<&str> = m["counts"]["cohorts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for c in &cohorts {
        for section in ["sizes", "pyramid", "imd"] {
            assert!(
                html.contains(&format!("id=\"{section}-{c}\"")),
                "no {section} chart for {c}"
            );
        }
    }
    for score in ["efi_category", "hfrs_band"] {
        assert!(html.contains(&format!("id=\"scores-{score}\"")), "{score}");
    }
    // Band boundaries are marked where the source puts them.
    assert!(
        html.contains(">15 (intermediate | high)<"),
        "HFRS 15 boundary"
    );
    assert!(
        html.contains(">12 (moderate | severe)<"),
        "eFI 12/13 boundary"
    );
    assert!(html.contains("id=\"overlap-pairs\""));
    // Each cohort's deprivation comparison is stated, in words.
    assert_eq!(html.matches("class=\"ratio\"").count(), cohorts.len());
    // Every SVG is closed: one `</svg>` per `<svg`.
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    assert!(html.matches("<svg").count() >= 3 * cohorts.len() + 3);
}

#[test]
fn every_pcn_folder_holds_only_that_pcns_people() {
    let r = runs();
    // person_id -> pcn_code from the input.
    let patients = read_parquet(&r.data.join("patients.parquet"));
    let ids = patients.column_by_name("person_id").unwrap();
    let pcns = patients.column_by_name("pcn_code").unwrap();
    let ids = strata::output::previous::ids_as_text(ids.as_ref());
    let pcns = strata::output::previous::ids_as_text(pcns.as_ref());
    let pcn_of: std::collections::HashMap<&str, &str> = ids
        .iter()
        .map(String::as_str)
        .zip(pcns.iter().map(String::as_str))
        .collect();
    let mut checked = 0;
    let mut checked_in_workbooks = 0;
    for folder in [r.first.join("pcn"), r.diff.join("pcn")] {
        for pcn in std::fs::read_dir(folder).unwrap() {
            let pcn = pcn.unwrap();
            let code = pcn.file_name().to_string_lossy().into_owned();
            // cohort -> the ids its CSV lists, in order.
            let mut lists: std::collections::BTreeMap<String, Vec<String>> = Default::default();
            for file in std::fs::read_dir(pcn.path()).unwrap() {
                let path = file.unwrap().path();
                if path.extension().is_some_and(|e| e == "csv") {
                    let mut reader = csv::Reader::from_path(&path).unwrap();
                    let column = reader
                        .headers()
                        .unwrap()
                        .iter()
                        .position(|h| h == "person_id")
                        .unwrap();
                    let ids = lists
                        .entry(path.file_stem().unwrap().to_string_lossy().into_owned())
                        .or_default();
                    for record in reader.records() {
                        let id = record.unwrap()[column].to_string();
                        assert_eq!(pcn_of[id.as_str()], code, "{} lists {id}", path.display());
                        ids.push(id);
                        checked += 1;
                    }
                }
            }
            let workbook = pcn.path().join(format!("{code}.xlsx"));
            if !workbook.exists() {
                continue; // a diff's folder holds changes.csv only
            }
            // Each sheet lists exactly its CSV's people, ids as exact text
            // (64-bit pseudonyms do not survive a trip through a float).
            use calamine::Reader;
            let mut book: calamine::Xlsx<_> = calamine::open_workbook(&workbook).unwrap();
            for sheet in book.sheet_names().into_iter().filter(|s| s != "Cover") {
                let range = book.worksheet_range(&sheet).unwrap();
                let mut rows = range.rows();
                let header: Vec<String> =
                    rows.next().unwrap().iter().map(|c| c.to_string()).collect();
                let column = header.iter().position(|h| h == "person_id").unwrap();
                let ids: Vec<String> = rows
                    .map(|r| match &r[column] {
                        calamine::Data::String(s) => s.clone(),
                        other => panic!("{sheet} of {code}.xlsx: id {other:?} is not text"),
                    })
                    .collect();
                for id in &ids {
                    assert_eq!(
                        pcn_of[id.as_str()],
                        code,
                        "{sheet} of {code}.xlsx lists {id}"
                    );
                }
                assert_eq!(
                    Some(&ids),
                    lists.get(&sheet),
                    "{sheet} of {code}.xlsx vs its CSV"
                );
                checked_in_workbooks += ids.len();
            }
        }
    }
    assert!(checked > 100, "only {checked} rows checked");
    assert!(
        checked_in_workbooks > 100,
        "only {checked_in_workbooks} workbook rows checked"
    );
}

#[test]
fn logs_hold_no_patient_level_values() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 3000, 9);
    let out = tmp.path().join("out");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "run",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("STRATA_LOG", "debug")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let logs = format!("{}{}", stderr(&o), stdout(&o));
    assert!(
        logs.contains("DEBUG") || logs.contains("INFO"),
        "logs were captured"
    );

    let patients = read_parquet(&data.join("patients.parquet"));
    let ids = strata::output::previous::ids_as_text(
        patients.column_by_name("person_id").unwrap().as_ref(),
    );
    let births = strata::output::previous::ids_as_text(
        patients.column_by_name("birth_date").unwrap().as_ref(),
    );
    let leaked: Vec<&String> = ids.iter().filter(|id| logs.contains(id.as_str())).collect();
    assert!(leaked.is_empty(), "person ids in the logs: {leaked:?}");
    let as_of = "2026-03-31";
    let leaked: Vec<&String> = births
        .iter()
        .filter(|b| b.as_str() != as_of && logs.contains(b.as_str()))
        .collect();
    assert!(leaked.is_empty(), "birth dates in the logs: {leaked:?}");
}

/// The segment transition matrix of `strata diff`, recomputed person by
/// person from the two runs' `patients.parquet`: a year apart, people
/// move between segments, die and are born.
#[test]
fn diff_counts_each_segment_transition_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 3000, 5);
    let (before, after, diff) = (
        tmp.path().join("before"),
        tmp.path().join("after"),
        tmp.path().join("diff"),
    );
    let core = repo_path("models/core.toml");
    for (out, as_of) in [(&before, "2025-03-31"), (&after, "2026-03-31")] {
        let o = run_rules(&core, &data, out, as_of);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = diff_runs(
        &before,
        &after,
        &diff,
        &["--suppression", "none", "--quiet"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // A diff's folder given as a run's previous output is named as such.
    let o = run_quietly(
        &core,
        &data,
        &tmp.path().join("third"),
        &[
            "--as-of",
            "2026-03-31",
            "--previous",
            diff.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is the output of `strata diff`, not of a run"),
        "{}",
        stderr(&o)
    );

    // person id -> segment, or "(none)" for the dead and for people with an
    // opt-out, whom the diff's aggregates leave out as the run's do.
    let segments = |out: &Path| -> std::collections::HashMap<String, String> {
        use arrow_array::cast::AsArray;
        let p = read_parquet(&out.join("patients.parquet"));
        let ids =
            strata::output::previous::ids_as_text(p.column_by_name("person_id").unwrap().as_ref());
        let segment =
            strata::output::previous::ids_as_text(p.column_by_name("segment").unwrap().as_ref());
        let alive = p.column_by_name("counted").unwrap().as_boolean().clone();
        ids.into_iter()
            .zip(segment)
            .enumerate()
            .map(|(i, (id, s))| {
                (
                    id,
                    if alive.value(i) {
                        s
                    } else {
                        "(none)".to_string()
                    },
                )
            })
            .collect()
    };
    let (from, to) = (segments(&before), segments(&after));
    let mut expected: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for (id, b) in &from {
        let a = to.get(id).cloned().unwrap_or_else(|| "(none)".to_string());
        if b != "(none)" || a != "(none)" {
            *expected.entry((b.clone(), a)).or_default() += 1;
        }
    }
    for (id, a) in &to {
        if !from.contains_key(id) && a != "(none)" {
            *expected
                .entry(("(none)".to_string(), a.clone()))
                .or_default() += 1;
        }
    }
    let mut reader = csv::Reader::from_path(diff.join("transitions.csv")).unwrap();
    let actual: std::collections::BTreeMap<(String, String), u64> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            assert_eq!(&r[0], "segment");
            ((r[1].to_string(), r[2].to_string()), r[3].parse().unwrap())
        })
        .collect();
    assert_eq!(actual, expected);
    let moved: u64 = expected
        .iter()
        .filter(|((b, a), _)| b != a)
        .map(|(_, n)| n)
        .sum();
    assert!(moved > 50, "only {moved} people changed segment");
}
