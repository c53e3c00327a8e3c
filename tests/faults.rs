//! Faults at 2 a.m.: a run killed at any moment leaves the previous complete
//! output or the new complete output, never a mix; a second run on the same
//! output folder is refused while the first holds it; a lock left by a
//! killed run is cleared.

mod util;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use util::*;

fn generated(dir: &Path) {
    generate(dir, 20000, 5);
}

fn run_args<'a>(data: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec![
        "run",
        "--rules",
        "models/core.toml",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]
}

/// Everything a complete output holds, readable.
fn assert_complete(out: &Path) {
    let m = manifest(out);
    assert!(
        m["counts"]["cohorts"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );
    read_parquet(&out.join("patients.parquet"));
    for file in ["summary.json", "report.html"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    for pcn in std::fs::read_dir(out.join("pcn")).unwrap() {
        let pcn = pcn.unwrap();
        let code = pcn.file_name().to_string_lossy().into_owned();
        assert!(pcn.path().join(format!("{code}.xlsx")).is_file());
    }
}

#[test]
fn a_run_killed_at_any_moment_leaves_a_complete_output() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generated(&data);
    let out = tmp.path().join("out");
    let o = strata(&run_args(&data, &out));
    assert!(o.status.success(), "{}", stderr(&o));
    let first = std::fs::read(out.join("manifest.json")).unwrap();

    let mut outcomes = (0, 0);
    for delay_ms in [5, 30, 80, 150, 250, 400, 600, 900, 1300] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(run_args(&data, &out))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_complete(&out);
        if std::fs::read(out.join("manifest.json")).unwrap() == first {
            outcomes.0 += 1;
        } else {
            outcomes.1 += 1;
        }
    }
    // A killed run's lock and staging folder do not stop the next run.
    let o = strata(&run_args(&data, &out));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_complete(&out);
    // Nothing but the lock's file, which stays, emptied and let go.
    let leftovers: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("strata-") && n != ".out.strata-lock")
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    assert!(lock_let_go(&tmp.path().join(".out.strata-lock")));
    eprintln!("kills leaving the previous / the new output: {outcomes:?}");
    assert!(
        outcomes.0 > 0,
        "some kills must land before publishing: {outcomes:?}"
    );
}

/// The output lock: a run on a folder another run holds is refused, naming
/// that run (and its machine where it is another), and a lock's file a
/// killed run left is no barrier.
#[test]
fn a_second_run_on_the_same_output_is_refused_and_a_killed_runs_lock_is_no_barrier() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let people = vec![person(1, "1980-01-01", "P1")];
    write_parquet(&data.join("patients.parquet"), &[patients_batch(&people)]);
    write_parquet(
        &data.join("ae_attendances.parquet"),
        &[ae_batch(&[(1, Some("2025-01-01"))])],
    );
    write_parquet(
        &data.join("admissions.parquet"),
        &[admissions_batch(&[(1, "2025-01-01", "elective", &[])])],
    );
    let out = tmp.path().join("out");
    let hiu = repo_path("models/hiu.toml");
    let lock = tmp.path().join(".out.strata-lock");

    // A live process (this test) holds the lock.
    let held = hold_lock(&lock);
    let o = run_rules(&hiu, &data, &out, "2025-03-31");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "another strata run (process {})",
            std::process::id()
        )),
        "{err}"
    );
    assert!(err.contains(".out.strata-lock"), "{err}");
    assert!(!out.exists());
    drop(held);

    // Held by a run on another machine (a shared folder): named with it.
    let mut held = hold_lock(&lock);
    {
        use std::io::{Seek, Write};
        held.set_len(0).unwrap();
        held.rewind().unwrap();
        writeln!(held, "4242 warehouse-2").unwrap();
    }
    let o = run_rules(&hiu, &data, &out, "2025-03-31");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("another strata run (process 4242 on warehouse-2)"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
    drop(held);

    // A killed run left the lock's file, naming a process that has exited:
    // nobody holds the lock, so the next run goes ahead.
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(&lock, format!("{pid}\n")).unwrap();
    let o = run_rules(&hiu, &data, &out, "2025-03-31");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(lock_let_go(&lock), "the run lets its lock go");
}

/// A panic in a worker thread (injected into every scan task, which debug
/// builds allow) ends the run with exit code 3 and one internal-error
/// message saying where, not a hang or a partial result: the previous
/// output stays as it was, and the next run is not blocked.
#[test]
fn a_panic_in_a_worker_thread_is_an_internal_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generated(&data);
    let out = tmp.path().join("out");
    let o = strata(&run_args(&data, &out));
    assert!(o.status.success(), "{}", stderr(&o));
    let before = std::fs::read(out.join("manifest.json")).unwrap();

    let started = std::time::Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(run_args(&data, &out))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("STRATA_INJECT_PANIC", "scan")
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(60), "no hang");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    let messages = err.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(messages, 1, "one message: {err}");
    assert!(
        err.starts_with("error: internal error: strata ")
            && err.contains("panicked in thread `worker ")
            && err.contains("src/engine/scan.rs:")
            && err.contains("injected panic in the scan of row group")
            && err.contains("please report it"),
        "{err}"
    );
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), before);
    assert_complete(&out);
    // Its lock was released as the panic unwound.
    let o = strata(&run_args(&data, &out));
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A panic while `evaluate` works out its figures (the predictions being
/// written beside them) ends with exit code 3 and leaves nothing: neither
/// `--out` nor the staging folder with the predictions, person-level data,
/// in it; only the output lock's file, emptied and let go.
#[test]
fn a_panicking_evaluation_leaves_no_file_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generated(&data);
    let outs = tmp.path().join("outs");
    std::fs::create_dir(&outs).unwrap();
    let out = outs.join("evaluation");
    let o = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "evaluate",
            "--rules",
            "models/core.toml",
            "--rules",
            "models/outcomes.toml",
            "--data",
            data.to_str().unwrap(),
            "--as-of",
            "2025-03-31",
            "--outcome",
            "death_365d",
            "--score",
            "efi",
            "--out",
            out.to_str().unwrap(),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("STRATA_INJECT_PANIC", "figures")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("injected panic in the figures"), "{err}");
    // Nothing but the lock's file, which stays, emptied and let go.
    let left: Vec<_> = std::fs::read_dir(&outs)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".evaluation.strata-lock")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(lock_let_go(&outs.join(".evaluation.strata-lock")));
}
