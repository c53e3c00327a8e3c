//! Cohort membership and ranking.
//!
//! A person is in a cohort when its condition is true (null counts as not
//! true, as in SQL's `where`) and they were alive on the as-of date. Members
//! are ranked within their PCN, since each PCN receives its own list: by the
//! cohort's rank keys (nulls last), then by `person_id` so that ties break
//! the same way on every run.
//!
//! A run that writes no lists (an evaluation, which reads only who is in)
//! need not rank: it asks for ranks only where `top_per_pcn` needs them to
//! choose the members.
//!
//! Two options narrow a cohort after its condition: `pcns` (only persons
//! registered to the PCNs that asked for the cohort are members, so no other
//! PCN's list or count can hold them) and `top_per_pcn` (only the first N
//! members of each PCN by rank stay members, as a service with N places
//! would choose them).

use std::cmp::Ordering;

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, BooleanArray, Int32Array};
use arrow_ord::ord::make_comparator;
use arrow_schema::SortOptions;
use rayon::prelude::*;

use crate::engine::eval;
use crate::engine::plan::CohortPlan;
use crate::error::{Error, Result};
use crate::rules::Cohort;

pub struct CohortResult {
    /// In the cohort (true) or not (false), per person; never null.
    pub flags: BooleanArray,
    /// Rank within the person's PCN, 1 = first; null for non-members.
    /// `None` where the run did not ask for ranks and `top_per_pcn` did not
    /// need them.
    pub rank: Option<Int32Array>,
    /// Members in output order (by PCN, then rank); in row order where
    /// `rank` is `None`.
    pub members: Vec<u32>,
}

impl CohortResult {
    /// The ranks, of a run that asked for them (every run that writes
    /// lists or `patients.parquet` does).
    pub fn ranks(&self) -> &Int32Array {
        self.rank
            .as_ref()
            .expect("a run that shows ranks asks for them")
    }
}

/// `condition_failed` words an evaluation failure of the cohort's `when`
/// (integer overflow, say) as the rule-file error it is. `ranked`: whether
/// the ranks are wanted (they are made anyway for `top_per_pcn`).
pub fn evaluate(
    cohort: &CohortPlan,
    spec: &Cohort,
    slots: &[ArrayRef],
    alive: &BooleanArray,
    pcn: &ArrayRef,
    ranked: bool,
    condition_failed: impl Fn(eval::EvalError) -> Error,
) -> Result<CohortResult> {
    let persons = alive.len();
    let condition =
        eval::evaluate_parallel(&cohort.condition, slots, persons).map_err(condition_failed)?;
    let condition = eval::is_true(condition.as_boolean());
    let name = &spec.name;
    let mut flags = arrow_arith::boolean::and(&condition, alive)
        .map_err(|e| Error::Internal(format!("combining cohort `{name}` with alive: {e}")))?;
    if let Some(pcns) = &spec.pcns {
        let codes = crate::input::population::TextColumn::new(pcn);
        let wanted = BooleanArray::from_iter((0..codes.len()).map(|r| {
            Some(
                codes
                    .get(r)
                    .is_some_and(|c| pcns.iter().any(|(p, _)| p == c)),
            )
        }));
        flags = arrow_arith::boolean::and(&flags, &wanted)
            .map_err(|e| Error::Internal(format!("restricting cohort `{name}` to PCNs: {e}")))?;
    }

    // A null is not a member (none is expected: `condition` has none, nor
    // `alive`), whatever its value bit.
    if arrow_array::Array::null_count(&flags) > 0 {
        flags = arrow_select::filter::prep_null_mask_filter(&flags);
    }
    let mut members: Vec<u32> = flags.values().set_indices().map(|i| i as u32).collect();
    if !ranked && spec.top_per_pcn.is_none() {
        return Ok(CohortResult {
            flags,
            rank: None,
            members,
        });
    }
    let descending = |d: bool| SortOptions {
        descending: d,
        nulls_first: false,
    };
    let comparator = |array: &ArrayRef, desc: bool| {
        make_comparator(array.as_ref(), array.as_ref(), descending(desc))
            .map_err(|e| Error::Internal(format!("ranking cohort `{name}`: {e}")))
    };
    let by_pcn = comparator(pcn, false)?;
    let keys = cohort
        .rank
        .iter()
        .map(|&(slot, desc)| comparator(&slots[slot], desc))
        .collect::<Result<Vec<_>>>()?;
    // Person rows are in ascending person_id order, so the row number is the
    // final tie-break.
    members.par_sort_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        by_pcn(a, b)
            .then_with(|| {
                keys.iter()
                    .map(|k| k(a, b))
                    .find(|o| *o != Ordering::Equal)
                    .unwrap_or(Ordering::Equal)
            })
            .then(a.cmp(&b))
    });

    // Each member's rank, and which persons have one: made in place, not
    // as a person's `Option` copied into a column after (at 5M persons
    // the copy and the pages it wrote first were about 2% of the default
    // model's CPU).
    let top = spec.top_per_pcn.map_or(i32::MAX, |n| n as i32);
    let mut rank = vec![0i32; persons];
    let mut has_rank = arrow_buffer::BooleanBufferBuilder::new(persons);
    has_rank.append_n(persons, false);
    let mut n = 0;
    let mut previous: Option<u32> = None;
    members.retain(|&m| {
        if previous.is_none_or(|p| by_pcn(p as usize, m as usize) != Ordering::Equal) {
            n = 0;
        }
        n += 1;
        previous = Some(m);
        let kept = n <= top;
        if kept {
            rank[m as usize] = n;
            has_rank.set_bit(m as usize, true);
        }
        kept
    });
    let has_rank = has_rank.finish();
    if spec.top_per_pcn.is_some() {
        flags = BooleanArray::new(has_rank.clone(), None);
    }
    Ok(CohortResult {
        flags,
        rank: Some(Int32Array::new(
            rank.into(),
            Some(arrow_buffer::NullBuffer::new(has_rank)),
        )),
        members,
    })
}

