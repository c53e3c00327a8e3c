//! Each score's ranking of one date's people: lowest first with ties in
//! person order (what AUROC reads), and highest first as lists rank. Made
//! once a date and shared by every outcome and grouping, with what the top
//! lists ([`TOP`], [`TOP_PER_PCN`]) take of it.

use arrow_array::Float64Array;

use super::groups::Groups;

/// The top fractions of each score's ranking that are evaluated as lists.
pub(super) const TOP: [f64; 2] = [0.01, 0.05];

/// Each PCN's first so many by a score, evaluated as one list (a PCN with
/// this many places).
pub(super) const TOP_PER_PCN: usize = 50;

/// The people a score scores, ranked.
pub(super) struct Ranking {
    /// Lowest score first; ties in person order.
    pub(super) ascending: Vec<u32>,
}

impl Ranking {
    pub(super) fn new(values: &Float64Array) -> Ranking {
        Ranking {
            ascending: ascending(values),
        }
    }

    /// The values of the people it ranks, in its order (lowest first).
    fn values(&self, values: &Float64Array) -> Vec<f64> {
        self.ascending
            .iter()
            .map(|&i| values.value(i as usize))
            .collect()
    }

    /// Each ranked person's outcome, in the ranking's order.
    pub(super) fn outcomes(&self, happened: &[bool]) -> Vec<bool> {
        self.ascending
            .iter()
            .map(|&i| happened[i as usize])
            .collect()
    }

    /// Highest score first; ties in person order (as lists rank), from
    /// the values in the ranking's order ([`Ranking::values`]). Ties are
    /// equal in [`total_order`], as in [`ascending`] (so that NaNs of one
    /// kind tie, as they sort).
    fn highest_first<'a>(&'a self, ranked: &'a [f64]) -> impl Iterator<Item = u32> + 'a {
        let key = |v: f64| total_order(v + 0.0);
        // Each tie's places, from the last tie to the first.
        let mut end = ranked.len();
        let ties = std::iter::from_fn(move || {
            let last = key(*ranked.get(end.checked_sub(1)?)?);
            let start = ranked[..end]
                .iter()
                .rposition(|&v| key(v) != last)
                .map_or(0, |p| p + 1);
            let tie = start..end;
            end = start;
            Some(tie)
        });
        ties.flat_map(|tie| self.ascending[tie].iter().copied())
    }

    /// (score, outcome) of the people `keep` selects, lowest score first.
    #[cfg(test)]
    pub(super) fn ranked(
        &self,
        values: &Float64Array,
        happened: &[bool],
        keep: impl Fn(usize) -> bool,
    ) -> Vec<(f64, bool)> {
        self.ascending
            .iter()
            .map(|&i| i as usize)
            .filter(|&i| keep(i))
            .map(|i| (values.value(i), happened[i]))
            .collect()
    }
}

/// What a score's figures read of one date that no outcome changes, made
/// once for all its outcomes and groups (each outcome had read the values
/// in ranked order, ranked the people highest first and marked its top
/// lists again).
pub(super) struct Ordered {
    /// The scored people's values in the ranking's order, lowest first.
    pub(super) values: Vec<f64>,
    /// The first people highest first: as many as the longest list of a
    /// top fraction ([`TOP`]) holds.
    pub(super) top: Vec<u32>,
    /// The people on each PCN's first [`TOP_PER_PCN`] (people of no known
    /// PCN taken as one more PCN).
    pub(super) per_pcn: Vec<u32>,
}

impl Ordered {
    pub(super) fn new(ranking: &Ranking, values: &Float64Array, pcn: &Groups) -> Ordered {
        let values = ranking.values(values);
        let longest = TOP.iter().map(|&f| top_size(f, values.len())).max();
        let top = ranking
            .highest_first(&values)
            .take(longest.unwrap_or(0))
            .collect();
        // How many of each PCN's people are taken so far.
        let mut taken = vec![0usize; pcn.names.len() + 1];
        let per_pcn = ranking
            .highest_first(&values)
            .filter(|&i| {
                let of_pcn =
                    &mut taken[pcn.get(i as usize).map_or(pcn.names.len(), |g| g as usize)];
                *of_pcn += 1;
                *of_pcn <= TOP_PER_PCN
            })
            .collect();
        Ordered {
            values,
            top,
            per_pcn,
        }
    }
}

