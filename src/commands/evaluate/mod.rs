//! `strata evaluate`: back-testing. Runs the rule files as of dates in the
//! past, looks at what happened next (the rule files' `[outcomes]`), and
//! says how well each cohort and score picked the people it happened to.
//!
//! The evaluated population on each date is everyone in the population then
//! (born, not dead, registered where the data has registrations) without an
//! opt-out: evaluation is planning, a secondary use, so both opt-outs
//! apply. `history` says, per date, which features' windows reach back
//! before their table's first event. Per date and outcome, for each cohort: its
//! size, how many of its members had the outcome, PPV, sensitivity,
//! specificity and lift; for each score named with `--score`: AUROC with a
//! 95% confidence interval (DeLong), and PPV, sensitivity and lift of its
//! top 1% and 5%. `predictions.parquet` holds every person's predictions
//! and outcomes, so any figure can be recomputed; counts of people in
//! `evaluation.json` are suppressed, and a ratio is left out where a count
//! it is made from would be; `evaluation.html` draws them for people.
//!
//! Each figure is also given by IMD quintile, age band, sex and PCN, with
//! the largest gap named; with a second rule set (`--compare`,
//! `--compare-set`), side by side with the differences and their
//! confidence intervals.
//!
//! Every date and outcome comes from one scan of each table
//! ([`engine::run_dates`]); a compared rule set costs one more. Only the
//! features the cohorts and scores need are scanned and derived: the
//! lists' reasons and labels, much of a model, are read by no figure.
//!
//! Each date goes through `people` (who is evaluated on the date, their
//! predictions, outcomes and `groups`), `figures` (with `ranking`,
//! `lists`, `breakdown` and `metrics`) and `written` (its rows of
//! `predictions.parquet`); once every date is done, `between` follows the
//! lists between dates and `html` draws `evaluation.html`.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use rayon::prelude::*;
use serde_json::json;

use crate::engine::{self, Progress};
use crate::error::{Error, Result};
use crate::rules::{Model, Purpose};
use crate::suppress::Suppression;
use between::between_dates;
use figures::{Finished, date_figures};
use people::{Held, compared, people};
use written::Written;

mod between;
mod breakdown;
mod figures;
mod groups;
mod history;
mod html;
mod lists;
mod metrics;
mod people;
mod ranking;
mod written;

/// What to evaluate.
pub struct Request<'a> {
    pub data: &'a Path,
    pub dates: Vec<NaiveDate>,
    pub outcomes: Vec<String>,
    /// Numeric features to evaluate as scores (every cohort is evaluated).
    pub scores: Vec<String>,
    /// Those scores that are probabilities (0 to 1), also evaluated for
    /// calibration.
    pub probabilities: Vec<String>,
    pub suppression: Suppression,
    /// A second rule set (another threshold, another version) evaluated on
    /// the same people, dates and outcomes, and compared.
    pub compare: Option<&'a Model>,
    /// Roughly the bytes of per-person state one scan may hold: dates
    /// beyond it are split over several scans (see
    /// [`engine::STATE_BUDGET`], the default).
    pub scan_memory: usize,
}

/// `out` must not exist yet: an evaluation is never written over another.
fn not_there(out: &Path) -> Result<()> {
    if out.exists() {
        return Err(Error::usage(format!("{} already exists", out.display()))
            .with_help("give --out a folder that does not exist yet: an evaluation is never written over another"));
    }
    Ok(())
}

