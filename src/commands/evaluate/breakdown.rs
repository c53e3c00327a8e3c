//! Figures by group (IMD quintile, age band, sex, PCN): each cohort's PPV
//! and sensitivity and each score's AUROC within every group, and the
//! largest gap between groups for each.
//!
//! Who is in which group, on which lists and where in each score's ranking
//! (with their scores) does not change with the outcome, so [`Split`]
//! works it out once per date and grouping, not once per date and outcome.
//! Each outcome then costs, per grouping, one pass over the people for
//! every [`MOST_COHORTS_PER_PASS`] cohorts (counting them into cells by
//! group, lists and outcome) and a read of each group's outcomes in each
//! score's ranked order. The breakdowns are under a tenth of the CPU of an
//! evaluation over 12 dates, most of it those ranked reads (outcomes at
//! random places) and the AUROC.

use serde_json::json;

use super::metrics::auroc_ranked;
use super::{Groups, ListCounts, People, auroc_ci, ratio};
use crate::suppress::Suppression;

/// The most cohorts counted in one pass: a person's cell holds which of
/// them they are on as bits, so a pass has up to `(groups + 1) << 8`
/// cells. Fewer per pass where the cells would outnumber the people (a
/// grouping by PCN across a whole country).
const MOST_COHORTS_PER_PASS: usize = 8;

/// One grouping's people as its breakdown counts them, for every outcome
/// of a date.
pub(super) struct Split {
    /// The grouping's groups; people of no known group are in one more,
    /// never reported.
    groups: usize,
    /// Per pass: how many cohorts it counts (k), and each person's cell,
    /// `(group << k) | lists`, where `lists` has bit j set for the person
    /// on the pass's j-th cohort.
    passes: Vec<(usize, Vec<u32>)>,
    /// Per score, its scored people of known group.
    ranked: Vec<Ranked>,
}

/// A score's ranking split by group: each group's people lowest score
/// first, ties in person order (as the ranking has them).
struct Ranked {
    /// Where each group's people start in `who`: one entry more than the
    /// groups, the last where the last group ends.
    starts: Vec<usize>,
    /// The people, as indices into the date's evaluated people.
    who: Vec<u32>,
    /// Their scores, in the same order (read once per date, not once per
    /// outcome).
    values: Vec<f64>,
}

impl Split {
    pub(super) fn new(people: &People, groups: &Groups) -> Split {
        let n = groups.names.len();
        assert!(n < 1 << (32 - MOST_COHORTS_PER_PASS), "{n} groups");
        let group = |i: usize| groups.get(i).unwrap_or(n as u32);
        let per_pass = (1..=MOST_COHORTS_PER_PASS)
            .rev()
            .find(|k| (n + 1) << k <= groups.len())
            .unwrap_or(1);
        let passes = if people.cohorts.is_empty() {
            // One pass with no cohorts, for everyone's counts.
            vec![(0, (0..groups.len()).map(group).collect())]
        } else {
            people
                .cohorts
                .chunks(per_pass)
                .map(|pass| {
                    let mut cells: Vec<u32> =
                        (0..groups.len()).map(|i| group(i) << pass.len()).collect();
                    // A cohort at a time: each a pass in order over the
                    // people (that the compiler does several at once).
                    for (j, (_, on)) in pass.iter().enumerate() {
                        for (cell, &on) in cells.iter_mut().zip(on) {
                            *cell |= u32::from(on) << j;
                        }
                    }
                    (pass.len(), cells)
                })
                .collect()
        };
        let ranked = people
            .rankings
            .iter()
            .zip(&people.scores)
            .map(|(ranking, (_, of_score))| {
                let known = || {
                    ranking
                        .ascending
                        .iter()
                        .filter_map(|&i| Some((groups.get(i as usize)? as usize, i)))
                };
                let mut starts = vec![0; n + 1];
                for (g, _) in known() {
                    starts[g + 1] += 1;
                }
                for g in 1..starts.len() {
                    starts[g] += starts[g - 1];
                }
                let (mut next, mut who) = (starts.clone(), vec![0; starts[n]]);
                for (g, i) in known() {
                    who[next[g]] = i;
                    next[g] += 1;
                }
                let values = who.iter().map(|&i| of_score.value(i as usize)).collect();
                Ranked {
                    starts,
                    who,
                    values,
                }
            })
            .collect();
        Split {
            groups: n,
            passes,
            ranked,
        }
    }

