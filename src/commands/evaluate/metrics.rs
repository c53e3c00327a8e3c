//! The statistics of an evaluation: AUROC and its DeLong variance,
//! average precision, midranks. Pure functions of scores and outcomes,
//! tested against their definitions.

/// AUROC (the probability that a random person with the outcome scores
/// higher than one without, ties counting half) and its standard error by
/// DeLong's method, from his structural components (each person with the
/// outcome: the share of those without it scored lower, ties half; each
/// person without: the share with it scored higher), of people in
/// ascending order of score: one walk over the ties ([`Components`]), no
/// ranks. `None` without people on both sides.
pub(super) fn auroc_ranked(ranked: &[(f64, bool)]) -> Option<(f64, f64)> {
    let m = ranked.iter().filter(|(_, h)| *h).count();
    let mut components = Components::new(m, ranked.len() - m);
    for tie in ties(ranked) {
        let pos = tie.iter().filter(|(_, h)| *h).count();
        components.tie(pos, tie.len() - pos);
    }
    components.auroc()
}

/// DeLong's structural components of one ranking, given tie by tie from
/// the lowest score up, and the AUROC and its standard error made of them
/// ([`auroc_ranked`]). The components come out in ranked order, which the
/// sums and variances do not mind; they are the same for everyone in a
/// tie, so are kept once per tie with how many people share them, not
/// once per person (a score over 200,000 people wrote out two such lists
/// for every AUROC). Given tie by tie so that the figures of many groups
/// can be made in one walk over a ranking (the breakdowns by group).
pub(super) struct Components {
    /// People with and without the outcome.
    m: usize,
    n: usize,
    /// People with and without the outcome in the ties given so far.
    pos_below: usize,
    neg_below: usize,
    /// (component, how many people have it) of the people with the
    /// outcome, and of those without.
    v10: Vec<(f64, usize)>,
    v01: Vec<(f64, usize)>,
}

impl Components {
    /// Of a ranking of `m` people with the outcome and `n` without.
    pub(super) fn new(m: usize, n: usize) -> Components {
        Components {
            m,
            n,
            pos_below: 0,
            neg_below: 0,
            v10: Vec::new(),
            v01: Vec::new(),
        }
    }

    /// The next tie up: `pos` people with the outcome and `neg` without.
    /// With nobody on one side the components divide by zero; harmless, as
    /// [`Components::auroc`] then gives `None`.
    pub(super) fn tie(&mut self, pos: usize, neg: usize) {
        let (mf, nf) = (self.m as f64, self.n as f64);
        let lower = (self.neg_below as f64 + 0.5 * neg as f64) / nf;
        let higher = ((self.m - self.pos_below - pos) as f64 + 0.5 * pos as f64) / mf;
        self.v10.push((lower, pos));
        self.v01.push((higher, neg));
        self.pos_below += pos;
        self.neg_below += neg;
    }

    /// AUROC and its standard error; `None` without people on both
    /// sides.
    pub(super) fn auroc(&self) -> Option<(f64, f64)> {
        let (m, n) = (self.m, self.n);
        if m == 0 || n == 0 {
            return None;
        }
        let (mf, nf) = (m as f64, n as f64);
        // The sum of the components with the outcome is both the AUROC's
        // and their mean's.
        let sum10 = sum_runs(self.v10.iter().copied());
        let auc = sum10 / mf;
        let se = (variance(&self.v10, sum10, m) / mf
            + variance(&self.v01, sum_runs(self.v01.iter().copied()), n) / nf)
            .sqrt();
        Some((auc, se))
    }
}

/// The sum of every value of (value, how many times) runs, in order, as
/// `Iterator::sum` adds them one after another: the same to the last bit
/// (see [`add_repeated`]).
fn sum_runs(runs: impl Iterator<Item = (f64, usize)>) -> f64 {
    let start = std::iter::empty::<f64>().sum::<f64>();
    runs.fold(start, |sum, (x, k)| add_repeated(sum, x, k))
}

/// [`covariance`] of the `len` values of `runs` with themselves, whose sum
/// is `sum`, summed in the same order, so the same to the last bit.
fn variance(runs: &[(f64, usize)], sum: f64, len: usize) -> f64 {
    if len < 2 {
        return 0.0;
    }
    let mean = sum / len as f64;
    let squares = runs.iter().map(|&(x, k)| ((x - mean) * (x - mean), k));
    sum_runs(squares) / (len - 1) as f64
}