/// How many of `scored` people the top `fraction` of a ranking holds.
pub(super) fn top_size(fraction: f64, scored: usize) -> usize {
    ((fraction * scored as f64).ceil() as usize).min(scored)
}

/// The people `values` scores, lowest score first, ties in person order:
/// ordered by each value's place in `f64::total_cmp`'s order (+ 0.0 makes
/// -0.0 equal 0.0, as for the ties), then person.
fn ascending(values: &Float64Array) -> Vec<u32> {
    // Most scores take few values (whole points, or rounded): each value's
    // people are counted, then put in place in person order, with no sort
    // of the people (about 5 ms a ranking at 200,000 people). Scores of
    // many values are sorted.
    const MOST_COUNTED: usize = 1 << 12;
    let key = |v: f64| total_order(v + 0.0);
    // Each value numbered as first met, and how many people have it.
    let mut numbers: foldhash::HashMap<u64, u32> = Default::default();
    let mut counts: Vec<u32> = Vec::new();
    let mut of: Vec<u32> = Vec::with_capacity(values.len());
    for v in values.iter().flatten() {
        let next = numbers.len() as u32;
        let n = *numbers.entry(key(v)).or_insert(next);
        if n == next {
            if counts.len() == MOST_COUNTED {
                return sorted(values);
            }
            counts.push(0);
        }
        counts[n as usize] += 1;
        of.push(n);
    }
    // Where each value's people start, in value order.
    let mut keys: Vec<(u64, u32)> = numbers.into_iter().collect();
    keys.sort_unstable();
    let mut start = vec![0u32; keys.len()];
    let mut at = 0;
    for &(_, n) in &keys {
        start[n as usize] = at;
        at += counts[n as usize];
    }
    let mut ascending = vec![0u32; of.len()];
    let people = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|_| i as u32));
    for (person, n) in people.zip(of) {
        let place = &mut start[n as usize];
        ascending[*place as usize] = person;
        *place += 1;
    }
    ascending
}

/// [`ascending`] by sorting each value's place in `f64::total_cmp`'s
/// order beside its person (not the people by looking their values up:
/// that reads memory out of order).
fn sorted(values: &Float64Array) -> Vec<u32> {
    let mut keyed: Vec<(u64, u32)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| Some((total_order(v? + 0.0), i as u32)))
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// `x`'s place in [`f64::total_cmp`]'s order, as an unsigned number.
fn total_order(x: f64) -> u64 {
    let bits = x.to_bits();
    // Negative numbers' bits count down: flipped whole; positive ones'
    // sign bit set, so that they come after.
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rankings_order_as_total_cmp_with_ties_in_person_order() {
        let special = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
            f64::MIN_POSITIVE / 2.0,
            -f64::MIN_POSITIVE / 2.0,
            2.5,
        ];
        let mut x = 0x0DDB_1A5E_5BAD_5EEDu64;
        // Few values (counted into place) and, among 10,000 people, more
        // values than are counted (sorted); both ways on each.
        for (runs, people, spread) in [(100, 60, false), (3, 10_000, true)] {
            for _ in 0..runs {
                let values: Vec<Option<f64>> = (0..people)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let special = special[(x >> 8) as usize % special.len()];
                        let value = if spread && !x.is_multiple_of(4) {
                            (x >> 11) as f64 - (1u64 << 52) as f64
                        } else {
                            special
                        };
                        (!x.is_multiple_of(6)).then_some(value)
                    })
                    .collect();
                let column = Float64Array::from(values.clone());
                let ranking = Ranking::new(&column);
                // As it was: the people sorted stably by their values.
                let mut expected: Vec<u32> = (0..values.len() as u32)
                    .filter(|&i| values[i as usize].is_some())
                    .collect();
                let value = |i: &u32| values[*i as usize].unwrap() + 0.0;
                expected.sort_by(|a, b| value(a).total_cmp(&value(b)));
                assert_eq!(ranking.ascending, expected);
                assert_eq!(sorted(&column), expected);
                // Highest first, ties still in person order.
                expected.sort_by(|a, b| value(b).total_cmp(&value(a)));
                let ranked = ranking.values(&column);
                let highest: Vec<u32> = ranking.highest_first(&ranked).collect();
                assert_eq!(highest, expected);
            }
        }
    }
}
