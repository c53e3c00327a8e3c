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

/// The end of the name a previous output is moved aside to where it cannot
/// be swapped with the new one in one step: its run's staging folder's
/// name, then this.
const PREVIOUS: &str = ".previous";

/// The key every strata manifest has, used to recognise a previous output.
pub const MANIFEST_MARKER: &str = "strata_version";

pub struct Staging {
    pub dir: PathBuf,
    target: PathBuf,
    committed: bool,
}

/// What an output folder holds. Each command replaces only its own kind of
/// folder: `strata diff --out` given one of the runs it compares (or any
/// run) would otherwise put a diff in its place, and a run given a diff's
/// folder would replace the diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `strata run`'s (and `strata publish`'s) lists, report and tables.
    Run,
    /// `strata diff`'s changes between two runs.
    Diff,
    /// `strata evaluate`'s figures and predictions, written only where no
    /// folder is (an evaluation is never written over another), so none is
    /// replaced.
    Evaluation,
}

impl Kind {
    /// The manifest's `kind`, as `strata diff` writes it; a run's manifest
    /// has none. A kind this build does not know is none of these.
    fn of_manifest(manifest: &serde_json::Value) -> Option<Kind> {
        match manifest.get("kind") {
            None => Some(Kind::Run),
            Some(kind) if kind.as_str() == Some("diff") => Some(Kind::Diff),
            Some(_) => None,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Run => "a run's output (lists, report, patients.parquet)",
            Kind::Diff => "a diff's output (changes between two runs)",
            Kind::Evaluation => "an evaluation",
        }
    }

    /// The entries this kind of folder holds.
    fn entries(self) -> &'static [&'static str] {
        match self {
            Kind::Run => &[
                "manifest.json",
                "summary.json",
                "report.html",
                "rejects",
                "patients.parquet",
                "pcn",
            ],
            Kind::Diff => &[
                "manifest.json",
                "changes.parquet",
                "summary.csv",
                "transitions.csv",
                "pcn",
            ],
            Kind::Evaluation => &[],
        }
    }
}

/// Checks that `target` may be replaced by an output of `kind`. Called
/// before a run starts, so a bad `--out` is reported at once rather than
/// after hours, and again just before the staging folder is made.
pub fn check_target(target: &Path, kind: Kind) -> Result<()> {
    if target.exists() {
        if !target.is_dir() {
            return Err(Error::usage(format!(
                "output path {} exists and is not a folder",
                target.display()
            ))
            .with_help("give --out a folder path (it will be created)"));
        }
        match held(target) {
            Held::Nothing => {}
            Held::Output(held) if held == kind => {}
            Held::Output(held) => {
                return Err(Error::usage(format!(
                    "output folder {} holds {}, not {}",
                    target.display(),
                    held.describe(),
                    kind.describe()
                ))
                .with_help(
                    "strata replaces its output folder whole, and only with the same kind of output; give --out a new or empty folder",
                ));
            }
            Held::Other => {
                return Err(Error::usage(format!(
                    "output folder {} is not empty and does not hold a previous strata output",
                    target.display()
                ))
                .with_help(
                    "strata replaces its output folder whole; give --out a new or empty folder",
                ));
            }
        }
    }
    Ok(())
}

impl Staging {
    /// Checks that `target` may be replaced and creates a staging folder
    /// beside it.
    pub fn new(target: &Path, kind: Kind) -> Result<Staging> {
        check_target(target, kind)?;
        let target = &named(target);
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
            // Named as the staging folder is, so that if the run is killed
            // between the two renames the next run finds it (see
            // [`clear_staging`]).
            let mut old = self.dir.clone().into_os_string();
            old.push(PREVIOUS);
            let old = PathBuf::from(old);
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
/// it, locked by the operating system (`flock` on Unix, `LockFileEx` on
/// Windows) and holding the writer's process id and machine name. A second
/// run on the same folder is refused, naming that process and machine.
///
/// The lock, not the file, is what counts: the operating system lets it go
/// when its process ends however it ends (killed, or the machine
/// restarted), so a file left behind is no barrier, and two runs that find
/// one at the same moment cannot both take it. Nor is a process id read as
/// alive or dead: on a shared folder the writer may be on another machine,
/// whose processes this one cannot see, and the file system's lock (NFS 4,
/// SMB) is what keeps the two apart. The file itself stays, emptied, when
/// the run ends: a file removed while another run has it open would let
/// that run lock a file no longer there while a third locks a new one. It
/// is made writable by every user (0666: it holds nothing but who has it),
/// so that a run as another user can take it next. Once it holds the lock
/// a run clears the staging folders of `NAME` that killed runs left: each
/// was made under the lock, so none is being written.
pub struct Lock {
    path: PathBuf,
    // Held open for as long as the lock is held: closing it lets go.
    file: std::fs::File,
}

impl Lock {
    pub fn acquire(target: &Path) -> Result<Lock> {
        let target = &named(target);
        let (parent, name) = beside(target);
        std::fs::create_dir_all(&parent).map_err(|e| {
            Error::io(&parent, "cannot create the output's parent folder", e)
                .with_help("check the --out path and your permissions")
        })?;
        let path = parent.join(format!(".{name}.strata-lock"));
        let file = open_shared(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(held_by_another(target, &path));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(&path, "cannot lock the output folder", e).with_help(
                    "if the file system that holds --out does not lock files, give --out a folder on a local disk or on a share that locks files",
                ));
            }
        }
        let mut lock = Lock { path, file };
        lock.write_holder()?;
        clear_staging(target, &parent, &name);
        Ok(lock)
    }

