//! Fuzzing the rule-file reader and checker with proptest: random edits of
//! the bundled models and random expressions must give a model or a
//! positioned error, never a panic. The quick, deterministic version that
//! CI runs; the coverage-guided fuzzers of the same code are in `fuzz/`.

use std::path::Path;

use proptest::prelude::*;

const MODELS: [&str; 4] = [
    "models/hiu.toml",
    "models/hfrs.toml",
    "models/efi.toml",
    "models/southampton-one-team.toml",
];

/// Pieces of rule syntax that make edits land on interesting paths.
const TOKENS: [&str; 24] = [
    "[",
    "]",
    "=",
    "\"",
    "'",
    "(",
    ")",
    " and ",
    " or ",
    "not ",
    "case when ",
    " then ",
    " end",
    "365 days",
    "null",
    "1e999",
    "-",
    "/ 0",
    "\n[features.x]\nexpr = \"x\"\n",
    "include = [\"hiu.toml\"]\n",
    "\u{feff}",
    "\u{0}",
    "é",
    "9999999999999999999999",
];

fn edited(text: &str, edits: &[(u16, u8, u8)]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for &(at, kind, token) in edits {
        let at = at as usize % (bytes.len() + 1);
        match kind % 3 {
            0 => {
                bytes.drain(at..(at + 1 + token as usize % 8).min(bytes.len()));
            }
            1 => {
                let t = TOKENS[token as usize % TOKENS.len()].as_bytes();
                bytes.splice(at..at, t.iter().copied());
            }
            _ => {
                if at < bytes.len() {
                    bytes[at] = token;
                }
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn edited_rule_files_load_or_fail_with_a_position(
        model in 0..MODELS.len(),
        edits in prop::collection::vec((any::<u16>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let source = root.join(MODELS[model]);
        let text = std::fs::read_to_string(&source).unwrap();
        // Beside the original, so its code lists and includes resolve.
        let path = source.with_file_name(format!(".fuzz-{}-{model}.toml", std::process::id()));
        std::fs::write(&path, edited(&text, &edits)).unwrap();
        let result = std::panic::catch_unwind(|| strata::rules::load(&path).map(|_| ()));
        let _ = std::fs::remove_file(&path);
        let result = result.map_err(|_| TestCaseError::fail("the reader panicked"))?;
        if let Err(e) = result {
            // The rule file, or the code list or included file it names.
            let e = e.to_string();
            prop_assert!(e.contains(".fuzz-") || e.contains("models/"), "error names no file: {e}");
        }
    }

    #[test]
    fn random_expressions_parse_or_fail_without_panicking(text in "[a-z0-9_ ()'<>=!+*/.,-]{0,60}") {
        let _ = strata::rules::expr::parse(&text);
    }
}