/// `sum + x + x + ...` (`k` additions, each rounded, one after another),
/// to the last bit, in a few steps per power of two the sum passes
/// through rather than `k`: the components of one tie are the same value,
/// and a score with few values (the eFI's) has ties of hundreds of
/// thousands of people.
///
/// Why it is exact: while a positive sum stays within one power of two
/// (one binade, where every double is a whole number `m` of units `u`),
/// adding a positive `x` adds a whole number of units: `x / u` rounded,
/// and where `x / u` is a whole number and a half, the one of the two
/// nearest that leaves `m` even. So the units added are the same at every
/// step, or alternate only until `m` is even, and from then on are the
/// same. Once two steps in a row within one binade have added the same,
/// every further step in it adds that too, and the sum after `j` of them
/// is exact (a whole number of units below the binade's top). Adding
/// zero changes the sum at most once. Anything else (a sum that is zero,
/// negative or subnormal, an `x` that is negative or not finite, a step
/// into the next binade, a step to the largest double) is added one step
/// at a time.
fn add_repeated(mut sum: f64, x: f64, mut k: usize) -> f64 {
    /// A positive double's binade: its biased exponent.
    fn binade(v: f64) -> u64 {
        v.to_bits() >> 52
    }
    // Adding zero (either sign) changes the sum at most once.
    if x == 0.0 {
        return if k == 0 { sum } else { sum + x };
    }
    let jumps = x > 0.0 && x.is_finite();
    // What the previous step added, where it stayed in one binade.
    let mut last: Option<f64> = None;
    while k > 0 {
        let next = sum + x;
        k -= 1;
        if !(jumps && sum.is_normal() && sum > 0.0 && next.is_finite())
            || binade(next) != binade(sum)
        {
            (sum, last) = (next, None);
            continue;
        }
        // Exact: both in one binade.
        let step = next - sum;
        if last != Some(step) {
            (sum, last) = (next, Some(step));
            continue;
        }
        // Too small to change the sum, now and at every further step.
        if step == 0.0 {
            return next;
        }
        // The unit of `next`'s binade, and `next` and the step in units
        // (at the largest double there is no next one: a step at a time).
        let unit = f64::from_bits(next.to_bits() + 1) - next;
        if !unit.is_finite() {
            (sum, last) = (next, None);
            continue;
        }
        let (m, d) = ((next / unit) as u64, (step / unit) as u64);
        // Steps that stay below the binade's top, 2^53 units.
        let more = (((1u64 << 53) - 1 - m) / d).min(k as u64);
        sum = next + more as f64 * step;
        k -= more as usize;
        last = None;
    }
    sum
}

/// Runs of equal scores in a ranked list.
fn ties(ranked: &[(f64, bool)]) -> impl DoubleEndedIterator<Item = &[(f64, bool)]> {
    ranked.chunk_by(|a, b| a.0 == b.0)
}

/// Two scores of the same people: AUROC of each, and the standard error of
/// their difference (DeLong's covariance of the paired components, from
/// midranks as Sun and Xu 2014 do, so that each person's components stay
/// in the person's place).
pub(super) fn auroc_difference(paired: &[(f64, f64, bool)]) -> Option<(f64, f64, f64)> {
    let a: Vec<(f64, bool)> = paired.iter().map(|p| (p.0, p.2)).collect();
    let b: Vec<(f64, bool)> = paired.iter().map(|p| (p.1, p.2)).collect();
    let (a10, a01) = components(&a)?;
    let (b10, b01) = components(&b)?;
    let (m, n) = (a10.len() as f64, a01.len() as f64);
    let (auc_a, auc_b) = (a10.iter().sum::<f64>() / m, b10.iter().sum::<f64>() / m);
    let var10 = covariance(&a10, &a10) + covariance(&b10, &b10) - 2.0 * covariance(&a10, &b10);
    let var01 = covariance(&a01, &a01) + covariance(&b01, &b01) - 2.0 * covariance(&a01, &b01);
    Some((auc_a, auc_b, (var10 / m + var01 / n).max(0.0).sqrt()))
}

/// Sample covariance (n - 1); 0 for fewer than two values.
fn covariance(x: &[f64], y: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let mx = x.iter().sum::<f64>() / x.len() as f64;
    let my = y.iter().sum::<f64>() / y.len() as f64;
    x.iter()
        .zip(y)
        .map(|(a, b)| (a - mx) * (b - my))
        .sum::<f64>()
        / (x.len() - 1) as f64
}

