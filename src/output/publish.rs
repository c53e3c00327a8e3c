//! Atomic publishing of a run's output folder.
//!
//! Everything is written into a staging folder beside `OUT` and swapped into
//! place only once complete, so a run that fails, or is killed, leaves the
//! previous good output untouched. On Linux the swap is one `renameat2`
//! with `RENAME_EXCHANGE`: at every instant `OUT` is either the old or the
//! new complete output. Elsewhere it falls back to two renames.
//!
//! `OUT` is only ever replaced if it is empty or holds a previous strata
//! output (it has a `manifest.json` written by strata), so a mistyped
//! `--out $HOME` cannot wipe a folder.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The key every strata manifest has, used to recognise a previous output.
pub const MANIFEST_MARKER: &str = "strata_version";

pub struct Staging {
    pub dir: PathBuf,
    target: PathBuf,
    committed: bool,
}

/// Checks that `target` may be replaced by a run's output. Called before a
/// run starts, so a bad `--out` is reported at once rather than after hours,
/// and again just before the staging folder is made.
pub fn check_target(target: &Path) -> Result<()> {
    if target.exists() {
        if !target.is_dir() {
            return Err(Error::usage(format!(
                "output path {} exists and is not a folder",
                target.display()
            ))
            .with_help("give --out a folder path (it will be created)"));
        }
        if !is_replaceable(target) {
            return Err(Error::usage(format!(
                "output folder {} is not empty and does not hold a previous strata output",
                target.display()
            ))
            .with_help(
                "strata replaces its output folder whole; give --out a new or empty folder",
            ));
        }
    }
    Ok(())
}

