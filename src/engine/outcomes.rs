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
use crate::input::table::Span;
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

/// The [`Span`] of the table of each of `model`'s sources that `read`
/// marks (`None` where the table is absent or holds no event, and for the
/// sources not read): dates before 1900, placeholders (`missing_dates`)
/// and dates after `today` (a mistyped year) are no event's, and stray
/// dates are passed over. A table read by several sources alike is read
/// once.
pub fn spans(
    model: &Model,
    data: &Path,
    read: &[bool],
    today: NaiveDate,
) -> Result<Vec<Option<Span>>> {
    crate::input::data_folder(data)?;
    // A day of slack after today: an extract made just after midnight, on
    // a machine that keeps UTC.
    let within = dates::FIRST_PLAUSIBLE_DAY..=dates::to_day(today) + 1;
    let mut spans: Vec<Option<Span>> = Vec::with_capacity(model.sources.len());
    for (i, s) in model.sources.iter().enumerate() {
        let same = model.sources[..i].iter().zip(read).position(|(o, &r)| {
            r && o.table == s.table && o.date == s.date && o.missing_dates == s.missing_dates
        });
        let span = match same {
            _ if !read[i] => None,
            Some(j) => spans[j],
            None => match crate::input::Table::find(data, &s.table)? {
                Some(t) => t.span(&s.date, &s.missing_dates, within.clone())?,
                None => None,
            },
        };
        spans.push(span);
    }
    Ok(spans)
}

/// Refuses outcome windows the data do not cover; returns where the data
/// end. They end on the last event of any table the rule files read
/// ([`spans`]: a table of deaths alone may end earlier, in a quiet week):
/// an outcome after that would be counted as not having happened. An
/// outcome counted from an event table also needs that table itself to
/// cover its windows, within [`TABLE_END_SLACK_DAYS`] at either end: one
/// table fed later than the others would halve an outcome's events without
/// a word, and one that begins after the first window starts would miss
/// its first months.
pub fn check_data_reaches(
    model: &Model,
    data: &Path,
    spans: &[Option<Span>],
    outcomes: &[(Feature, Window)],
    as_of: &[NaiveDate],
) -> Result<Option<NaiveDate>> {
    let (Some(&first), Some(&last)) = (as_of.iter().min(), as_of.iter().max()) else {
        return Ok(None);
    };
    let Some(data_end) = spans.iter().flatten().map(|s| s.to).max() else {
        return Err(Error::usage(
            "the tables the rule files read hold no dated events".to_string(),
        )
        .with_help("check --data: it must be the folder of the extract, with its event tables"));
    };
    let date = |d: Day| dates::from_day(d).map_or(d.to_string(), |d| d.to_string());
    let help = "evaluate from --as-of dates whose windows the data cover (a year before the extract ends, for outcomes in the next 365 days); placeholder dates belong in the source's `missing_dates`";
    for (outcome, window) in outcomes {
        let end = window_end(window, last);
        if data_end < end {
            return Err(Error::usage(format!(
                "outcome `{}`'s windows from {first} end as late as {}, but the data's events end on {}: outcomes after that are unknown, and would be counted as not having happened",
                outcome.name,
                date(end),
                date(data_end)
            ))
            .with_help(help));
        }
        let FeatureKind::Aggregate { source, .. } = &outcome.kind else {
            continue;
        };
        let s = &model.sources[*source];
        if s.table == model.population.table {
            continue;
        }
        let start = dates::to_day(first) + 1;
        // Named by where it was found, when it is refused.
        let table = || -> Result<String> {
            Ok(crate::input::Table::find(data, &s.table)?
                .map_or_else(|| s.table.clone(), |t| t.location.display().to_string()))
        };
        let cut = match spans[*source] {
            None => Some(format!("{} holds no dated events", table()?)),
            Some(own) if own.to + TABLE_END_SLACK_DAYS < end => Some(format!(
                "{}'s {} end on {}, though other tables reach {} and the windows end as late as {}",
                table()?,
                s.date,
                date(own.to),
                date(data_end),
                date(end)
            )),
            Some(own) if own.from > start + TABLE_END_SLACK_DAYS => Some(format!(
                "{}'s {} begin on {}, with few or no events before, after the first window begins ({})",
                table()?,
                s.date,
                date(own.from),
                date(start)
            )),
            Some(_) => None,
        };
        if let Some(cut) = cut {
            return Err(Error::usage(format!(
                "outcome `{}` is counted from a table that does not cover its windows from {first}: {cut}; outcomes outside what it covers would be counted as not having happened",
                outcome.name
            ))
            .with_help(format!("{help}; or check that table's extract (a late feed?)")));
        }
    }
    Ok(dates::from_day(data_end))
}
