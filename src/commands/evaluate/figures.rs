//! The figures of `evaluation.json`, worked out a date at a time: for each
//! outcome, each cohort as a list (PPV, sensitivity, specificity, lift),
//! each score's AUROC (DeLong's interval), calibration and top lists,
//! overall and per PCN, the share of a count outcome the lists hold, the
//! comparison with a second rule set. Counts are suppressed, and a ratio is
//! left out where a count it is made from would be.

use arrow_array::{Array, Float64Array};
use chrono::NaiveDate;
use rayon::prelude::*;
use serde_json::json;

use super::Request;
use super::breakdown::{Split, breakdown};
use super::groups::Groups;
use super::lists::{ListCounts, list_figures, ratio};
use super::metrics::{
    AUROC_PLACES, auroc_difference, auroc_ranked, auroc_shown, average_precision_ranked,
    curves_ranked,
};
use super::people::{Held, Listed, People, Predictions};
use super::ranking::{Ordered, Ranking, TOP, TOP_PER_PCN, top_size};
use crate::rules::Model;
use crate::suppress::Suppression;

/// Points drawn of each curve (ROC, precision-recall).
const CURVE_POINTS: usize = 101;

/// What is kept of a date once it is finished.
pub(super) struct Finished {
    /// Its figures, an entry for each outcome.
    pub(super) figures: Vec<serde_json::Value>,
    /// What the lists followed between dates need of it.
    pub(super) listed: Listed,
}

/// The figures of one date, an entry for each outcome.
pub(super) fn date_figures(
    model: &Model,
    request: &Request,
    as_of: NaiveDate,
    held: &Held,
) -> Vec<serde_json::Value> {
    // Fault injection for the test that a panic here leaves no file
    // behind; debug builds only (release builds compile it out).
    if cfg!(debug_assertions)
        && std::env::var_os("STRATA_INJECT_PANIC").is_some_and(|v| v == "figures")
    {
        panic!("injected panic in the figures");
    }
    // The figures of each outcome are independent: computed in parallel,
    // listed in order. What the breakdowns by group need is shared by
    // the outcomes.
    let people = &held.people();
    // Each score's ranking, made here rather than held with the date's
    // people from its scan.
    let rankings: Vec<Ranking> = people
        .scores
        .par_iter()
        .map(|(_, values)| Ranking::new(values))
        .collect();
    let (splits, ordered): (Vec<Split>, Vec<Ordered>) = rayon::join(
        || {
            people
                .groups
                .par_iter()
                .map(|(_, groups)| Split::new(people, &rankings, groups))
                .collect()
        },
        || {
            people
                .scores
                .par_iter()
                .zip(&rankings)
                .map(|((_, values), ranking)| Ordered::new(ranking, values, &people.pcn))
                .collect()
        },
    );
    let shared = Shared {
        people,
        rankings: &rankings,
        splits: &splits,
        ordered: &ordered,
    };
    people
        .outcomes
        .par_iter()
        .map(|(outcome, happened)| evaluate(model, request, &shared, outcome, happened, as_of))
        .collect()
}

/// What the figures of every outcome of one date share: the people, and
/// what is worked out of them once for all outcomes.
struct Shared<'a> {
    people: &'a People,
    /// Each score's [`Ranking`], in the order of `people.scores`.
    rankings: &'a [Ranking],
    /// Each grouping's [`Split`], in the order of `people.groups`.
    splits: &'a [Split],
    /// Each score's [`Ordered`], in the order of `people.scores`.
    ordered: &'a [Ordered],
}

