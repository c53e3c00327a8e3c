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

/// How many days before an outcome's window ends its own table may end
/// where another table reaches further: a small extract's quiet last days.
/// A table that ends earlier than that was cut short (a late feed).
pub const TABLE_END_SLACK_DAYS: i32 = 7;

/// Refuses outcome windows that run past the data: an outcome after the
/// extract ends would be counted as not having happened. The extract ends
/// on the latest date of any table the rule files read (a table of deaths
/// alone may end earlier, in a quiet week); an outcome counted from an
/// event table also needs that table itself to reach the end of its
/// windows, within [`TABLE_END_SLACK_DAYS`] (one table fed later than the
/// others would halve an outcome's events without a word). Placeholder
/// dates (`missing_dates`) and dates after `today` (a mistyped year) are
/// no table's end.
pub fn check_data_reaches(
    model: &Model,
    data: &Path,
    outcomes: &[(Feature, Window)],
    as_of: &[NaiveDate],
    today: NaiveDate,
) -> Result<()> {
    crate::input::data_folder(data)?;
    let (Some(&first), Some(&last)) = (as_of.iter().min(), as_of.iter().max()) else {
        return Ok(());
    };
    // Each source's table's end (a day of slack after today: an extract
    // made just after midnight, on a machine that keeps UTC).
    let until = dates::to_day(today) + 1;
    let mut ends: Vec<(Option<Day>, Option<crate::input::Table>)> = Vec::new();
    for s in &model.sources {
        let table = crate::input::Table::find(data, &s.table)?;
        let end = match &table {
            Some(t) => t.latest_date(&s.date, &s.missing_dates, until)?,
            None => None,
        };
        ends.push((end, table));
    }
    let Some(extract_end) = ends.iter().filter_map(|(d, _)| *d).max() else {
        return Err(Error::usage(format!(
            "the tables the rule files read in {} hold no dated events",
            data.display()
        ))
        .with_help("check --data: it must be the folder of the extract, with its event tables"));
    };
    let date = |d: Day| dates::from_day(d).map_or(d.to_string(), |d| d.to_string());
    for (outcome, window) in outcomes {
        let end = window_end(window, last);
        if extract_end < end {
            return Err(Error::usage(format!(
                "outcome `{}`'s windows from {first} end as late as {}, but the data's events end on {}: outcomes after that are unknown, and would be counted as not having happened",
                outcome.name,
                date(end),
                date(extract_end)
            ))
            .with_help("evaluate from earlier --as-of dates (a year before the extract ends, for outcomes in the next 365 days)"));
        }
        let FeatureKind::Aggregate { source, .. } = &outcome.kind else {
            continue;
        };
        let s = &model.sources[*source];
        if s.table == model.population.table {
            continue;
        }
        if let (own, Some(table)) = &ends[*source]
            && own.is_none_or(|own| own + TABLE_END_SLACK_DAYS < end)
        {
            return Err(Error::usage(format!(
                "outcome `{}` is counted from {} (`{}`), whose {} end on {}, though other tables reach {} and the outcome's windows from {first} end as late as {}: that table looks cut short, and outcomes after its end would be counted as not having happened",
                outcome.name,
                table.location.display(),
                s.table,
                s.date,
                own.map_or("no date".to_string(), date),
                date(extract_end),
                date(end)
            ))
            .with_help(format!(
                "check that table's extract (a late feed?), or evaluate from --as-of dates whose windows end by its last date; placeholder dates belong in the source's `missing_dates`, and dates after today ({today}) are passed over"
            )));
        }
    }
    Ok(())
}