    /// Writes who holds the lock into its file, for a refused run's message.
    fn write_holder(&mut self) -> Result<()> {
        use std::io::{Seek, Write};
        let text = format!("{} {}\n", std::process::id(), host_name());
        self.file
            .set_len(0)
            .and_then(|()| self.file.rewind())
            .and_then(|()| self.file.write_all(text.as_bytes()))
            .map_err(|e| Error::io(&self.path, "cannot write the output lock", e))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Emptied while still held, so that it names no finished run;
        // `self.file` closes after, letting go.
        let _ = self.file.set_len(0);
    }
}

/// The lock's file, opened to read and write (made if need be, and then
/// made writable by every user).
fn open_shared(path: &Path) -> Result<std::fs::File> {
    let folder_help = "the folder that holds --out must be writable";
    let mut tries = 0;
    loop {
        let made = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path);
        match made {
            Ok(file) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    // Not fatal: the folder's own user can still take it.
                    let _ = file.set_permissions(std::fs::Permissions::from_mode(0o666));
                }
                return Ok(file);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(
                    Error::io(path, "cannot create the output lock", e).with_help(folder_help)
                );
            }
        }
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            Ok(file) => return Ok(file),
            // Deleted between the two opens: make it again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 10 => tries += 1,
            Err(e) => {
                let help = if e.kind() == std::io::ErrorKind::PermissionDenied {
                    format!(
                        "another user's run made the lock and you cannot write it; if no strata run is writing the output, delete {}",
                        path.display()
                    )
                } else {
                    folder_help.to_string()
                };
                return Err(Error::io(path, "cannot open the output lock", e).with_help(help));
            }
        }
    }
}