/// The figures of one date and outcome.
fn evaluate(
    model: &Model,
    request: &Request,
    shared: &Shared,
    outcome: &str,
    happened: &[bool],
    as_of: NaiveDate,
) -> serde_json::Value {
    let people = shared.people;
    let s = request.suppression;
    let n = happened.len() as u64;
    let events = happened.iter().filter(|&&h| h).count() as u64;
    // For an outcome that is a count (admissions, bed days): how much of
    // it each list's people had.
    let counts = people
        .counts
        .iter()
        .find(|(n, _)| n == outcome)
        .map(|(_, c)| c);
    let total: u64 = counts.map_or(0, |c| counted(c).sum());
    let cohorts: Vec<serde_json::Value> = people
        .cohorts
        .iter()
        .map(|(name, members)| {
            let title = model
                .cohorts
                .iter()
                .find(|c| &c.name == name)
                .map(|c| c.title.clone());
            let events = counts.map(|c| {
                // Without branching on who is on the list (as `Share::of`).
                assert_eq!(c.len(), members.len(), "one value per person");
                let (mut on, mut people, mut with) = (0u64, 0u64, 0u64);
                for (v, &member) in counted(c).zip(members) {
                    let k = u64::from(member);
                    on += k * v;
                    people += k;
                    with += k * u64::from(v > 0);
                }
                // The events of a list of a few people are theirs.
                if s.hides(people) || s.hides(with) {
                    json!({"on_list": s.count(1), "all": s.count(total), "share": null})
                } else {
                    json!({"on_list": s.count(on), "all": s.count(total), "share": ratio(s, on, total)})
                }
            });
            json!({
                "cohort": name,
                "title": title,
                "as_list": list_figures(s, members, happened),
                "events": events,
            })
        })
        .collect();
    // Each score's people's outcomes in its ranked order: read out of
    // order once, for its figures and every group's.
    let ranked: Vec<Vec<bool>> = shared
        .rankings
        .iter()
        .map(|r| r.outcomes(happened))
        .collect();
    let scores: Vec<serde_json::Value> = people
        .scores
        .iter()
        .zip(shared.ordered.iter().zip(&ranked))
        .map(|((name, values), (ordered, outcomes))| {
            let mut figures = score_figures(s, name, ordered, outcomes, happened, &people.pcn);
            if request.probabilities.contains(name) {
                figures["calibration"] = calibration(s, values, happened);
            }
            figures
        })
        .collect();
    let groups: serde_json::Map<String, serde_json::Value> = people
        .groups
        .iter()
        .zip(shared.splits)
        .map(|((grouping, of), split)| {
            let scored = super::breakdown::Scored {
                ordered: shared.ordered,
                outcomes: &ranked,
            };
            (
                grouping.to_string(),
                breakdown(s, people, happened, of, split, &scored),
            )
        })
        .collect();
    json!({
        "as_of": as_of.to_string(),
        "outcome": outcome,
        "people": s.count(n),
        "with_outcome": s.count(events),
        "prevalence": ratio(s, events, n),
        "cohorts": cohorts,
        "scores": scores,
        "groups": groups,
        "comparison": people.compared.as_ref().map(|b| comparison(s, people, b, happened)),
        "share_of_whole": share_of_whole(model, s, people, outcome),
    })
}

/// For an outcome that is part of another (emergency admissions for
/// ambulatory-care-sensitive conditions, of all emergency admissions): the
/// part's share of the whole's events in the population, and on and off
/// each cohort's list. A list whose share is higher than the population's
/// picks people whose admissions are more often of the kind good primary
/// and community care can prevent.
fn share_of_whole(
    model: &Model,
    s: Suppression,
    people: &People,
    outcome: &str,
) -> Option<serde_json::Value> {
    let whole = model
        .outcomes
        .iter()
        .find(|o| o.name == outcome)?
        .part_of
        .as_ref()?;
    let counts = |name: &str| {
        people
            .counts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
    };
    let (part, of) = (counts(outcome)?, counts(whole)?);
    let everyone = Share::of(part, of, None);
    let cohorts: Vec<serde_json::Value> = people
        .cohorts
        .iter()
        .map(|(name, members)| {
            let on = Share::of(part, of, Some(members));
            let off = everyone.less(&on);
            // Off the list is everyone less the list: either side hidden
            // hides both, or one would give the other back.
            let hidden = on.hidden(s) || off.hidden(s);
            json!({
                "cohort": name,
                "on_list": on.figures(s, hidden),
                "off_list": off.figures(s, hidden),
            })
        })
        .collect();
    Some(json!({
        "of": whole,
        "population": everyone.figures(s, everyone.hidden(s)),
        "cohorts": cohorts,
    }))
}

/// A count outcome's values as the figures add them: none (null) and
/// anything below zero as 0. Read as they are added, not copied: the
/// figures of every date and outcome run in parallel.
fn counted(counts: &arrow_array::Int64Array) -> impl Iterator<Item = u64> + '_ {
    counts.iter().map(|v| v.unwrap_or(0).max(0) as u64)
}

