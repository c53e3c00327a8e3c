//! `strata evaluate`: back-testing. Runs the rule files as of dates in the
//! past, looks at what happened next (the rule files' `[outcomes]`), and
//! says how well each cohort and score picked the people it happened to.
//!
//! The evaluated population on each date is everyone in the population then
//! (born, not dead) without an opt-out: evaluation is planning, a secondary
//! use, so both opt-outs apply. Per date and outcome, for each cohort: its
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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, Date32Array, Float64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use chrono::NaiveDate;
use rayon::prelude::*;
use serde_json::json;

use crate::engine::{self, Progress};
use crate::error::{Error, Result};
use crate::rules::{Model, Purpose};
use crate::suppress::Suppression;
use breakdown::{Split, breakdown};
use metrics::{auroc_difference, auroc_ranked, average_precision_ranked, curves_ranked};
use written::Written;

mod breakdown;
mod html;
mod metrics;
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

/// The top fractions of each score's ranking that are evaluated as lists.
const TOP: [f64; 2] = [0.01, 0.05];

/// Each PCN's first so many by a score, evaluated as one list (a PCN with
/// this many places).
const TOP_PER_PCN: usize = 50;

/// Points drawn of each curve (ROC, precision-recall).
const CURVE_POINTS: usize = 101;

/// The population attribute holding the IMD decile (1 = most deprived), as
/// the report reads it.
const IMD_DECILE: &str = "imd_decile";

/// Age bands of the breakdowns.
const AGE_BANDS: [&str; 5] = ["0-17", "18-39", "40-64", "65-79", "80+"];

