//! One date's evaluated people: everyone alive on the date without an
//! opt-out (evaluation is a secondary use), each rule set's cohorts and
//! scores for them, their outcomes and the groups figures are broken down
//! by. Held with cohorts and outcomes as bits from the date's scan until
//! its figures are made and its rows of `predictions.parquet` written.

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Float64Array};
use arrow_schema::DataType;

use super::groups::{Groups, IMD_DECILE};
use crate::engine;
use crate::error::{Error, Result};
use crate::rules::Model;

/// What the lists followed between dates need of a date: its people's
/// rows, each cohort's members and each outcome's, as bits (about 6 bytes
/// a person and date for the default model).
pub(super) struct Listed {
    pub(super) rows: arrow_buffer::ScalarBuffer<u32>,
    pub(super) cohorts: Vec<(String, arrow_buffer::BooleanBuffer)>,
    pub(super) outcomes: Vec<(String, arrow_buffer::BooleanBuffer)>,
}

/// One date's evaluated people: their predictions and outcomes.
#[derive(Clone)]
pub(super) struct People {
    /// Their rows in the population table (shared with the date's
    /// [`Listed`]).
    pub(super) rows: arrow_buffer::ScalarBuffer<u32>,
    /// The population's ids, every date of a scan sharing one column:
    /// each date's people's are taken from it as the date is written (a
    /// copy a date had been 8 bytes a person and date, held until the
    /// figures were written).
    pub(super) population_ids: ArrayRef,
    /// (cohort, members), for the evaluated people.
    pub(super) cohorts: Vec<(String, Vec<bool>)>,
    /// (score, values; null where the score is null). Arrow's column, 8
    /// bytes and a bit a person, not `Option<f64>`'s 16: with 12 dates at
    /// 5M persons every byte a person and date is 60 MB.
    pub(super) scores: Vec<(String, Float64Array)>,
    /// (outcome, happened).
    pub(super) outcomes: Vec<(String, Vec<bool>)>,
    /// (outcome, how many times it happened or how many days it took;
    /// null where unknown), for outcomes that are counts (`count`,
    /// `total_days`).
    pub(super) counts: Vec<(String, arrow_array::Int64Array)>,
    /// Each person's PCN (for top N per PCN), and the subgroups figures are
    /// broken down by: (grouping, each person's group; None if unknown).
    pub(super) pcn: Groups,
    pub(super) groups: Vec<(&'static str, Groups)>,
    /// The second rule set's cohorts and scores, for the same people.
    pub(super) compared: Option<Predictions>,
}

/// One date's evaluated people as held from their date's work until the
/// figures and predictions are written: their [`People`] less each
/// cohort's and outcome's yes or no, held as bits. A byte a person each in
/// `People`, they were 8 of its about 50 bytes a person and date for the
/// default model, held for every date (with 12 dates at 5M persons, 480
/// MB); the figures of a date work on its people whole, made again
/// ([`Held::people`]) as the date's figures are worked out, and its rows
/// of `predictions.parquet` take each column straight from its bits.
pub(super) struct Held {
    pub(super) people: People,
    pub(super) cohorts: Vec<(String, arrow_buffer::BooleanBuffer)>,
    pub(super) outcomes: Vec<(String, arrow_buffer::BooleanBuffer)>,
}

impl Held {
    pub(super) fn new(mut people: People) -> Held {
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
    pub(super) fn listed(&self) -> Listed {
        Listed {
            rows: self.people.rows.clone(),
            cohorts: self.cohorts.clone(),
            outcomes: self.outcomes.clone(),
        }
    }

    /// The people whole, a byte a person for each cohort and outcome.
    pub(super) fn people(&self) -> People {
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

/// A rule set's cohorts and scores for the evaluated people.
#[derive(Clone)]
pub(super) struct Predictions {
    pub(super) cohorts: Vec<(String, Vec<bool>)>,
    pub(super) scores: Vec<(String, Float64Array)>,
}

/// The evaluated people of `results` (in the population, no opt-out), as
/// rows of the population.
fn evaluated(results: &engine::Results) -> Vec<u32> {
    (0..results.alive.len())
        .filter(|&r| results.counted(r))
        .map(|r| r as u32)
        .collect()
}

/// The second rule set's predictions (its cohorts, and the `scores` asked
/// for) for the people at `rows` of its run, who must be the people the
/// first evaluated.
pub(super) fn compared(
    b: &Model,
    scores: &[String],
    results: &engine::Results,
    rows: &[u32],
) -> Result<Predictions> {
    if evaluated(results) != rows {
        return Err(Error::usage(
            "the compared rule files evaluate other people (their [population] differs)",
        )
        .with_help("compare rule files that read the population the same way"));
    }
    predictions(b, results, rows, scores)
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

/// One date's evaluated people, from the run and outcomes of that date,
/// with the `scores` asked for.
pub(super) fn people(model: &Model, scores: &[String], dated: engine::Dated) -> Result<People> {
    let engine::Dated { results, outcomes } = dated;
    let keep = evaluated(&results);
    let indices = arrow_array::UInt32Array::from(keep.clone());
    let take = |a: &ArrayRef| {
        arrow_select::take::take(a, &indices, None)
            .map_err(|e| Error::Internal(format!("selecting the evaluated people: {e}")))
    };
    let population_ids = results.plan.population.column("person_id").clone();
    let Predictions { cohorts, scores } = predictions(model, &results, &keep, scores)?;
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
        ("age_band", Groups::age_bands(ages)),
        ("sex", sex),
        ("pcn", pcn.clone()),
    ];
    // The deprivation quintile, where the rule files read the decile.
    if let Some(i) = results.plan.attributes.iter().position(|a| a == IMD_DECILE) {
        let deciles = arrow_cast::cast(
            &take(&results.slots[crate::rules::typing::FIRST_ATTRIBUTE_SLOT + i])?,
            &DataType::Float64,
        )
        .map_err(|e| Error::Internal(format!("reading the IMD decile: {e}")))?;
        let deciles = deciles.as_primitive::<arrow_array::types::Float64Type>();
        groups.insert(0, ("imd_quintile", Groups::imd_quintiles(deciles)));
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