/// A part outcome's events against its whole's, over some people.
struct Share {
    people: u64,
    /// People with at least one event of the part, and of the whole.
    with_part: u64,
    with_whole: u64,
    part: u64,
    whole: u64,
}

impl Share {
    /// Over everyone, or over the `members` of a list. Members are counted
    /// by multiplying by 0 or 1 rather than skipped, so the loop does not
    /// branch on who is on the list.
    fn of(
        part: &arrow_array::Int64Array,
        whole: &arrow_array::Int64Array,
        members: Option<&[bool]>,
    ) -> Share {
        let mut s = Share {
            people: 0,
            with_part: 0,
            with_whole: 0,
            part: 0,
            whole: 0,
        };
        for (i, (p, w)) in counted(part).zip(counted(whole)).enumerate() {
            let k = members.map_or(1, |m| u64::from(m[i]));
            s.people += k;
            s.with_part += k * u64::from(p > 0);
            s.with_whole += k * u64::from(w > 0);
            s.part += k * p;
            s.whole += k * w;
        }
        s
    }

    /// These people less `some` of them: everyone off a list is everyone
    /// less those on it, without a second pass.
    fn less(&self, some: &Share) -> Share {
        Share {
            people: self.people - some.people,
            with_part: self.with_part - some.with_part,
            with_whole: self.with_whole - some.with_whole,
            part: self.part - some.part,
            whole: self.whole - some.whole,
        }
    }

    /// Whether a count of people or events behind the figures would be
    /// suppressed (events of one or two people are theirs).
    fn hidden(&self, s: Suppression) -> bool {
        [
            self.people,
            self.with_part,
            self.with_whole,
            self.part,
            self.whole,
        ]
        .iter()
        .any(|&n| s.hides(n))
    }

    fn figures(&self, s: Suppression, hidden: bool) -> serde_json::Value {
        if hidden {
            // Shown as the method shows a small count.
            return json!({"events": s.count(1), "of_which_part": s.count(1), "share": null, "part_per_100_people": null});
        }
        json!({
            "events": s.count(self.whole),
            "of_which_part": s.count(self.part),
            "share": ratio(s, self.part, self.whole),
            // The part's events against the people: the work a service
            // would find, where the share is the make-up of admissions.
            "part_per_100_people": ratio(s, self.part, self.people).map(|r| 100.0 * r),
        })
    }
}

