//! Calendar arithmetic: dates as days since 1970-01-01 (Arrow's `Date32`),
//! ages in completed years, and the exact windows rule files ask for.
//!
//! Everything the engine compares is an `i32` day number, so the hot loops
//! never touch a calendar; the calendar is only consulted here, once per run
//! (window starts) or once per person (ages).

use chrono::{Datelike, Months, NaiveDate};

/// Days since the Unix epoch, as stored in Arrow `Date32` columns.
pub type Day = i32;

const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// 1900-01-01 as a day number. Nothing in a living population's record is
/// older: an earlier event date, or birth date, is a placeholder (such as
/// 1800-01-01), a typo or a corrupt value.
pub const FIRST_PLAUSIBLE_DAY: Day = -25_567;

pub fn to_day(date: NaiveDate) -> Day {
    date.num_days_from_ce() - EPOCH_DAYS_FROM_CE
}

/// The calendar date of a day number; `None` beyond chrono's range (about
/// 262,000 years either side of year 0), which only corrupt data reaches.
pub fn from_day(day: Day) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(day.checked_add(EPOCH_DAYS_FROM_CE)?)
}

/// The calendar month of a day, numbered from January of year 0 (never
/// negative for dates the engine keeps).
pub fn month_number(day: Day) -> u32 {
    from_day(day).map_or(0, |d| (d.year().max(0) as u32) * 12 + d.month0())
}

/// Parses `YYYY-MM-DD`, the only date format strata accepts from people.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()
}

/// Age in completed years on `as_of`. A person born on 29 February has their
/// birthday on 1 March in non-leap years (they are not a year older until the
/// day after 28 February has passed).
pub fn age_on(birth: NaiveDate, as_of: NaiveDate) -> i64 {
    let mut years = i64::from(as_of.year() - birth.year());
    if (as_of.month(), as_of.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    years
}

/// [`age_on`] one date for many birth days, without a calendar date made
/// per person (that was 1.4% of the CPU of an evaluation over 12 dates at
/// 1M persons, this about 0.8%):
/// the last day a person could be born and be `k` on the date is worked out
/// once for each `k` up to [`AgesOn::YEARS`], and each person's age is the
/// days between divided by 366 (never more than the age, and at most one
/// less), raised by those days.
pub struct AgesOn {
    as_of: NaiveDate,
    /// `last_born[k]`: the last birth day of a person `k` or older on the
    /// date: the date `k` years before, or 28 February for a 29th.
    last_born: Vec<Day>,
}

impl AgesOn {
    /// Ages above this are worked out with a calendar.
    const YEARS: i32 = 150;

    pub fn new(as_of: NaiveDate) -> AgesOn {
        let last_born = (0..=AgesOn::YEARS)
            .map_while(|k| {
                let year = as_of.year() - k;
                NaiveDate::from_ymd_opt(year, as_of.month(), as_of.day())
                    .or_else(|| NaiveDate::from_ymd_opt(year, 2, 28))
                    .map(to_day)
            })
            .collect();
        AgesOn { as_of, last_born }
    }

    /// The age on the date of a person born on day `birth`; `None` where
    /// `birth` is after the date or beyond the calendar.
    pub fn age(&self, birth: Day) -> Option<i64> {
        let days = i64::from(self.last_born[0]) - i64::from(birth);
        if days < 0 {
            return None;
        }
        let mut k = (days / 366) as usize;
        while k + 1 < self.last_born.len() && birth <= self.last_born[k + 1] {
            k += 1;
        }
        if k + 1 >= self.last_born.len() {
            return from_day(birth).map(|b| age_on(b, self.as_of));
        }
        Some(k as i64)
    }
}

/// A look-back period ending on the as-of date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// Everything recorded up to and including the as-of date.
    Ever,
    Days(u32),
    Months(u32),
    Years(u32),
}

impl Window {
    /// The first day *outside* the window: events must be strictly after it.
    /// `None` for [`Window::Ever`], and for a window reaching back beyond the
    /// calendar, which keeps everything just as `ever` does.
    pub fn exclusive_start(self, as_of: NaiveDate) -> Option<Day> {
        let start = match self {
            Window::Ever => None,
            Window::Days(n) => as_of.checked_sub_days(chrono::Days::new(u64::from(n))),
            // chrono clamps to the month's last day (31 March - 1 month = 28/29 February).
            Window::Months(n) => as_of.checked_sub_months(Months::new(n)),
            Window::Years(n) => as_of.checked_sub_months(Months::new(n.saturating_mul(12))),
        };
        start.map(to_day)
    }