/// Whether a person was in the population on the as-of date, and if not,
/// why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Alive,
    /// Died on or before the as-of date.
    Died,
    /// Born after the as-of date (a run as of a past date).
    NotYetBorn,
}

impl Presence {
    /// From the birth and death days (`None`: unknown, or no death). An
    /// unknown birth date does not exclude a person; a birth after the
    /// as-of date does, even with a death recorded before it.
    pub fn on(birth: Option<i32>, death: Option<i32>, as_of: i32) -> Presence {
        if birth.is_some_and(|b| b > as_of) {
            Presence::NotYetBorn
        } else if death.is_some_and(|d| d <= as_of) {
            Presence::Died
        } else {
            Presence::Alive
        }
    }
}

/// True where a person was in the population on the as-of date: born on or
/// before it, and with no date of death or one after it. A run as of a past
/// date must not count people who had not been born yet.
pub fn alive(birth_date: &ArrayRef, date_of_death: &ArrayRef, as_of: i32) -> BooleanArray {
    let births = birth_date.as_primitive::<arrow_array::types::Date32Type>();
    let deaths = date_of_death.as_primitive::<arrow_array::types::Date32Type>();
    use arrow_array::Array;
    let day = |a: &arrow_array::Date32Array, r: usize| a.is_valid(r).then(|| a.value(r));
    // A word of persons at a time, the words in parallel.
    let words: Vec<u64> = (0..births.len().div_ceil(64))
        .into_par_iter()
        .with_min_len(1 << 10)
        .map(|w| {
            (w * 64..(w * 64 + 64).min(births.len()))
                .filter(|&r| Presence::on(day(births, r), day(deaths, r), as_of) == Presence::Alive)
                .fold(0u64, |word, r| word | 1 << (r % 64))
        })
        .collect();
    // Arrow's bits are the words' bits, least significant first, in
    // little-endian words.
    let words: Vec<u64> = words.into_iter().map(u64::to_le).collect();
    BooleanArray::new(
        arrow_buffer::BooleanBuffer::new(words.into(), 0, births.len()),
        None,
    )
}