impl Staging {
    /// Checks that `target` may be replaced and creates a staging folder
    /// beside it.
    pub fn new(target: &Path) -> Result<Staging> {
        check_target(target)?;
        let (parent, name) = beside(target);
        std::fs::create_dir_all(&parent).map_err(|e| {
            Error::io(&parent, "cannot create the output's parent folder", e)
                .with_help("check the --out path and your permissions")
        })?;
        let dir = parent.join(format!(".{name}.strata-staging-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| Error::io(&dir, "cannot clear stale staging folder", e))?;
        }
        std::fs::create_dir(&dir).map_err(|e| {
            Error::io(&dir, "cannot create staging folder", e)
                .with_help("the folder that holds --out must be writable")
        })?;
        Ok(Staging {
            dir,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    /// Puts the staged output in place of the target.
    pub fn commit(mut self) -> Result<()> {
        let target = self.target.clone();
        if target.exists() {
            if exchange(&self.dir, &target).is_ok() {
                // The staging path now holds the previous output.
                self.committed = true;
                let _ = std::fs::remove_dir_all(&self.dir);
                return Ok(());
            }
            let old = self
                .dir
                .with_extension(format!("previous-{}", std::process::id()));
            std::fs::rename(&target, &old)
                .map_err(|e| Error::io(&target, "cannot move the previous output aside", e))?;
            if let Err(e) = std::fs::rename(&self.dir, &target) {
                let _ = std::fs::rename(&old, &target);
                return Err(Error::io(
                    &target,
                    "cannot move the new output into place",
                    e,
                ));
            }
            self.committed = true;
            let _ = std::fs::remove_dir_all(&old);
            return Ok(());
        }
        std::fs::rename(&self.dir, &target)
            .map_err(|e| Error::io(&target, "cannot move the new output into place", e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Held while a run writes an output folder: `.NAME.strata-lock` beside
/// it, holding the writer's process id. A second run on the same folder is
/// refused, naming that process; a lock left by a process that no longer
/// exists (killed, or the machine restarted) is cleared, with the staging
/// folders such a process left.
pub struct Lock {
    path: PathBuf,
}

impl Lock {
    pub fn acquire(target: &Path) -> Result<Lock> {
        let (parent, name) = beside(target);
        std::fs::create_dir_all(&parent).map_err(|e| {
            Error::io(&parent, "cannot create the output's parent folder", e)
                .with_help("check the --out path and your permissions")
        })?;
        let path = parent.join(format!(".{name}.strata-lock"));
        let me = std::process::id();
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    use std::io::Write;
                    let _ = writeln!(file, "{me}");
                    clear_stale_staging(&parent, &name);
                    return Ok(Lock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| t.trim().parse::<u32>().ok());
                    match holder {
                        Some(pid) if pid != me && process_exists(pid) => {
                            return Err(Error::usage(format!(
                                "output folder {} is being written by another strata run (process {pid})",
                                target.display()
                            ))
                            .with_help(format!(
                                "wait for it to finish, or give --out another folder; if process {pid} is not strata, delete {}",
                                path.display()
                            )));
                        }
                        // Left by a process that is gone: clear it and retry.
                        _ => {
                            tracing::warn!(lock = %path.display(), "clearing a lock left by a run that no longer exists");
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => {
                    return Err(Error::io(&path, "cannot create the output lock", e)
                        .with_help("the folder that holds --out must be writable"));
                }
            }
        }
        Err(Error::usage(format!(
            "cannot take the lock {} for {}",
            path.display(),
            target.display()
        ))
        .with_help("another run may be starting at the same moment; try again"))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Does process `pid` exist? Where that cannot be told (no `/proc`), it is
/// taken to exist, so a lock is never cleared wrongly.
fn process_exists(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

/// Removes staging folders of `name` left by processes that no longer
/// exist (a run killed before it published).
fn clear_stale_staging(parent: &Path, name: &str) {
    let prefix = format!(".{name}.strata-staging-");
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let pid = file
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('.').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id()
            && !process_exists(pid)
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The folder holding `target`, and `target`'s own name.
fn beside(target: &Path) -> (PathBuf, String) {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    (parent, name)
}

/// The entries a strata output folder holds.
const OUTPUT_ENTRIES: &[&str] = &[
    "manifest.json",
    "summary.json",
    "report.html",
    "rejects",
    "patients.parquet",
    "pcn",
    // `strata diff`'s
    "changes.parquet",
    "summary.csv",
    "transitions.csv",
];

/// Empty, or a previous strata output: a manifest that strata wrote and
/// nothing that strata does not write.
fn is_replaceable(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if names.is_empty() {
        return true;
    }
    let ours = names.iter().all(|n| OUTPUT_ENTRIES.contains(&n.as_str()));
    let manifest = std::fs::read_to_string(dir.join("manifest.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|m| m.get(MANIFEST_MARKER).is_some());
    ours && manifest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(run: &str) -> String {
        format!("{{\"{MANIFEST_MARKER}\": \"{run}\"}}")
    }

    #[test]
    fn replaces_previous_output_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        for run in ["first", "second"] {
            let staging = Staging::new(&out).unwrap();
            std::fs::write(staging.dir.join("manifest.json"), manifest(run)).unwrap();
            if run == "first" {
                std::fs::write(staging.dir.join("patients.parquet"), run).unwrap();
            }
            staging.commit().unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(out.join("manifest.json")).unwrap(),
            manifest("second")
        );
        assert!(
            !out.join("patients.parquet").exists(),
            "old files must not survive"
        );
        // Only `out` is left beside it: no staging or previous folders.
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out")]);
    }

    #[test]
    fn a_dropped_staging_leaves_the_target_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("manifest.json"), manifest("old")).unwrap();
        {
            let staging = Staging::new(&out).unwrap();
            std::fs::write(staging.dir.join("half.txt"), "x").unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(out.join("manifest.json")).unwrap(),
            manifest("old")
        );
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn refuses_to_replace_a_folder_that_is_not_strata_output() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("thesis.docx"), "precious").unwrap();
        let e = Staging::new(tmp.path()).err().unwrap();
        assert!(
            e.to_string()
                .contains("does not hold a previous strata output"),
            "{e}"
        );
        // A strata manifest does not make other files strata's to delete.
        std::fs::write(tmp.path().join("manifest.json"), manifest("old")).unwrap();
        assert!(check_target(tmp.path()).is_err());
        // Nor does a manifest that merely mentions the marker.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("manifest.json"), MANIFEST_MARKER).unwrap();
        assert!(check_target(other.path()).is_err());
        let file = tmp.path().join("thesis.docx");
        let e = Staging::new(&file).err().unwrap();
        assert!(e.to_string().contains("is not a folder"), "{e}");
    }
}