/// DeLong's structural components: per person with the outcome, the share
/// of people without it scored lower (ties half); per person without, the
/// share with it scored higher. In the order of `scored`.
fn components(scored: &[(f64, bool)]) -> Option<(Vec<f64>, Vec<f64>)> {
    let xs: Vec<f64> = scored.iter().filter(|(_, h)| *h).map(|(v, _)| *v).collect();
    let ys: Vec<f64> = scored
        .iter()
        .filter(|(_, h)| !*h)
        .map(|(v, _)| *v)
        .collect();
    let (m, n) = (xs.len(), ys.len());
    if m == 0 || n == 0 {
        return None;
    }
    let all: Vec<f64> = xs.iter().chain(&ys).copied().collect();
    let ranks_all = midranks(&all);
    let ranks_x = midranks(&xs);
    let ranks_y = midranks(&ys);
    let (mf, nf) = (m as f64, n as f64);
    let v10: Vec<f64> = (0..m).map(|i| (ranks_all[i] - ranks_x[i]) / nf).collect();
    let v01: Vec<f64> = (0..n)
        .map(|j| 1.0 - (ranks_all[m + j] - ranks_y[j]) / mf)
        .collect();
    Some((v10, v01))
}

/// The area under the precision-recall curve as average precision: the
/// precision at each distinct score, highest first, weighted by the recall
/// it adds (ties enter together), of people in ascending order of score.
/// `None` when no one had the outcome.
pub(super) fn average_precision_ranked(ranked: &[(f64, bool)]) -> Option<f64> {
    let positives = ranked.iter().filter(|(_, h)| *h).count();
    if positives == 0 {
        return None;
    }
    let (mut taken, mut caught, mut ap) = (0usize, 0usize, 0.0);
    // From the highest score down.
    for tie in ties(ranked).rev() {
        let new = tie.iter().filter(|(_, h)| *h).count();
        taken += tie.len();
        caught += new;
        ap += (new as f64 / positives as f64) * (caught as f64 / taken as f64);
    }
    Some(ap)
}

/// The ROC curve (false positive rate, true positive rate) and the
/// precision-recall curve (recall, precision) of a score, a point per
/// distinct score from the highest down (ties enter together), thinned to
/// at most `points` each for drawing, of people in ascending order of
/// score. `None` without people on both sides. A point is a list (those
/// at its score or above), drawn from the numbers its counts are `shown`
/// as, and only where each is shown (those on it with the outcome and
/// without, and those below it with and without): so that the first
/// point of a curve cannot say that the one person with the top score
/// had the outcome.
#[allow(clippy::type_complexity)]
pub(super) fn curves_ranked(
    ranked: &[(f64, bool)],
    points: usize,
    shown: impl Fn(u64) -> Option<u64>,
) -> Option<(Vec<(f64, f64)>, Vec<(f64, f64)>)> {
    let positives = ranked.iter().filter(|(_, h)| *h).count() as u64;
    let negatives = ranked.len() as u64 - positives;
    let (shown_positives, shown_negatives) = (shown(positives)?, shown(negatives)?);
    if shown_positives == 0 || shown_negatives == 0 {
        return None;
    }
    let (mut roc, mut pr) = (vec![(0.0, 0.0)], Vec::new());
    let (mut tp, mut fp) = (0, 0);
    for tie in ties(ranked).rev() {
        let caught = tie.iter().filter(|(_, h)| *h).count() as u64;
        tp += caught;
        fp += tie.len() as u64 - caught;
        let (Some(t), Some(f), Some(_), Some(_)) = (
            shown(tp),
            shown(fp),
            shown(positives - tp),
            shown(negatives - fp),
        ) else {
            continue;
        };
        let (t, f) = (t as f64, f as f64);
        // Rounded, lists a few people apart can be the same point.
        let point = (f / shown_negatives as f64, t / shown_positives as f64);
        if roc.last() != Some(&point) {
            roc.push(point);
            pr.push((t / shown_positives as f64, t / (t + f)));
        }
    }
    let thin = |curve: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        if curve.len() <= points {
            return curve;
        }
        let step = curve.len() as f64 / (points - 1) as f64;
        let mut out: Vec<(f64, f64)> = (0..points - 1)
            .map(|k| curve[(k as f64 * step) as usize])
            .collect();
        out.push(*curve.last().expect("not empty"));
        out
    };
    Some((thin(roc), thin(pr)))
}

