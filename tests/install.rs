//! strata installed, not cloned: a copied binary runs the bundled core
//! model from any folder, `strata init` writes an editable copy that a team
//! tests, changes and runs, and a bare name that is no bundled model is a
//! clear error.

mod util;

use std::path::Path;
use std::process::{Command, Output};

use util::*;

/// Runs a copy of the binary, from `cwd`, with no repository around it.
fn installed(bin: &Path, cwd: &Path, args: &[&str]) -> Output {
    // A binary just copied can be "busy" for a moment: a process another
    // test thread forked meanwhile holds the copy's file open until it
    // execs. Try again briefly.
    for _ in 0..100 {
        match Command::new(bin)
            .args(args)
            .current_dir(cwd)
            .env("NO_COLOR", "1")
            .output()
        {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.unwrap(),
        }
    }
    panic!("{} stayed busy", bin.display());
}

/// The binary copied into a folder of its own, as `cargo install` or a
/// download would leave it.
fn copy_binary(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("bin").join("strata");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_strata"), &bin).unwrap();
    bin
}

fn hiu_members(out: &Path) -> usize {
    use arrow_array::cast::AsArray;
    let p = read_parquet(&out.join("patients.parquet"));
    let flags = p.column_by_name("hiu").unwrap().as_boolean();
    (0..p.num_rows()).filter(|&i| flags.value(i)).count()
}

#[test]
fn a_copied_binary_runs_the_bundled_core_model_from_any_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = copy_binary(tmp.path());
    let work = tmp.path().join("elsewhere");
    std::fs::create_dir(&work).unwrap();
    let data = repo_path("sample-data");
    let o = installed(
        &bin,
        &work,
        &[
            "run",
            "--data",
            data.to_str().unwrap(),
            "--out",
            "out",
            "--quiet",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m = manifest(&work.join("out"));
    let files = m["model"]["files"].as_array().unwrap();
    assert_eq!(files[0]["origin"], "bundled");
    assert!(files[0]["path"].as_str().unwrap().starts_with("bundled:/"));
    assert!(
        files
            .iter()
            .all(|f| f["sha256"].as_str().unwrap().len() == 64)
    );
    assert_eq!(m["model"]["name"], "core");

    // A bundled model by name; `strata models` lists them with their source.
    let o = installed(
        &bin,
        &work,
        &[
            "run",
            "--rules",
            "hfrs",
            "--data",
            data.to_str().unwrap(),
            "--out",
            "hfrs-out",
            "--quiet",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = installed(&bin, &work, &["models"]);
    let listed = stdout(&o);
    for name in ["core", "hfrs", "efi", "registers", "segmentation"] {
        assert!(listed.contains(&format!("\n  {name} (")), "{listed}");
    }
    assert!(listed.contains("source: Gilbert"), "{listed}");
}

#[test]
fn a_bare_name_that_is_no_bundled_model_is_a_user_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = strata(&[
        "run",
        "--rules",
        "hfr",
        "--data",
        repo_path("sample-data").to_str().unwrap(),
        "--out",
        tmp.path().join("out").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("no bundled model is called `hfr`"), "{err}");
    assert!(err.contains("did you mean `hfrs`"), "{err}");
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn init_writes_a_copy_that_tests_changes_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = copy_binary(tmp.path());
    let work = tmp.path().join("team");
    std::fs::create_dir(&work).unwrap();
    let data = repo_path("sample-data");
    let data = data.to_str().unwrap();

    let o = installed(&bin, &work, &["init", "rules"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rules = work.join("rules");
    for file in [
        "core.toml",
        "hiu.toml",
        "codelists/hf_cod.csv",
        "README.md",
        "rule-file.schema.json",
    ] {
        assert!(rules.join(file).is_file(), "{file}");
    }
    let hiu = std::fs::read_to_string(rules.join("hiu.toml")).unwrap();
    assert!(hiu.starts_with("#:schema ./rule-file.schema.json\n"));
    // A second init into the same folder refuses rather than overwrite.
    let o = installed(&bin, &work, &["init", "rules"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    // The copy as written passes its own tests.
    let o = installed(
        &bin,
        &work,
        &["test", "./rules/hiu.toml", "./rules/core.toml"],
    );
    assert!(o.status.success(), "{}", stdout(&o));

    // Run it before and after lowering the HIU threshold from 5 to 4.
    let o = installed(
        &bin,
        &work,
        &[
            "run",
            "--rules",
            "./rules/core.toml",
            "--data",
            data,
            "--out",
            "before",
            "--quiet",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        manifest(&work.join("before"))["model"]["files"][0]["origin"],
        "file"
    );
    std::fs::write(
        rules.join("hiu.toml"),
        hiu.replacen("hiu_threshold = 5", "hiu_threshold = 4", 1),
    )
    .unwrap();
    // The tests that pin the old boundary now fail, naming it: the edit
    // must be reviewed with its tests.
    let o = installed(&bin, &work, &["test", "./rules/hiu.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("an attendance exactly 365 days back is outside the window"),
        "{}",
        stdout(&o)
    );
    let o = installed(
        &bin,
        &work,
        &[
            "run",
            "--rules",
            "./rules/core.toml",
            "--data",
            data,
            "--out",
            "after",
            "--quiet",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (before, after) = (
        hiu_members(&work.join("before")),
        hiu_members(&work.join("after")),
    );
    assert!(
        after > before,
        "threshold 4 should list more people: {before} -> {after}"
    );
}
