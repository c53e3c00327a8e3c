//! Small-number suppression for aggregate counts of people.
//!
//! Every count of people shown outside a patient-level list (the terminal
//! summary, `summary.json`, the manifest, the PCN cover sheets) goes through
//! [`Suppression::count`]; patient-level lists are never suppressed, as they
//! exist to be exact. Derived figures (percentages, ratios) are worked out
//! from the counts as shown ([`Suppression::share`]) and not shown where
//! their part, their whole or the rest of the whole would be suppressed,
//! and figures worked out from the exact data are rounded
//! ([`Suppression::figure`]), so that no hidden or exact count can be
//! worked back from them.
//! Counts of rows (input files, rejected rows) are facts about the data, not
//! about people, and are not suppressed.

use serde::{Deserialize, Serialize};

/// How small numbers are hidden. Chosen in the rule file (`[output]
/// suppression = "..."`) or with `strata run --suppression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Suppression {
    /// NHS Digital's HES method: 1 to 7 shown as `*`, other counts rounded
    /// to the nearest 5.
    #[default]
    Hes,
    /// OpenSAFELY ehrQL's: counts of 7 or fewer become 0, then every count
    /// is rounded to the nearest 5.
    Ehrql,
    /// No suppression: for outputs that stay with the data controller.
    None,
}

impl Suppression {
    pub fn parse(text: &str) -> Option<Suppression> {
        match text.trim().to_ascii_lowercase().as_str() {
            "hes" => Some(Suppression::Hes),
            "ehrql" => Some(Suppression::Ehrql),
            "none" => Some(Suppression::None),
            _ => None,
        }
    }

    /// A count of people as it may be shown in an aggregate.
    pub fn count(self, n: u64) -> String {
        match self {
            Suppression::Hes => match n {
                0 => "0".to_string(),
                1..=7 => "*".to_string(),
                _ => round5(n).to_string(),
            },
            Suppression::Ehrql => match n {
                0..=7 => "0".to_string(),
                _ => round5(n).to_string(),
            },
            Suppression::None => n.to_string(),
        }
    }

    /// Would `n` be hidden (so that nothing derived from it may be shown)?
    pub fn hides(self, n: u64) -> bool {
        match self {
            Suppression::Hes | Suppression::Ehrql => (1..=7).contains(&n),
            Suppression::None => false,
        }
    }

    /// The number `n` is shown as (rounded), `None` where it is hidden:
    /// what a figure made from it is worked out from, so that the figure
    /// gives back no more than the count does. (NHS Digital's disclosure
    /// control for HES works percentages out from the rounded numbers; from
    /// the exact ones, 600 of 8,364 shown as "600" of "8365" and 7.17%
    /// leaves one pair of exact counts, and a group's hidden count is then
    /// the total less the others.)
    pub fn shown(self, n: u64) -> Option<u64> {
        if self.hides(n) {
            return Option::None;
        }
        Some(match self {
            Suppression::Hes | Suppression::Ehrql => round5(n),
            Suppression::None => n,
        })
    }

    /// `part / whole` where `part` is a part of `whole`, from the numbers
    /// they are shown as; `None` where `whole` is 0, or where the part,
    /// the whole or the rest of the whole is hidden (10 of 11 gives back
    /// the one).
    pub fn share(self, part: u64, whole: u64) -> Option<f64> {
        if whole.checked_sub(part).is_some_and(|rest| self.hides(rest)) {
            return Option::None;
        }
        let (part, whole) = (self.shown(part)?, self.shown(whole)?);
        (whole > 0).then(|| part as f64 / whole as f64)
    }

    /// A figure worked out from the exact data rather than from counts (an
    /// AUROC, a Brier score, a mean) as it may be shown: to `places`
    /// decimals under suppression, exact without. At full precision such a
    /// figure can be solved for the exact counts behind it (an AUROC is a
    /// whole number of half-pairs over those with and without the outcome:
    /// of the pairs of counts their rounding allows, one fits), and a
    /// group's hidden count is then the total less the others'. To two
    /// decimals, with at least 8 on each side, every pair the rounding
    /// allows fits.
    pub fn figure(self, value: f64, places: i32) -> f64 {
        match self {
            Suppression::None => value,
            Suppression::Hes | Suppression::Ehrql => {
                let scale = 10f64.powi(places);
                (value * scale).round() / scale
            }
        }
    }

    /// [`Suppression::share`] as a percentage with one decimal.
    pub fn percent(self, part: u64, whole: u64) -> Option<String> {
        self.share(part, whole)
            .map(|r| format!("{:.1}%", 100.0 * r))
    }

    /// The method in words, stated beside every suppressed figure.
    pub fn method(self) -> &'static str {
        match self {
            Suppression::Hes => {
                "counts of 1-7 shown as *, others rounded to the nearest 5 (NHS Digital HES)"
            }
            Suppression::Ehrql => {
                "counts of 7 or fewer shown as 0, all counts rounded to the nearest 5 (OpenSAFELY ehrQL)"
            }
            Suppression::None => "counts are exact (no small-number suppression)",
        }
    }
}

/// To the nearest multiple of 5.
fn round5(n: u64) -> u64 {
    (n + 2) / 5 * 5
}

#[cfg(test)]
mod tests {
    use super::Suppression::{Ehrql, Hes, None};

    #[test]
    fn hes_method() {
        for (n, shown) in [
            (0, "0"),
            (1, "*"),
            (7, "*"),
            (8, "10"),
            (12, "10"),
            (13, "15"),
            (15, "15"),
            (1234, "1235"),
        ] {
            assert_eq!(Hes.count(n), shown, "{n}");
        }
    }

    #[test]
    fn ehrql_method() {
        for (n, shown) in [
            (0, "0"),
            (1, "0"),
            (7, "0"),
            (8, "10"),
            (12, "10"),
            (13, "15"),
            (20, "20"),
        ] {
            assert_eq!(Ehrql.count(n), shown, "{n}");
        }
        assert_eq!(None.count(3), "3");
    }

    #[test]
    fn percentages_are_hidden_where_a_count_is() {
        assert_eq!(Hes.percent(50, 200), Some("25.0%".to_string()));
        assert_eq!(Hes.percent(5, 200), Option::None);
        assert_eq!(Hes.percent(10, 6), Option::None);
        assert_eq!(Hes.percent(0, 0), Option::None);
        assert_eq!(None.percent(5, 200), Some("2.5%".to_string()));
        // From the rounded counts ("25" of "1275"), not the exact 23 of
        // 1,272 (1.8%), which only one pair of counts gives.
        assert_eq!(Hes.percent(23, 1272), Some("2.0%".to_string()));
        assert_eq!(None.percent(23, 1272), Some("1.8%".to_string()));
        // The rest of the whole hidden: 1,268 of 1,272 gives back the 4.
        assert_eq!(Hes.percent(1268, 1272), Option::None);
        assert_eq!(Hes.percent(1272, 1272), Some("100.0%".to_string()));
        assert_eq!(Hes.shown(0), Some(0));
        assert_eq!(Hes.shown(7), Option::None);
        assert_eq!(Hes.shown(8), Some(10));
        assert_eq!(Ehrql.shown(7), Option::None);
        assert_eq!(Ehrql.shown(12), Some(10));
        assert_eq!(None.shown(7), Some(7));
        assert_eq!(Hes.figure(0.6450548972738402, 2), 0.65);
        assert_eq!(Ehrql.figure(0.20111115618661543, 3), 0.201);
        assert_eq!(None.figure(0.6450548972738402, 2), 0.6450548972738402);
    }
}
