//! Figures by group (IMD quintile, age band, sex, PCN): each cohort's PPV
//! and sensitivity and each score's AUROC within every group, and the
//! largest gap between groups for each.
//!
//! Who is in which group, on which lists and where in each score's ranking
//! does not change with the outcome, so [`Split`] works it out once per
//! date and grouping, not once per date and outcome. Each outcome then
//! costs, per grouping, one pass over the people for every
//! [`MOST_COHORTS_PER_PASS`] cohorts (counting them into cells by group,
//! lists and outcome), and for each score two walks in order over its
//! ranking's groups, values and outcomes ([`Scored`]: the outcomes in
//! ranked order are read out of order once per outcome and score, and
//! every grouping reads them in order), with each group's AUROC made as it
//! goes ([`aurocs`]).

use serde_json::json;

use super::groups::Groups;
use super::lists::{ListCounts, ratio};
#[cfg(test)]
use super::metrics::auroc_ranked;
use super::metrics::{Components, auroc_shown};
use super::people::People;
use super::ranking::Ranking;
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
    /// Per score, the group of each place in its ranking (`groups` for
    /// people of no known group): read out of order once per date, then
    /// in order by every outcome.
    ranked: Vec<Vec<u32>>,
}

/// Each score's people in ranked order, as the figures of one outcome
/// read them: their values (made once per date) and outcomes.
pub(super) struct Scored<'a> {
    pub ordered: &'a [super::ranking::Ordered],
    pub outcomes: &'a [Vec<bool>],
}

impl Split {
    pub(super) fn new(people: &People, rankings: &[Ranking], groups: &Groups) -> Split {
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
        let ranked = rankings
            .iter()
            .map(|ranking| {
                ranking
                    .ascending
                    .iter()
                    .map(|&i| group(i as usize))
                    .collect()
            })
            .collect();
        Split {
            groups: n,
            passes,
            ranked,
        }
    }