/// The second rule set beside the first: each cohort both define, each
/// score both have: figures, differences (second minus first) with 95%
/// confidence intervals, and who is on one list and not the other.
fn comparison(
    s: Suppression,
    people: &People,
    b: &Predictions,
    happened: &[bool],
) -> serde_json::Value {
    let z = 1.959964;
    let cohorts: Vec<serde_json::Value> = people
        .cohorts
        .iter()
        .filter_map(|(name, a)| {
            let (_, bb) = b.cohorts.iter().find(|(n, _)| n == name)?;
            let (fa, fb) = (list_figures(s, a, happened), list_figures(s, bb, happened));
            let count = |f: &dyn Fn(bool, bool) -> bool| {
                a.iter().zip(bb).filter(|&(&x, &y)| f(x, y)).count() as u64
            };
            let (only_a, only_b, both) = (
                count(&|x, y| x && !y),
                count(&|x, y| !x && y),
                count(&|x, y| x && y),
            );
            // Each difference and interval is worked out from the counts as
            // shown, as the figures are (an exact one gives them back).
            let shown_as = |n: u64| s.shown(n).map(|n| n as f64);
            // Sensitivity: the same people with the outcome, paired.
            let positives = happened.iter().filter(|&&h| h).count() as u64;
            let caught_only = |first: &[bool], second: &[bool]| {
                (0..happened.len())
                    .filter(|&i| happened[i] && first[i] && !second[i])
                    .count() as u64
            };
            let (x, y) = (caught_only(a, bb), caught_only(bb, a));
            let sensitivity = match (shown_as(positives), shown_as(x), shown_as(y)) {
                (Some(positives), Some(x), Some(y)) if positives > 0.0 => {
                    let d = (y - x) / positives;
                    let se = ((x + y) - (y - x).powi(2) / positives).max(0.0).sqrt() / positives;
                    Some((d, se))
                }
                _ => None,
            };
            // PPV: lists of other sizes; the unpaired (Wald) interval.
            let listed = |list: &[bool]| shown_as(list.iter().filter(|&&m| m).count() as u64);
            let ppv = fa["ppv"]
                .as_f64()
                .zip(fb["ppv"].as_f64())
                .and_then(|(pa, pb)| {
                    let (na, nb) = (listed(a)?, listed(bb)?);
                    Some((
                        pb - pa,
                        (pa * (1.0 - pa) / na + pb * (1.0 - pb) / nb).sqrt(),
                    ))
                });
            let shown = |d: Option<(f64, f64)>, hidden: bool| {
                d.filter(|_| !hidden)
                    .map(|(d, se)| json!({"difference": d, "ci95": [d - z * se, d + z * se]}))
            };
            // The interval gives back x and y, the outcomes only one list saw.
            let hidden = s.hides(only_a) || s.hides(only_b) || s.hides(x) || s.hides(y);
            Some(json!({
                "cohort": name,
                "first": fa,
                "second": fb,
                "only_first": s.count(only_a),
                "only_second": s.count(only_b),
                "both": s.count(both),
                "ppv": shown(ppv, fa["ppv"].is_null() || fb["ppv"].is_null()),
                // Either list's sensitivity hidden hides the difference:
                // with the other shown, it would give that one back.
                "sensitivity": shown(
                    sensitivity,
                    hidden || fa["sensitivity"].is_null() || fb["sensitivity"].is_null()
                ),
            }))
        })
        .collect();
    let scores: Vec<serde_json::Value> = people
        .scores
        .iter()
        .filter_map(|(name, a)| {
            let (_, bb) = b.scores.iter().find(|(n, _)| n == name)?;
            // People both score.
            let paired: Vec<(f64, f64, bool)> = (0..happened.len())
                .filter_map(|i| {
                    Some((
                        a.is_valid(i).then(|| a.value(i))?,
                        bb.is_valid(i).then(|| bb.value(i))?,
                        happened[i],
                    ))
                })
                .collect();
            let positives = paired.iter().filter(|p| p.2).count() as u64;
            let hidden = s.hides(positives) || s.hides(paired.len() as u64 - positives);
            let d = (!hidden).then(|| auroc_difference(&paired)).flatten();
            let shown = |v: f64| s.figure(v, AUROC_PLACES);
            Some(json!({
                "score": name,
                "scored_by_both": s.count(paired.len() as u64),
                "auroc_first": d.map(|d| shown(d.0)),
                "auroc_second": d.map(|d| shown(d.1)),
                "difference": d.map(|d| shown(d.1 - d.0)),
                "ci95": d.map(|d| [shown(d.1 - d.0 - z * d.2), shown(d.1 - d.0 + z * d.2)]),
            }))
        })
        .collect();
    json!({"cohorts": cohorts, "scores": scores})
}

/// A probability against what happened: by decile of the ranking (lowest
/// first; decile of the i-th of n is i * 10 / n), the mean predicted and the
/// observed share, and the Brier score (the mean squared difference).
fn calibration(s: Suppression, values: &Float64Array, happened: &[bool]) -> serde_json::Value {
    let mut scored: Vec<(f64, bool)> = values
        .iter()
        .zip(happened)
        .filter_map(|(v, &h)| v.map(|v| (v, h)))
        .collect();
    if scored.iter().any(|(p, _)| !(0.0..=1.0).contains(p)) {
        return json!({"error": "not a probability: some values are outside 0 to 1"});
    }
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = scored.len();
    let mut deciles = Vec::new();
    for d in 0..10 {
        let rows: Vec<&(f64, bool)> = (0..n)
            .filter(|&i| i * 10 / n.max(1) == d)
            .map(|i| &scored[i])
            .collect();
        let events = rows.iter().filter(|(_, h)| *h).count() as u64;
        let size = rows.len() as u64;
        let mean = (!rows.is_empty())
            .then(|| rows.iter().map(|(p, _)| p).sum::<f64>() / rows.len() as f64);
        deciles.push(json!({
            "decile": d + 1,
            "people": s.count(size),
            // A decile of a few people (fewer than about 80 scored): its
            // mean is theirs, shown only as a count of them would be.
            "mean_predicted": mean.filter(|_| !s.hides(size)).map(|m| s.figure(m, 3)),
            "observed": ratio(s, events, size),
        }));
    }
    let positives = scored.iter().filter(|(_, h)| *h).count() as u64;
    let brier = (n > 0 && !s.hides(positives) && !s.hides(n as u64 - positives)).then(|| {
        scored
            .iter()
            .map(|(p, h)| (p - if *h { 1.0 } else { 0.0 }).powi(2))
            .sum::<f64>()
            / n as f64
    });
    json!({"deciles": deciles, "brier": brier.map(|b| s.figure(b, 3))})
}

