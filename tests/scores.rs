//! Scores, bands and parameters: exact decimal weights landing on band
//! boundaries where the source says, logistic scores, rounding, and
//! `--set` overriding a parameter for one run.

mod util;

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use util::*;

const RULES: &str = r#"
[model]
name = "scores_test"
title = "Scores under test"
source = "test fixture"

[params]
high_from = 15.0

[sources.apc]
table = "admissions"
date = "admission_date"
code = "diagnoses"

[codelists.points]
file = "points.csv"
system = "icd10"
match = "prefix"
weight_column = "points"

[features.score]
source = "apc"
aggregate = "sum_distinct_weights"
codelist = "points"

[features.band]
score = "score"
bands = "low < 5 <= intermediate <= high_from < high"

[features.probability]
expr = "round(1 / (1 + exp(-(-3 + 0.25 * score))), 3)"

[features.segment]
description = "First match wins"
default = "healthy"
segments = [
    { name = "high_risk", when = "band = 'high'" },
    { name = "moderate", when = "band = 'intermediate' or score > 4" },
]

[cohorts.high]
title = "High"
description = "Banded high"
when = "band = 'high'"
"#;

/// 50 codes of 0.1 points (summing 0.1 fifty times in binary floating point
/// misses 5.0), and A00 4.9, B00 0.1, C00 10.0, D00 0.1.
fn fixture(dir: &Path) {
    std::fs::write(dir.join("rules.toml"), RULES).unwrap();
    let mut csv = String::from("code,term,points\nA00,a,4.9\nB00,b,0.1\nC00,c,10.0\nD00,d,0.1\n");
    for i in 0..50 {
        csv.push_str(&format!("Z{i:02},tenth,0.1\n"));
    }
    std::fs::write(dir.join("points.csv"), csv).unwrap();
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    let people: Vec<Person> = (1..=6).map(|id| person(id, "1940-01-01", "P1")).collect();
    write_parquet(&data.join("patients.parquet"), &[patients_batch(&people)]);
    let tenths: Vec<String> = (0..50).map(|i| format!("Z{i:02}")).collect();
    let tenths: Vec<&str> = tenths.iter().map(String::as_str).collect();
    write_parquet(
        &data.join("admissions.parquet"),
        &[admissions_batch(&[
            (1, "2024-01-01", "emergency", &["A00"]),        // 4.9: low
            (2, "2024-01-01", "emergency", &["A00", "B00"]), // 5.0: intermediate
            (3, "2024-01-01", "emergency", &["A001", "B00", "C00.1"]), // 15.0: intermediate
            (4, "2024-01-01", "emergency", &["A00", "B00", "C00", "D00"]), // 15.1: high
            (5, "2024-01-01", "emergency", &tenths),         // exactly 5.0
        ])],
    );
}

/// Writes the fixture into `dir`, runs its rule file, and returns the output folder.
fn run_fixture(dir: &Path) -> std::path::PathBuf {
    fixture(dir);
    let out = dir.join("out");
    let o = run_rules(
        &dir.join("rules.toml"),
        &dir.join("data"),
        &out,
        "2025-03-31",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

fn scores(out: &Path) -> (Vec<f64>, Vec<String>, Vec<f64>) {
    let p = read_parquet(&out.join("patients.parquet"));
    let score = p
        .column_by_name("score")
        .unwrap()
        .as_primitive::<Float64Type>()
        .values()
        .to_vec();
    let band = p
        .column_by_name("band")
        .unwrap()
        .as_string::<i32>()
        .iter()
        .map(|b| b.unwrap_or("").to_string())
        .collect();
    let probability = p
        .column_by_name("probability")
        .unwrap()
        .as_primitive::<Float64Type>()
        .values()
        .to_vec();
    (score, band, probability)
}

#[test]
fn boundaries_land_where_the_bands_say() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_fixture(tmp.path());
    let (score, band, probability) = scores(&out);
    assert_eq!(score, vec![4.9, 5.0, 15.0, 15.1, 5.0, 0.0]);
    assert_eq!(
        band,
        vec![
            "low",
            "intermediate",
            "intermediate",
            "high",
            "intermediate",
            "low"
        ]
    );
    // 1 / (1 + e^(3 - 0.25 * 5)) = 0.148047..., to 3 places.
    assert_eq!(probability[1], 0.148);
}

#[test]
fn every_person_gets_the_first_segment_that_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_fixture(tmp.path());
    let p = read_parquet(&out.join("patients.parquet"));
    let segments: Vec<_> = p
        .column_by_name("segment")
        .unwrap()
        .as_string::<i32>()
        .iter()
        .collect();
    // Person 4 is high and also > 4: the first segment wins.
    assert_eq!(
        segments,
        [
            "moderate",
            "moderate",
            "moderate",
            "high_risk",
            "moderate",
            "healthy"
        ]
        .map(Some)
        .to_vec()
    );

    for (from, to, message) in [
        ("default = \"healthy\"\n", "", "has no `default` segment"),
        (
            "name = \"moderate\"",
            "name = \"high_risk\"",
            "listed twice",
        ),
        (
            "when = \"band = 'high'\"",
            "when = \"band\"",
            "a segment's `when` must be true or false",
        ),
        (
            "description = \"First match wins\"",
            "score = \"score\"",
            "has `segments`, so it cannot also have `score`",
        ),
    ] {
        let rules = tmp.path().join("bad.toml");
        std::fs::write(&rules, RULES.replacen(from, to, 1)).unwrap();
        let o = run_rules(
            &rules,
            &tmp.path().join("data"),
            &tmp.path().join("out2"),
            "2025-03-31",
        );
        assert_eq!(o.status.code(), Some(2), "{to}");
        assert!(stderr(&o).contains(message), "{to}: {}", stderr(&o));
    }
}

