//! Fuzz target: any bytes as a rule file, through what `strata check` does
//! with one (read, resolve names, type every expression without data, find
//! unused declarations) and the rendering of the error or warnings. It
//! must give a model or an error, never panic or hang.
//!
//! The rule file sits beside a copy of the bundled code lists, so inputs
//! grown from the bundled models reach the code-list loader and the type
//! checker, not only the TOML reader.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// A folder holding `codelists/` as `models/` does, made once.
fn folder() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let models = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");
        let lists = dir.path().join("codelists");
        std::fs::create_dir(&lists).unwrap();
        for entry in std::fs::read_dir(format!("{models}/codelists")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, lists.join(path.file_name().unwrap())).unwrap();
        }
        // Other bundled models, for `include`.
        for entry in std::fs::read_dir(models).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
            }
        }
        let path = dir.path().to_path_buf();
        (dir, path)
    })
    .1
}

fuzz_target!(|data: &[u8]| {
    let path = folder().join("fuzzed.toml");
    std::fs::write(&path, data).unwrap();
    match strata::rules::load(&path) {
        Ok(model) => {
            if let Err(e) = strata::rules::typing::check_types(&model) {
                let _ = e.render();
            }
            for warning in strata::rules::unused(&model) {
                let _ = warning.render_as("warning");
            }
        }
        Err(e) => {
            let _ = e.render();
        }
    }
});