/// A score: AUROC and AUPRC over the people it scores, and its top
/// fractions and each PCN's first [`TOP_PER_PCN`] as lists (highest first,
/// ties by person order, as cohorts rank).
fn score_figures(
    s: Suppression,
    name: &str,
    ordered: &Ordered,
    outcomes: &[bool],
    happened: &[bool],
    pcn: &Groups,
) -> serde_json::Value {
    let scored: Vec<(f64, bool)> = ordered
        .values
        .iter()
        .copied()
        .zip(outcomes.iter().copied())
        .collect();
    let positives = outcomes.iter().filter(|&&h| h).count() as u64;
    let negatives = scored.len() as u64 - positives;
    let shown_auroc = (!s.hides(positives) && !s.hides(negatives))
        .then(|| auroc_ranked(&scored))
        .flatten()
        .map(|a| auroc_shown(s, a));
    // Every list is of the evaluated people, on it or not.
    let everyone = ListCounts {
        n: happened.len() as u64,
        events: happened.iter().filter(|&&h| h).count() as u64,
        ..ListCounts::default()
    };
    let listed = |list: &[u32]| ListCounts {
        size: list.len() as u64,
        caught: list.iter().filter(|&&i| happened[i as usize]).count() as u64,
        ..everyone
    };
    let top: Vec<serde_json::Value> = TOP
        .iter()
        .map(|&fraction| {
            let k = top_size(fraction, scored.len());
            json!({"top": fraction, "as_list": listed(&ordered.top[..k]).figures(s)})
        })
        .collect();
    let auprc = (!s.hides(positives) && !s.hides(negatives))
        .then(|| average_precision_ranked(&scored))
        .flatten();
    // Curves only where the figures themselves may be shown.
    let curves = (!s.hides(positives) && !s.hides(negatives))
        .then(|| curves_ranked(&scored, CURVE_POINTS, |n| s.shown(n)))
        .flatten();
    let points = |c: &[(f64, f64)]| c.iter().map(|&(x, y)| [x, y]).collect::<Vec<_>>();
    json!({
        "score": name,
        "scored": s.count(scored.len() as u64),
        "auroc": shown_auroc.map(|(a, _)| a),
        "auprc": auprc.map(|a| s.figure(a, AUROC_PLACES)),
        "roc": curves.as_ref().map(|(roc, _)| points(roc)),
        "precision_recall": curves.as_ref().map(|(_, pr)| points(pr)),
        "top_per_pcn": {
            "per_pcn": TOP_PER_PCN,
            "as_list": listed(&ordered.per_pcn).figures(s),
            "pcns": each_pcn(s, pcn, &ordered.per_pcn, happened),
        },
        "auroc_95ci": shown_auroc.map(|(_, ci)| ci),
        "top": top,
    })
}

