//! Small-number suppression for aggregate counts.
//!
//! NHS Digital's HES method: counts of 1 to 7 are shown as `*`, other counts
//! are rounded to the nearest 5 (0 stays 0). Applied to every count shown
//! outside a patient-level list: the terminal summary today. Never applied to
//! patient-level lists, which exist to be exact.

/// A count as it may be shown in an aggregate.
pub fn count(n: u64) -> String {
    match n {
        0 => "0".to_string(),
        1..=7 => "*".to_string(),
        _ => (((n + 2) / 5) * 5).to_string(),
    }
}

/// How [`count`] treats numbers, for printing beside suppressed figures.
pub const METHOD: &str = "counts of 1-7 shown as *, others rounded to the nearest 5";

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn hes_method() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1), "*");
        assert_eq!(count(7), "*");
        assert_eq!(count(8), "10");
        assert_eq!(count(12), "10");
        assert_eq!(count(13), "15");
        assert_eq!(count(1234), "1235");
    }
}
