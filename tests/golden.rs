//! The golden rule files in tests/golden/: one per construct, each with its
//! own synthetic persons and expected values, all of which must pass.

mod util;

use util::*;

#[test]
fn every_golden_rule_file_passes() {
    let mut files: Vec<String> = std::fs::read_dir(repo_path("tests/golden"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    let mut args = vec!["test"];
    args.extend(files.iter().map(String::as_str));
    let o = strata(&args);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    for file in &files {
        let line = out
            .lines()
            .find(|l| l.starts_with(file.as_str()))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(!line.contains(" 0 tests"), "{file} has no tests");
    }
}
