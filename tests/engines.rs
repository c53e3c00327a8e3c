//! The second backend's contract, in what needs no SQL engine: `strata
//! compile` writes a script for every bundled model and refuses what it
//! cannot honour, and `strata publish` rebuilds every output of a run from
//! a per-person table, refusing one that does not match the rule files.
//! (That the scripts give the same people on DuckDB and Spark is checked by
//! benches/conformance.py, which CI runs on DuckDB.)

mod util;

use std::path::Path;

use util::*;

const AS_OF: &str = "2026-03-31";

#[test]
fn every_bundled_model_compiles_for_both_targets() {
    let sample = repo_path("sample-data");
    let sample = sample.to_str().unwrap();
    for name in ["core", "charlson", "core20plus5", "southampton-one-team"] {
        for target in ["duckdb", "spark"] {
            let o = strata(&[
                "compile", "--target", target, name, "--data", sample, "--as-of", AS_OF,
            ]);
            assert_eq!(o.status.code(), Some(0), "{name} {target}: {}", stderr(&o));
            let sql = stdout(&o);
            assert!(sql.contains("-- As of 2026-03-31"), "{sql:.300}");
            assert!(
                sql.trim_end().ends_with("ORDER BY person_id;"),
                "{name} {target}"
            );
            // Every feature and cohort of the model is a column of the result.
            let model = strata::rules::load_all(
                &[strata::rules::bundled::model_path(Path::new(name)).unwrap()],
                &[],
            )
            .unwrap();
            let quote = |n: &str| match target {
                "spark" => format!("`{n}`"),
                _ => format!("\"{n}\""),
            };
            for f in &model.features {
                assert!(
                    sql.contains(&format!("AS {}", quote(&f.name))),
                    "{name} {target}: feature {}",
                    f.name
                );
            }
            for c in &model.cohorts {
                assert!(
                    sql.contains(&format!("AS {}", quote(&format!("{}_rank", c.name)))),
                    "{name}: {}",
                    c.name
                );
            }
            if target == "spark" {
                // No `${...}` substitution in the script's text.
                assert!(sql.contains("SET spark.sql.variable.substitute = false;"));
            }
        }
    }
}

