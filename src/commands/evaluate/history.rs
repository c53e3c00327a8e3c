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
use crate::rules::{Feature, FeatureKind, Model};

/// What an evaluation reads: the features its figures need (their
/// aggregates' sources and windows) and its outcomes' sources.
pub(super) struct Read<'m> {
    /// (source, feature, window) of each aggregate feature needed, but for
    /// those of the population table (deaths: no history to speak of).
    features: Vec<(usize, &'m str, Window)>,
    outcome_sources: Vec<usize>,
}

impl<'m> Read<'m> {
    pub(super) fn new(
        model: &'m Model,
        reading: &[String],
        outcomes: &[(Feature, Window)],
    ) -> Read<'m> {
        let needed = model.features_needed(reading);
        let source_of = |f: &Feature| match &f.kind {
            FeatureKind::Aggregate { source, window, .. } => Some((*source, *window)),
            _ => None,
        };
        let features = model
            .features
            .iter()
            .zip(&needed)
            .filter(|&(_, &needed)| needed)
            .filter_map(|(f, _)| source_of(f).map(|(s, w)| (s, f.name.as_str(), w)))
            .filter(|&(s, _, _)| model.sources[s].table != model.population.table)
            .collect();
        let outcome_sources = outcomes
            .iter()
            .filter_map(|(f, _)| source_of(f).map(|(s, _)| s))
            .collect();
        Read {
            features,
            outcome_sources,
        }
    }

    /// Which of the model's sources are read.
    pub(super) fn sources(&self, model: &Model) -> Vec<bool> {
        let mut read = vec![false; model.sources.len()];
        for &s in self
            .features
            .iter()
            .map(|(s, _, _)| s)
            .chain(&self.outcome_sources)
        {
            read[s] = true;
        }
        read
    }
}

/// Per date, the features the figures read whose window starts before their
/// table's first event (by more than [`TABLE_END_SLACK_DAYS`], a small
/// table's quiet first days), and where each table read (by a feature or
/// an outcome) begins and ends ([`Span`], stray dates passed over): the
/// history a feature with no window start (`ever`) has.
pub(super) fn look_back(
    model: &Model,
    spans: &[Option<Span>],
    dates_: &[NaiveDate],
    read: &Read,
) -> serde_json::Value {
    let date = |d: Day| dates::from_day(d).map_or(d.to_string(), |d| d.to_string());
    let per_date: Vec<serde_json::Value> = dates_
        .iter()
        .map(|&as_of| {
            let cut: Vec<serde_json::Value> = read
                .features
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
    // Each table and date column read once (the measures share
    // `observations`), the features' first, then the outcomes'.
    let mut tables: Vec<(&str, &str, Option<Span>)> = Vec::new();
    for &source in read
        .features
        .iter()
        .map(|(s, _, _)| s)
        .chain(&read.outcome_sources)
    {
        let s = &model.sources[source];
        if !tables.iter().any(|(t, d, _)| *t == s.table && *d == s.date) {
            tables.push((&s.table, &s.date, spans[source]));
        }
    }
    let tables: Vec<serde_json::Value> = tables
        .into_iter()
        .map(|(table, column, span)| {
            json!({
                "table": table,
                "date": column,
                "first_event": span.map(|s| date(s.from)),
                "last_event": span.map(|s| date(s.to)),
                "stray_dates_passed_over": span.map_or(0, |s| s.strays),
            })
        })
        .collect();
    json!({"tables": tables, "dates": per_date})
}
