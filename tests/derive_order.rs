//! The order a run works out derived features in: any order that puts each
//! after the features it reads gives the same values, and the run picks
//! one that lets go of the columns it no longer needs early
//! (`engine::plan`), since that order decides how much it holds at once.

mod util;

use std::path::Path;

use util::*;

/// Each derived feature comes after every derived feature it reads, and
/// every derived feature the rule files have is worked out once, in every
/// bundled model.
#[test]
fn every_bundled_model_derives_each_feature_after_what_it_reads() {
    let data = repo_path("sample-data");
    for name in [
        "core",
        "efi",
        "hfrs",
        "hiu",
        "registers",
        "last-years-of-life",
        "segmentation",
        "charlson",
        "southampton-one-team",
        "core20plus5",
    ] {
        let path = strata::bundled::model_path(Path::new(name)).unwrap();
        let model = strata::rules::load_all(std::slice::from_ref(&path), &[]).unwrap();
        let plan = strata::engine::plan::plan(&model, &data, None).unwrap();
        let order: Vec<usize> = plan.derived.iter().map(|(fi, _)| *fi).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        let mut expected = model.derived_order.clone();
        expected.sort_unstable();
        assert_eq!(sorted, expected, "{name}: every derived feature, once");
        for (k, &fi) in order.iter().enumerate() {
            for located in model.features[fi].kind.expressions() {
                for (read, _) in located.expr.names() {
                    let Some(ri) = model.feature_index(read) else {
                        continue;
                    };
                    if let Some(at) = order.iter().position(|&d| d == ri) {
                        assert!(
                            at < k,
                            "{name}: `{}` is worked out before `{read}`, which it reads",
                            model.features[fi].name
                        );
                    }
                }
            }
        }
    }
}

const RULES: &str = r#"
[model]
name = "derive_order_test"
title = "Derived features in an order that holds less"
source = "test fixture"

[sources.gp]
table = "gp_events"
date = "event_date"
code = "snomed_code"

[codelists.asthma]
file = "asthma.csv"
system = "snomed"

[codelists.resolved]
file = "resolved.csv"
system = "snomed"

[features.events]
source = "gp"
aggregate = "count"

[features.last_asthma]
source = "gp"
aggregate = "last_date"
codelist = "asthma"

[features.last_resolved]
source = "gp"
aggregate = "last_date"
codelist = "resolved"

[features.label]
expr = "case when events > 2 then 'frequent attender' else 'occasional' end"

[features.asthma_register]
expr = "last_asthma is not null and (last_resolved is null or last_resolved < last_asthma)"

[cohorts.asthma]
title = "Asthma"
description = "On the asthma register"
when = "asthma_register and label != 'none'"
rank = ["events desc"]
reasons = ["label"]
"#;

/// A text feature written first is worked out after the register written
/// after it: the register lets go of the two dates it reads (4 bytes a
/// person each) and keeps a bit, where the text (read by the cohort) is
/// kept and lets go of nothing (the count it reads is a rank key). In the
/// rule files' order the dates would be held beside the text. Both orders
/// give the same values.
#[test]
fn a_feature_that_lets_columns_go_is_worked_out_before_one_that_keeps_a_large_column() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("rules.toml");
    std::fs::write(&path, RULES).unwrap();
    std::fs::write(
        tmp.path().join("asthma.csv"),
        "code,term\n195967001,Asthma\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("resolved.csv"),
        "code,term\n162660004,Asthma resolved\n",
    )
    .unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let people = vec![person(1, "1940-01-01", "P1"), person(2, "1950-01-01", "P1")];
    write_parquet(&data.join("patients.parquet"), &[patients_batch(&people)]);
    write_parquet(
        &data.join("gp_events.parquet"),
        &[gp_batch(&[
            (1, "2024-05-01", "195967001"),
            (1, "2024-06-01", "162660004"),
            (2, "2024-08-01", "195967001"),
        ])],
    );
    let model = strata::rules::load_all(std::slice::from_ref(&path), &[]).unwrap();
    let name = |fi: usize| model.features[fi].name.as_str();
    let in_rule_order: Vec<&str> = model.derived_order.iter().map(|&fi| name(fi)).collect();
    assert_eq!(in_rule_order, ["label", "asthma_register"]);
    let plan = strata::engine::plan::plan(
        &model,
        &data,
        Some(strata::dates::parse_date("2025-03-31").unwrap()),
    )
    .unwrap();
    let planned: Vec<&str> = plan.derived.iter().map(|(fi, _)| name(*fi)).collect();
    assert_eq!(planned, ["asthma_register", "label"]);

    // And the run's values are those of the rule files' order.
    let out = tmp.path().join("out");
    let o = run_rules(&path, &data, &out, "2025-03-31");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let patients = read_parquet(&out.join("patients.parquet"));
    let column = |n: &str| {
        arrow_cast::display::ArrayFormatter::try_new(
            patients.column_by_name(n).unwrap().as_ref(),
            &Default::default(),
        )
        .map(|f| {
            (0..patients.num_rows())
                .map(|r| f.value(r).to_string())
                .collect::<Vec<_>>()
        })
        .unwrap()
    };
    assert_eq!(column("asthma_register"), ["false", "true"]);
    assert_eq!(column("label"), ["occasional", "occasional"]);
}
