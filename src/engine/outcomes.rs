//! Outcomes: what happened to each person after the as-of date, for
//! `strata evaluate`.
//!
//! An outcome is an aggregate over a forward window: `next 365 days` keeps
//! events with `as_of < date <= as_of + 365 days`. It is computed by the same
//! engine, run as of the window's last day with a window that starts
//! strictly after the prediction's as-of date ([`Window::After`]): events on
//! the as-of date itself were known when the list was made and are not
//! outcomes. One run per distinct window end, with only the outcomes.

use std::path::Path;

use arrow_array::ArrayRef;
use chrono::NaiveDate;

use crate::dates::Window;
use crate::error::{Error, Result};
use crate::rules::{Feature, FeatureKind, Model};

/// Each outcome of `model` named in `names`, per person (in the population's
/// order), as of `as_of`. With `whole_windows`, refuses windows that run
/// past the data's last event (assurance tests, whose data is only what
/// they write, go without).
pub fn compute(
    model: &Model,
    data: &Path,
    as_of: NaiveDate,
    names: &[String],
    whole_windows: bool,
    progress: &dyn super::Progress,
) -> Result<Vec<(String, ArrayRef)>> {
    // Grouped by the day their window ends: one run each.
    let mut by_end: std::collections::BTreeMap<NaiveDate, Vec<Feature>> = Default::default();
    for name in names {
        let outcome = model
            .outcomes
            .iter()
            .find(|o| &o.name == name)
            .ok_or_else(|| {
                Error::usage(format!(
                    "--outcome {name}: the rule files define no outcome `{name}`{}",
                    crate::rules::did_you_mean(
                        name,
                        model.outcomes.iter().map(|o| o.name.as_str())
                    )
                ))
                .with_help("name an [outcomes] entry of the rule files")
            })?;
        let mut outcome = outcome.clone();
        let FeatureKind::Aggregate { window, .. } = &mut outcome.kind else {
            unreachable!("outcomes are aggregates (checked when reading)");
        };
        let end = window.forward_end(as_of).ok_or_else(|| {
            Error::usage(format!(
                "outcome `{name}`'s window runs beyond the calendar from {as_of}"
            ))
        })?;
        *window = Window::After(as_of);
        by_end.entry(end).or_default().push(outcome);
    }
    // A window that runs past the data would count too few outcomes.
    if let Some((&end, _)) = by_end.iter().next_back().filter(|_| whole_windows) {
        let latest = latest_event(model, data)?;
        if latest.is_none_or(|l| l < end) {
            return Err(Error::usage(format!(
                "the outcomes' windows from {as_of} end on {end}, but the data's events end on {}: outcomes after that are unknown, and would be counted as not having happened",
                latest.map_or("no date".to_string(), |d| d.to_string())
            ))
            .with_help("evaluate from an earlier --as-of date (a year before the extract ends, for outcomes in the next 365 days)"));
        }
    }
    let mut columns: Vec<(String, ArrayRef)> = Vec::new();
    for (end, outcomes) in by_end {
        let mut run = model.clone();
        run.features = outcomes;
        run.derived_order = Vec::new();
        run.cohorts = Vec::new();
        run.outcomes = Vec::new();
        let results = super::run(&run, data, Some(end), progress)?;
        for (i, f) in run.features.iter().enumerate() {
            columns.push((f.name.clone(), results.feature(i).clone()));
        }
    }
    // In the order asked for.
    columns.sort_by_key(|(n, _)| names.iter().position(|x| x == n));
    Ok(columns)
}

/// The latest event date in any table the rule files name: where the
/// extract ends (a table of deaths alone may end earlier, in a quiet week).
fn latest_event(model: &Model, data: &Path) -> Result<Option<NaiveDate>> {
    let mut latest: Option<crate::dates::Day> = None;
    for s in &model.sources {
        if let Some(table) = crate::input::Table::find(data, &s.table)?
            && let Some(d) = table.max_date(&s.date)?
        {
            latest = Some(latest.map_or(d, |l| l.max(d)));
        }
    }
    Ok(latest.and_then(crate::dates::from_day))
}