/// Ranks from 1, ties given the mean of the ranks they span.
pub(super) fn midranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    ranks
}

/// The 95% confidence interval of an AUROC from its DeLong standard error,
/// kept within 0 to 1.
pub(super) fn auroc_ci((a, se): (f64, f64)) -> [f64; 2] {
    [(a - 1.959964 * se).max(0.0), (a + 1.959964 * se).min(1.0)]
}

/// Decimals an AUROC (its interval, a difference of two) is shown to
/// under suppression ([`Suppression::figure`](crate::suppress::Suppression::figure)).
pub(super) const AUROC_PLACES: i32 = 2;

/// An AUROC and its 95% interval ([`auroc_ci`]) as `s` shows them.
pub(super) fn auroc_shown(s: crate::suppress::Suppression, auroc: (f64, f64)) -> (f64, [f64; 2]) {
    let [low, high] = auroc_ci(auroc);
    (
        s.figure(auroc.0, AUROC_PLACES),
        [s.figure(low, AUROC_PLACES), s.figure(high, AUROC_PLACES)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ascending(scored: &[(f64, bool)]) -> Vec<(f64, bool)> {
        let mut sorted = scored.to_vec();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        sorted
    }

    /// AUROC and standard error from every person's components written
    /// out one by one, as they were computed before components were kept
    /// per tie, and summed one by one.
    fn per_person(ranked: &[(f64, bool)]) -> (f64, f64) {
        let m = ranked.iter().filter(|(_, h)| *h).count();
        let n = ranked.len() - m;
        let (mut v10, mut v01) = (Vec::new(), Vec::new());
        let (mut pos_below, mut neg_below) = (0, 0);
        for tie in ties(ranked) {
            let pos = tie.iter().filter(|(_, h)| *h).count();
            let neg = tie.len() - pos;
            let lower = (neg_below as f64 + 0.5 * neg as f64) / n as f64;
            let higher = ((m - pos_below - pos) as f64 + 0.5 * pos as f64) / m as f64;
            v10.extend(std::iter::repeat_n(lower, pos));
            v01.extend(std::iter::repeat_n(higher, neg));
            pos_below += pos;
            neg_below += neg;
        }
        let (mf, nf) = (m as f64, n as f64);
        let auc = v10.iter().sum::<f64>() / mf;
        let se = (covariance(&v10, &v10) / mf + covariance(&v01, &v01) / nf).sqrt();
        (auc, se)
    }

    fn auroc_delong(scored: &[(f64, bool)]) -> Option<(f64, f64)> {
        auroc_ranked(&ascending(scored))
    }

    fn average_precision(scored: &[(f64, bool)]) -> Option<f64> {
        average_precision_ranked(&ascending(scored))
    }

    #[allow(clippy::type_complexity)]
    fn curves(scored: &[(f64, bool)], points: usize) -> Option<(Vec<(f64, f64)>, Vec<(f64, f64)>)> {
        curves_ranked(&ascending(scored), points, Some)
    }

    /// AUROC by definition: every pair of a person with the outcome and one
    /// without, ties counting half.
    fn pairs(scored: &[(f64, bool)]) -> f64 {
        let (mut wins, mut total) = (0.0, 0.0);
        for (x, hx) in scored {
            for (y, hy) in scored {
                if *hx && !*hy {
                    total += 1.0;
                    wins += if x > y {
                        1.0
                    } else if x == y {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        wins / total
    }

    #[test]
    fn auroc_from_midranks_equals_the_pairwise_definition() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..50 {
            let scored: Vec<(f64, bool)> = (0..40)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    ((x % 7) as f64, x.is_multiple_of(3))
                })
                .collect();
            if let Some((auc, se)) = auroc_delong(&scored) {
                assert!(
                    (auc - pairs(&scored)).abs() < 1e-12,
                    "{auc} vs {}",
                    pairs(&scored)
                );
                assert!(se > 0.0 && se < 0.5);
            }
        }
        // Perfect separation, and none.
        let perfect = [(3.0, true), (2.0, true), (1.0, false), (0.0, false)];
        assert_eq!(auroc_delong(&perfect).unwrap().0, 1.0);
        assert_eq!(auroc_delong(&[(1.0, true), (1.0, false)]).unwrap().0, 0.5);
        assert!(auroc_delong(&[(1.0, true)]).is_none());
    }

    #[test]
    fn the_walk_over_ties_gives_the_midrank_components_variance() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..50 {
            let scored: Vec<(f64, bool)> = (0..60)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    ((x % 9) as f64, x % 4 == 1)
                })
                .collect();
            let Some((v10, v01)) = components(&scored) else {
                continue;
            };
            let (m, n) = (v10.len() as f64, v01.len() as f64);
            let se = (covariance(&v10, &v10) / m + covariance(&v01, &v01) / n).sqrt();
            let (auc, walked) = auroc_delong(&scored).unwrap();
            assert!((auc - v10.iter().sum::<f64>() / m).abs() < 1e-12);
            assert!((se - walked).abs() < 1e-12, "{se} vs {walked}");
        }
    }

    #[test]
    fn components_kept_per_tie_give_the_per_person_figures_to_the_last_bit() {
        let mut x = 0x1234_5678_9ABC_DEF1u64;
        for distinct in [3u64, 50, 1_000_000] {
            let scored: Vec<(f64, bool)> = (0..500)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    ((x % distinct) as f64 / 7.0, x % 5 == 1)
                })
                .collect();
            let ranked = ascending(&scored);
            assert_eq!(
                auroc_ranked(&ranked),
                Some(per_person(&ranked)),
                "{distinct} scores"
            );
        }
    }

    /// Adding a value many times over in a few steps gives what adding it
    /// one step at a time gives, to the last bit: sums starting at zero,
    /// negative zero, tiny, subnormal and large; values that fall on a
    /// half unit of the sum (where rounding to even decides), exact
    /// multiples, thirds, zero and negative ones.
    #[test]
    fn adding_a_value_many_times_over_is_exact() {
        let mut r = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            r
        };
        let starts: [f64; 11] = [
            0.0,
            -0.0,
            1e-310,
            1e-300,
            0.1,
            0.5,
            1.0,
            3.0,
            12345.678,
            1e12,
            f64::MAX / 2.0,
        ];
        for &start in &starts {
            for case in 0..40 {
                let x = match case % 8 {
                    // Half a unit of the start, and of sums a few
                    // binades up: rounding to even decides each step.
                    0 => f64::from_bits(start.abs().to_bits().max(1) + 1) - start.abs(),
                    1 => 2f64.powi(-((next() % 60) as i32)) * 1.5,
                    2 => 1.0 / 3.0 * (1 + next() % 5) as f64,
                    3 => (next() % 1000) as f64 / 7.0,
                    4 => 0.0,
                    5 => -((next() % 100) as f64) / 9.0,
                    6 => f64::from_bits(next() >> 2),
                    _ => (next() % 1_000_000) as f64 * 1e-9,
                };
                for k in [
                    0usize,
                    1,
                    2,
                    3,
                    7,
                    1_000,
                    65_537,
                    (next() % 300_000) as usize,
                ] {
                    let mut want = start;
                    for _ in 0..k {
                        want += x;
                    }
                    let got = add_repeated(start, x, k);
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{start} + {x} x {k}: {got} vs {want}"
                    );
                }
            }
        }
        // Steps that reach the largest double, and beyond (review).
        let unit = 2f64.powi(971);
        for (start, x, k) in [
            (f64::MAX - 2.0 * unit, unit, 2),
            (f64::MAX - 4.0 * unit, 2.0 * unit, 5),
            (f64::MAX - 2.0 * unit, 0.75 * unit, 3),
        ] {
            let mut want = start;
            for _ in 0..k {
                want += x;
            }
            assert_eq!(add_repeated(start, x, k).to_bits(), want.to_bits());
        }
        // `Iterator::sum`'s own start, whatever it is.
        let runs = [(0.25, 3), (1.0 / 3.0, 100_000), (0.0, 5), (0.7, 12_345)];
        let one_by_one: f64 = runs
            .iter()
            .flat_map(|&(x, k)| std::iter::repeat_n(x, k))
            .sum();
        assert_eq!(
            sum_runs(runs.iter().copied()).to_bits(),
            one_by_one.to_bits()
        );
    }

    /// Ties of tens of thousands of people (a score with few values): the
    /// AUROC and its standard error the same, to the last bit, as from
    /// every person's components summed one by one.
    #[test]
    fn large_ties_give_the_per_person_figures_to_the_last_bit() {
        let mut x = 0x5DEE_CE66_D1CE_4E5Bu64;
        let scored: Vec<(f64, bool)> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x % 6) as f64, x % 11 < 2 + x % 6)
            })
            .collect();
        let ranked = ascending(&scored);
        let (auc, se) = per_person(&ranked);
        let (got_auc, got_se) = auroc_ranked(&ranked).unwrap();
        assert_eq!(
            (got_auc.to_bits(), got_se.to_bits()),
            (auc.to_bits(), se.to_bits())
        );
    }

    #[test]
    fn average_precision_enters_ties_together() {
        // Scores 3 (yes), 2 (no), 2 (yes), 1 (no): precision 1 at 3 (recall
        // 1/2), then 2/3 at 2 (recall 1).
        let scored = [(3.0, true), (2.0, false), (2.0, true), (1.0, false)];
        let ap = average_precision(&scored).unwrap();
        assert!((ap - (0.5 * 1.0 + 0.5 * 2.0 / 3.0)).abs() < 1e-12, "{ap}");
        assert!(average_precision(&[(1.0, false)]).is_none());
    }

    #[test]
    fn curves_run_from_the_highest_score_down() {
        let scored = [(3.0, true), (2.0, false), (2.0, true), (1.0, false)];
        let (roc, pr) = curves(&scored, 100).unwrap();
        assert_eq!(roc, vec![(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        assert_eq!(pr, vec![(0.5, 1.0), (1.0, 2.0 / 3.0), (1.0, 0.5)]);
        let many: Vec<(f64, bool)> = (0..1000).map(|i| (i as f64, i % 3 == 0)).collect();
        let (roc, _) = curves(&many, 50).unwrap();
        assert_eq!(roc.len(), 50);
        assert_eq!(*roc.last().unwrap(), (1.0, 1.0));
    }

    /// Under suppression a point is drawn only where the list it stands
    /// for, and the people below it, are no small numbers on either side.
    #[test]
    fn curves_leave_out_the_points_that_would_give_back_small_numbers() {
        // 100 people, scores 100 down to 1; every third with the outcome.
        let scored: Vec<(f64, bool)> = (1..=100).map(|i| (i as f64, i % 3 == 0)).collect();
        let s = crate::suppress::Suppression::Hes;
        let (roc, pr) = curves_ranked(&ascending(&scored), 1000, |n| s.shown(n)).unwrap();
        // As shown: "35" with the outcome, "65" without.
        let (positives, negatives) = (35.0, 65.0);
        // The first list drawn is the top 23 (scores 100 to 78: 8 with the
        // outcome, 15 without, shown as 10 and 15), not the top one (score
        // 100, without it) nor the top 22 (7 with it); the last point is
        // drawn.
        assert_eq!(roc[1], (15.0 / negatives, 10.0 / positives));
        assert_eq!(pr[0], (10.0 / positives, 10.0 / 25.0));
        assert_eq!(*roc.last().unwrap(), (1.0, 1.0));
        // Every point from rounded counts, none of them a small number:
        // multiples of 5 over the totals.
        for &(x, y) in &roc {
            for (share, whole) in [(x, negatives), (y, positives)] {
                let n = share * whole;
                assert!((n - 5.0 * (n / 5.0).round()).abs() < 1e-9, "({x}, {y})");
            }
        }
        // No point twice in a row, where rounding makes lists alike.
        assert!(roc.windows(2).all(|w| w[0] != w[1]));
        assert!(pr.windows(2).all(|w| w[0] != w[1]));
        // The same people unsuppressed: a point for each.
        let (all, _) = curves_ranked(&ascending(&scored), 1000, Some).unwrap();
        assert_eq!(all.len(), 101);
        assert!(roc.len() < all.len());
    }

    /// Under suppression an AUROC and its interval are shown to two
    /// decimals (at full precision an AUROC gives back the exact counts
    /// of those with and without the outcome); without it, exactly.
    #[test]
    fn an_auroc_is_shown_to_two_decimals_under_suppression() {
        use crate::suppress::Suppression;
        let auroc = (0.6450548972738402, 0.0123);
        let (a, [low, high]) = auroc_shown(Suppression::Hes, auroc);
        assert_eq!((a, low, high), (0.65, 0.62, 0.67));
        let (a, ci) = auroc_shown(Suppression::None, auroc);
        assert_eq!(a, auroc.0);
        assert_eq!(ci, auroc_ci(auroc));
    }

    #[test]
    fn midranks_share_ties() {
        assert_eq!(midranks(&[5.0, 1.0, 5.0, 3.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }
}