/// The error for a lock another run holds, naming it where its file says
/// (it writes its name just after taking the lock, so a refused run reads
/// again for a moment while the file is still empty; on Windows, which
/// keeps a locked file from being read, it says none).
fn held_by_another(target: &Path, path: &Path) -> Error {
    let mut holder = None;
    for _ in 0..50 {
        holder = std::fs::read_to_string(path).ok().and_then(|text| {
            // Whole lines only: a read may meet the write half done.
            if !text.ends_with('\n') {
                return None;
            }
            let mut words = text.split_whitespace();
            let pid = words.next()?.parse::<u32>().ok()?;
            Some((pid, words.next().unwrap_or("").to_string()))
        });
        if holder.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let who = match &holder {
        Some((pid, host)) if host.is_empty() || *host == host_name() => format!(" (process {pid})"),
        Some((pid, host)) => format!(" (process {pid} on {host})"),
        None => String::new(),
    };
    Error::usage(format!(
        "output folder {} is being written by another strata run{who}",
        target.display()
    ))
    .with_help(format!(
        "wait for it to finish, or give --out another folder; the lock {} is let go when that run ends",
        path.display()
    ))
}

/// This machine's name, for a refused run's message.
fn host_name() -> String {
    #[cfg(unix)]
    {
        rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned()
    }
    #[cfg(not(unix))]
    {
        std::env::var("COMPUTERNAME").unwrap_or_default()
    }
}

/// Removes the staging folders of `name` that killed runs left. Called
/// with the lock held: a staging folder is only made under it, so none of
/// these is being written. A previous output that a run moved aside, and
/// was killed before it put the new one in place (where the two cannot be
/// swapped in one step), is put back at `target`, or removed if something
/// is there.
fn clear_staging(target: &Path, parent: &Path, name: &str) {
    let prefix = format!(".{name}.strata-staging-");
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        let (pid, after) = rest.split_at(rest.find('.').unwrap_or(rest.len()));
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if after == PREVIOUS && !target.exists() {
            tracing::warn!(output = %target.display(), "putting back the previous output, which a killed run had moved aside");
            if std::fs::rename(entry.path(), target).is_ok() {
                continue;
            }
        }
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

/// `target` by a path that ends in its own name: `--out .` or `--out
/// x/..` name a folder too, but the lock and staging folders go beside it,
/// in its parent, under its name, and a folder is swapped by that name
/// (taken as given, without the folder's real name, they had gone inside
/// it, and the swap failed). Such a path, or a symbolic link, is resolved
/// (on Windows to a `\\?\` path, which then shows in messages).
fn named(target: &Path) -> PathBuf {
    // As given: `Path` reads `out/.` as ending in `out`.
    let text = target.as_os_str().as_encoded_bytes();
    let last = text
        .rsplit(|&b| b == b'/' || (cfg!(windows) && b == b'\\'))
        .next()
        .unwrap_or_default();
    // A symbolic link to the folder is the folder: replaced, and locked,
    // where it is, as `link/.` would be (swapped by the link's own name,
    // the link became a folder and the one it named kept the old output).
    let link = std::fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink());
    if target.file_name().is_some() && last != b"." && !link {
        return target.to_path_buf();
    }
    target
        .canonicalize()
        .unwrap_or_else(|_| target.to_path_buf())
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

/// What a folder holds, as far as replacing it goes.
enum Held {
    /// Nothing: it is empty.
    Nothing,
    /// A previous strata output of this kind: a manifest that strata wrote
    /// and nothing that this kind of output does not hold.
    Output(Kind),
    /// Anything else.
    Other,
}

fn held(dir: &Path) -> Held {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Held::Other;
    };
    let names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if names.is_empty() {
        return Held::Nothing;
    }
    let manifest = std::fs::read_to_string(dir.join("manifest.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .filter(|m| m.get(MANIFEST_MARKER).is_some());
    let Some(manifest) = manifest else {
        return Held::Other;
    };
    let Some(kind) = Kind::of_manifest(&manifest) else {
        return Held::Other;
    };
    if names.iter().all(|n| kind.entries().contains(&n.as_str())) {
        Held::Output(kind)
    } else {
        Held::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run killed between moving the previous output aside and putting
    /// the new one in place (where they cannot be swapped in one step)
    /// left `out` missing: the next run to take the lock puts the previous
    /// output back, or, where `out` is there, removes what was set aside.
    #[test]
    fn a_previous_output_left_aside_is_put_back_or_cleared() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let aside = tmp.path().join(format!(".out.strata-staging-7{PREVIOUS}"));
        let new = tmp.path().join(".out.strata-staging-7");
        for dir in [&aside, &new] {
            std::fs::create_dir(dir).unwrap();
        }
        std::fs::write(aside.join("manifest.json"), manifest("previous")).unwrap();
        std::fs::write(new.join("manifest.json"), manifest("new")).unwrap();
        drop(Lock::acquire(&out).unwrap());
        assert_eq!(
            std::fs::read_to_string(out.join("manifest.json")).unwrap(),
            manifest("previous")
        );
        assert!(!aside.exists() && !new.exists());

        std::fs::create_dir(&aside).unwrap();
        std::fs::write(aside.join("manifest.json"), manifest("older")).unwrap();
        drop(Lock::acquire(&out).unwrap());
        assert!(!aside.exists());
        assert_eq!(
            std::fs::read_to_string(out.join("manifest.json")).unwrap(),
            manifest("previous")
        );
    }

    #[test]
    fn a_lock_is_taken_by_one_at_a_time_and_let_go_emptied() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let path = tmp.path().join(".out.strata-lock");
        let first = Lock::acquire(&out).unwrap();
        let refused = Lock::acquire(&out).err().expect("held by the first");
        assert!(refused.is_user_error());
        // Windows keeps a locked file from being read: no holder named.
        #[cfg(unix)]
        {
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(text, format!("{} {}\n", std::process::id(), host_name()));
            let shown = refused.render();
            assert!(
                shown.contains(&format!(
                    "another strata run (process {})",
                    std::process::id()
                )),
                "{shown}"
            );
        }
        drop(first);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o666,
                0o666,
                "any user who can write the folder takes it next"
            );
        }
        let second = Lock::acquire(&out).unwrap();
        drop(second);
    }

    fn manifest(run: &str) -> String {
        format!("{{\"{MANIFEST_MARKER}\": \"{run}\"}}")
    }

    #[test]
    fn replaces_previous_output_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        for run in ["first", "second"] {
            let staging = Staging::new(&out, Kind::Run).unwrap();
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
            let staging = Staging::new(&out, Kind::Run).unwrap();
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
        let e = Staging::new(tmp.path(), Kind::Run).err().unwrap();
        assert!(
            e.to_string()
                .contains("does not hold a previous strata output"),
            "{e}"
        );
        // A strata manifest does not make other files strata's to delete.
        std::fs::write(tmp.path().join("manifest.json"), manifest("old")).unwrap();
        assert!(check_target(tmp.path(), Kind::Run).is_err());
        // Nor does a manifest that merely mentions the marker.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("manifest.json"), MANIFEST_MARKER).unwrap();
        assert!(check_target(other.path(), Kind::Run).is_err());
        let file = tmp.path().join("thesis.docx");
        let e = Staging::new(&file, Kind::Run).err().unwrap();
        assert!(e.to_string().contains("is not a folder"), "{e}");
    }

    #[test]
    fn replaces_only_its_own_kind_of_output() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        let staging = Staging::new(&run, Kind::Run).unwrap();
        std::fs::write(staging.dir.join("manifest.json"), manifest("run")).unwrap();
        std::fs::write(staging.dir.join("patients.parquet"), "people").unwrap();
        staging.commit().unwrap();
        // A diff given a run's folder (one it may be comparing) leaves it.
        let e = Staging::new(&run, Kind::Diff).err().unwrap();
        assert!(e.to_string().contains("holds a run's output"), "{e}");
        assert!(e.is_user_error(), "a user's mistake: {e}");
        assert!(run.join("patients.parquet").exists());
        // And a run given a diff's folder leaves that.
        let diff = tmp.path().join("diff");
        std::fs::create_dir(&diff).unwrap();
        std::fs::write(
            diff.join("manifest.json"),
            format!("{{\"{MANIFEST_MARKER}\": \"x\", \"kind\": \"diff\"}}"),
        )
        .unwrap();
        std::fs::write(diff.join("changes.parquet"), "changes").unwrap();
        let e = check_target(&diff, Kind::Run).err().unwrap();
        assert!(e.to_string().contains("holds a diff's output"), "{e}");
        assert!(check_target(&diff, Kind::Diff).is_ok());
        assert!(check_target(&run, Kind::Run).is_ok());
        // A kind this build does not know is neither.
        std::fs::write(
            diff.join("manifest.json"),
            format!("{{\"{MANIFEST_MARKER}\": \"x\", \"kind\": \"later\"}}"),
        )
        .unwrap();
        for kind in [Kind::Run, Kind::Diff] {
            assert!(check_target(&diff, kind).is_err());
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_link_to_the_output_replaces_the_folder_it_names() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().canonicalize().unwrap().join("real");
        let staging = Staging::new(&real, Kind::Run).unwrap();
        std::fs::write(staging.dir.join("manifest.json"), manifest("first")).unwrap();
        staging.commit().unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let lock = Lock::acquire(&link).unwrap();
        // The same lock as the folder's own: a second run by either name
        // is refused.
        assert!(Lock::acquire(&real).is_err());
        let staging = Staging::new(&link, Kind::Run).unwrap();
        std::fs::write(staging.dir.join("manifest.json"), manifest("second")).unwrap();
        staging.commit().unwrap();
        drop(lock);
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read_to_string(real.join("manifest.json")).unwrap(),
            manifest("second")
        );
    }

    #[test]
    fn an_output_named_by_dot_or_dot_dot_is_replaced_beside_itself() {
        let tmp = tempfile::tempdir().unwrap();
        // Resolved, as the paths under test will be (macOS's /var is a link).
        let tmp_path = tmp.path().canonicalize().unwrap();
        let out = tmp_path.join("out");
        let staging = Staging::new(&out, Kind::Run).unwrap();
        std::fs::write(staging.dir.join("manifest.json"), manifest("first")).unwrap();
        std::fs::create_dir(staging.dir.join("pcn")).unwrap();
        staging.commit().unwrap();
        // `out/.` and `out/pcn/..` are `out`: the lock and the staging
        // folder go beside it, not inside, and the swap is by its name.
        for given in [out.join("."), out.join("pcn").join("..")] {
            let lock = Lock::acquire(&given).unwrap();
            let staging = Staging::new(&given, Kind::Run).unwrap();
            assert_eq!(staging.dir.parent(), Some(tmp_path.as_path()));
            std::fs::write(staging.dir.join("manifest.json"), manifest("again")).unwrap();
            std::fs::create_dir(staging.dir.join("pcn")).unwrap();
            staging.commit().unwrap();
            drop(lock);
            let mut inside: Vec<_> = std::fs::read_dir(&out)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            inside.sort();
            assert_eq!(inside, ["manifest.json", "pcn"], "{}", given.display());
            assert_eq!(
                std::fs::read_to_string(out.join("manifest.json")).unwrap(),
                manifest("again")
            );
            std::fs::write(out.join("manifest.json"), manifest("first")).unwrap();
        }
    }
}