#[test]
fn compile_names_what_it_refuses() {
    let sample = repo_path("sample-data");
    let sample = sample.to_str().unwrap();
    let o = strata(&[
        "compile",
        "--target",
        "duckdb",
        "hiu",
        "--data",
        sample,
        "--table",
        "gp=phm.gp",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no table called `gp`"),
        "{}",
        stderr(&o)
    );
    let o = strata(&["compile", "--target", "oracle", "hiu"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("spark or duckdb"), "{}", stderr(&o));
    let o = strata(&[
        "compile",
        "--target",
        "spark",
        "hiu",
        "--data",
        "no-such-folder",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no-such-folder"), "{}", stderr(&o));
    // A mapped table is read as named; the others from the data folder.
    let o = strata(&[
        "compile",
        "--target",
        "spark",
        "hiu",
        "--data",
        sample,
        "--as-of",
        AS_OF,
        "--table",
        "patients=phm.gold.patients",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let sql = stdout(&o);
    assert!(sql.contains("FROM phm.gold.patients"), "{sql}");
    assert!(sql.contains("parquet.`"), "{sql}");
}

/// Every file of two output folders, apart from what records when and how
/// a run was made (timings, inputs read, workbook creation times) and the
/// rejected rows of the event tables a publish does not read.
fn assert_same_outputs(ran: &Path, published: &Path) {
    let files = |d: &Path| {
        let mut out = Vec::new();
        let mut stack = vec![d.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(d).unwrap().to_path_buf());
                }
            }
        }
        out.sort();
        out
    };
    // Rejected rows are of event tables `publish` does not read.
    let names: Vec<_> = files(ran)
        .into_iter()
        .filter(|n| !n.starts_with("rejects"))
        .collect();
    assert_eq!(names, files(published));
    let mut compared = 0;
    for name in names {
        let ext = name.extension().and_then(|e| e.to_str()).unwrap_or("");
        if matches!(ext, "csv" | "parquet") {
            assert!(
                std::fs::read(ran.join(&name)).unwrap()
                    == std::fs::read(published.join(&name)).unwrap(),
                "{} differs",
                name.display()
            );
            compared += 1;
        }
    }
    assert!(compared > 10, "only {compared} files compared");
    let counts = |d: &Path| manifest(d)["counts"].clone();
    assert_eq!(counts(ran), counts(published));
    assert_eq!(manifest(published)["computed_elsewhere"], true);
    assert_eq!(manifest(ran)["computed_elsewhere"], false);
}

/// `strata publish --rules RULES --patients-table TABLE --data DATA --out
/// OUT [--as-of AS_OF] --quiet`.
fn publish(
    rules: &str,
    table: &Path,
    data: &Path,
    out: &Path,
    as_of: Option<&str>,
) -> std::process::Output {
    let mut args = vec![
        "publish",
        "--rules",
        rules,
        "--patients-table",
        table.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    if let Some(d) = as_of {
        args.extend(["--as-of", d]);
    }
    strata(&args)
}

#[test]
fn publish_rebuilds_every_output_of_a_run_from_its_per_person_table() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = repo_path("sample-data");
    let ran = tmp.path().join("ran");
    let o = strata(&[
        "run",
        "--data",
        sample.to_str().unwrap(),
        "--out",
        ran.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The run's own table stands for one computed elsewhere.
    let table = tmp.path().join("computed.parquet");
    std::fs::copy(ran.join("patients.parquet"), &table).unwrap();
    let published = tmp.path().join("published");
    let o = publish("core", &table, &sample, &published, Some(AS_OF));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_same_outputs(&ran, &published);
}

#[test]
fn publish_refuses_a_table_that_does_not_match_the_rule_files() {
    let tmp = tempfile::tempdir().unwrap();
    let sample_path = repo_path("sample-data");
    let sample = sample_path.to_str().unwrap();
    // HIU's table, published as the core model's: columns missing.
    let hiu = tmp.path().join("hiu");
    let o = strata(&[
        "run",
        "--rules",
        "hiu",
        "--data",
        sample,
        "--out",
        hiu.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let table = hiu.join("patients.parquet");
    let out = tmp.path().join("out");
    let hiu_table_as =
        |rules: &str, as_of: Option<&str>| publish(rules, &table, &sample_path, &out, as_of);
    let o = hiu_table_as("core", Some(AS_OF));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("missing: ") && stderr(&o).contains("efi"),
        "{}",
        stderr(&o)
    );
    // No date, no publishing: ages and presence depend on it.
    let o = hiu_table_as("hiu", None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("needs --as-of"), "{}", stderr(&o));
    // Another date: `alive` disagrees with the population (someone died
    // between the dates) and is refused rather than listed.
    let o = hiu_table_as("hiu", Some("2024-03-31"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("another date"), "{}", stderr(&o));
    // A flag that is not true/false is the data's problem, not a crash.
    let ran = read_parquet(&table);
    let as_int = arrow_cast::cast(
        ran.column_by_name("hiu").unwrap(),
        &arrow_schema::DataType::Int32,
    )
    .unwrap();
    let bad = tmp.path().join("bad.parquet");
    write_parquet(&bad, &[with_column(&ran, "hiu", as_int)]);
    let o = publish("hiu", &bad, &sample_path, &out, Some(AS_OF));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("column `hiu` holds Int32, not true/false"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists(), "a refused publish wrote {}", out.display());
}

/// A measure whose optional table is absent: both engines give its
/// features as unknown numbers (a measure's value is a number whatever its
/// stored type), rather than one of them refusing the rule file.
#[test]
fn a_measure_of_an_absent_optional_table_compiles_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = sample_data_copy(tmp.path(), &["observations.parquet"]);
    std::fs::write(
        tmp.path().join("egfr.csv"),
        "code,term\n1011481000000105,eGFR\n",
    )
    .unwrap();
    let rules = tmp.path().join("rules.toml");
    std::fs::write(
        &rules,
        r#"
[model]
name = "m"
title = "eGFR"
source = "test"

[sources.egfr]
table = "observations"
date = "date"
code = "code"
optional = true

[sources.egfr.measure]
codelist = "egfr"
canonical = "mL/min/1.73m2"
units = { "mL/min/1.73m2" = 1 }
bounds = [1, 200]

[codelists.egfr]
file = "egfr.csv"
system = "snomed"

[features.egfr_latest]
source = "egfr"
aggregate = "latest"

[features.egfr_lowest]
source = "egfr"
aggregate = "min"

[features.low]
expr = "egfr_latest < 60 or egfr_lowest < 30"
"#,
    )
    .unwrap();
    let (rules, data) = (rules.to_str().unwrap(), data.to_str().unwrap());
    for target in ["duckdb", "spark"] {
        let o = strata(&[
            "compile", "--target", target, rules, "--data", data, "--as-of", AS_OF,
        ]);
        assert_eq!(o.status.code(), Some(0), "{target}: {}", stderr(&o));
    }
    let out = tmp.path().join("out");
    let o = strata(&[
        "run",
        "--rules",
        rules,
        "--data",
        data,
        "--out",
        out.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p = read_parquet(&out.join("patients.parquet"));
    for name in ["egfr_latest", "egfr_lowest"] {
        let column = p.column_by_name(name).unwrap();
        assert_eq!(
            column.data_type(),
            &arrow_schema::DataType::Float64,
            "{name}"
        );
        assert_eq!(
            column.null_count(),
            p.num_rows(),
            "{name}: unknown for everyone"
        );
    }
}

/// A feature the rules type as null (`expr = "null"`) may be held by a
/// table computed elsewhere as a typed column of nulls, as SQL engines
/// write one: it is published as it is held, not refused.
#[test]
fn publish_takes_a_null_feature_held_as_a_typed_column() {
    use arrow_array::Array;
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules.toml");
    std::fs::write(
        &rules,
        NULL_FEATURE_RULES.to_string()
            + r#"
[cohorts.any_ae]
title = "Any A&E"
description = "Anyone with an A&E attendance in 12 months."
when = "ae_12m >= 1"
rank = ["ae_12m desc"]
reasons = ["ae_12m"]
"#,
    )
    .unwrap();
    let sample = repo_path("sample-data");
    let ran = tmp.path().join("ran");
    let o = run_rules(&rules, &sample, &ran, AS_OF);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The run's table, with `nothing` as 64-bit nulls.
    let written = read_parquet(&ran.join("patients.parquet"));
    let nothing = written.column_by_name("nothing").unwrap();
    assert_eq!(nothing.data_type(), &arrow_schema::DataType::Null);
    let typed = with_column(
        &written,
        "nothing",
        arrow_array::new_null_array(&arrow_schema::DataType::Int64, written.num_rows()),
    );
    let table = tmp.path().join("computed.parquet");
    write_parquet(&table, std::slice::from_ref(&typed));
    let published = tmp.path().join("published");
    let o = publish(
        rules.to_str().unwrap(),
        &table,
        &sample,
        &published,
        Some(AS_OF),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let published = read_parquet(&published.join("patients.parquet"));
    let nothing = published.column_by_name("nothing").unwrap();
    assert_eq!(nothing.data_type(), &arrow_schema::DataType::Int64);
    assert_eq!(nothing.null_count(), typed.num_rows());
}
