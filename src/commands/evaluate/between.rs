//! The lists followed between as-of dates, in `evaluation.json`: from
//! each date to the next (and a year on, where the dates have it), who
//! stayed on each cohort's list, left it and joined it, and how often the
//! outcome came to those already listed against those newly listed. Read
//! from what each date keeps once its figures are made ([`Listed`]).

use arrow_buffer::BooleanBuffer;
use chrono::NaiveDate;
use rayon::prelude::*;
use serde_json::json;

use super::lists::{ListCounts, ratio};
use super::people::Listed;
use crate::suppress::Suppression;

/// The lists followed from each date to the next, and to the date a year
/// later where the series has it (a quarterly series' HIU list a year on:
/// how much of it regressed to the mean).
pub(super) fn between_dates(
    s: Suppression,
    dates: &[NaiveDate],
    listed: &[&Listed],
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
        .map(|&(i, j)| persistence(s, dates[i], listed[i], dates[j], listed[j]))
        .collect()
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
    let people = later.rows.len();
    let cohorts: Vec<serde_json::Value> = later
        .cohorts
        .iter()
        .filter_map(|(name, now)| {
            let (_, before) = earlier.cohorts.iter().find(|(n, _)| n == name)?;
            // Each later person on the earlier list; then who stayed and
            // who joined, a word of 64 persons at a time.
            let was = BooleanBuffer::collect_bool(people, |i| {
                in_earlier[i].is_some_and(|e| before.value(e))
            });
            let stayed = now & &was;
            let joined = now & &!&was;
            let listed_before = before.count_set_bits() as u64;
            let outcomes: Vec<serde_json::Value> = later
                .outcomes
                .iter()
                .map(|(outcome, happened)| {
                    // The list's people already on the earlier list, and
                    // those new to it, each as a list of everyone.
                    let events = happened.count_set_bits() as u64;
                    let counts = |listed: &BooleanBuffer| ListCounts {
                        n: people as u64,
                        events,
                        size: listed.count_set_bits() as u64,
                        caught: (listed & happened).count_set_bits() as u64,
                    };
                    json!({
                        "outcome": outcome,
                        "ppv_already_listed": counts(&stayed).figures(s)["ppv"],
                        "ppv_newly_listed": counts(&joined).figures(s)["ppv"],
                    })
                })
                .collect();
            let (stayed, joined, remained) = (
                stayed.count_set_bits() as u64,
                joined.count_set_bits() as u64,
                was.count_set_bits() as u64,
            );
            // Of those who left the list: who is no longer in the
            // population (died, deregistered), and who is but came off it.
            Some(json!({
                "cohort": name,
                "on_earlier_list": s.count(listed_before),
                "stayed": s.count(stayed),
                "left": s.count(listed_before.saturating_sub(stayed)),
                "left_the_population": s.count(listed_before.saturating_sub(remained)),
                "came_off_the_list": s.count(remained.saturating_sub(stayed)),
                "joined": s.count(joined),
                "still_listed": ratio(s, stayed, listed_before),
                "still_listed_of_those_still_in_population": ratio(s, stayed, remained),
                "outcomes": outcomes,
            }))
        })
        .collect();
    json!({"from": from.to_string(), "to": to.to_string(), "cohorts": cohorts})
}
