//! How much history each as-of date has behind it. A feature's window that
//! reaches back before its table's first event is cut short: on an early
//! as-of date its counts are lower for want of data, not of events, and a
//! list made from it grows over a series of dates as the history grows
//! (which the lists followed between dates would read as people joining).
//! The evaluation says so, per date, rather than leaving it to be found.

use chrono::NaiveDate;
use serde_json::json;

use crate::dates::{self, Day, Window};
use crate::engine::outcomes::TABLE_END_SLACK_DAYS;
use crate::input::table::Span;
use crate::rules::{FeatureKind, Model};

/// Per date, the features the figures read whose window starts before their
/// table's first event (by more than [`TABLE_END_SLACK_DAYS`], a small
/// table's quiet first days), and where each table they read begins and
/// ends ([`Span`], stray dates passed over): the history a feature with no
/// window start (`ever`) has.
pub(super) fn look_back(
    model: &Model,
    spans: &[Option<Span>],
    dates_: &[NaiveDate],
    reading: &[String],
) -> serde_json::Value {
    let needed = model.features_needed(reading);
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
        // Deaths: no history to speak of.
        if model.sources[*source].table != model.population.table {
            read.push((*source, f.name.as_str(), *window));
        }
    }
    let date = |d: Day| dates::from_day(d).map_or(d.to_string(), |d| d.to_string());
    let per_date: Vec<serde_json::Value> = dates_
        .iter()
        .map(|&as_of| {
            let cut: Vec<serde_json::Value> = read
                .iter()
                .filter_map(|&(source, name, window)| {
                    let data_from = spans[source]?.from;
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
    // Each table the features read once (the measures share
    // `observations`).
    let mut tables: Vec<(&str, Option<Span>)> = Vec::new();
    for &(source, _, _) in &read {
        let table = model.sources[source].table.as_str();
        if !tables.iter().any(|(t, _)| *t == table) {
            tables.push((table, spans[source]));
        }
    }
    let tables: Vec<serde_json::Value> = tables
        .into_iter()
        .map(|(table, span)| {
            json!({
                "table": table,
                "first_event": span.map(|s| date(s.from)),
                "last_event": span.map(|s| date(s.to)),
                "stray_dates_passed_over": span.map_or(0, |s| s.strays),
            })
        })
        .collect();
    json!({"tables": tables, "dates": per_date})
}
