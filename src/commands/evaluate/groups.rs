//! The groups each figure is broken down by (IMD quintile, age band, sex,
//! PCN): each person's group numbered once a date, the groups in name
//! order, held in the narrowest width that numbers them all (a byte a
//! person for most groupings), and written to `predictions.parquet` as
//! the text they stand for.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array};
use arrow_schema::DataType;

use crate::error::{Error, Result};

/// The population attribute holding the IMD decile (1 = most deprived), as
/// the report reads it.
pub(super) const IMD_DECILE: &str = "imd_decile";

/// Age bands of the breakdowns.
const AGE_BANDS: [&str; 5] = ["0-17", "18-39", "40-64", "65-79", "80+"];

/// The age band (in [`AGE_BANDS`]) of `age`.
fn age_band(age: i64) -> usize {
    match age {
        ..=17 => 0,
        18..=39 => 1,
        40..=64 => 2,
        65..=79 => 3,
        _ => 4,
    }
}

/// The evaluated people split into groups (by PCN, age band, ...): the
/// groups' names in order, and each person's group (None if unknown).
#[derive(Clone)]
pub(super) struct Groups {
    pub(super) names: Vec<String>,
    /// Each person's group, shared by clones (the PCNs are a grouping and
    /// also choose each PCN's top).
    of: Keys,
}

/// Each person's group number in the narrowest width that holds every
/// group and a number for unknown (the width's largest): a byte a person
/// and date for an age band, sex or deprivation quintile, two for a PCN,
/// where four each had been 16 bytes a person and date (held then for
/// every date until the figures were written; now while the date is).
#[derive(Clone, Debug, PartialEq)]
enum Keys {
    Byte(Arc<[u8]>),
    Short(Arc<[u16]>),
    Word(Arc<[u32]>),
}

impl Keys {
    /// `of` (a group number below `groups`, or None), each person's.
    fn new(groups: usize, of: Vec<Option<u32>>) -> Keys {
        fn narrow<T: TryFrom<u32> + Copy>(of: Vec<Option<u32>>, unknown: T) -> Arc<[T]> {
            of.into_iter()
                .map(|g| g.and_then(|g| T::try_from(g).ok()).unwrap_or(unknown))
                .collect()
        }
        if groups < usize::from(u8::MAX) {
            Keys::Byte(narrow(of, u8::MAX))
        } else if groups < usize::from(u16::MAX) {
            Keys::Short(narrow(of, u16::MAX))
        } else {
            Keys::Word(narrow(of, u32::MAX))
        }
    }

    /// Person `i`'s group; None if unknown.
    fn get(&self, i: usize) -> Option<u32> {
        match self {
            Keys::Byte(of) => Some(of[i]).filter(|&g| g != u8::MAX).map(u32::from),
            Keys::Short(of) => Some(of[i]).filter(|&g| g != u16::MAX).map(u32::from),
            Keys::Word(of) => Some(of[i]).filter(|&g| g != u32::MAX),
        }
    }

    fn len(&self) -> usize {
        match self {
            Keys::Byte(of) => of.len(),
            Keys::Short(of) => of.len(),
            Keys::Word(of) => of.len(),
        }
    }
}

/// Groups looked for among those met by comparing names, not hashing.
const FEW_GROUPS: usize = 16;

impl Groups {
    /// Each person's age band ([`AGE_BANDS`]) by their age (None where
    /// unknown).
    pub(super) fn age_bands(ages: &Int64Array) -> Groups {
        Groups::numbered(
            &AGE_BANDS,
            ages.iter().map(|a| a.map(|a| age_band(a) as u32)),
        )
    }

    /// Each person's deprivation quintile ("1" the most deprived fifth) by
    /// their IMD decile: deciles 1 and 2 make quintile 1, and so on; None
    /// where the decile is unknown or not a whole number from 1 to 10 (as
    /// the run's report leaves it out).
    pub(super) fn imd_quintiles(deciles: &Float64Array) -> Groups {
        const QUINTILES: [&str; 5] = ["1", "2", "3", "4", "5"];
        Groups::numbered(
            &QUINTILES,
            deciles.iter().map(|d| {
                d.and_then(crate::output::report::quintile_of)
                    .map(|q| q as u32)
            }),
        )
    }

