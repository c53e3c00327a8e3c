//! A rule file written for the real HES admitted-care layout runs on NHS
//! Digital's artificial HES sample without reshaping the data: the CSV's
//! columns go into Parquet as they are (text, with the admission date as a
//! date). The expected values are recomputed here, row by row, straight
//! from the CSV.

mod util;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{ArrayRef, Date32Array, StringArray};
use util::*;

const AS_OF: &str = "2002-03-31";

fn hes_rows() -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_path(repo_path(
        "tests/data/artificial-hes/artificial_hes_apc_0102_truncated.csv",
    ))
    .unwrap();
    let headers: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    (headers, rows)
}

#[test]
fn hes_layout_rule_file_runs_on_artificial_hes() {
    let tmp = tempfile::tempdir().unwrap();
    let (headers, rows) = hes_rows();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();

    // The extract as it comes: every column text, the admission date a date.
    let columns: Vec<(&str, ArrayRef)> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let array: ArrayRef = if h == "ADMIDATE" {
                Arc::new(Date32Array::from_iter(rows.iter().map(|r| {
                    strata::dates::parse_date(&r[i]).map(strata::dates::to_day)
                })))
            } else {
                Arc::new(StringArray::from_iter(
                    rows.iter()
                        .map(|r| (!r[i].is_empty()).then_some(r[i].as_str())),
                ))
            };
            (h.as_str(), array)
        })
        .collect();
    write_parquet(&tmp.path().join("hes_apc.parquet"), &[batch(columns)]);
    // HES has no population table: one person per pseudonym.
    let ids: BTreeSet<&str> = rows
        .iter()
        .map(|r| r[col("PSEUDO_HESID")].as_str())
        .collect();
    let people: Vec<Person> = ids.iter().map(|_| person(0, "1940-01-01", "HES")).collect();
    let id_array: ArrayRef = Arc::new(StringArray::from_iter_values(ids.iter().copied()));
    write_parquet(
        &tmp.path().join("patients.parquet"),
        &[with_column(&patients_batch(&people), "person_id", id_array)],
    );

    let out = tmp.path().join("out");
    let o = run_rules(
        &repo_path("tests/data/hes/hes_apc.toml"),
        tmp.path(),
        &out,
        AS_OF,
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // Recompute from the CSV. HFRS points in tenths, exact.
    let mut points: HashMap<String, i64> = HashMap::new();
    let mut list =
        csv::Reader::from_path(repo_path("models/codelists/hfrs_gilbert2018.csv")).unwrap();
    for r in list.records() {
        let r = r.unwrap();
        points.insert(
            r[0].to_string(),
            (r[2].parse::<f64>().unwrap() * 10.0).round() as i64,
        );
    }
    let as_of = strata::dates::parse_date(AS_OF).unwrap();
    let start = strata::dates::parse_date("2000-03-31").unwrap(); // 2 years back, exclusive
    let emergency = ["21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28"];
    let mut codes: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut episodes: BTreeMap<&str, i64> = BTreeMap::new();
    for r in &rows {
        let Some(date) = strata::dates::parse_date(&r[col("ADMIDATE")]) else {
            continue;
        };
        if date.to_string().starts_with("1801") || date > as_of {
            continue;
        }
        let id = r[col("PSEUDO_HESID")].as_str();
        if emergency.contains(&r[col("ADMIMETH")].as_str()) {
            *episodes.entry(id).or_default() += 1;
        }
        if date <= start {
            continue;
        }
        for i in 1..=20 {
            let code: String = r[col(&format!("DIAG_4_{i:02}"))]
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect();
            let code = code.to_ascii_uppercase();
            if code.len() >= 3 && points.contains_key(&code[..3]) {
                codes.entry(id).or_default().insert(code[..3].to_string());
            }
        }
    }

    let p = read_parquet(&out.join("patients.parquet"));
    let got_ids = p.column_by_name("person_id").unwrap().as_string::<i32>();
    let hfrs = p
        .column_by_name("hfrs")
        .unwrap()
        .as_primitive::<Float64Type>();
    let got_episodes = p
        .column_by_name("emergency_episodes")
        .unwrap()
        .as_primitive::<Int64Type>();
    let (mut with_hfrs, mut with_emergency) = (0, 0);
    for row in 0..p.num_rows() {
        let id = got_ids.value(row);
        let expected_tenths: i64 = codes
            .get(id)
            .map_or(0, |c| c.iter().map(|c| points[c]).sum());
        assert_eq!(
            hfrs.value(row),
            expected_tenths as f64 / 10.0,
            "HFRS of {id}"
        );
        assert_eq!(
            got_episodes.value(row),
            episodes.get(id).copied().unwrap_or(0),
            "emergency episodes of {id}"
        );
        with_hfrs += usize::from(expected_tenths > 0);
        with_emergency += usize::from(episodes.contains_key(id));
    }
    // The checks above must have had something to check.
    assert!(
        with_hfrs > 50 && with_emergency > 100,
        "{with_hfrs} {with_emergency}"
    );
    let m: serde_json::Value = manifest(&out);
    assert!(
        m["rejected"]["apc"]["null_date"].as_u64().unwrap() >= 1,
        "the 1801-01-01 placeholder is read as missing"
    );
}
