//! A list's figures against an outcome: how many were on it and caught,
//! PPV and sensitivity with their Wilson intervals, specificity and lift,
//! suppressed as the counts they are made from are. Read by the figures of
//! each cohort and score's top lists, overall and by group.

use serde_json::json;

use crate::suppress::Suppression;

/// `part / whole`, from the numbers they are shown as, unless a count it
/// is made from would be hidden: the part, the whole, or, where the part
/// is a part of the whole, the rest of it ([`Suppression::share`]). A rate
/// (more events than people) has no rest.
pub(super) fn ratio(s: Suppression, part: u64, whole: u64) -> Option<f64> {
    s.share(part, whole)
}

/// The 95% Wilson score interval of the proportion `x / n` (n > 0): unlike
/// the Wald interval it stays within 0 to 1 and keeps its coverage for
/// small lists and proportions near 0 or 1.
fn wilson(x: u64, n: u64) -> [f64; 2] {
    let (x, n, z) = (x as f64, n as f64, 1.959964f64);
    let centre = (x + z * z / 2.0) / (n + z * z);
    let half = z / (n + z * z) * (x * (n - x) / n + z * z / 4.0).sqrt();
    [(centre - half).max(0.0), (centre + half).min(1.0)]
}

/// [`wilson`] of `x / n` as their counts are shown.
fn shown_wilson(s: Suppression, x: u64, n: u64) -> Option<[f64; 2]> {
    let (x, n) = (s.shown(x)?, s.shown(n)?);
    (n > 0).then(|| wilson(x, n))
}

/// A yes/no list against the outcome.
pub(super) fn list_figures(
    s: Suppression,
    on_list: &[bool],
    happened: &[bool],
) -> serde_json::Value {
    let mut counts = ListCounts::default();
    for (&m, &h) in on_list.iter().zip(happened) {
        counts.add(m, h);
    }
    counts.figures(s)
}

/// What a list's figures are made from: people, of them with the outcome,
/// on the list, and on it with the outcome.
#[derive(Default, Clone, Copy)]
pub(super) struct ListCounts {
    pub(super) n: u64,
    pub(super) events: u64,
    pub(super) size: u64,
    pub(super) caught: u64,
}

impl ListCounts {
    /// One person: on the list or not, with the outcome or not.
    pub(super) fn add(&mut self, on_list: bool, happened: bool) {
        self.n += 1;
        self.events += u64::from(happened);
        self.size += u64::from(on_list);
        self.caught += u64::from(on_list && happened);
    }

    pub(super) fn figures(self, s: Suppression) -> serde_json::Value {
        let ListCounts {
            n,
            events,
            size,
            caught,
        } = self;
        let false_alarms = size - caught;
        let negatives = n - events;
        let ppv = ratio(s, caught, size);
        let prevalence = ratio(s, events, n);
        let sensitivity = ratio(s, caught, events);
        json!({
            "on_list": s.count(size),
            "with_outcome": s.count(caught),
            "ppv": ppv,
            // An interval gives back both its counts: hidden with the
            // false alarms, or the missed, as specificity is.
            // Worked out from the counts as shown, as the ratio is: from the
            // exact ones an interval gives back both.
            "ppv_95ci": ppv.filter(|_| !s.hides(false_alarms)).and_then(|_| shown_wilson(s, caught, size)),
            "sensitivity": sensitivity,
            "sensitivity_95ci": sensitivity
                .filter(|_| !s.hides(events - caught))
                .and_then(|_| shown_wilson(s, caught, events)),
            // Hidden with the counts it would give away (on list and caught).
            "specificity": (!s.hides(caught) && !s.hides(false_alarms))
                .then(|| ratio(s, negatives - false_alarms, negatives))
                .flatten(),
            "lift": ppv.zip(prevalence).filter(|(_, p)| *p > 0.0).map(|(a, p)| a / p),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_count_what_they_catch() {
        let on = [true, true, false, false, true];
        let happened = [true, false, true, false, false];
        let f = list_figures(Suppression::None, &on, &happened);
        assert_eq!(f["on_list"], "3");
        assert_eq!(f["with_outcome"], "1");
        assert_eq!(f["ppv"], 1.0 / 3.0);
        assert_eq!(f["sensitivity"], 0.5);
        assert_eq!(f["specificity"], 1.0 / 3.0);
        // Small numbers: counts hidden and no ratio made from them.
        let f = list_figures(Suppression::Hes, &on, &happened);
        assert_eq!(f["on_list"], "*");
        assert!(f["ppv"].is_null());
    }

    /// A ratio is hidden where the rest of its whole is a small number:
    /// 10 of 11 gives back the one, 10 of 18 the 8 shows.
    #[test]
    fn a_ratio_is_hidden_with_the_rest_of_its_whole() {
        let s = Suppression::Hes;
        assert_eq!(ratio(s, 10, 11), None);
        assert_eq!(ratio(s, 10, 17), None);
        assert_eq!(ratio(s, 10, 18), Some(10.0 / 20.0), "as shown: 10 of 20");
        assert_eq!(ratio(s, 10, 10), Some(1.0), "none left: nothing small");
        assert_eq!(ratio(Suppression::None, 10, 11), Some(10.0 / 11.0));
        // A rate (more events than people) has no rest to hide; it is
        // worked out as shown too ("30" of "10").
        assert_eq!(ratio(s, 30, 12), Some(3.0));
        // A list of 20, 15 with the outcome: its PPV hides the 5 without.
        let mut counts = ListCounts::default();
        for k in 0..20 {
            counts.add(true, k < 15);
        }
        for k in 0..100 {
            counts.add(false, k < 50);
        }
        let f = counts.figures(s);
        assert!(f["ppv"].is_null(), "{f}");
        assert_eq!(f["sensitivity"], 15.0 / 65.0);
        assert_eq!(counts.figures(Suppression::None)["ppv"], 0.75);
    }
}