    /// Person `i`'s group; None if unknown.
    pub(super) fn get(&self, i: usize) -> Option<u32> {
        self.of.get(i)
    }

    /// How many people.
    pub(super) fn len(&self) -> usize {
        self.of.len()
    }

    /// Each person's group, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = Option<u32>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Each person's group by name (None if unknown).
    pub(super) fn new<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Groups {
        // Numbered as first met: looked for among the names met while
        // they are few (sex, a band), hashed once they are many. Hashing
        // each person's text had been most of the groups' cost a date.
        let mut names: Vec<&str> = Vec::new();
        let mut ids: Option<foldhash::HashMap<&str, u32>> = None;
        let mut id = |v: &'a str| -> u32 {
            if let Some(ids) = &mut ids {
                let n = names.len() as u32;
                return *ids.entry(v).or_insert_with(|| {
                    names.push(v);
                    n
                });
            }
            if let Some(i) = names.iter().position(|&n| n == v) {
                return i as u32;
            }
            names.push(v);
            if names.len() > FEW_GROUPS {
                ids = Some(
                    names
                        .iter()
                        .enumerate()
                        .map(|(i, &n)| (n, i as u32))
                        .collect(),
                );
            }
            names.len() as u32 - 1
        };
        let first: Vec<Option<u32>> = values.map(|v| v.map(&mut id)).collect();
        Groups::numbered(&names, first.into_iter())
    }

    /// Each person's group by the text of `column` (None where null). A
    /// dictionary's values are numbered once, not each person's text
    /// hashed (equal values alike: a dictionary may repeat one).
    pub(super) fn of(column: &ArrayRef) -> Result<Groups> {
        let text = |a: &ArrayRef| {
            arrow_cast::cast(a, &DataType::Utf8)
                .map_err(|e| Error::Internal(format!("reading groups: {e}")))
        };
        let Some(dictionary) = column.as_any_dictionary_opt() else {
            return Ok(Groups::new(text(column)?.as_string::<i32>().iter()));
        };
        let values = text(dictionary.values())?;
        let mut ids: foldhash::HashMap<&str, u32> = Default::default();
        let mut names = Vec::new();
        let number: Vec<Option<u32>> = values
            .as_string::<i32>()
            .iter()
            .map(|v| {
                v.map(|v| {
                    *ids.entry(v).or_insert_with(|| {
                        names.push(v);
                        names.len() as u32 - 1
                    })
                })
            })
            .collect();
        // A dictionary of no values (a date no one was registered on)
        // cannot normalise its keys: everyone's group is unknown.
        let keys = match values.is_empty() {
            true => vec![0; column.len()],
            false => dictionary.normalized_keys(),
        };
        let of = (0..column.len()).map(|r| {
            column
                .is_valid(r)
                .then(|| number.get(keys[r]).copied().flatten())
                .flatten()
        });
        Ok(Groups::numbered(&names, of))
    }

    /// Each person's group as an index into `names` (None if unknown),
    /// with no name looked up per person: the groups that occur, in name
    /// order, as [`Groups::new`] of the names gives.
    pub(super) fn numbered(names: &[&str], of: impl Iterator<Item = Option<u32>>) -> Groups {
        let of: Vec<Option<u32>> = of.collect();
        let mut present = vec![false; names.len()];
        for &g in of.iter().flatten() {
            present[g as usize] = true;
        }
        let mut order: Vec<usize> = (0..names.len()).filter(|&g| present[g]).collect();
        order.sort_unstable_by_key(|&g| names[g]);
        let mut place = vec![0u32; names.len()];
        for (i, &g) in order.iter().enumerate() {
            place[g] = i as u32;
        }
        let of: Vec<Option<u32>> = of
            .into_iter()
            .map(|g| g.map(|g| place[g as usize]))
            .collect();
        Groups {
            names: order.iter().map(|&g| names[g].to_string()).collect(),
            of: Keys::new(order.len(), of),
        }
    }

    /// Each person's group's name, as a dictionary of the names: the
    /// Parquet writer writes it as the plain text it stands for, byte for
    /// byte (`output::parquet`), without a text made per person and date
    /// (with 12 dates at 1M, building those texts was about a tenth of
    /// writing `predictions.parquet`).
    pub(super) fn texts(&self) -> arrow_array::DictionaryArray<arrow_array::types::Int32Type> {
        let keys: arrow_array::Int32Array = self.iter().map(|g| g.map(|g| g as i32)).collect();
        let names = arrow_array::StringArray::from_iter_values(&self.names);
        arrow_array::DictionaryArray::new(keys, Arc::new(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_the_names_met_in_name_order() {
        // Numbered groups (names listed out of name order too) and named
        // ones: some never met, some people of no known group.
        let made_up = ["b", "a", "c", "aa"];
        // More than are looked for by name (then hashed).
        let many: Vec<String> = (0..3 * FEW_GROUPS).rev().map(|i| format!("g{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let mut x = 0x5EED_u64;
        for names in [&AGE_BANDS[..], &made_up[..], &many[..]] {
            for _ in 0..50 {
                let of: Vec<Option<u32>> = (0..200)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let g = (x >> 8) as usize % names.len();
                        let met = g % 2 == (x >> 20) as usize % 2;
                        (!x.is_multiple_of(5) && met).then_some(g as u32)
                    })
                    .collect();
                let name = |g: &Option<u32>| g.map(|g| names[g as usize]);
                let mut met: Vec<&str> = of.iter().filter_map(name).collect();
                met.sort_unstable();
                met.dedup();
                let places: Vec<Option<u32>> = of
                    .iter()
                    .map(|g| name(g).map(|n| met.iter().position(|m| *m == n).unwrap() as u32))
                    .collect();
                for groups in [
                    Groups::numbered(names, of.iter().copied()),
                    Groups::new(of.iter().map(name)),
                ] {
                    assert_eq!(groups.names, met);
                    assert_eq!(groups.iter().collect::<Vec<_>>(), places);
                }
            }
        }
    }

    #[test]
    fn groups_of_a_dictionary_are_the_groups_of_its_text() {
        use arrow_array::{DictionaryArray, types::Int32Type};
        // A value repeated in the dictionary, a null value, a value no row
        // uses, null keys.
        let values = arrow_array::StringArray::from(vec![
            Some("U2"),
            Some("U1"),
            None,
            Some("U2"),
            Some("U9"),
        ]);
        let keys = arrow_array::Int32Array::from(vec![
            Some(0),
            Some(3),
            None,
            Some(1),
            Some(2),
            Some(3),
            Some(1),
            None,
        ]);
        let column: ArrayRef =
            Arc::new(DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values)).unwrap());
        let got = Groups::of(&column).unwrap();
        let text = arrow_cast::cast(&column, &DataType::Utf8).unwrap();
        let want = Groups::new(text.as_string::<i32>().iter());
        assert_eq!(got.names, ["U1", "U2"]);
        assert_eq!(got.names, want.names);
        assert_eq!(got.of, want.of);
        // Plain text too.
        let got = Groups::of(&text).unwrap();
        assert_eq!((got.names, got.of), (want.names, want.of));
    }

    /// Group numbers are kept in the narrowest width that holds them and
    /// unknown, each read back as it was given.
    #[test]
    fn group_numbers_are_kept_narrow_and_read_back() {
        for (groups, wide) in [(1, 0), (254, 0), (255, 1), (65_534, 1), (65_535, 2)] {
            let of = vec![
                Some(0),
                None,
                Some(groups as u32 - 1),
                Some(groups as u32 / 2),
            ];
            let keys = Keys::new(groups, of.clone());
            let width = match &keys {
                Keys::Byte(_) => 0,
                Keys::Short(_) => 1,
                Keys::Word(_) => 2,
            };
            assert_eq!(width, wide, "{groups} groups");
            assert_eq!(keys.len(), of.len());
            let back: Vec<Option<u32>> = (0..keys.len()).map(|i| keys.get(i)).collect();
            assert_eq!(back, of, "{groups} groups");
        }
    }
}
