//! `strata init DIR`: an editable copy of the bundled models, for a team to
//! keep under version control and change (a threshold, a code list) without
//! rebuilding strata.
//!
//! The copy is the bundled `models/` folder as it is, with two additions:
//! each rule file's first line points editors at the JSON Schema written
//! beside it (completion and checks as you type), and a README says how to
//! change, test and run the models. The folder is written under a temporary
//! name and renamed into place, so a failed init leaves nothing half made.

use std::path::Path;

use crate::error::{Error, Result};
use crate::rules;

/// The line that tells editors (Taplo, Even Better TOML) where the schema is.
const SCHEMA_LINE: &str = "#:schema ./rule-file.schema.json\n";

/// Writes the copy into `dir`, which must not exist or be empty; returns the
/// number of files written.
pub fn write_copy(dir: &Path) -> Result<usize> {
    // `strata init .` in an empty folder: its own name is needed below.
    let absolute;
    let dir = if dir.file_name().is_none() && dir.exists() {
        absolute = dir
            .canonicalize()
            .map_err(|e| Error::io(dir, "cannot resolve", e))?;
        absolute.as_path()
    } else {
        dir
    };
    if dir.exists() {
        let empty = dir.is_dir()
            && std::fs::read_dir(dir)
                .map_err(|e| Error::io(dir, "cannot read folder", e))?
                .next()
                .is_none();
        if !empty {
            return Err(Error::usage(format!(
                "{} already exists and is not an empty folder",
                dir.display()
            ))
            .with_help("name a new folder; strata init never overwrites files"));
        }
    }
    let name = dir
        .file_name()
        .ok_or_else(|| Error::usage(format!("{} is not a folder name", dir.display())))?;
    let staging = dir.with_file_name(format!(".{}.strata-init", name.to_string_lossy()));
    let _ = std::fs::remove_dir_all(&staging);
    let written = write_files(&staging).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&staging);
    })?;
    if dir.exists() {
        std::fs::remove_dir(dir).map_err(|e| Error::io(dir, "cannot replace empty folder", e))?;
    }
    std::fs::rename(&staging, dir).map_err(|e| Error::io(dir, "cannot create", e))?;
    Ok(written)
}

fn write_files(root: &Path) -> Result<usize> {
    let mut written = 0;
    for (path, contents) in rules::bundled::files() {
        let target = root.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(parent, "cannot create folder", e))?;
        }
        let is_rule_file = path.extension().is_some_and(|e| e == "toml");
        let mut bytes = Vec::with_capacity(contents.len() + SCHEMA_LINE.len());
        if is_rule_file && path.parent().is_some_and(|p| p.as_os_str().is_empty()) {
            bytes.extend_from_slice(SCHEMA_LINE.as_bytes());
        }
        bytes.extend_from_slice(contents);
        std::fs::write(&target, bytes).map_err(|e| Error::io(&target, "cannot write", e))?;
        written += 1;
    }
    for (name, text) in [
        ("rule-file.schema.json", rules::json_schema()),
        ("README.md", readme()),
    ] {
        let target = root.join(name);
        std::fs::write(&target, text).map_err(|e| Error::io(&target, "cannot write", e))?;
        written += 1;
    }
    Ok(written)
}

fn readme() -> String {
    format!(
        "# Risk stratification models\n\n\
         An editable copy of the models bundled with strata {version}, written by\n\
         `strata init`. Keep this folder under version control: every change to a\n\
         threshold, window or code list is then reviewed and dated, and each run's\n\
         `manifest.json` records the SHA-256 of every rule file it read.\n\n\
         Run a model from here:\n\n\
         ```sh\n\
         strata run --rules ./core.toml --data DATA --out OUT\n\
         ```\n\n\
         (`--rules core`, a bare name, runs the copy bundled with strata instead.)\n\n\
         ## Change a threshold\n\n\
         Each rule file's `[params]` holds its thresholds, windows and age floors;\n\
         edit the value there, or try one without editing:\n\
         `strata run --rules ./core.toml --set hiu_threshold=4`. The header of each\n\
         rule file says where its definition comes from and what was adapted.\n\n\
         ## Add or change a code list\n\n\
         Code lists are CSV files in `codelists/` with a `code` and a `term` column\n\
         (the OpenCodelists layout), and a category or weight column where a model\n\
         needs one. Add the file, then declare it in a rule file:\n\n\
         ```toml\n\
         [codelists.my_list]\n\
         file = \"codelists/my_list.csv\"\n\
         system = \"snomed\"       # snomed | icd10 | dmd | other\n\
         ```\n\n\
         and use it in a feature (`codelist = \"my_list\"`). `codelists/README.md`\n\
         says where every bundled list came from: record yours there too.\n\n\
         ## Check and test before you run\n\n\
         ```sh\n\
         strata check ./core.toml --data DATA   # names, types, code lists, tables\n\
         strata test ./*.toml                   # the [[tests]] in each rule file\n\
         ```\n\n\
         Every model carries assurance tests: synthetic people with the result the\n\
         definition requires. When you change a threshold, change its tests on both\n\
         sides of the new boundary; `strata test` must pass before a run is trusted.\n\n\
         ## Editors\n\n\
         The first line of each rule file, `#:schema ./rule-file.schema.json`, gives\n\
         editors with a TOML language server (VS Code's Even Better TOML) completion\n\
         and the documentation of every key. The rule-file language is described in\n\
         strata's `docs/rules.md`.\n",
        version = env!("CARGO_PKG_VERSION")
    )
}