/// Runs the evaluation and writes `predictions.parquet` and
/// `evaluation.json` into `out` (created; it must not exist). Returns the
/// evaluation, as written.
pub fn run(
    model: &Model,
    request: &Request,
    out: &Path,
    progress: &dyn Progress,
) -> Result<serde_json::Value> {
    not_there(out)?;
    let mut model = model.clone();
    model.purpose_set = Some(Purpose::SecondaryUse);
    let compare = request.compare.map(|b| {
        let mut b = b.clone();
        b.purpose_set = Some(Purpose::SecondaryUse);
        b
    });
    for s in &request.scores {
        if model.feature_index(s).is_none() {
            return Err(Error::usage(format!(
                "--score {s}: the rule files define no feature `{s}`{}",
                crate::rules::did_you_mean(s, model.features.iter().map(|f| f.name.as_str()))
            ))
            .with_help("name a numeric feature (a score) of the rule files"));
        }
    }
    if request.outcomes.is_empty() {
        return Err(Error::usage("strata evaluate needs at least one --outcome")
            .with_help("name an [outcomes] entry of the rule files, e.g. --outcome emergency_admission_365d"));
    }
    let mut dates = request.dates.clone();
    dates.sort();
    dates.dedup();
    // An outcome that is part of another brings the whole with it.
    let mut request_outcomes = request.outcomes.clone();
    for name in &request.outcomes {
        if let Some(whole) = model
            .outcomes
            .iter()
            .find(|o| &o.name == name)
            .and_then(|o| o.part_of.as_ref())
            .filter(|w| !request_outcomes.contains(w))
        {
            request_outcomes.push(whole.clone());
        }
    }
    let request = &Request {
        outcomes: request_outcomes,
        scores: request.scores.clone(),
        probabilities: request.probabilities.clone(),
        dates: request.dates.clone(),
        ..*request
    };
    // One scan of each table serves every date and outcome. Only the
    // cohorts and scores are read: the features only the lists show (the
    // reasons, labels) are not computed.
    let reading: Vec<String> = request
        .scores
        .iter()
        .chain(&request.probabilities)
        .cloned()
        .collect();
    // Held until the evaluation ends, as `strata run` holds it (taken once
    // the arguments are checked): no second run writes this folder
    // meanwhile, and the staging folders a killed evaluation left beside
    // it (each with a partial `predictions.parquet`) are cleared. `--out`
    // is checked again under it: another run may have made it since.
    let _lock = crate::output::publish::Lock::acquire(out)?;
    not_there(out)?;
    // Where each table's events begin and end: the outcomes' windows must
    // be covered, and the features' windows are named where they are not.
    let started = std::time::Instant::now();
    let forward = engine::outcomes::windows(&model, &request.outcomes)?;
    for &d in &dates {
        engine::outcomes::last_day(&forward, d)?;
    }
    let read = history::Read::new(&model, &reading, &forward);
    let today = chrono::Local::now().date_naive();
    let spans = engine::outcomes::spans(&model, request.data, &read.sources(&model), today)?;
    let data_end =
        engine::outcomes::check_data_reaches(&model, request.data, &spans, &forward, &dates)?;
    let mut history = history::look_back(&model, &spans, &dates, &read);
    history["data_end"] = json!(data_end.map(|d| d.to_string()));
    let spans_took = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let mut timings: Vec<(&str, f64)> =
        vec![("where each table's events begin and end", spans_took)];
    // Each date is finished as it is worked out (with `--compare`, once
    // the second scan is done: below): its figures, what the lists
    // followed between dates need of it, and its people written to
    // `predictions.parquet` (in date order). Held for every date until all
    // were worked out, the people had been about 42 bytes a person and
    // date (with 12 dates at 5M persons, 2.5 GB).
    let written = Written::new(out, dates.len());
    let finish = |as_of: NaiveDate, held: Held| -> Result<Finished> {
        let figures = date_figures(&model, request, as_of, &held);
        let listed = held.listed();
        let k = dates.binary_search(&as_of).expect("one of the dates");
        written.give(k, as_of, held)?;
        Ok(Finished { figures, listed })
    };
    let dates_of = |outcomes| engine::Dates {
        reading: Some(&reading),
        state_budget: request.scan_memory,
        ..engine::Dates::new(&dates, outcomes)
    };
    let finished: Result<Vec<Finished>> = match &compare {
        None => engine::run_dates(
            &model,
            request.data,
            &dates_of(&request.outcomes),
            progress,
            |dated| {
                let as_of = dated.results.plan.as_of;
                finish(as_of, Held::new(people(&model, &request.scores, dated)?))
            },
        ),
        // The second rule set's predictions are made for each date's
        // people by a second scan: every date is held until then, and
        // finished once that scan's work is let go (finished during it,
        // each date's figures and predictions had raised the peak of 4
        // dates at 1M persons by about 40%).
        Some(b) => {
            let mut days = engine::run_dates(
                &model,
                request.data,
                &dates_of(&request.outcomes),
                progress,
                |dated| Ok(Held::new(people(&model, &request.scores, dated)?)),
            )?;
            let rows: Vec<arrow_buffer::ScalarBuffer<u32>> =
                days.iter().map(|held| held.people.rows.clone()).collect();
            let theirs = engine::run_dates(b, request.data, &dates_of(&[]), progress, |dated| {
                let k = dates
                    .binary_search(&dated.results.plan.as_of)
                    .expect("one of the dates");
                compared(b, &request.scores, &dated.results, &rows[k])
            })?;
            drop(rows);
            assert_eq!(days.len(), theirs.len(), "one prediction a date");
            for (held, p) in days.iter_mut().zip(theirs) {
                held.people.compared = Some(p);
            }
            days.into_par_iter()
                .zip(&dates)
                .map(|(held, &as_of)| finish(as_of, held))
                .collect()
        }
    };
    let finished = match finished {
        Ok(finished) => finished,
        // The dates stopped because the predictions could not be written:
        // the file's error says why and where.
        Err(stopped) if written.failed() => return Err(written.finish().err().unwrap_or(stopped)),
        Err(e) => return Err(e),
    };
    let staging = written.finish()?;
    timings.push((
        "features, cohorts, outcomes and figures",
        started.elapsed().as_secs_f64(),
    ));
    let started = std::time::Instant::now();
    let listed: Vec<&people::Listed> = finished.iter().map(|f| &f.listed).collect();
    let between = between_dates(request.suppression, &dates, &listed);
    let figures: Vec<serde_json::Value> = finished.into_iter().flat_map(|f| f.figures).collect();
    timings.push((
        "lists followed between dates",
        started.elapsed().as_secs_f64(),
    ));
    let started = std::time::Instant::now();
    let evaluation = json!({
        "model": model.meta.name,
        "compared_with": compare.as_ref().map(describe),
        "as_of": dates.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "outcomes": request.outcomes,
        "scores": request.scores,
        "population": "alive on each as-of date and, where the data has registrations, registered with a practice then, without a type 1 or National Data Opt-out (evaluation is a secondary use)",
        "history": history,
        "suppression": request.suppression.method(),
        "figures": figures,
        "between_dates": between,
    });
    let page = staging.dir.join("evaluation.html");
    std::fs::write(&page, html::render(&evaluation))
        .map_err(|e| Error::io(&page, "cannot write", e))?;
    let path: PathBuf = staging.dir.join("evaluation.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&evaluation).expect("serialises") + "\n",
    )
    .map_err(|e| Error::io(&path, "cannot write", e))?;
    staging.commit()?;
    timings.push(("written", started.elapsed().as_secs_f64()));
    tracing::info!(?timings, dates = dates.len(), "evaluated");
    Ok(evaluation)
}

