//! Practice registrations: who was registered where, and when, so that a
//! back-test as of a past date sees the population of that date.
//!
//! Every person has at least one registration, ending with the practice the
//! `patients` table gives. Over the three years some join (births register
//! on the day of birth; others arrive from outside the area), some move to
//! another practice, some leave the area, and the dead are deregistered on
//! the day they die. Rates are illustrative, of the order of English list
//! turnover, not taken from a published table: 3% a year join from
//! elsewhere, 2% a year move practice, 2% a year leave.
//!
//! Each person's registrations are drawn from their id alone (as opt-outs
//! are), so adding them changed no other generated value. Activity is not
//! cut to the registration: a GP record moves with the patient (GP2GP), so
//! events from before a person joined are in the record anyway; events
//! after a person left are not realistic, but no model reads them for a
//! date on which the person is not registered.

use super::population::{City, Person, Window};

/// One row of `registrations`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Registration {
    /// Index into the persons.
    pub person: u32,
    pub practice: u16,
    /// Days since 1970-01-01; `end` inclusive, `None` while registered.
    pub start: i32,
    pub end: Option<i32>,
}

/// Per thousand over the three years.
const JOINED_IN_WINDOW: u64 = 90;
const MOVED: u64 = 60;
const LEFT: u64 = 60;

/// Registered up to this many days before the window began, at most.
const LONGEST_BEFORE: u64 = 20 * 365;

/// A number drawn from a person's id and a salt: SplitMix64's finaliser,
/// the same bits on every platform and version.
pub(crate) fn id_hash(id: i64, salt: u64) -> u64 {
    let mut z = (id as u64) ^ salt;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A day in `from..=to` drawn from `hash`.
fn day_in(hash: u64, from: i32, to: i32) -> i32 {
    from + (hash % (to - from + 1) as u64) as i32
}

/// Every person's registrations, by person then start.
pub(crate) fn draw(persons: &[Person], city: &City, window: Window) -> Vec<Registration> {
    let first = window.start;
    let last = window.start + i32::from(window.days) - 1;
    let mut rows = Vec::with_capacity(persons.len() * 21 / 20);
    for (index, p) in persons.iter().enumerate() {
        let person = index as u32;
        let death = p.death.map(|d| first + i32::from(d));
        let joined = id_hash(p.id, 0x5EC1);
        let start = if p.birth >= first {
            p.birth
        } else if joined % 1000 < JOINED_IN_WINDOW {
            day_in(joined >> 10, first, death.unwrap_or(last)).max(p.birth)
        } else {
            (first - ((joined >> 10) % LONGEST_BEFORE) as i32).max(p.birth)
        };
        // A move, to the practice the patients table gives, on a day after
        // the first registration began (inside the window) and before any
        // death.
        let moved = id_hash(p.id, 0x5EC2);
        let move_from = start.max(first) + 1;
        let move_to = death.map_or(last, |d| d - 1);
        let mut current = start;
        if moved % 1000 < MOVED && move_from <= move_to && city.practices.len() > 1 {
            let day = day_in(moved >> 10, move_from, move_to);
            let others = city.practices.len() as u64 - 1;
            let previous =
                (u64::from(p.practice) + 1 + (moved >> 40) % others) % city.practices.len() as u64;
            rows.push(Registration {
                person,
                practice: previous as u16,
                start,
                end: Some(day - 1),
            });
            current = day;
        }
        let left = id_hash(p.id, 0x5EC3);
        let end = match death {
            Some(d) => Some(d),
            None if left % 1000 < LEFT && current <= last => {
                Some(day_in(left >> 10, current.max(first), last))
            }
            None => None,
        };
        rows.push(Registration {
            person,
            practice: p.practice,
            start: current,
            end,
        });
    }
    rows
}
