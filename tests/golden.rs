//! The golden rule files in tests/golden/: one per construct, each with its
//! own synthetic persons and expected values, all of which must pass.

mod util;

use util::*;

#[test]
fn every_golden_rule_file_passes() {
    let files = toml_files("tests/golden");
    assert!(files.len() >= 6, "{files:?}");
    assert_all_pass(&files);
}
