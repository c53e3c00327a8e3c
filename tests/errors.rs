//! Rule-file error messages, pinned (one of each kind of mistake, not every
//! message the reader has): each `tests/errors/NAME.toml` holds one
//! mistake, and `strata check` must report it exactly as
//! `tests/errors/NAME.stderr` says (file, line, column, the marked text, the
//! help). To accept changed messages after reading them, run
//! `STRATA_BLESS=1 cargo test --test errors` and review the diff.

mod util;

use util::*;

#[test]
fn every_error_message_matches_its_snapshot() {
    let dir = repo_path("tests/errors");
    let mut cases: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "{cases:?}");
    let bless = std::env::var_os("STRATA_BLESS").is_some();
    let mut mismatches = Vec::new();
    for case in &cases {
        let o = strata(&["check", &format!("tests/errors/{case}")]);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{case} should fail the check: {}",
            stdout(&o)
        );
        let actual = stderr(&o);
        let snapshot = dir.join(case.replace(".toml", ".stderr"));
        if bless {
            std::fs::write(&snapshot, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&snapshot).unwrap_or_default();
        if actual != expected {
            mismatches.push(format!("--- {case}: expected\n{expected}--- got\n{actual}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
