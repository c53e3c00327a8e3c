//! Counts of people in a run's cohorts and segments: exact, for strata's
//! own use, and as they may be shown, after small-number suppression.

use std::collections::BTreeMap;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use rayon::prelude::*;
use serde::Serialize;

use super::extracts::Delivered;
use super::suppress::Suppression;
use crate::engine::Results;
use crate::rules::FeatureKind;

/// Exact counts. Never written out as they are: see [`Counts::shown`].
#[derive(Debug, Clone)]
pub struct Counts {
    pub persons: u64,
    pub alive: u64,
    pub cohorts: Vec<CohortCount>,
    pub segments: Vec<SegmentCount>,
}

#[derive(Debug, Clone)]
pub struct CohortCount {
    pub name: String,
    pub title: String,
    pub members: u64,
    /// PCN -> members, for the PCNs that receive the cohort.
    pub by_pcn: BTreeMap<String, u64>,
    /// Members with no PCN code, delivered nowhere.
    pub without_pcn: u64,
}

#[derive(Debug, Clone)]
pub struct SegmentCount {
    /// The segmentation feature.
    pub feature: String,
    /// Segment name -> persons alive on the as-of date, in priority order,
    /// the default last.
    pub counts: Vec<(String, u64)>,
}

/// Counts as they may be shown: each one a string (`"*"` where hidden).
#[derive(Debug, Serialize)]
pub struct Shown {
    /// The suppression method, in words.
    pub suppression: &'static str,
    pub persons: String,
    pub alive: String,
    pub cohorts: Vec<ShownCohort>,
    pub segments: Vec<ShownSegmentation>,
}

#[derive(Debug, Serialize)]
pub struct ShownCohort {
    pub name: String,
    pub title: String,
    pub members: String,
    /// Members as a percentage of those alive; absent where either count is
    /// hidden.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent_of_alive: Option<String>,
    pub by_pcn: BTreeMap<String, String>,
    pub members_without_pcn: String,
}

#[derive(Debug, Serialize)]
pub struct ShownSegmentation {
    pub feature: String,
    pub counts: Vec<(String, String)>,
}

impl Counts {
    pub fn new(results: &Results, delivered: &Delivered) -> Counts {
        let model = results.plan.model;
        let cohorts = model
            .cohorts
            .iter()
            .zip(&results.cohorts)
            .map(|(c, r)| CohortCount {
                name: c.name.clone(),
                title: c.title.clone(),
                members: r
                    .members
                    .iter()
                    .filter(|&&m| results.counted(m as usize))
                    .count() as u64,
                by_pcn: delivered.counts.get(&c.name).cloned().unwrap_or_default(),
                without_pcn: delivered.without_pcn.get(&c.name).copied().unwrap_or(0),
            })
            .collect();
        Counts {
            persons: results.plan.population.len() as u64,
            alive: results.counted_total(),
            cohorts,
            segments: segment_counts(results),
        }
    }

    pub fn shown(&self, s: Suppression) -> Shown {
        Shown {
            suppression: s.method(),
            persons: s.count(self.persons),
            alive: s.count(self.alive),
            cohorts: self
                .cohorts
                .iter()
                .map(|c| ShownCohort {
                    name: c.name.clone(),
                    title: c.title.clone(),
                    members: s.count(c.members),
                    percent_of_alive: s.percent(c.members, self.alive),
                    by_pcn: c
                        .by_pcn
                        .iter()
                        .map(|(p, n)| (p.clone(), s.count(*n)))
                        .collect(),
                    members_without_pcn: s.count(c.without_pcn),
                })
                .collect(),
            segments: self
                .segments
                .iter()
                .map(|g| ShownSegmentation {
                    feature: g.feature.clone(),
                    counts: g
                        .counts
                        .iter()
                        .map(|(n, c)| (n.clone(), s.count(*c)))
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Alive persons per segment of every segmentation feature.
fn segment_counts(results: &Results) -> Vec<SegmentCount> {
    let model = results.plan.model;
    model
        .features
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let FeatureKind::Segments { segments, default } = &f.kind else {
                return None;
            };
            let column = results.feature(i).as_string::<i32>();
            let names: Vec<&str> = segments
                .iter()
                .map(|s| s.name.as_str())
                .chain(std::iter::once(default.as_str()))
                .collect();
            // Each name's count among those counted, by part in parallel.
            let counts = (0..column.len())
                .into_par_iter()
                .with_min_len(1 << 16)
                .fold(
                    || vec![0u64; names.len()],
                    |mut counts, row| {
                        if results.counted(row) && column.is_valid(row) {
                            let name = column.value(row);
                            if let Some(k) = names.iter().position(|n| *n == name) {
                                counts[k] += 1;
                            }
                        }
                        counts
                    },
                )
                .reduce(
                    || vec![0u64; names.len()],
                    |a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect(),
                );
            Some(SegmentCount {
                feature: f.name.clone(),
                counts: names.iter().map(|n| n.to_string()).zip(counts).collect(),
            })
        })
        .collect()
}