/// A rule set as the evaluation names it: its model and any `--set`.
fn describe(model: &Model) -> String {
    let sets: Vec<String> = model
        .overrides
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    if sets.is_empty() {
        model.meta.name.clone()
    } else {
        format!("{} with {}", model.meta.name, sets.join(", "))
    }
}

/// The terminal summary: per date and outcome, each cohort's PPV and
/// sensitivity, each score's AUROC.
pub fn render(evaluation: &serde_json::Value, out: &Path) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    let shown = |v: &serde_json::Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.3}"));
    let auroc = html::auroc;
    for f in evaluation["figures"].as_array().into_iter().flatten() {
        let _ = writeln!(
            text,
            "\nas of {}, outcome {}: {} people, {} with it (prevalence {})",
            f["as_of"].as_str().unwrap_or(""),
            f["outcome"].as_str().unwrap_or(""),
            f["people"].as_str().unwrap_or(""),
            f["with_outcome"].as_str().unwrap_or(""),
            shown(&f["prevalence"])
        );
        for c in f["cohorts"].as_array().into_iter().flatten() {
            let l = &c["as_list"];
            let _ = writeln!(
                text,
                "  cohort {:<28} on list {:>7}  PPV {}  sensitivity {}  lift {}",
                c["cohort"].as_str().unwrap_or(""),
                l["on_list"].as_str().unwrap_or(""),
                shown(&l["ppv"]),
                shown(&l["sensitivity"]),
                shown(&l["lift"])
            );
        }
        let whole = &f["share_of_whole"];
        if let Some(of) = whole["of"].as_str() {
            let lists: Vec<String> = whole["cohorts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    format!(
                        "{} {}",
                        c["cohort"].as_str().unwrap_or(""),
                        shown(&c["on_list"]["share"])
                    )
                })
                .collect();
            let _ = writeln!(
                text,
                "  share of {of}: population {}; on each list: {}",
                shown(&whole["population"]["share"]),
                lists.join(", ")
            );
        }
        for sc in f["scores"].as_array().into_iter().flatten() {
            let ci = &sc["auroc_95ci"];
            let _ = writeln!(
                text,
                "  score  {:<28} AUROC {} (95% CI {} to {})",
                sc["score"].as_str().unwrap_or(""),
                auroc(&sc["auroc"]),
                auroc(&ci[0]),
                auroc(&ci[1])
            );
        }
        for c in f["comparison"]["cohorts"].as_array().into_iter().flatten() {
            let d = |key: &str| {
                let v = &c[key];
                format!(
                    "{} ({} to {})",
                    shown(&v["difference"]),
                    shown(&v["ci95"][0]),
                    shown(&v["ci95"][1])
                )
            };
            let _ = writeln!(
                text,
                "  compared: cohort {:<19} on list {} -> {}  PPV {}  sensitivity {}",
                c["cohort"].as_str().unwrap_or(""),
                c["first"]["on_list"].as_str().unwrap_or(""),
                c["second"]["on_list"].as_str().unwrap_or(""),
                d("ppv"),
                d("sensitivity")
            );
        }
        for sc in f["comparison"]["scores"].as_array().into_iter().flatten() {
            let _ = writeln!(
                text,
                "  compared: score  {:<19} AUROC {} -> {}, difference {} ({} to {})",
                sc["score"].as_str().unwrap_or(""),
                auroc(&sc["auroc_first"]),
                auroc(&sc["auroc_second"]),
                auroc(&sc["difference"]),
                auroc(&sc["ci95"][0]),
                auroc(&sc["ci95"][1])
            );
        }
    }
    let _ = writeln!(
        text,
        "\nCounts: {}.\nOutput: {}",
        evaluation["suppression"].as_str().unwrap_or(""),
        out.display()
    );
    text
}
