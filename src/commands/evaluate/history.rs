//! How much history each as-of date has behind it. A feature's window that
//! reaches back before its table's first event is cut short: on an early
//! as-of date its counts are lower for want of data, not of events, and a
//! list made from it grows over a series of dates as the history grows
//! (which the lists followed between dates would read as people joining).
//! The evaluation says so, per date, rather than leaving it to be found.

use chrono::NaiveDate;
use serde_json::json;

use crate::dates::{self, Day, FIRST_PLAUSIBLE_DAY, Window};
use crate::engine::outcomes::TABLE_END_SLACK_DAYS;
use crate::error::Result;
use crate::rules::{FeatureKind, Model};

/// Per date, the features the figures read whose window starts before their
/// table's first event (by more than [`TABLE_END_SLACK_DAYS`], a small
/// table's quiet first days), and the first event date of each table they
/// read: the history a feature with no window start (`ever`) has.
pub(super) fn look_back(
    model: &Model,
    data: &std::path::Path,
    dates_: &[NaiveDate],
    reading: &[String],
) -> Result<serde_json::Value> {
    let needed = model.features_needed(reading);
    // Each source's first event, found once (from the Parquet statistics
    // where they serve).
    let mut first: Vec<Option<Option<Day>>> = vec![None; model.sources.len()];
    let mut read: Vec<(usize, &str, Window)> = Vec::new();
    for (f, _) in model
        .features
        .iter()
        .zip(&needed)
        .filter(|&(_, &needed)| needed)
    {
        let FeatureKind::Aggregate { source, window, .. } = &f.kind else {
            continue;
        };
        let s = &model.sources[*source];
        if s.table == model.population.table {
            // Deaths: no history to speak of.
            continue;
        }
        if first[*source].is_none() {
            let day = match crate::input::Table::find(data, &s.table)? {
                Some(t) => t.earliest_date(&s.date, &s.missing_dates, FIRST_PLAUSIBLE_DAY)?,
                None => None,
            };
            first[*source] = Some(day);
        }
        read.push((*source, f.name.as_str(), *window));
    }
    let date = |d: Day| dates::from_day(d).map_or(d.to_string(), |d| d.to_string());
    let per_date: Vec<serde_json::Value> = dates_
        .iter()
        .map(|&as_of| {
            let cut: Vec<serde_json::Value> = read
                .iter()
                .filter_map(|&(source, name, window)| {
                    let data_from = first[source].flatten()?;
                    // Events are kept strictly after the window's start.
                    let from = window.exclusive_start(as_of)? + 1;
                    (data_from > from + TABLE_END_SLACK_DAYS).then(|| {
                        json!({
                            "feature": name,
                            "window_from": date(from),
                            "source": model.sources[source].name,
                            "data_from": date(data_from),
                        })
                    })
                })
                .collect();
            if !cut.is_empty() {
                tracing::warn!(
                    "as of {as_of}, {} feature(s) the figures read look back before their table's first event ({}): their values are lower for want of data; evaluate from later dates, or extract more history",
                    cut.len(),
                    cut.iter()
                        .filter_map(|c| c["feature"].as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            json!({"as_of": as_of.to_string(), "windows_cut_short": cut})
        })
        .collect();
    // Each table once (the measures share `observations`), at its
    // earliest among the sources that read it.
    let mut tables: Vec<(&str, Option<Day>)> = Vec::new();
    for (i, day) in first.iter().enumerate() {
        let Some(day) = *day else { continue };
        let table = model.sources[i].table.as_str();
        match tables.iter_mut().find(|(t, _)| *t == table) {
            Some((_, d)) => *d = (*d).into_iter().chain(day).min(),
            None => tables.push((table, day)),
        }
    }
    let tables: Vec<serde_json::Value> = tables
        .into_iter()
        .map(|(table, day)| json!({"table": table, "first_event": day.map(date)}))
        .collect();
    Ok(json!({"tables": tables, "dates": per_date}))
}