    /// Each cohort's counts in each group, and everyone's (as if on no
    /// list), for one outcome.
    fn counts(&self, happened: &[bool]) -> (Vec<Vec<ListCounts>>, Vec<ListCounts>) {
        let groups = self.groups;
        let mut cohorts = Vec::new();
        let mut everyone = vec![ListCounts::default(); groups];
        for (pass, (k, cells)) in self.passes.iter().enumerate() {
            // People in each cell without and with the outcome.
            let mut tally = vec![[0u64; 2]; (groups + 1) << k];
            assert_eq!(cells.len(), happened.len(), "one cell per person");
            for (&cell, &h) in cells.iter().zip(happened) {
                tally[cell as usize][usize::from(h)] += 1;
            }
            let mut counts = vec![vec![ListCounts::default(); groups]; *k];
            // The cells of known groups only.
            for (cell, &[without, with]) in tally.iter().enumerate().take(groups << k) {
                let (g, lists) = (cell >> k, cell & ((1 << k) - 1));
                let add = |c: &mut ListCounts, on_list: bool| {
                    c.n += without + with;
                    c.events += with;
                    if on_list {
                        c.size += without + with;
                        c.caught += with;
                    }
                };
                if pass == 0 {
                    add(&mut everyone[g], false);
                }
                for (j, cohort) in counts.iter_mut().enumerate() {
                    add(&mut cohort[g], (lists >> j) & 1 == 1);
                }
            }
            cohorts.extend(counts);
        }
        (cohorts, everyone)
    }
}

/// The figures by group (PPV and sensitivity of each cohort, AUROC of each
/// score), with the largest gap between groups for each.
pub(super) fn breakdown(
    s: Suppression,
    people: &People,
    happened: &[bool],
    groups: &Groups,
    split: &Split,
) -> serde_json::Value {
    let mut rows = Vec::new();
    // (figure, group, value) for the gaps.
    let mut values: Vec<(String, String, f64)> = Vec::new();
    let (cohort_counts, everyone) = split.counts(happened);
    for (g, name) in groups.names.iter().enumerate() {
        let ListCounts { n, events, .. } = everyone[g];
        let mut cohorts = Vec::new();
        for ((cohort, _), counts) in people.cohorts.iter().zip(&cohort_counts) {
            let f = counts[g].figures(s);
            for key in ["ppv", "sensitivity"] {
                if let Some(v) = f[key].as_f64() {
                    values.push((format!("cohort {cohort} {key}"), name.clone(), v));
                }
            }
            cohorts.push(json!({
                "cohort": cohort,
                "on_list": f["on_list"],
                "ppv": f["ppv"],
                "ppv_95ci": f["ppv_95ci"],
                "sensitivity": f["sensitivity"],
                "sensitivity_95ci": f["sensitivity_95ci"],
            }));
        }
        let mut scores = Vec::new();
        for ((score, _), ranked) in people.scores.iter().zip(&split.ranked) {
            let group = ranked.starts[g]..ranked.starts[g + 1];
            let scored: Vec<(f64, bool)> = ranked.who[group.clone()]
                .iter()
                .zip(&ranked.values[group])
                .map(|(&i, &v)| (v, happened[i as usize]))
                .collect();
            let positives = scored.iter().filter(|(_, h)| *h).count() as u64;
            let auroc = (!s.hides(positives) && !s.hides(scored.len() as u64 - positives))
                .then(|| auroc_ranked(&scored))
                .flatten();
            if let Some((a, _)) = auroc {
                values.push((format!("score {score} auroc"), name.clone(), a));
            }
            scores.push(json!({
                "score": score,
                "auroc": auroc.map(|(a, _)| a),
                "auroc_95ci": auroc.map(auroc_ci),
            }));
        }
        rows.push(json!({
            "group": name,
            "people": s.count(n),
            "with_outcome": s.count(events),
            "prevalence": ratio(s, events, n),
            "cohorts": cohorts,
            "scores": scores,
        }));
    }
    let mut figures: Vec<&String> = values.iter().map(|(f, _, _)| f).collect();
    figures.sort();
    figures.dedup();
    let gaps: Vec<serde_json::Value> = figures
        .into_iter()
        .filter_map(|figure| {
            let of_figure = values.iter().filter(|(f, _, _)| f == figure);
            let high = of_figure.clone().max_by(|a, b| a.2.total_cmp(&b.2))?;
            let low = of_figure.min_by(|a, b| a.2.total_cmp(&b.2))?;
            Some(json!({"figure": figure, "highest": high.1, "lowest": low.1, "gap": high.2 - low.2}))
        })
        .collect();
    let largest = gaps
        .iter()
        .max_by(|a, b| {
            a["gap"]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&b["gap"].as_f64().unwrap_or(0.0))
        })
        .cloned();
    json!({"groups": rows, "gaps": gaps, "largest_gap": largest})
}

