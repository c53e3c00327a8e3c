//! The imports point one way: the rule language (`rules/`) knows nothing of
//! the data, the engine or the outputs; the data contract (`input/`) knows
//! nothing of the engine or the outputs; the engine knows nothing of the
//! outputs; the two backends (the native engine and the SQL compiler) know
//! nothing of each other; and no stage of the pipeline knows the commands
//! (`commands/`) built on it. A `use` that points back up fails here, naming the file and
//! line, before it can close a circle.

use std::path::{Path, PathBuf};

/// Folder under `src/` -> modules of the crate it must not use.
const RULES: [(&str, &[&str]); 5] = [
    (
        "rules",
        &["engine", "input", "output", "commands", "generate", "sql"],
    ),
    ("input", &["engine", "output", "commands", "sql"]),
    ("engine", &["output", "commands", "sql"]),
    // The two backends share the typed model, not each other.
    ("sql", &["engine", "output", "commands"]),
    ("output", &["commands"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether code (not a comment) on `line` uses `crate::module` (as a path,
/// or inside `use crate::{...}`).
fn uses(line: &str, module: &str) -> bool {
    let code = line.split("//").next().unwrap_or("");
    let path = format!("crate::{module}");
    let braced = code.contains("crate::{")
        && code
            .split(['{', ',', '}', ' '])
            .any(|part| part.trim() == module || part.trim().starts_with(&format!("{module}::")));
    code.match_indices(&path).any(|(i, _)| {
        // `crate::input` must not match `crate::inputs`.
        code[i + path.len()..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric() && c != '_')
    }) || braced
}

#[test]
fn imports_point_from_the_language_through_the_engine_to_the_outputs() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    let mut read = 0;
    for (folder, forbidden) in RULES {
        let mut files = Vec::new();
        rust_files(&src.join(folder), &mut files);
        assert!(!files.is_empty(), "no files under src/{folder}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            read += 1;
            for (n, line) in text.lines().enumerate() {
                for module in forbidden {
                    if uses(line, module) {
                        wrong.push(format!(
                            "{}:{}: src/{folder} uses crate::{module}: {}",
                            file.strip_prefix(&src).unwrap().display(),
                            n + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    assert!(read > 20, "only {read} files read");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_a_use_that_points_back_up() {
    assert!(uses("use crate::output::suppress::Suppression;", "output"));
    assert!(uses("    let x = crate::engine::plan::plan(m);", "engine"));
    assert!(uses("use crate::{dates, output};", "output"));
    assert!(!uses("use crate::inputs::x;", "input"));
    assert!(!uses("/// see [`crate::engine::eval`]", "engine"));
    assert!(!uses(
        "use crate::rules::Model; // not crate::output",
        "output"
    ));
}
