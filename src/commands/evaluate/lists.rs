//! A list's figures against an outcome: how many were on it and caught,
//! PPV and sensitivity with their Wilson intervals, specificity and lift,
//! suppressed as the counts they are made from are. Read by the figures of
//! each cohort and score's top lists, overall and by group.

use serde_json::json;

use crate::suppress::Suppression;

/// `part / whole`, unless either count would be suppressed.
pub(super) fn ratio(s: Suppression, part: u64, whole: u64) -> Option<f64> {
    (whole > 0 && !s.hides(part) && !s.hides(whole)).then(|| part as f64 / whole as f64)
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
            "ppv_95ci": ppv.filter(|_| !s.hides(false_alarms)).map(|_| wilson(caught, size)),
            "sensitivity": sensitivity,
            "sensitivity_95ci": sensitivity
                .filter(|_| !s.hides(events - caught))
                .map(|_| wilson(caught, events)),
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
}