    /// Each cohort's counts in each group, everyone's (as if on no list),
    /// and how many people are of no known group, for one outcome.
    fn counts(&self, happened: &[bool]) -> (Vec<Vec<ListCounts>>, Vec<ListCounts>, u64) {
        let groups = self.groups;
        let mut cohorts = Vec::new();
        let mut everyone = vec![ListCounts::default(); groups];
        let mut no_group = 0;
        for (pass, (k, cells)) in self.passes.iter().enumerate() {
            // People in each cell without and with the outcome.
            let mut tally = vec![[0u64; 2]; (groups + 1) << k];
            assert_eq!(cells.len(), happened.len(), "one cell per person");
            for (&cell, &h) in cells.iter().zip(happened) {
                tally[cell as usize][usize::from(h)] += 1;
            }
            if pass == 0 {
                no_group = tally[groups << k..].iter().map(|[a, b]| a + b).sum();
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
        (cohorts, everyone, no_group)
    }
}

/// Each group's AUROC and its standard error by one score (`None` where
/// suppression hides either side), from the group of each place in its
/// ranking (`of`; `groups` for no known group) and the values and
/// outcomes in ranked order: two walks over the ranking in order, each
/// group's ties given to its own [`Components`] as they end. The same
/// figures, to the last bit, as
/// [`auroc_ranked`](super::metrics::auroc_ranked) of each group's people.
fn aurocs(
    s: Suppression,
    groups: usize,
    of: &[u32],
    values: &[f64],
    outcomes: &[bool],
) -> Vec<Option<(f64, f64)>> {
    // People, and of them with the outcome, of each group.
    let mut counts = vec![(0usize, 0usize); groups + 1];
    for (&g, &h) in of.iter().zip(outcomes) {
        let c = &mut counts[g as usize];
        c.0 += 1;
        c.1 += usize::from(h);
    }
    let mut components: Vec<Components> = counts
        .iter()
        .map(|&(people, m)| Components::new(m, people - m))
        .collect();
    // Each group's current tie: its value, and people with and without
    // the outcome in it; a tie ends where the next value differs (as
    // ties are found in a ranked list: `==`, so each NaN stands alone).
    let mut ties: Vec<Option<(f64, usize, usize)>> = vec![None; groups + 1];
    for ((&g, &v), &h) in of.iter().zip(values).zip(outcomes) {
        let tie = &mut ties[g as usize];
        match tie {
            Some((value, pos, neg)) if *value == v => {
                *pos += usize::from(h);
                *neg += usize::from(!h);
            }
            _ => {
                if let Some((_, pos, neg)) = tie.replace((v, usize::from(h), usize::from(!h))) {
                    components[g as usize].tie(pos, neg);
                }
            }
        }
    }
    for (c, tie) in components.iter_mut().zip(ties) {
        if let Some((_, pos, neg)) = tie {
            c.tie(pos, neg);
        }
    }
    components
        .iter()
        .zip(counts)
        .take(groups)
        .map(|(c, (people, m))| {
            (!s.hides(m as u64) && !s.hides((people - m) as u64))
                .then(|| c.auroc())
                .flatten()
        })
        .collect()
}

/// The figures by group (PPV and sensitivity of each cohort, AUROC of each
/// score), with the largest gap between groups for each.
pub(super) fn breakdown(
    s: Suppression,
    people: &People,
    happened: &[bool],
    groups: &Groups,
    split: &Split,
    scored: &Scored,
) -> serde_json::Value {
    let mut rows = Vec::new();
    // (figure, group, value) for the gaps.
    let mut values: Vec<(String, String, f64)> = Vec::new();
    let (cohort_counts, everyone, no_group) = split.counts(happened);
    let aurocs: Vec<Vec<Option<(f64, f64)>>> = split
        .ranked
        .iter()
        .zip(scored.ordered.iter().zip(scored.outcomes))
        .map(|(of, (ordered, outcomes))| aurocs(s, split.groups, of, &ordered.values, outcomes))
        .collect();
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
        for ((score, _), aurocs) in people.scores.iter().zip(&aurocs) {
            // As shown: the gaps are worked out from what is shown.
            let auroc = aurocs[g].map(|a| auroc_shown(s, a));
            if let Some((a, _)) = auroc {
                values.push((format!("score {score} auroc"), name.clone(), a));
            }
            scores.push(json!({
                "score": score,
                "auroc": auroc.map(|(a, _)| a),
                "auroc_95ci": auroc.map(|(_, ci)| ci),
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
    json!({
        "groups": rows,
        "people_in_no_group": s.count(no_group),
        "gaps": gaps,
        "largest_gap": largest,
    })
}

#[cfg(test)]
mod tests {
    use super::super::groups::Groups;
    use super::super::lists::list_figures;
    use super::super::metrics::auroc_ci;
    use super::super::people::People;
    use super::super::ranking::{Ordered, Ranking};
    use super::*;
    use rand::{RngExt, SeedableRng};

    /// The counts by cells and the AUROCs made group by group in one walk
    /// give each group what its own people give directly (the AUROC and
    /// its interval to the last bit): with no cohorts, one, and several
    /// passes of up to 8 (and of fewer, where cells would outnumber
    /// people); two scores with ties (-0.0 with 0.0), NaNs and unscored
    /// people; people of no known group; a group in which nobody had the
    /// outcome.
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
                            // Ties, -0.0 tying with 0.0, and NaNs (each
                            // its own tie).
                            (rng.random_range(0..8) > 0).then(|| match rng.random_range(0..22) {
                                20 => -0.0,
                                21 => f64::NAN,
                                v => v as f64,
                            })
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
                population_ids: std::sync::Arc::new(arrow_array::Int64Array::from_iter_values(
                    0..n as i64,
                )),
                cohorts,
                scores,
                outcomes: vec![("o".into(), happened.clone())],
                counts: Vec::new(),
                pcn: groups.clone(),
                groups: vec![("g", groups.clone())],
                compared: None,
            };
            let s = Suppression::None;
            let rankings: Vec<Ranking> =
                people.scores.iter().map(|(_, v)| Ranking::new(v)).collect();
            let split = Split::new(&people, &rankings, &groups);
            let ordered: Vec<Ordered> = (people.scores.iter().zip(&rankings))
                .map(|((_, values), ranking)| Ordered::new(ranking, values, &people.pcn))
                .collect();
            let outcomes: Vec<Vec<bool>> = rankings.iter().map(|r| r.outcomes(&happened)).collect();
            let scored = Scored {
                ordered: &ordered,
                outcomes: &outcomes,
            };
            let figures = breakdown(s, &people, &happened, &groups, &split, &scored);
            let rows = figures["groups"].as_array().unwrap();
            assert_eq!(rows.len(), names.len());
            let no_group = of.iter().filter(|g| g.is_none()).count() as u64;
            assert!(no_group > 0);
            assert_eq!(figures["people_in_no_group"], s.count(no_group));
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
                    .zip(&rankings)
                    .zip(row["scores"].as_array().unwrap())
                {
                    let ranked =
                        ranking.ranked(values, &happened, |i| groups.get(i) == Some(g as u32));
                    let direct = auroc_ranked(&ranked);
                    assert_eq!(figure["auroc"].as_f64(), direct.map(|(a, _)| a), "{name}");
                    assert_eq!(figure["auroc_95ci"], json!(direct.map(auroc_ci)), "{name}");
                    assert_eq!(direct.is_none(), name == "none happened");
                    aurocs += usize::from(direct.is_some());
                }
            }
        }
        assert!(aurocs > 0);
    }
}