/// The age band (in [`AGE_BANDS`]) of `age`.
fn age_band(age: i64) -> usize {
    match age {
        ..=17 => 0,
        18..=39 => 1,
        40..=64 => 2,
        65..=79 => 3,
        _ => 4,
    }
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
    if out.exists() {
        return Err(Error::usage(format!("{} already exists", out.display()))
            .with_help("give --out a folder that does not exist yet: an evaluation is never written over another"));
    }
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
    let started = std::time::Instant::now();
    let mut timings: Vec<(&str, f64)> = Vec::new();
    // Each date is finished as it is worked out (with `--compare`, once
    // the second scan is done: below): its figures, what the lists
    // followed between dates need of it, and its people written to
    // `predictions.parquet` (in date order). Held for every date until all
    // were worked out, the people had been about 42 bytes a person and
    // date (with 12 dates at 5M persons, 2.5 GB).
    let written = Written::new(out, dates.len());
    let finish = |as_of: NaiveDate, held: Held| -> Finished {
        let figures = date_figures(&model, request, as_of, &held);
        let listed = held.listed();
        let k = dates.binary_search(&as_of).expect("one of the dates");
        written.give(k, as_of, held);
        Finished { figures, listed }
    };
    let dates_of = |outcomes| engine::Dates {
        reading: Some(&reading),
        state_budget: request.scan_memory,
        ..engine::Dates::new(&dates, outcomes)
    };
    let finished: Vec<Finished> = match &compare {
        None => engine::run_dates(
            &model,
            request.data,
            &dates_of(&request.outcomes),
            progress,
            |dated| {
                let as_of = dated.results.plan.as_of;
                Ok(finish(as_of, Held::new(people(&model, request, dated)?)))
            },
        )?,
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
                |dated| Ok(Held::new(people(&model, request, dated)?)),
            )?;
            let rows: Vec<arrow_buffer::ScalarBuffer<u32>> =
                days.iter().map(|held| held.people.rows.clone()).collect();
            let theirs = engine::run_dates(b, request.data, &dates_of(&[]), progress, |dated| {
                let k = dates
                    .binary_search(&dated.results.plan.as_of)
                    .expect("one of the dates");
                compared(b, request, &dated.results, &rows[k])
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
    let staging = written.finish()?;
    timings.push((
        "features, cohorts, outcomes and figures",
        started.elapsed().as_secs_f64(),
    ));
    let started = std::time::Instant::now();
    let between = between_dates(request, &dates, &finished);
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
        "population": "alive on each as-of date, without a type 1 or National Data Opt-out (evaluation is a secondary use)",
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

/// What is kept of a date once it is finished.
struct Finished {
    /// Its figures, an entry for each outcome.
    figures: Vec<serde_json::Value>,
    /// What the lists followed between dates need of it.
    listed: Listed,
}

/// The figures of one date, an entry for each outcome.
fn date_figures(
    model: &Model,
    request: &Request,
    as_of: NaiveDate,
    held: &Held,
) -> Vec<serde_json::Value> {
    // Fault injection for the test that a panic here leaves no file
    // behind; debug builds only (release builds compile it out).
    if cfg!(debug_assertions)
        && std::env::var_os("STRATA_INJECT_PANIC").is_some_and(|v| v == "figures")
    {
        panic!("injected panic in the figures");
    }
    // The figures of each outcome are independent: computed in parallel,
    // listed in order. What the breakdowns by group need is shared by
    // the outcomes.
    let people = &held.people();
    // Each score's ranking, made here rather than held with the date's
    // people from its scan.
    let rankings: Vec<Ranking> = people
        .scores
        .par_iter()
        .map(|(_, values)| Ranking::new(values))
        .collect();
    let (splits, ordered): (Vec<Split>, Vec<Ordered>) = rayon::join(
        || {
            people
                .groups
                .par_iter()
                .map(|(_, groups)| Split::new(people, &rankings, groups))
                .collect()
        },
        || {
            people
                .scores
                .par_iter()
                .zip(&rankings)
                .map(|((_, values), ranking)| Ordered::new(ranking, values, &people.pcn))
                .collect()
        },
    );
    let shared = Shared {
        people,
        rankings: &rankings,
        splits: &splits,
        ordered: &ordered,
    };
    people
        .outcomes
        .par_iter()
        .map(|(outcome, happened)| evaluate(model, request, &shared, outcome, happened, as_of))
        .collect()
}

/// The lists followed from each date to the next, and to the date a year
/// later where the series has it (a quarterly series' HIU list a year on:
/// how much of it regressed to the mean).
fn between_dates(
    request: &Request,
    dates: &[NaiveDate],
    finished: &[Finished],
) -> Vec<serde_json::Value> {
    let mut pairs: Vec<(usize, usize)> = (1..dates.len()).map(|j| (j - 1, j)).collect();
    for (i, from) in dates.iter().enumerate() {
        let year_on = from.checked_add_months(chrono::Months::new(12));
        if let Some(j) = dates.iter().position(|d| Some(*d) == year_on)
            && j != i + 1
        {
            pairs.push((i, j));
        }
    }
    pairs
        .par_iter()
        .map(|&(i, j)| {
            persistence(
                request.suppression,
                dates[i],
                &finished[i].listed,
                dates[j],
                &finished[j].listed,
            )
        })
        .collect()
}

/// What the lists followed between dates need of a date: its people's
/// rows, each cohort's members and each outcome's, as bits (about 6 bytes
/// a person and date for the default model).
struct Listed {
    rows: arrow_buffer::ScalarBuffer<u32>,
    cohorts: Vec<(String, arrow_buffer::BooleanBuffer)>,
    outcomes: Vec<(String, arrow_buffer::BooleanBuffer)>,
}

/// One date's evaluated people: their predictions and outcomes.
#[derive(Clone)]
struct People {
    /// Their rows in the population table (shared with the date's
    /// [`Listed`]).
    rows: arrow_buffer::ScalarBuffer<u32>,
    /// The population's ids, every date of a scan sharing one column:
    /// each date's people's are taken from it as the date is written (a
    /// copy a date had been 8 bytes a person and date, held until the
    /// figures were written).
    population_ids: ArrayRef,
    /// (cohort, members), for the evaluated people.
    cohorts: Vec<(String, Vec<bool>)>,
    /// (score, values; null where the score is null). Arrow's column, 8
    /// bytes and a bit a person, not `Option<f64>`'s 16: with 12 dates at
    /// 5M persons every byte a person and date is 60 MB.
    scores: Vec<(String, Float64Array)>,
    /// (outcome, happened).
    outcomes: Vec<(String, Vec<bool>)>,
    /// (outcome, how many times it happened or how many days it took;
    /// null where unknown), for outcomes that are counts (`count`,
    /// `total_days`).
    counts: Vec<(String, arrow_array::Int64Array)>,
    /// Each person's PCN (for top N per PCN), and the subgroups figures are
    /// broken down by: (grouping, each person's group; None if unknown).
    pcn: Groups,
    groups: Vec<(&'static str, Groups)>,
    /// The second rule set's cohorts and scores, for the same people.
    compared: Option<Predictions>,
}

/// One date's evaluated people as held from their date's work until the
/// figures and predictions are written: their [`People`] less each
/// cohort's and outcome's yes or no, held as bits. A byte a person each in
/// `People`, they were 8 of its about 50 bytes a person and date for the
/// default model, held for every date (with 12 dates at 5M persons, 480
/// MB); the figures of a date work on its people whole, made again
/// ([`Held::people`]) as the date's figures are worked out, and its rows
/// of `predictions.parquet` take each column straight from its bits.
struct Held {
    people: People,
    cohorts: Vec<(String, arrow_buffer::BooleanBuffer)>,
    outcomes: Vec<(String, arrow_buffer::BooleanBuffer)>,
}

impl Held {
    fn new(mut people: People) -> Held {
        fn bits(flags: Vec<(String, Vec<bool>)>) -> Vec<(String, arrow_buffer::BooleanBuffer)> {
            flags
                .into_iter()
                .map(|(name, f)| (name, arrow_buffer::BooleanBuffer::from(f.as_slice())))
                .collect()
        }
        Held {
            cohorts: bits(std::mem::take(&mut people.cohorts)),
            outcomes: bits(std::mem::take(&mut people.outcomes)),
            people,
        }
    }

    /// What the lists followed between dates need of the date.
    fn listed(&self) -> Listed {
        Listed {
            rows: self.people.rows.clone(),
            cohorts: self.cohorts.clone(),
            outcomes: self.outcomes.clone(),
        }
    }

    /// The people whole, a byte a person for each cohort and outcome.
    fn people(&self) -> People {
        fn bools(flags: &[(String, arrow_buffer::BooleanBuffer)]) -> Vec<(String, Vec<bool>)> {
            flags
                .iter()
                .map(|(name, f)| (name.clone(), f.iter().collect()))
                .collect()
        }
        People {
            cohorts: bools(&self.cohorts),
            outcomes: bools(&self.outcomes),
            ..self.people.clone()
        }
    }
}

/// The evaluated people split into groups (by PCN, age band, ...): the
/// groups' names in order, and each person's group (None if unknown).
#[derive(Clone)]
struct Groups {
    names: Vec<String>,
    /// Each person's group, shared by clones (the PCNs are a grouping and
    /// also choose each PCN's top).
    of: Keys,
}

/// Each person's group number in the narrowest width that holds every
/// group and a number for unknown (the width's largest): a byte a person
/// and date for an age band, sex or deprivation quintile, two for a PCN,
/// where four each had been 16 bytes a person and date, held for every
/// date until the figures are written.
#[derive(Clone, Debug, PartialEq)]
enum Keys {
    Byte(Arc<[u8]>),
    Short(Arc<[u16]>),
    Word(Arc<[u32]>),
}

impl Keys {
    /// `of` (a group number below `groups`, or None), each person's.
    fn new(groups: usize, of: Vec<Option<u32>>) -> Keys {
        fn narrow<T: TryFrom<u32> + Copy>(of: Vec<Option<u32>>, unknown: T) -> Arc<[T]> {
            of.into_iter()
                .map(|g| g.and_then(|g| T::try_from(g).ok()).unwrap_or(unknown))
                .collect()
        }
        if groups < usize::from(u8::MAX) {
            Keys::Byte(narrow(of, u8::MAX))
        } else if groups < usize::from(u16::MAX) {
            Keys::Short(narrow(of, u16::MAX))
        } else {
            Keys::Word(narrow(of, u32::MAX))
        }
    }

    /// Person `i`'s group; None if unknown.
    fn get(&self, i: usize) -> Option<u32> {
        match self {
            Keys::Byte(of) => Some(of[i]).filter(|&g| g != u8::MAX).map(u32::from),
            Keys::Short(of) => Some(of[i]).filter(|&g| g != u16::MAX).map(u32::from),
            Keys::Word(of) => Some(of[i]).filter(|&g| g != u32::MAX),
        }
    }

    fn len(&self) -> usize {
        match self {
            Keys::Byte(of) => of.len(),
            Keys::Short(of) => of.len(),
            Keys::Word(of) => of.len(),
        }
    }
}

impl Groups {
    /// Person `i`'s group; None if unknown.
    fn get(&self, i: usize) -> Option<u32> {
        self.of.get(i)
    }

    /// How many people.
    fn len(&self) -> usize {
        self.of.len()
    }

    /// Each person's group, in order.
    fn iter(&self) -> impl Iterator<Item = Option<u32>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Each person's group by name (None if unknown).
    fn new<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Groups {
        // Numbered as first met.
        let mut ids: foldhash::HashMap<&str, u32> = Default::default();
        let first: Vec<Option<u32>> = values
            .map(|v| {
                let n = ids.len() as u32;
                v.map(|v| *ids.entry(v).or_insert(n))
            })
            .collect();
        let mut names = vec![""; ids.len()];
        for (name, id) in ids {
            names[id as usize] = name;
        }
        Groups::numbered(&names, first.into_iter())
    }

    /// Each person's group by the text of `column` (None where null). A
    /// dictionary's values are numbered once, not each person's text
    /// hashed (equal values alike: a dictionary may repeat one).
    fn of(column: &ArrayRef) -> Result<Groups> {
        let text = |a: &ArrayRef| {
            arrow_cast::cast(a, &DataType::Utf8)
                .map_err(|e| Error::Internal(format!("reading groups: {e}")))
        };
        let Some(dictionary) = column.as_any_dictionary_opt() else {
            return Ok(Groups::new(text(column)?.as_string::<i32>().iter()));
        };
        let values = text(dictionary.values())?;
        let mut ids: foldhash::HashMap<&str, u32> = Default::default();
        let mut names = Vec::new();
        let number: Vec<Option<u32>> = values
            .as_string::<i32>()
            .iter()
            .map(|v| {
                v.map(|v| {
                    *ids.entry(v).or_insert_with(|| {
                        names.push(v);
                        names.len() as u32 - 1
                    })
                })
            })
            .collect();
        let keys = dictionary.normalized_keys();
        let of = (0..column.len()).map(|r| {
            column
                .is_valid(r)
                .then(|| number.get(keys[r]).copied().flatten())
                .flatten()
        });
        Ok(Groups::numbered(&names, of))
    }

    /// Each person's group as an index into `names` (None if unknown),
    /// with no name looked up per person: the groups that occur, in name
    /// order, as [`Groups::new`] of the names gives.
    fn numbered(names: &[&str], of: impl Iterator<Item = Option<u32>>) -> Groups {
        let of: Vec<Option<u32>> = of.collect();
        let mut present = vec![false; names.len()];
        for &g in of.iter().flatten() {
            present[g as usize] = true;
        }
        let mut order: Vec<usize> = (0..names.len()).filter(|&g| present[g]).collect();
        order.sort_unstable_by_key(|&g| names[g]);
        let mut place = vec![0u32; names.len()];
        for (i, &g) in order.iter().enumerate() {
            place[g] = i as u32;
        }
        let of: Vec<Option<u32>> = of
            .into_iter()
            .map(|g| g.map(|g| place[g as usize]))
            .collect();
        Groups {
            names: order.iter().map(|&g| names[g].to_string()).collect(),
            of: Keys::new(order.len(), of),
        }
    }

    /// Each person's group's name, as a dictionary of the names: the
    /// Parquet writer writes it as the plain text it stands for, byte for
    /// byte (`output::parquet`), without a text made per person and date
    /// (with 12 dates at 1M, building those texts was about a tenth of
    /// writing `predictions.parquet`).
    fn texts(&self) -> arrow_array::DictionaryArray<arrow_array::types::Int32Type> {
        let keys: arrow_array::Int32Array = self.iter().map(|g| g.map(|g| g as i32)).collect();
        let names = arrow_array::StringArray::from_iter_values(&self.names);
        arrow_array::DictionaryArray::new(keys, Arc::new(names))
    }
}

/// What the figures of every outcome of one date share: the people, and
/// what is worked out of them once for all outcomes.
struct Shared<'a> {
    people: &'a People,
    /// Each score's [`Ranking`], in the order of `people.scores`.
    rankings: &'a [Ranking],
    /// Each grouping's [`Split`], in the order of `people.groups`.
    splits: &'a [Split],
    /// Each score's [`Ordered`], in the order of `people.scores`.
    ordered: &'a [Ordered],
}

/// The people a score scores, ranked.
struct Ranking {
    /// Lowest score first; ties in person order.
    ascending: Vec<u32>,
}

impl Ranking {
    fn new(values: &Float64Array) -> Ranking {
        Ranking {
            ascending: ascending(values),
        }
    }

    /// The values of the people it ranks, in its order (lowest first).
    fn values(&self, values: &Float64Array) -> Vec<f64> {
        self.ascending
            .iter()
            .map(|&i| values.value(i as usize))
            .collect()
    }

    /// Each ranked person's outcome, in the ranking's order.
    fn outcomes(&self, happened: &[bool]) -> Vec<bool> {
        self.ascending
            .iter()
            .map(|&i| happened[i as usize])
            .collect()
    }

    /// Highest score first; ties in person order (as lists rank), from
    /// the values in the ranking's order ([`Ranking::values`]). Ties are
    /// equal in [`total_order`], as in [`ascending`] (so that NaNs of one
    /// kind tie, as they sort).
    fn highest_first<'a>(&'a self, ranked: &'a [f64]) -> impl Iterator<Item = u32> + 'a {
        let key = |v: f64| total_order(v + 0.0);
        // Each tie's places, from the last tie to the first.
        let mut end = ranked.len();
        let ties = std::iter::from_fn(move || {
            let last = key(*ranked.get(end.checked_sub(1)?)?);
            let start = ranked[..end]
                .iter()
                .rposition(|&v| key(v) != last)
                .map_or(0, |p| p + 1);
            let tie = start..end;
            end = start;
            Some(tie)
        });
        ties.flat_map(|tie| self.ascending[tie].iter().copied())
    }

    /// (score, outcome) of the people `keep` selects, lowest score first.
    #[cfg(test)]
    fn ranked(
        &self,
        values: &Float64Array,
        happened: &[bool],
        keep: impl Fn(usize) -> bool,
    ) -> Vec<(f64, bool)> {
        self.ascending
            .iter()
            .map(|&i| i as usize)
            .filter(|&i| keep(i))
            .map(|i| (values.value(i), happened[i]))
            .collect()
    }
}

/// What a score's figures read of one date that no outcome changes, made
/// once for all its outcomes and groups (each outcome had read the values
/// in ranked order, ranked the people highest first and marked its top
/// lists again).
struct Ordered {
    /// The scored people's values in the ranking's order, lowest first.
    values: Vec<f64>,
    /// The first people highest first: as many as the longest list of a
    /// top fraction ([`TOP`]) holds.
    top: Vec<u32>,
    /// The people on each PCN's first [`TOP_PER_PCN`] (people of no known
    /// PCN taken as one more PCN).
    per_pcn: Vec<u32>,
}

impl Ordered {
    fn new(ranking: &Ranking, values: &Float64Array, pcn: &Groups) -> Ordered {
        let values = ranking.values(values);
        let longest = TOP.iter().map(|&f| top_size(f, values.len())).max();
        let top = ranking
            .highest_first(&values)
            .take(longest.unwrap_or(0))
            .collect();
        // How many of each PCN's people are taken so far.
        let mut taken = vec![0usize; pcn.names.len() + 1];
        let per_pcn = ranking
            .highest_first(&values)
            .filter(|&i| {
                let of_pcn =
                    &mut taken[pcn.get(i as usize).map_or(pcn.names.len(), |g| g as usize)];
                *of_pcn += 1;
                *of_pcn <= TOP_PER_PCN
            })
            .collect();
        Ordered {
            values,
            top,
            per_pcn,
        }
    }
}

/// How many of `scored` people the top `fraction` of a ranking holds.
fn top_size(fraction: f64, scored: usize) -> usize {
    ((fraction * scored as f64).ceil() as usize).min(scored)
}

/// The people `values` scores, lowest score first, ties in person order:
/// ordered by each value's place in `f64::total_cmp`'s order (+ 0.0 makes
/// -0.0 equal 0.0, as for the ties), then person.
fn ascending(values: &Float64Array) -> Vec<u32> {
    // Most scores take few values (whole points, or rounded): each value's
    // people are counted, then put in place in person order, with no sort
    // of the people (about 5 ms a ranking at 200,000 people). Scores of
    // many values are sorted.
    const MOST_COUNTED: usize = 1 << 12;
    let key = |v: f64| total_order(v + 0.0);
    // Each value numbered as first met, and how many people have it.
    let mut numbers: foldhash::HashMap<u64, u32> = Default::default();
    let mut counts: Vec<u32> = Vec::new();
    let mut of: Vec<u32> = Vec::with_capacity(values.len());
    for v in values.iter().flatten() {
        let next = numbers.len() as u32;
        let n = *numbers.entry(key(v)).or_insert(next);
        if n == next {
            if counts.len() == MOST_COUNTED {
                return sorted(values);
            }
            counts.push(0);
        }
        counts[n as usize] += 1;
        of.push(n);
    }
    // Where each value's people start, in value order.
    let mut keys: Vec<(u64, u32)> = numbers.into_iter().collect();
    keys.sort_unstable();
    let mut start = vec![0u32; keys.len()];
    let mut at = 0;
    for &(_, n) in &keys {
        start[n as usize] = at;
        at += counts[n as usize];
    }
    let mut ascending = vec![0u32; of.len()];
    let people = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|_| i as u32));
    for (person, n) in people.zip(of) {
        let place = &mut start[n as usize];
        ascending[*place as usize] = person;
        *place += 1;
    }
    ascending
}

/// [`ascending`] by sorting each value's place in `f64::total_cmp`'s
/// order beside its person (not the people by looking their values up:
/// that reads memory out of order).
fn sorted(values: &Float64Array) -> Vec<u32> {
    let mut keyed: Vec<(u64, u32)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| Some((total_order(v? + 0.0), i as u32)))
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// `x`'s place in [`f64::total_cmp`]'s order, as an unsigned number.
fn total_order(x: f64) -> u64 {
    let bits = x.to_bits();
    // Negative numbers' bits count down: flipped whole; positive ones'
    // sign bit set, so that they come after.
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// A rule set's cohorts and scores for the evaluated people.
#[derive(Clone)]
struct Predictions {
    cohorts: Vec<(String, Vec<bool>)>,
    scores: Vec<(String, Float64Array)>,
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

/// The evaluated people of `results` (in the population, no opt-out), as
/// rows of the population.
fn evaluated(results: &engine::Results) -> Vec<u32> {
    (0..results.alive.len())
        .filter(|&r| results.counted(r))
        .map(|r| r as u32)
        .collect()
}

/// The second rule set's predictions for the people at `rows` of its run,
/// who must be the people the first evaluated.
fn compared(
    b: &Model,
    request: &Request,
    results: &engine::Results,
    rows: &[u32],
) -> Result<Predictions> {
    if evaluated(results) != rows {
        return Err(Error::usage(
            "the compared rule files evaluate other people (their [population] differs)",
        )
        .with_help("compare rule files that read the population the same way"));
    }
    predictions(b, results, rows, &request.scores)
}

/// `model`'s cohorts and the scores asked for (those it has), for the
/// people at `keep`.
fn predictions(
    model: &Model,
    results: &engine::Results,
    keep: &[u32],
    scores: &[String],
) -> Result<Predictions> {
    let indices = arrow_array::UInt32Array::from(keep.to_vec());
    let cohorts = model
        .cohorts
        .iter()
        .zip(&results.cohorts)
        .map(|(c, r)| {
            (
                c.name.clone(),
                keep.iter()
                    .map(|&p| r.flags.values().value(p as usize))
                    .collect(),
            )
        })
        .collect();
    let mut values = Vec::new();
    for s in scores {
        let Some(i) = model.feature_index(s) else {
            continue;
        };
        let column = arrow_cast::cast(results.feature(i), &DataType::Float64).map_err(|_| {
            Error::usage(format!("--score {s}: feature `{s}` is not a number"))
                .with_help("name a numeric feature; cohorts are evaluated anyway")
        })?;
        let column = arrow_select::take::take(&column, &indices, None)
            .map_err(|e| Error::Internal(format!("selecting the evaluated people: {e}")))?;
        values.push((
            s.clone(),
            column
                .as_primitive::<arrow_array::types::Float64Type>()
                .clone(),
        ));
    }
    Ok(Predictions {
        cohorts,
        scores: values,
    })
}

/// One date's evaluated people, from the run and outcomes of that date.
fn people(model: &Model, request: &Request, dated: engine::Dated) -> Result<People> {
    let engine::Dated { results, outcomes } = dated;
    let keep = evaluated(&results);
    let indices = arrow_array::UInt32Array::from(keep.clone());
    let take = |a: &ArrayRef| {
        arrow_select::take::take(a, &indices, None)
            .map_err(|e| Error::Internal(format!("selecting the evaluated people: {e}")))
    };
    let population_ids = results.plan.population.column("person_id").clone();
    let Predictions { cohorts, scores } = predictions(model, &results, &keep, &request.scores)?;
    let mut counts = Vec::new();
    let outcomes = outcomes
        .into_iter()
        .map(|(name, column)| {
            let column = take(&column)?;
            let counted = model.outcomes.iter().any(|o| {
                o.name == name
                    && matches!(
                        o.kind,
                        crate::rules::FeatureKind::Aggregate {
                            aggregate: crate::rules::Aggregate::Count
                                | crate::rules::Aggregate::TotalDays,
                            ..
                        }
                    )
            });
            if counted && let Some(c) = column.as_primitive_opt::<arrow_array::types::Int64Type>() {
                counts.push((name.clone(), c.clone()));
            }
            let at_least = model
                .outcomes
                .iter()
                .find(|o| o.name == name)
                .and_then(|o| o.at_least)
                .unwrap_or(1);
            Ok((name, happened(&column, at_least)))
        })
        .collect::<Result<_>>()?;
    let pcn = Groups::of(&take(results.plan.population.column("pcn_code"))?)?;
    let ages = take(&results.slots[crate::rules::typing::AGE_SLOT])?;
    let ages = ages.as_primitive::<arrow_array::types::Int64Type>();
    let sex = Groups::of(&take(&results.slots[crate::rules::typing::SEX_SLOT])?)?;
    let mut groups = vec![
        (
            "age_band",
            Groups::numbered(
                &AGE_BANDS,
                ages.iter().map(|a| a.map(|a| age_band(a) as u32)),
            ),
        ),
        ("sex", sex),
        ("pcn", pcn.clone()),
    ];
    // The deprivation quintile, where the rule files read the decile.
    if let Some(i) = results.plan.attributes.iter().position(|a| a == IMD_DECILE) {
        let deciles = arrow_cast::cast(
            &take(&results.slots[crate::rules::typing::FIRST_ATTRIBUTE_SLOT + i])?,
            &DataType::Int64,
        )
        .map_err(|e| Error::Internal(format!("reading the IMD decile: {e}")))?;
        let deciles = deciles.as_primitive::<arrow_array::types::Int64Type>();
        const QUINTILES: [&str; 5] = ["1", "2", "3", "4", "5"];
        groups.insert(
            0,
            (
                "imd_quintile",
                Groups::numbered(
                    &QUINTILES,
                    deciles.iter().map(|d| {
                        d.filter(|d| (1..=10).contains(d))
                            .map(|d| (d as u32 - 1) / 2)
                    }),
                ),
            ),
        );
    }
    Ok(People {
        rows: keep.into(),
        compared: None,
        pcn,
        groups,
        population_ids,
        cohorts,
        scores,
        outcomes,
        counts,
    })
}

/// An outcome as yes/no: true, a count of at least `at_least` (1 unless
/// the outcome says), more than zero, or a date.
fn happened(column: &ArrayRef, at_least: i64) -> Vec<bool> {
    // The column's type looked at once, not once a row.
    let valid = |r: usize| column.is_valid(r);
    match column.data_type() {
        DataType::Boolean => {
            let values = column.as_boolean().values();
            (0..column.len())
                .map(|r| valid(r) && values.value(r))
                .collect()
        }
        DataType::Int64 => {
            let values = column
                .as_primitive::<arrow_array::types::Int64Type>()
                .values();
            let at = |(r, &v): (usize, &i64)| valid(r) && v >= at_least;
            values.iter().enumerate().map(at).collect()
        }
        DataType::Float64 => {
            let values = column
                .as_primitive::<arrow_array::types::Float64Type>()
                .values();
            let at = |(r, &v): (usize, &f64)| valid(r) && v > 0.0;
            values.iter().enumerate().map(at).collect()
        }
        _ => (0..column.len()).map(valid).collect(),
    }
}

impl Held {
    /// The date's rows of `predictions.parquet`, each cohort's and
    /// outcome's column straight from its bits.
    fn batch(&self, as_of: NaiveDate) -> Result<RecordBatch> {
        let people = &self.people;
        let n = people.rows.len();
        let rows = arrow_array::UInt32Array::new(people.rows.clone(), None);
        let ids = arrow_select::take::take(&people.population_ids, &rows, None)
            .map_err(|e| Error::Internal(format!("taking the evaluated people's ids: {e}")))?;
        let mut fields = vec![
            Field::new("person_id", ids.data_type().clone(), true),
            Field::new("as_of", DataType::Date32, false),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            ids,
            Arc::new(Date32Array::from(vec![crate::dates::to_day(as_of); n])),
        ];
        for (name, groups) in &people.groups {
            let text = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
            fields.push(Field::new(*name, text, true));
            columns.push(Arc::new(groups.texts()));
        }
        for (name, flags) in &self.cohorts {
            fields.push(Field::new(name, DataType::Boolean, false));
            columns.push(Arc::new(BooleanArray::new(flags.clone(), None)));
        }
        for (name, values) in &people.scores {
            fields.push(Field::new(name, DataType::Float64, true));
            columns.push(Arc::new(values.clone()));
        }
        if let Some(b) = &people.compared {
            for (name, flags) in &b.cohorts {
                fields.push(Field::new(
                    format!("compare_{name}"),
                    DataType::Boolean,
                    false,
                ));
                columns.push(Arc::new(BooleanArray::from(flags.clone())));
            }
            for (name, values) in &b.scores {
                fields.push(Field::new(
                    format!("compare_{name}"),
                    DataType::Float64,
                    true,
                ));
                columns.push(Arc::new(values.clone()));
            }
        }
        for (name, happened) in &self.outcomes {
            fields.push(Field::new(
                format!("outcome_{name}"),
                DataType::Boolean,
                false,
            ));
            columns.push(Arc::new(BooleanArray::new(happened.clone(), None)));
        }
        for (name, counts) in &people.counts {
            fields.push(Field::new(
                format!("outcome_{name}_count"),
                DataType::Int64,
                true,
            ));
            columns.push(Arc::new(counts.clone()));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| Error::Internal(format!("assembling predictions: {e}")))
    }
}

/// The figures of one date and outcome.
fn evaluate(
    model: &Model,
    request: &Request,
    shared: &Shared,
    outcome: &str,
    happened: &[bool],
    as_of: NaiveDate,
) -> serde_json::Value {
    let people = shared.people;
    let s = request.suppression;
    let n = happened.len() as u64;
    let events = happened.iter().filter(|&&h| h).count() as u64;
    // For an outcome that is a count (admissions, bed days): how much of
    // it each list's people had.
    let counts = people
        .counts
        .iter()
        .find(|(n, _)| n == outcome)
        .map(|(_, c)| c);
    let total: u64 = counts.map_or(0, |c| counted(c).sum());
    let cohorts: Vec<serde_json::Value> = people
        .cohorts
        .iter()
        .map(|(name, members)| {
            let title = model
                .cohorts
                .iter()
                .find(|c| &c.name == name)
                .map(|c| c.title.clone());
            let events = counts.map(|c| {
                // Without branching on who is on the list (as `Share::of`).
                assert_eq!(c.len(), members.len(), "one value per person");
                let (mut on, mut people, mut with) = (0u64, 0u64, 0u64);
                for (v, &member) in counted(c).zip(members) {
                    let k = u64::from(member);
                    on += k * v;
                    people += k;
                    with += k * u64::from(v > 0);
                }
                // The events of a list of a few people are theirs.
                if s.hides(people) || s.hides(with) {
                    json!({"on_list": s.count(1), "all": s.count(total), "share": null})
                } else {
                    json!({"on_list": s.count(on), "all": s.count(total), "share": ratio(s, on, total)})
                }
            });
            json!({
                "cohort": name,
                "title": title,
                "as_list": list_figures(s, members, happened),
                "events": events,
            })
        })
        .collect();
    // Each score's people's outcomes in its ranked order: read out of
    // order once, for its figures and every group's.
    let ranked: Vec<Vec<bool>> = shared
        .rankings
        .iter()
        .map(|r| r.outcomes(happened))
        .collect();
    let scores: Vec<serde_json::Value> = people
        .scores
        .iter()
        .zip(shared.ordered.iter().zip(&ranked))
        .map(|((name, values), (ordered, outcomes))| {
            let mut figures = score_figures(s, name, ordered, outcomes, happened, &people.pcn);
            if request.probabilities.contains(name) {
                figures["calibration"] = calibration(s, values, happened);
            }
            figures
        })
        .collect();
    let groups: serde_json::Map<String, serde_json::Value> = people
        .groups
        .iter()
        .zip(shared.splits)
        .map(|((grouping, of), split)| {
            let scored = breakdown::Scored {
                ordered: shared.ordered,
                outcomes: &ranked,
            };
            (
                grouping.to_string(),
                breakdown(s, people, happened, of, split, &scored),
            )
        })
        .collect();
    json!({
        "as_of": as_of.to_string(),
        "outcome": outcome,
        "people": s.count(n),
        "with_outcome": s.count(events),
        "prevalence": ratio(s, events, n),
        "cohorts": cohorts,
        "scores": scores,
        "groups": groups,
        "comparison": people.compared.as_ref().map(|b| comparison(s, people, b, happened)),
        "share_of_whole": share_of_whole(model, s, people, outcome),
    })
}

/// For an outcome that is part of another (emergency admissions for
/// ambulatory-care-sensitive conditions, of all emergency admissions): the
/// part's share of the whole's events in the population, and on and off
/// each cohort's list. A list whose share is higher than the population's
/// picks people whose admissions are more often of the kind good primary
/// and community care can prevent.
fn share_of_whole(
    model: &Model,
    s: Suppression,
    people: &People,
    outcome: &str,
) -> Option<serde_json::Value> {
    let whole = model
        .outcomes
        .iter()
        .find(|o| o.name == outcome)?
        .part_of
        .as_ref()?;
    let counts = |name: &str| {
        people
            .counts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
    };
    let (part, of) = (counts(outcome)?, counts(whole)?);
    let everyone = Share::of(part, of, None);
    let cohorts: Vec<serde_json::Value> = people
        .cohorts
        .iter()
        .map(|(name, members)| {
            let on = Share::of(part, of, Some(members));
            let off = everyone.less(&on);
            // Off the list is everyone less the list: either side hidden
            // hides both, or one would give the other back.
            let hidden = on.hidden(s) || off.hidden(s);
            json!({
                "cohort": name,
                "on_list": on.figures(s, hidden),
                "off_list": off.figures(s, hidden),
            })
        })
        .collect();
    Some(json!({
        "of": whole,
        "population": everyone.figures(s, everyone.hidden(s)),
        "cohorts": cohorts,
    }))
}

/// A count outcome's values as the figures add them: none (null) and
/// anything below zero as 0. Read as they are added, not copied: the
/// figures of every date and outcome run in parallel.
fn counted(counts: &arrow_array::Int64Array) -> impl Iterator<Item = u64> + '_ {
    counts.iter().map(|v| v.unwrap_or(0).max(0) as u64)
}

/// A part outcome's events against its whole's, over some people.
struct Share {
    people: u64,
    /// People with at least one event of the part, and of the whole.
    with_part: u64,
    with_whole: u64,
    part: u64,
    whole: u64,
}

impl Share {
    /// Over everyone, or over the `members` of a list. Members are counted
    /// by multiplying by 0 or 1 rather than skipped, so the loop does not
    /// branch on who is on the list.
    fn of(
        part: &arrow_array::Int64Array,
        whole: &arrow_array::Int64Array,
        members: Option<&[bool]>,
    ) -> Share {
        let mut s = Share {
            people: 0,
            with_part: 0,
            with_whole: 0,
            part: 0,
            whole: 0,
        };
        for (i, (p, w)) in counted(part).zip(counted(whole)).enumerate() {
            let k = members.map_or(1, |m| u64::from(m[i]));
            s.people += k;
            s.with_part += k * u64::from(p > 0);
            s.with_whole += k * u64::from(w > 0);
            s.part += k * p;
            s.whole += k * w;
        }
        s
    }

    /// These people less `some` of them: everyone off a list is everyone
    /// less those on it, without a second pass.
    fn less(&self, some: &Share) -> Share {
        Share {
            people: self.people - some.people,
            with_part: self.with_part - some.with_part,
            with_whole: self.with_whole - some.with_whole,
            part: self.part - some.part,
            whole: self.whole - some.whole,
        }
    }

    /// Whether a count of people or events behind the figures would be
    /// suppressed (events of one or two people are theirs).
    fn hidden(&self, s: Suppression) -> bool {
        [
            self.people,
            self.with_part,
            self.with_whole,
            self.part,
            self.whole,
        ]
        .iter()
        .any(|&n| s.hides(n))
    }

    fn figures(&self, s: Suppression, hidden: bool) -> serde_json::Value {
        if hidden {
            // Shown as the method shows a small count.
            return json!({"events": s.count(1), "of_which_part": s.count(1), "share": null, "part_per_100_people": null});
        }
        json!({
            "events": s.count(self.whole),
            "of_which_part": s.count(self.part),
            "share": ratio(s, self.part, self.whole),
            // The part's events against the people: the work a service
            // would find, where the share is the make-up of admissions.
            "part_per_100_people": ratio(s, self.part, self.people).map(|r| 100.0 * r),
        })
    }
}

/// The second rule set beside the first: each cohort both define, each
/// score both have: figures, differences (second minus first) with 95%
/// confidence intervals, and who is on one list and not the other.
fn comparison(
    s: Suppression,
    people: &People,
    b: &Predictions,
    happened: &[bool],
) -> serde_json::Value {
    let z = 1.959964;
    let cohorts: Vec<serde_json::Value> = people
        .cohorts
        .iter()
        .filter_map(|(name, a)| {
            let (_, bb) = b.cohorts.iter().find(|(n, _)| n == name)?;
            let (fa, fb) = (list_figures(s, a, happened), list_figures(s, bb, happened));
            let count = |f: &dyn Fn(bool, bool) -> bool| {
                a.iter().zip(bb).filter(|&(&x, &y)| f(x, y)).count() as u64
            };
            let (only_a, only_b, both) = (
                count(&|x, y| x && !y),
                count(&|x, y| !x && y),
                count(&|x, y| x && y),
            );
            // Sensitivity: the same people with the outcome, paired.
            let positives = happened.iter().filter(|&&h| h).count() as f64;
            let caught_only = |first: &[bool], second: &[bool]| {
                (0..happened.len())
                    .filter(|&i| happened[i] && first[i] && !second[i])
                    .count() as f64
            };
            let (x, y) = (caught_only(a, bb), caught_only(bb, a));
            let sensitivity = (positives > 0.0).then(|| {
                let d = (y - x) / positives;
                let se = ((x + y) - (y - x).powi(2) / positives).max(0.0).sqrt() / positives;
                (d, se)
            });
            // PPV: lists of other sizes; the unpaired (Wald) interval.
            let ppv = fa["ppv"].as_f64().zip(fb["ppv"].as_f64()).map(|(pa, pb)| {
                let na = a.iter().filter(|&&m| m).count() as f64;
                let nb = bb.iter().filter(|&&m| m).count() as f64;
                (
                    pb - pa,
                    (pa * (1.0 - pa) / na + pb * (1.0 - pb) / nb).sqrt(),
                )
            });
            let shown = |d: Option<(f64, f64)>, hidden: bool| {
                d.filter(|_| !hidden)
                    .map(|(d, se)| json!({"difference": d, "ci95": [d - z * se, d + z * se]}))
            };
            // The interval gives back x and y, the outcomes only one list saw.
            let hidden =
                s.hides(only_a) || s.hides(only_b) || s.hides(x as u64) || s.hides(y as u64);
            Some(json!({
                "cohort": name,
                "first": fa,
                "second": fb,
                "only_first": s.count(only_a),
                "only_second": s.count(only_b),
                "both": s.count(both),
                "ppv": shown(ppv, fa["ppv"].is_null() || fb["ppv"].is_null()),
                "sensitivity": shown(sensitivity, hidden || fa["sensitivity"].is_null()),
            }))
        })
        .collect();
    let scores: Vec<serde_json::Value> = people
        .scores
        .iter()
        .filter_map(|(name, a)| {
            let (_, bb) = b.scores.iter().find(|(n, _)| n == name)?;
            // People both score.
            let paired: Vec<(f64, f64, bool)> = (0..happened.len())
                .filter_map(|i| {
                    Some((
                        a.is_valid(i).then(|| a.value(i))?,
                        bb.is_valid(i).then(|| bb.value(i))?,
                        happened[i],
                    ))
                })
                .collect();
            let positives = paired.iter().filter(|p| p.2).count() as u64;
            let hidden = s.hides(positives) || s.hides(paired.len() as u64 - positives);
            let d = (!hidden).then(|| auroc_difference(&paired)).flatten();
            Some(json!({
                "score": name,
                "scored_by_both": s.count(paired.len() as u64),
                "auroc_first": d.map(|d| d.0),
                "auroc_second": d.map(|d| d.1),
                "difference": d.map(|d| d.1 - d.0),
                "ci95": d.map(|d| [d.1 - d.0 - z * d.2, d.1 - d.0 + z * d.2]),
            }))
        })
        .collect();
    json!({"cohorts": cohorts, "scores": scores})
}

/// Each cohort between two dates: who stayed on the list, left it
/// and joined it (a list of high users shrinks by itself as people regress
/// to the mean), and, for each outcome after the later date, the PPV of
/// those already on the earlier list against those newly listed (so that
/// "the list worked", fewer outcomes among people already being helped, is
/// not read as "the model failed").
fn persistence(
    s: Suppression,
    from: NaiveDate,
    earlier: &Listed,
    to: NaiveDate,
    later: &Listed,
) -> serde_json::Value {
    // Both dates' people are rows of one population table, ascending:
    // each later person's place among the earlier, in one walk of both.
    let mut at = 0;
    let in_earlier: Vec<Option<usize>> = later
        .rows
        .iter()
        .map(|row| {
            while earlier.rows.get(at).is_some_and(|r| r < row) {
                at += 1;
            }
            (earlier.rows.get(at) == Some(row)).then_some(at)
        })
        .collect();
    let cohorts: Vec<serde_json::Value> = later
        .cohorts
        .iter()
        .filter_map(|(name, now)| {
            let (_, before) = earlier.cohorts.iter().find(|(n, _)| n == name)?;
            let was: Vec<bool> = in_earlier
                .iter()
                .map(|e| e.is_some_and(|e| before.value(e)))
                .collect();
            let stayed = now.iter().zip(&was).filter(|&(n, &w)| n && w).count() as u64;
            let joined = now.iter().zip(&was).filter(|&(n, &w)| n && !w).count() as u64;
            let listed_before = before.count_set_bits() as u64;
            let outcomes: Vec<serde_json::Value> = later
                .outcomes
                .iter()
                .map(|(outcome, happened)| {
                    // The list's people already on the earlier list, and
                    // those new to it, each as a list of everyone.
                    let (mut already, mut newly) = (ListCounts::default(), ListCounts::default());
                    for ((n, &w), h) in now.iter().zip(&was).zip(happened) {
                        already.add(n && w, h);
                        newly.add(n && !w, h);
                    }
                    json!({
                        "outcome": outcome,
                        "ppv_already_listed": already.figures(s)["ppv"],
                        "ppv_newly_listed": newly.figures(s)["ppv"],
                    })
                })
                .collect();
            Some(json!({
                "cohort": name,
                "on_earlier_list": s.count(listed_before),
                "stayed": s.count(stayed),
                "left": s.count(listed_before.saturating_sub(stayed)),
                "joined": s.count(joined),
                "still_listed": ratio(s, stayed, listed_before),
                "outcomes": outcomes,
            }))
        })
        .collect();
    json!({"from": from.to_string(), "to": to.to_string(), "cohorts": cohorts})
}

/// A probability against what happened: by decile of the ranking (lowest
/// first; decile of the i-th of n is i * 10 / n), the mean predicted and the
/// observed share, and the Brier score (the mean squared difference).
fn calibration(s: Suppression, values: &Float64Array, happened: &[bool]) -> serde_json::Value {
    let mut scored: Vec<(f64, bool)> = values
        .iter()
        .zip(happened)
        .filter_map(|(v, &h)| v.map(|v| (v, h)))
        .collect();
    if scored.iter().any(|(p, _)| !(0.0..=1.0).contains(p)) {
        return json!({"error": "not a probability: some values are outside 0 to 1"});
    }
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = scored.len();
    let mut deciles = Vec::new();
    for d in 0..10 {
        let rows: Vec<&(f64, bool)> = (0..n)
            .filter(|&i| i * 10 / n.max(1) == d)
            .map(|i| &scored[i])
            .collect();
        let events = rows.iter().filter(|(_, h)| *h).count() as u64;
        let size = rows.len() as u64;
        let mean = (!rows.is_empty())
            .then(|| rows.iter().map(|(p, _)| p).sum::<f64>() / rows.len() as f64);
        deciles.push(json!({
            "decile": d + 1,
            "people": s.count(size),
            "mean_predicted": mean,
            "observed": ratio(s, events, size),
        }));
    }
    let positives = scored.iter().filter(|(_, h)| *h).count() as u64;
    let brier = (n > 0 && !s.hides(positives) && !s.hides(n as u64 - positives)).then(|| {
        scored
            .iter()
            .map(|(p, h)| (p - if *h { 1.0 } else { 0.0 }).powi(2))
            .sum::<f64>()
            / n as f64
    });
    json!({"deciles": deciles, "brier": brier})
}

/// `part / whole`, unless either count would be suppressed.
fn ratio(s: Suppression, part: u64, whole: u64) -> Option<f64> {
    (whole > 0 && !s.hides(part) && !s.hides(whole)).then(|| part as f64 / whole as f64)
}

/// The 95% confidence interval of an AUROC from its DeLong standard error,
/// kept within 0 to 1.
fn auroc_ci((a, se): (f64, f64)) -> [f64; 2] {
    [(a - 1.959964 * se).max(0.0), (a + 1.959964 * se).min(1.0)]
}

/// The 95% Wilson score interval of the proportion `x / n` (n > 0): unlike
/// the Wald interval it stays within 0 to 1 and keeps its coverage for
/// small lists and proportions near 0 or 1.
fn wilson(x: u64, n: u64) -> [f64; 2] {
    let (x, n, z) = (x as f64, n as f64, 1.959964f64);
    let centre = (x + z * z / 2.0) / (n + z * z);
    let half = z / (n + z * z) * (x * (n - x) / n + z * z / 4.0).sqrt();
    [(centre - half).max(0.0), (centre + half).min(1.0)]
}

/// A yes/no list against the outcome.
fn list_figures(s: Suppression, on_list: &[bool], happened: &[bool]) -> serde_json::Value {
    let mut counts = ListCounts::default();
    for (&m, &h) in on_list.iter().zip(happened) {
        counts.add(m, h);
    }
    counts.figures(s)
}

/// What a list's figures are made from: people, of them with the outcome,
/// on the list, and on it with the outcome.
#[derive(Default, Clone, Copy)]
struct ListCounts {
    n: u64,
    events: u64,
    size: u64,
    caught: u64,
}

impl ListCounts {
    fn add(&mut self, on_list: bool, happened: bool) {
        self.n += 1;
        self.events += u64::from(happened);
        self.size += u64::from(on_list);
        self.caught += u64::from(on_list && happened);
    }

    fn figures(self, s: Suppression) -> serde_json::Value {
        let ListCounts {
            n,
            events,
            size,
            caught,
        } = self;
        let false_alarms = size - caught;
        let negatives = n - events;
        let ppv = ratio(s, caught, size);
        let prevalence = ratio(s, events, n);
        let sensitivity = ratio(s, caught, events);
        json!({
            "on_list": s.count(size),
            "with_outcome": s.count(caught),
            "ppv": ppv,
            // An interval gives back both its counts: hidden with the
            // false alarms, or the missed, as specificity is.
            "ppv_95ci": ppv.filter(|_| !s.hides(false_alarms)).map(|_| wilson(caught, size)),
            "sensitivity": sensitivity,
            "sensitivity_95ci": sensitivity
                .filter(|_| !s.hides(events - caught))
                .map(|_| wilson(caught, events)),
            // Hidden with the counts it would give away (on list and caught).
            "specificity": (!s.hides(caught) && !s.hides(false_alarms))
                .then(|| ratio(s, negatives - false_alarms, negatives))
                .flatten(),
            "lift": ppv.zip(prevalence).filter(|(_, p)| *p > 0.0).map(|(a, p)| a / p),
        })
    }
}

/// A score: AUROC and AUPRC over the people it scores, and its top
/// fractions and each PCN's first [`TOP_PER_PCN`] as lists (highest first,
/// ties by person order, as cohorts rank).
fn score_figures(
    s: Suppression,
    name: &str,
    ordered: &Ordered,
    outcomes: &[bool],
    happened: &[bool],
    pcn: &Groups,
) -> serde_json::Value {
    let scored: Vec<(f64, bool)> = ordered
        .values
        .iter()
        .copied()
        .zip(outcomes.iter().copied())
        .collect();
    let positives = outcomes.iter().filter(|&&h| h).count() as u64;
    let negatives = scored.len() as u64 - positives;
    let auroc = (!s.hides(positives) && !s.hides(negatives))
        .then(|| auroc_ranked(&scored))
        .flatten();
    // Every list is of the evaluated people, on it or not.
    let everyone = ListCounts {
        n: happened.len() as u64,
        events: happened.iter().filter(|&&h| h).count() as u64,
        ..ListCounts::default()
    };
    let listed = |list: &[u32]| ListCounts {
        size: list.len() as u64,
        caught: list.iter().filter(|&&i| happened[i as usize]).count() as u64,
        ..everyone
    };
    let top: Vec<serde_json::Value> = TOP
        .iter()
        .map(|&fraction| {
            let k = top_size(fraction, scored.len());
            json!({"top": fraction, "as_list": listed(&ordered.top[..k]).figures(s)})
        })
        .collect();
    let auprc = (!s.hides(positives) && !s.hides(negatives))
        .then(|| average_precision_ranked(&scored))
        .flatten();
    // Curves only where the figures themselves may be shown.
    let curves = (!s.hides(positives) && !s.hides(negatives))
        .then(|| curves_ranked(&scored, CURVE_POINTS))
        .flatten();
    let points = |c: &[(f64, f64)]| c.iter().map(|&(x, y)| [x, y]).collect::<Vec<_>>();
    json!({
        "score": name,
        "scored": s.count(scored.len() as u64),
        "auroc": auroc.map(|(a, _)| a),
        "auprc": auprc,
        "roc": curves.as_ref().map(|(roc, _)| points(roc)),
        "precision_recall": curves.as_ref().map(|(_, pr)| points(pr)),
        "top_per_pcn": {
            "per_pcn": TOP_PER_PCN,
            "as_list": listed(&ordered.per_pcn).figures(s),
            "pcns": each_pcn(s, pcn, &ordered.per_pcn, happened),
        },
        "auroc_95ci": auroc.map(auroc_ci),
        "top": top,
    })
}

/// Each PCN's own list among its own people: of the PCN's evaluated
/// people, who was on it and who had the outcome (a PCN lead's view:
/// sensitivity is of the PCN's outcomes).
fn each_pcn(
    s: Suppression,
    pcn: &Groups,
    listed: &[u32],
    happened: &[bool],
) -> Vec<serde_json::Value> {
    let mut counts = vec![ListCounts::default(); pcn.names.len()];
    for (g, &h) in pcn.iter().zip(happened) {
        if let Some(g) = g {
            counts[g as usize].add(false, h);
        }
    }
    for &i in listed {
        if let Some(g) = pcn.get(i as usize) {
            let c = &mut counts[g as usize];
            c.size += 1;
            c.caught += u64::from(happened[i as usize]);
        }
    }
    pcn.names
        .iter()
        .zip(counts)
        .map(|(name, c)| json!({"pcn": name, "as_list": c.figures(s)}))
        .collect()
}

/// The terminal summary: per date and outcome, each cohort's PPV and
/// sensitivity, each score's AUROC.
pub fn render(evaluation: &serde_json::Value, out: &Path) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    let shown = |v: &serde_json::Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.3}"));
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
                shown(&sc["auroc"]),
                shown(&ci[0]),
                shown(&ci[1])
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
                shown(&sc["auroc_first"]),
                shown(&sc["auroc_second"]),
                shown(&sc["difference"]),
                shown(&sc["ci95"][0]),
                shown(&sc["ci95"][1])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_off_the_list_is_everyone_less_the_list() {
        // Nulls and negatives count as none; people with none of the
        // part but some of the whole; a list of the first, middle, last.
        let part =
            arrow_array::Int64Array::from(vec![Some(1), None, Some(0), Some(3), Some(-2), Some(2)]);
        let whole =
            arrow_array::Int64Array::from(vec![Some(2), Some(4), None, Some(3), Some(1), Some(5)]);
        let members = [true, false, false, true, false, true];
        let off: Vec<bool> = members.iter().map(|m| !m).collect();
        let everyone = Share::of(&part, &whole, None);
        let on = Share::of(&part, &whole, Some(&members));
        let got = everyone.less(&on);
        let want = Share::of(&part, &whole, Some(&off));
        let fields = |s: &Share| (s.people, s.with_part, s.with_whole, s.part, s.whole);
        assert_eq!(fields(&on), (3, 3, 3, 6, 10));
        assert_eq!(fields(&got), fields(&want));
        assert_eq!(fields(&got), (3, 0, 2, 0, 5));
    }

    #[test]
    fn calibration_compares_deciles_and_refuses_what_is_not_a_probability() {
        let values: Float64Array = (0..20).map(|i| Some(i as f64 / 20.0)).collect();
        let happened: Vec<bool> = (0..20).map(|i| i >= 18).collect();
        let c = calibration(Suppression::None, &values, &happened);
        let top = &c["deciles"][9];
        assert_eq!(top["people"], "2");
        assert_eq!(top["observed"], 1.0);
        assert!((top["mean_predicted"].as_f64().unwrap() - 0.925).abs() < 1e-12);
        let brier: f64 = (0..20)
            .map(|i| (i as f64 / 20.0 - if i >= 18 { 1.0 } else { 0.0 }).powi(2))
            .sum::<f64>()
            / 20.0;
        assert!((c["brier"].as_f64().unwrap() - brier).abs() < 1e-12);
        let c = calibration(Suppression::None, &Float64Array::from(vec![1.5]), &[true]);
        assert!(c["error"].is_string());
    }

    #[test]
    fn rankings_order_as_total_cmp_with_ties_in_person_order() {
        let special = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
            f64::MIN_POSITIVE / 2.0,
            -f64::MIN_POSITIVE / 2.0,
            2.5,
        ];
        let mut x = 0x0DDB_1A5E_5BAD_5EEDu64;
        // Few values (counted into place) and, among 10,000 people, more
        // values than are counted (sorted); both ways on each.
        for (runs, people, spread) in [(100, 60, false), (3, 10_000, true)] {
            for _ in 0..runs {
                let values: Vec<Option<f64>> = (0..people)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let special = special[(x >> 8) as usize % special.len()];
                        let value = if spread && !x.is_multiple_of(4) {
                            (x >> 11) as f64 - (1u64 << 52) as f64
                        } else {
                            special
                        };
                        (!x.is_multiple_of(6)).then_some(value)
                    })
                    .collect();
                let column = Float64Array::from(values.clone());
                let ranking = Ranking::new(&column);
                // As it was: the people sorted stably by their values.
                let mut expected: Vec<u32> = (0..values.len() as u32)
                    .filter(|&i| values[i as usize].is_some())
                    .collect();
                let value = |i: &u32| values[*i as usize].unwrap() + 0.0;
                expected.sort_by(|a, b| value(a).total_cmp(&value(b)));
                assert_eq!(ranking.ascending, expected);
                assert_eq!(sorted(&column), expected);
                // Highest first, ties still in person order.
                expected.sort_by(|a, b| value(b).total_cmp(&value(a)));
                let ranked = ranking.values(&column);
                let highest: Vec<u32> = ranking.highest_first(&ranked).collect();
                assert_eq!(highest, expected);
            }
        }
    }

    #[test]
    fn groups_are_the_names_met_in_name_order() {
        // Numbered groups (names listed out of name order too) and named
        // ones: some never met, some people of no known group.
        let made_up = ["b", "a", "c", "aa"];
        let mut x = 0x5EED_u64;
        for names in [&AGE_BANDS[..], &made_up[..]] {
            for _ in 0..50 {
                let of: Vec<Option<u32>> = (0..40)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let g = (x >> 8) as usize % names.len();
                        let met = g % 2 == (x >> 20) as usize % 2;
                        (!x.is_multiple_of(5) && met).then_some(g as u32)
                    })
                    .collect();
                let name = |g: &Option<u32>| g.map(|g| names[g as usize]);
                let mut met: Vec<&str> = of.iter().filter_map(name).collect();
                met.sort_unstable();
                met.dedup();
                let places: Vec<Option<u32>> = of
                    .iter()
                    .map(|g| name(g).map(|n| met.iter().position(|m| *m == n).unwrap() as u32))
                    .collect();
                for groups in [
                    Groups::numbered(names, of.iter().copied()),
                    Groups::new(of.iter().map(name)),
                ] {
                    assert_eq!(groups.names, met);
                    assert_eq!(groups.iter().collect::<Vec<_>>(), places);
                }
            }
        }
    }

    #[test]
    fn groups_of_a_dictionary_are_the_groups_of_its_text() {
        use arrow_array::{DictionaryArray, types::Int32Type};
        // A value repeated in the dictionary, a null value, a value no row
        // uses, null keys.
        let values = arrow_array::StringArray::from(vec![
            Some("U2"),
            Some("U1"),
            None,
            Some("U2"),
            Some("U9"),
        ]);
        let keys = arrow_array::Int32Array::from(vec![
            Some(0),
            Some(3),
            None,
            Some(1),
            Some(2),
            Some(3),
            Some(1),
            None,
        ]);
        let column: ArrayRef =
            Arc::new(DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values)).unwrap());
        let got = Groups::of(&column).unwrap();
        let text = arrow_cast::cast(&column, &DataType::Utf8).unwrap();
        let want = Groups::new(text.as_string::<i32>().iter());
        assert_eq!(got.names, ["U1", "U2"]);
        assert_eq!(got.names, want.names);
        assert_eq!(got.of, want.of);
        // Plain text too.
        let got = Groups::of(&text).unwrap();
        assert_eq!((got.names, got.of), (want.names, want.of));
    }

    /// Group numbers are kept in the narrowest width that holds them and
    /// unknown, each read back as it was given.
    #[test]
    fn group_numbers_are_kept_narrow_and_read_back() {
        for (groups, wide) in [(1, 0), (254, 0), (255, 1), (65_534, 1), (65_535, 2)] {
            let of = vec![
                Some(0),
                None,
                Some(groups as u32 - 1),
                Some(groups as u32 / 2),
            ];
            let keys = Keys::new(groups, of.clone());
            let width = match &keys {
                Keys::Byte(_) => 0,
                Keys::Short(_) => 1,
                Keys::Word(_) => 2,
            };
            assert_eq!(width, wide, "{groups} groups");
            assert_eq!(keys.len(), of.len());
            let back: Vec<Option<u32>> = (0..keys.len()).map(|i| keys.get(i)).collect();
            assert_eq!(back, of, "{groups} groups");
        }
    }

    #[test]
    fn lists_count_what_they_catch() {
        let on = [true, true, false, false, true];
        let happened = [true, false, true, false, false];
        let f = list_figures(Suppression::None, &on, &happened);
        assert_eq!(f["on_list"], "3");
        assert_eq!(f["with_outcome"], "1");
        assert_eq!(f["ppv"], 1.0 / 3.0);
        assert_eq!(f["sensitivity"], 0.5);
        assert_eq!(f["specificity"], 1.0 / 3.0);
        // Small numbers: counts hidden and no ratio made from them.
        let f = list_figures(Suppression::Hes, &on, &happened);
        assert_eq!(f["on_list"], "*");
        assert!(f["ppv"].is_null());
    }
}