    /// The last day of a forward window of this length starting after
    /// `as_of` (`next 365 days`: `as_of` + 365 days; months clamped to the
    /// month's last day); `None` for `ever`, or beyond the calendar.
    pub fn forward_end(self, as_of: NaiveDate) -> Option<NaiveDate> {
        match self {
            Window::Ever => None,
            Window::Days(n) => as_of.checked_add_days(chrono::Days::new(u64::from(n))),
            Window::Months(n) => as_of.checked_add_months(Months::new(n)),
            Window::Years(n) => as_of.checked_add_months(Months::new(n.saturating_mul(12))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every birth day from 200 years before to the day itself, on dates
    /// around leap days and year ends: the same ages as [`age_on`].
    #[test]
    fn ages_on_one_date_are_the_calendar_ages() {
        for as_of in [
            "2024-02-28",
            "2024-02-29",
            "2024-03-01",
            "2025-02-28",
            "2025-03-01",
            "2025-03-31",
            "2024-12-31",
            "2025-01-01",
            "2000-02-29",
        ] {
            let as_of = parse_date(as_of).unwrap();
            let ages = AgesOn::new(as_of);
            let today = to_day(as_of);
            for birth in today - 73_100..=today + 3 {
                let expected = from_day(birth)
                    .filter(|b| *b <= as_of)
                    .map(|b| age_on(b, as_of));
                assert_eq!(ages.age(birth), expected, "{as_of} {:?}", from_day(birth));
            }
            assert_eq!(ages.age(Day::MIN), None);
        }
    }

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    #[test]
    fn day_numbers_match_arrow_epoch() {
        assert_eq!(to_day(d("1970-01-01")), 0);
        assert_eq!(to_day(d("1970-01-02")), 1);
        assert_eq!(to_day(d("1969-12-31")), -1);
        assert_eq!(from_day(to_day(d("2024-02-29"))), Some(d("2024-02-29")));
        assert_eq!(from_day(i32::MAX), None);
    }

    #[test]
    fn age_is_completed_years() {
        assert_eq!(age_on(d("2000-03-01"), d("2025-03-01")), 25);
        assert_eq!(age_on(d("2000-03-01"), d("2025-02-28")), 24);
        assert_eq!(age_on(d("2004-02-29"), d("2025-02-28")), 20);
        assert_eq!(age_on(d("2004-02-29"), d("2025-03-01")), 21);
        assert_eq!(age_on(d("2004-02-29"), d("2024-02-29")), 20);
    }

    #[test]
    fn windows_start_exclusively() {
        let as_of = d("2025-03-31");
        assert_eq!(Window::Ever.exclusive_start(as_of), None);
        assert_eq!(
            Window::Days(365).exclusive_start(as_of),
            Some(to_day(d("2024-03-31")))
        );
        assert_eq!(
            Window::Months(1).exclusive_start(as_of),
            Some(to_day(d("2025-02-28")))
        );
        assert_eq!(
            Window::Years(2).exclusive_start(d("2024-02-29")),
            Some(to_day(d("2022-02-28")))
        );
        assert_eq!(Window::Days(u32::MAX).exclusive_start(as_of), None);
        assert_eq!(Window::Years(u32::MAX).exclusive_start(as_of), None);
    }

    #[test]
    fn forward_windows_end_exactly() {
        let as_of = d("2025-03-31");
        assert_eq!(Window::Days(365).forward_end(as_of), Some(d("2026-03-31")));
        assert_eq!(Window::Months(1).forward_end(as_of), Some(d("2025-04-30")));
        assert_eq!(
            Window::Years(1).forward_end(d("2024-02-29")),
            Some(d("2025-02-28"))
        );
        assert_eq!(Window::Ever.forward_end(as_of), None);
    }

    #[test]
    fn parse_rejects_other_formats() {
        assert!(parse_date("2025-13-01").is_none());
        assert!(parse_date("01/02/2025").is_none());
        assert_eq!(parse_date(" 2025-01-02 "), Some(d("2025-01-02")));
    }
}
