//! Outcomes: what happened to each person after the as-of date, for
//! `strata evaluate` (and assurance tests that expect them).
//!
//! An outcome is an aggregate over a forward window: `next 365 days` keeps
//! events with `as_of < date <= as_of + 365 days`. Events on the as-of date
//! itself were known when the list was made and are not outcomes. The
//! engine computes outcomes in the same scan as the features, for every
//! as-of date at once ([`super::run_dates`]); this module names them and
//! places their windows.

use std::path::Path;

use chrono::NaiveDate;

use crate::dates::{self, Day, Window};
use crate::error::{Error, Result};
use crate::rules::{Feature, FeatureKind, Model};

/// The outcomes of `model` named in `names`, in that order, each with its
/// forward window; a name the rule files do not define is a usage error.
pub fn windows(model: &Model, names: &[String]) -> Result<Vec<(Feature, Window)>> {
    names
        .iter()
        .map(|name| {
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
            let FeatureKind::Aggregate { window, .. } = &outcome.kind else {
                unreachable!("outcomes are aggregates (checked when reading)");
            };
            Ok((outcome.clone(), *window))
        })
        .collect()
}

/// The last day any of `outcomes` looks at from `as_of` (`as_of` itself
/// when there are none); an error when a window runs off the calendar.
pub fn last_day(outcomes: &[(Feature, Window)], as_of: NaiveDate) -> Result<NaiveDate> {
    outcomes.iter().try_fold(as_of, |last, (f, window)| {
        let end = window.forward_end(as_of).ok_or_else(|| {
            Error::usage(format!(
                "outcome `{}`'s window runs beyond the calendar from {as_of}",
                f.name
            ))
        })?;
        Ok(last.max(end))
    })
}

/// The last day of `window` forward from `as_of`, as a day number (checked
/// by [`last_day`] first).
pub fn window_end(window: &Window, as_of: NaiveDate) -> Day {
    dates::to_day(
        window
            .forward_end(as_of)
            .expect("checked by last_day: the window stays in the calendar"),
    )
}

/// Refuses outcome windows that run past the data: an outcome after the
/// extract ends would be counted as not having happened.
pub fn check_data_reaches(
    model: &Model,
    data: &Path,
    from: NaiveDate,
    end: NaiveDate,
) -> Result<()> {
    crate::input::data_folder(data)?;
    let Some(latest) = latest_event(model, data)? else {
        return Err(Error::usage(format!(
            "the tables the rule files read in {} hold no dated events",
            data.display()
        ))
        .with_help("check --data: it must be the folder of the extract, with its event tables"));
    };
    if latest < end {
        return Err(Error::usage(format!(
            "the outcomes' windows from {from} end as late as {end}, but the data's events end on {latest}: outcomes after that are unknown, and would be counted as not having happened"
        ))
        .with_help("evaluate from earlier --as-of dates (a year before the extract ends, for outcomes in the next 365 days)"));
    }
    Ok(())
}

/// The latest event date in any table the rule files name: where the
/// extract ends (a table of deaths alone may end earlier, in a quiet week).
fn latest_event(model: &Model, data: &Path) -> Result<Option<NaiveDate>> {
    let mut latest: Option<Day> = None;
    for s in &model.sources {
        if let Some(table) = crate::input::Table::find(data, &s.table)?
            && let Some(d) = table.max_date(&s.date)?
        {
            latest = Some(latest.map_or(d, |l| l.max(d)));
        }
    }
    Ok(latest.and_then(dates::from_day))
}