#[test]
fn set_overrides_a_parameter_for_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let out = tmp.path().join("out");
    let rules = tmp.path().join("rules.toml");
    let o = strata(&[
        "run",
        "--rules",
        rules.to_str().unwrap(),
        "--data",
        tmp.path().join("data").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--as-of",
        "2025-03-31",
        "--set",
        "high_from=14.95",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, band, _) = scores(&out);
    assert_eq!(band[2], "high", "15.0 is above the new boundary");
    let m: serde_json::Value = manifest(&out);
    assert_eq!(m["params"]["high_from"], 14.95);
    assert_eq!(m["params_overridden"][0], "high_from");
    assert_eq!(
        m["counts"]["cohorts"][0]["members"], "*",
        "2 members, suppressed"
    );

    for (setting, message) in [
        (
            "high_form=3",
            "has a parameter `high_form` (did you mean `high_from`?)",
        ),
        ("high_from=lots", "`lots` is not a number"),
        ("high_from", "is not NAME=VALUE"),
    ] {
        let o = strata(&["run", "--rules", rules.to_str().unwrap(), "--set", setting]);
        assert_eq!(o.status.code(), Some(2), "{setting}");
        assert!(stderr(&o).contains(message), "{setting}: {}", stderr(&o));
    }
}

#[test]
fn band_mistakes_are_positioned() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    for (from, to, message) in [
        (
            "low < 5 <= intermediate",
            "low < 5 < intermediate",
            "in neither band",
        ),
        ("<= high_from <", "<= 4 <", "must increase"),
        (
            "<= high_from <",
            "<= high_frm <",
            "(did you mean `high_from`?)",
        ),
        (
            "score = \"score\"",
            "score = \"scor\"",
            "unknown name `scor`",
        ),
    ] {
        let text = RULES.replacen(from, to, 1);
        let rules = tmp.path().join("bad.toml");
        std::fs::write(&rules, &text).unwrap();
        let o = run_rules(
            &rules,
            &tmp.path().join("data"),
            &tmp.path().join("out"),
            "2025-03-31",
        );
        assert_eq!(o.status.code(), Some(2), "{to}");
        let err = stderr(&o);
        let line = text
            .lines()
            .position(|l| l.contains(to.trim_matches('"')))
            .unwrap()
            + 1;
        assert!(err.contains(&format!("bad.toml:{line}:")), "{to}: {err}");
        assert!(err.contains(message), "{to}: {err}");
    }
}

#[test]
fn explain_shows_band_chains_and_segment_order() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    let rules = tmp.path().join("rules.toml");
    let data = tmp.path().join("data");
    let o = strata(&[
        "explain",
        "--person",
        "4",
        "--rules",
        rules.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--as-of",
        "2025-03-31",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("  band = high\n      computed from: score banded as low < 5 <= intermediate <= high_from < high  (with high_from = 15.0)"),
        "{text}"
    );
    assert!(text.contains("        high_risk: when band = 'high'\n        moderate: when band = 'intermediate' or score > 4\n        otherwise healthy"), "{text}");
    assert!(text.contains("  segment = high_risk"), "{text}");
}