#[cfg(test)]
mod tests {
    use super::super::{Groups, People, Ranking, list_figures};
    use super::*;
    use rand::{RngExt, SeedableRng};

    /// The counts by cells and the split rankings give each group what its
    /// own people give counted directly: with no cohorts, one, and several
    /// passes of up to 8 (and of fewer, where cells would outnumber
    /// people); two scores with ties and unscored people; people of no
    /// known group; a group in which nobody had the outcome.
    #[test]
    fn each_group_is_counted_as_its_own_people_are() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(11);
        let names = ["a", "b", "c", "d", "none happened"];
        let mut aurocs = 0;
        for (n, cohorts) in [(2000, 10), (2000, 8), (600, 10), (300, 1), (300, 0)] {
            let of: Vec<Option<&str>> = (0..n)
                .map(|_| (rng.random_range(0..10) > 0).then(|| names[rng.random_range(0..5)]))
                .collect();
            let groups = Groups::new(of.iter().copied());
            let cohorts: Vec<(String, Vec<bool>)> = (0..cohorts)
                .map(|c| {
                    let members = (0..n).map(|_| rng.random_range(0..4) == 0).collect();
                    (format!("c{c}"), members)
                })
                .collect();
            let scores: Vec<(String, arrow_array::Float64Array)> = (0..2)
                .map(|k| {
                    let values = (0..n)
                        .map(|_| {
                            (rng.random_range(0..8) > 0).then(|| rng.random_range(0..20) as f64)
                        })
                        .collect();
                    (format!("s{k}"), values)
                })
                .collect();
            let happened: Vec<bool> = (0..n)
                .map(|i| of[i] != Some("none happened") && rng.random_range(0..3) == 0)
                .collect();
            let people = People {
                rows: (0..n as u32).collect(),
                ids: std::sync::Arc::new(arrow_array::Int64Array::from_iter_values(0..n as i64)),
                rankings: scores.iter().map(|(_, v)| Ranking::new(v)).collect(),
                cohorts,
                scores,
                outcomes: vec![("o".into(), happened.clone())],
                counts: Vec::new(),
                pcn: groups.clone(),
                groups: vec![("g", groups.clone())],
                compared: None,
            };
            let s = Suppression::None;
            let split = Split::new(&people, &groups);
            let figures = breakdown(s, &people, &happened, &groups, &split);
            let rows = figures["groups"].as_array().unwrap();
            assert_eq!(rows.len(), names.len());
            for (g, row) in rows.iter().enumerate() {
                let name = row["group"].as_str().unwrap();
                let mine: Vec<usize> = (0..n).filter(|&i| of[i] == Some(name)).collect();
                let outcome: Vec<bool> = mine.iter().map(|&i| happened[i]).collect();
                let events = outcome.iter().filter(|&&h| h).count() as u64;
                assert_eq!(row["people"], s.count(mine.len() as u64));
                assert_eq!(row["with_outcome"], s.count(events));
                let prevalence = ratio(s, events, mine.len() as u64);
                assert_eq!(row["prevalence"].as_f64(), prevalence);
                let listed = row["cohorts"].as_array().unwrap();
                assert_eq!(listed.len(), people.cohorts.len());
                for ((cohort, members), figure) in people.cohorts.iter().zip(listed) {
                    let on: Vec<bool> = mine.iter().map(|&i| members[i]).collect();
                    let direct = list_figures(s, &on, &outcome);
                    for key in [
                        "on_list",
                        "ppv",
                        "ppv_95ci",
                        "sensitivity",
                        "sensitivity_95ci",
                    ] {
                        assert_eq!(figure[key], direct[key], "{name} {cohort} {key}");
                    }
                }
                for (((_, values), ranking), figure) in people
                    .scores
                    .iter()
                    .zip(&people.rankings)
                    .zip(row["scores"].as_array().unwrap())
                {
                    let ranked =
                        ranking.ranked(values, &happened, |i| groups.get(i) == Some(g as u32));
                    let direct = auroc_ranked(&ranked).map(|(a, _)| a);
                    assert_eq!(figure["auroc"].as_f64(), direct, "{name}");
                    assert_eq!(direct.is_none(), name == "none happened");
                    aurocs += usize::from(direct.is_some());
                }
            }
        }
        assert!(aurocs > 0);
    }
}