/// Each PCN's own list among its own people: of the PCN's evaluated
/// people, who was on it and who had the outcome (a PCN lead's view:
/// sensitivity is of the PCN's outcomes).
fn each_pcn(
    s: Suppression,
    pcn: &Groups,
    listed: &[u32],
    happened: &[bool],
) -> Vec<serde_json::Value> {
    let mut counts = vec![ListCounts::default(); pcn.names.len()];
    for (g, &h) in pcn.iter().zip(happened) {
        if let Some(g) = g {
            counts[g as usize].add(false, h);
        }
    }
    for &i in listed {
        if let Some(g) = pcn.get(i as usize) {
            let c = &mut counts[g as usize];
            c.size += 1;
            c.caught += u64::from(happened[i as usize]);
        }
    }
    pcn.names
        .iter()
        .zip(counts)
        .map(|(name, c)| json!({"pcn": name, "as_list": c.figures(s)}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_off_the_list_is_everyone_less_the_list() {
        // Nulls and negatives count as none; people with none of the
        // part but some of the whole; a list of the first, middle, last.
        let part =
            arrow_array::Int64Array::from(vec![Some(1), None, Some(0), Some(3), Some(-2), Some(2)]);
        let whole =
            arrow_array::Int64Array::from(vec![Some(2), Some(4), None, Some(3), Some(1), Some(5)]);
        let members = [true, false, false, true, false, true];
        let off: Vec<bool> = members.iter().map(|m| !m).collect();
        let everyone = Share::of(&part, &whole, None);
        let on = Share::of(&part, &whole, Some(&members));
        let got = everyone.less(&on);
        let want = Share::of(&part, &whole, Some(&off));
        let fields = |s: &Share| (s.people, s.with_part, s.with_whole, s.part, s.whole);
        assert_eq!(fields(&on), (3, 3, 3, 6, 10));
        assert_eq!(fields(&got), fields(&want));
        assert_eq!(fields(&got), (3, 0, 2, 0, 5));
    }

    /// A difference of sensitivities is hidden where either list's is:
    /// beside the first's, it would give back the second's few caught.
    #[test]
    fn a_comparison_hides_a_difference_that_gives_back_a_hidden_sensitivity() {
        // 200 people, the first 100 with the outcome; the first list
        // holds 60 of them, the second 3.
        let n = 200;
        let happened: Vec<bool> = (0..n).map(|i| i < 100).collect();
        let first: Vec<bool> = (0..n).map(|i| i < 60).collect();
        let second: Vec<bool> = (0..n).map(|i| i < 3).collect();
        let ids: arrow_array::ArrayRef =
            std::sync::Arc::new(arrow_array::Int64Array::from_iter_values(0..n as i64));
        let people = People {
            rows: (0..n as u32).collect::<Vec<u32>>().into(),
            population_ids: ids,
            cohorts: vec![("c".into(), first)],
            scores: vec![],
            outcomes: vec![("o".into(), happened.clone())],
            counts: vec![],
            pcn: Groups::numbered(&["P"], std::iter::repeat_n(Some(0), n)),
            groups: vec![],
            compared: None,
        };
        let b = Predictions {
            cohorts: vec![("c".into(), second)],
            scores: vec![],
        };
        let shown = |s: Suppression| comparison(s, &people, &b, &happened)["cohorts"][0].clone();
        let c = shown(Suppression::Hes);
        assert_eq!(c["first"]["sensitivity"], 0.6);
        assert!(c["second"]["sensitivity"].is_null(), "{c}");
        assert!(c["sensitivity"].is_null(), "{c}");
        let c = shown(Suppression::None);
        assert!(
            (c["sensitivity"]["difference"].as_f64().unwrap() + 0.57).abs() < 1e-12,
            "{c}"
        );
        // A second list of 12 caught (shown as 10): the difference as shown,
        // (10 - 60) / 100, not the exact (12 - 60) / 100.
        let b = Predictions {
            cohorts: vec![("c".into(), (0..n).map(|i| i < 12).collect())],
            scores: vec![],
        };
        let c = comparison(Suppression::Hes, &people, &b, &happened)["cohorts"][0].clone();
        let d = c["sensitivity"]["difference"].as_f64().unwrap();
        assert!((d + 0.5).abs() < 1e-12, "{c}");
    }

    #[test]
    fn calibration_compares_deciles_and_refuses_what_is_not_a_probability() {
        let values: Float64Array = (0..20).map(|i| Some(i as f64 / 20.0)).collect();
        let happened: Vec<bool> = (0..20).map(|i| i >= 18).collect();
        let c = calibration(Suppression::None, &values, &happened);
        let top = &c["deciles"][9];
        assert_eq!(top["people"], "2");
        assert_eq!(top["observed"], 1.0);
        assert!((top["mean_predicted"].as_f64().unwrap() - 0.925).abs() < 1e-12);
        let brier: f64 = (0..20)
            .map(|i| (i as f64 / 20.0 - if i >= 18 { 1.0 } else { 0.0 }).powi(2))
            .sum::<f64>()
            / 20.0;
        assert!((c["brier"].as_f64().unwrap() - brier).abs() < 1e-12);
        let c = calibration(Suppression::None, &Float64Array::from(vec![1.5]), &[true]);
        assert!(c["error"].is_string());
    }
}
