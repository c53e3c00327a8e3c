//! The bundled models: every rule file and code list under `models/`,
//! compiled into the binary, so that an installed or copied `strata` runs
//! the core model from any folder and a team can start from an editable
//! copy (`strata init`).
//!
//! A bundled file has a path under [`ROOT`] (`bundled:/core.toml`,
//! `bundled:/codelists/hf_cod.csv`): the rule reader joins includes and code
//! lists onto it exactly as it does for files on disk, and reads through
//! [`read`], which takes a bundled path from the binary and any other from
//! the file system. Errors and the manifest show the path as it is, so a
//! run says which model it used, bundled or local.

use std::io;
use std::path::{Component, Path, PathBuf};

use include_dir::{Dir, include_dir};

static MODELS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/models");

/// The folder bundled files appear in.
pub const ROOT: &str = "bundled:";

/// The path a bundled model's name stands for: `core` is
/// `bundled:/core.toml`. `None` when `arg` is not a bare name (it has a
/// folder or an extension, so it names a file) or no bundled model has it.
pub fn model_path(arg: &Path) -> Option<PathBuf> {
    let name = bare_name(arg)?;
    let file = format!("{name}.toml");
    MODELS.get_file(&file).map(|_| Path::new(ROOT).join(file))
}

/// `arg` as a model name, if it is one word (no folder, no extension).
pub fn bare_name(arg: &Path) -> Option<&str> {
    let name = arg.to_str()?;
    let word = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    word.then_some(name)
}

/// The names of the bundled models (rule files at the top of `models/`),
/// sorted.
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<&str> = MODELS
        .files()
        .filter_map(|f| f.path().to_str()?.strip_suffix(".toml"))
        .collect();
    names.sort_unstable();
    names
}

/// The file inside the bundle that `path` names, if it is under [`ROOT`]:
/// its components resolved (`bundled:/x/../hiu.toml` is `hiu.toml`).
fn inside(path: &Path) -> Option<String> {
    let mut components = path.components();
    match components.next() {
        Some(Component::Normal(first)) if first == ROOT => {}
        _ => return None,
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in components {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    Some(parts.join("/"))
}

/// Whether `path` is a bundled path.
pub fn is_bundled(path: &Path) -> bool {
    inside(path).is_some()
}

/// The bytes of a file: a bundled one from the binary, any other from disk.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    match inside(path) {
        Some(file) => MODELS
            .get_file(&file)
            .map(|f| f.contents().to_vec())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no file {file} among the bundled models"),
                )
            }),
        None => std::fs::read(path),
    }
}

/// Whether `path` names a file, bundled or on disk.
pub fn is_file(path: &Path) -> bool {
    match inside(path) {
        Some(file) => MODELS.get_file(&file).is_some(),
        None => path.is_file(),
    }
}

/// One path for one file: a bundled path with its `..` resolved, a disk
/// path made canonical where it exists.
pub fn identity(path: &Path) -> PathBuf {
    match inside(path) {
        Some(file) => Path::new(ROOT).join(file),
        None => path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
    }
}

/// Every bundled file, as (path relative to `models/`, contents), in path
/// order: what `strata init` writes.
pub fn files() -> Vec<(&'static Path, &'static [u8])> {
    let mut out = Vec::new();
    collect(&MODELS, &mut out);
    out.sort_by_key(|(p, _)| *p);
    out
}

fn collect(dir: &'static Dir<'static>, out: &mut Vec<(&'static Path, &'static [u8])>) {
    out.extend(dir.files().map(|f| (f.path(), f.contents())));
    for d in dir.dirs() {
        collect(d, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_is_a_bundled_model_and_a_path_is_a_file() {
        assert_eq!(
            model_path(Path::new("core")),
            Some(PathBuf::from("bundled:/core.toml"))
        );
        assert_eq!(model_path(Path::new("core.toml")), None);
        assert_eq!(model_path(Path::new("models/core")), None);
        assert_eq!(model_path(Path::new("no-such-model")), None);
        assert!(names().contains(&"core") && names().contains(&"hfrs"));
        assert!(!names().iter().any(|n| n.contains('/')));
    }

    #[test]
    fn bundled_paths_resolve_like_folders() {
        let core = model_path(Path::new("core")).unwrap();
        let hf = core.parent().unwrap().join("codelists/hf_cod.csv");
        assert!(is_file(&hf));
        assert!(read(&hf).unwrap().starts_with(b"code,term"));
        let up = Path::new("bundled:/codelists/../hiu.toml");
        assert_eq!(identity(up), PathBuf::from("bundled:/hiu.toml"));
        assert!(!is_file(Path::new("bundled:/missing.toml")));
        assert!(!is_bundled(Path::new("models/core.toml")));
    }
}
