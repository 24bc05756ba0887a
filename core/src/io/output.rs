//! Output folders that never destroy what the user did not ask to replace.
//!
//! - A folder scdeep writes (a run's `--out`, a model folder) gets a marker file,
//!   [`MARKER`], that lists the entries scdeep put there.
//! - An existing folder is written into only when it is empty, carries the marker, or
//!   the caller passes `overwrite`. Even then only scdeep's own entries are replaced:
//!   files the marker does not list stay where they are.
//! - Everything is written into a staging folder beside the destination and moved into
//!   place by [`StagedDir::commit`]. A run that fails (or is cancelled) drops the
//!   staging folder and leaves nothing new behind.
//! - [`refuse_overlap`] rejects an output that is, or contains, one of the run's inputs,
//!   before any work is done.

use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The marker file in every folder scdeep writes.
pub const MARKER: &str = ".scdeep-output";

/// Most bytes read from a marker file (it lists a few file names).
const MARKER_MAX_BYTES: u64 = 1 << 20;

/// A folder being written: entries go into [`StagedDir::path`], and
/// [`StagedDir::commit`] moves them into the destination.
#[derive(Debug)]
pub struct StagedDir {
    dest: PathBuf,
    stage: PathBuf,
    /// Entries of the destination that the commit must leave alone although an older
    /// marker lists them (e.g. the checkpoint folder a run writes while it trains).
    keep: Vec<String>,
    /// Parent folders this object created, removed again (when empty) on failure.
    created: Vec<PathBuf>,
    done: bool,
}

/// Why an existing folder may be written into, or the error that says why not.
/// `ours` recognises folders written before markers existed (e.g. a model folder
/// whose config.json says so).
pub fn check_writable_dir(dir: &Path, overwrite: bool, ours: &dyn Fn(&Path) -> bool) -> Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Err(_) => return Ok(()),
        Ok(m) => m,
    };
    if !meta.is_dir() && !dir.is_dir() {
        return Err(Error::io(dir, "exists and is not a folder; refusing to replace it (choose another output folder)"));
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    if entries.next().is_none() || dir.join(MARKER).is_file() || ours(dir) || overwrite {
        return Ok(());
    }
    Err(Error::io(
        dir,
        format!(
            "exists, is not empty and was not written by scdeep (it has no {MARKER} file); refusing to write into it. \
             Choose a new folder, or pass overwrite (--overwrite) to replace scdeep's files in it (other files are kept)"
        ),
    ))
}

impl StagedDir {
    /// Check that `dest` may be written (see [`check_writable_dir`]) and create the
    /// staging folder beside it.
    pub fn new(dest: &Path, overwrite: bool, ours: &dyn Fn(&Path) -> bool) -> Result<StagedDir> {
        check_writable_dir(dest, overwrite, ours)?;
        let name = dest.file_name().map(|n| n.to_string_lossy().to_string()).filter(|n| n != "..").unwrap_or_else(|| "out".into());
        let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let created = create_dirs(parent)?;
        // A short staging name: a destination name near the file system's limit must
        // not make the staging name too long.
        let short: String = name.chars().take(64).collect();
        let stage = parent.join(format!(".{short}.tmp-{}-{}", std::process::id(), unique()));
        std::fs::create_dir(&stage).map_err(|e| Error::io(&stage, e))?;
        Ok(StagedDir { dest: dest.to_path_buf(), stage, keep: Vec::new(), created, done: false })
    }

    /// The staging folder: write every output here.
    pub fn path(&self) -> &Path {
        &self.stage
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Leave this entry of the destination alone at commit time.
    pub fn keep(&mut self, entry: &str) {
        self.keep.push(entry.to_string());
    }

    /// Create the destination now (with its marker) so that something may write into
    /// it directly before the commit, e.g. a training checkpoint.
    pub fn create_dest(&mut self) -> Result<()> {
        if !self.dest.exists() {
            std::fs::create_dir(&self.dest).map_err(|e| Error::io(&self.dest, e))?;
            write_marker(&self.dest, &[])?;
        } else if !self.dest.join(MARKER).exists() {
            write_marker(&self.dest, &[])?;
        }
        Ok(())
    }

    /// Move the staged entries into the destination. A new destination is the staging
    /// folder renamed (one step); into an existing one each staged entry is renamed, the
    /// entries an earlier marker lists that this run did not write are removed, and
    /// files scdeep did not write are left alone.
    pub fn commit(mut self) -> Result<()> {
        let new: Vec<String> = list(&self.stage)?;
        if !self.dest.exists() {
            write_marker(&self.stage, &new)?;
            std::fs::rename(&self.stage, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
            self.done = true;
            return Ok(());
        }
        let old = read_marker(&self.dest);
        for e in &new {
            let to = self.dest.join(e);
            if to.is_dir() && !to.is_symlink() {
                std::fs::remove_dir_all(&to).map_err(|err| Error::io(&to, err))?;
            }
            std::fs::rename(self.stage.join(e), &to).map_err(|err| Error::io(&to, err))?;
        }
        let mut listed = new.clone();
        for e in old {
            if new.contains(&e) || !is_plain_name(&e) {
                continue;
            }
            let p = self.dest.join(&e);
            if self.keep.contains(&e) {
                if p.exists() {
                    listed.push(e);
                }
                continue;
            }
            let _ = if p.is_dir() && !p.is_symlink() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
        for k in &self.keep {
            if self.dest.join(k).exists() && !listed.contains(k) {
                listed.push(k.clone());
            }
        }
        write_marker(&self.dest, &listed)?;
        let _ = std::fs::remove_dir_all(&self.stage);
        self.done = true;
        Ok(())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.stage);
            for d in self.created.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

/// A number no earlier call in this process returned (for temporary names).
pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// `create_dir_all` that reports which folders it created.
fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.as_os_str().is_empty() && !d.exists() {
        missing.push(d.to_path_buf());
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    missing.reverse();
    for m in &missing {
        std::fs::create_dir(m).map_err(|e| Error::io(m, e))?;
    }
    Ok(missing)
}

fn is_plain_name(e: &str) -> bool {
    !e.is_empty() && e != "." && e != ".." && !e.contains('/') && e != MARKER
}

fn list(dir: &Path) -> Result<Vec<String>> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n != MARKER)
        .collect();
    v.sort();
    Ok(v)
}

fn write_marker(dir: &Path, files: &[String]) -> Result<()> {
    let v = json!({"written_by": "scdeep", "scdeep": crate::version(), "files": files});
    super::write::write_json(&dir.join(MARKER), &v)
}

/// The entries a marker lists (none if it is missing or unreadable).
fn read_marker(dir: &Path) -> Vec<String> {
    let p = dir.join(MARKER);
    let Ok(s) = super::read_capped_string(&p, MARKER_MAX_BYTES) else { return Vec::new() };
    let v: Value = serde_json::from_str(&s).unwrap_or(Value::Null);
    v["files"].as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
}

/// `p` made absolute with symbolic links resolved, also when its last parts do not exist yet.
pub fn resolve(p: &Path) -> PathBuf {
    let abs =
        if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().map(|c| c.join(p)).unwrap_or_else(|_| p.to_path_buf()) };
    let mut head = abs.clone();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = head.canonicalize() {
            let mut r = c;
            for part in rest.iter().rev() {
                if part == ".." {
                    r.pop();
                } else if part != "." {
                    r.push(part);
                }
            }
            return r;
        }
        match (head.file_name(), head.parent()) {
            (Some(n), Some(par)) => {
                rest.push(n.to_string_lossy().to_string());
                head = par.to_path_buf();
            }
            _ => return abs,
        }
    }
}

/// An output of a run: a folder scdeep fills, or one file.
pub enum Output<'a> {
    Dir(&'a str, &'a Path),
    File(&'a str, &'a Path),
}

/// Refuse, before any work, an output that is or contains an input (`(what, path)`
/// pairs, e.g. `("--labels", path)`), a file output that is an existing input file
/// (also through a link), and two folder outputs of which one holds the other.
pub fn refuse_overlap(outputs: &[Output], inputs: &[(&str, &Path)]) -> Result<()> {
    for o in outputs {
        let (what, op, is_dir) = match o {
            Output::Dir(w, p) => (*w, *p, true),
            Output::File(w, p) => (*w, *p, false),
        };
        let ro = resolve(op);
        for (iwhat, ip) in inputs {
            let ri = resolve(ip);
            let clash = if is_dir { ri.starts_with(&ro) } else { ri == ro || same_file(op, ip) };
            if clash {
                let how = if ri == ro || !is_dir { "is" } else { "contains" };
                return Err(Error::config(
                    what,
                    op.display(),
                    format!(
                        "this output {how} the input {} ({iwhat}); writing it would replace the input. Choose another output path",
                        ip.display()
                    ),
                ));
            }
        }
    }
    let dirs: Vec<(&str, PathBuf, &Path)> =
        outputs.iter().filter_map(|o| if let Output::Dir(w, p) = o { Some((*w, resolve(p), *p)) } else { None }).collect();
    for (i, (wa, ra, pa)) in dirs.iter().enumerate() {
        for (wb, rb, pb) in &dirs[i + 1..] {
            if ra.starts_with(rb) || rb.starts_with(ra) {
                return Err(Error::config(
                    wa,
                    pa.display(),
                    format!(
                        "the output folders {} ({wa}) and {} ({wb}) must be separate, neither inside the other",
                        pa.display(),
                        pb.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(unix)]
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_a: &Path, _b: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("scdeep-output-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
    const NOT_OURS: &dyn Fn(&Path) -> bool = &|_| false;

    #[test]
    fn refuses_a_foreign_folder_and_keeps_its_files() {
        let d = tmp("foreign");
        let out = d.join("res");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("labels.tsv"), "mine").unwrap();
        let e = StagedDir::new(&out, false, NOT_OURS).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains(MARKER), "{e}");
        // with overwrite: our files replace theirs of the same name, the others stay
        std::fs::write(out.join("notes.txt"), "keep").unwrap();
        let s = StagedDir::new(&out, true, NOT_OURS).unwrap();
        std::fs::write(s.path().join("labels.tsv"), "ours").unwrap();
        s.commit().unwrap();
        assert_eq!(std::fs::read_to_string(out.join("labels.tsv")).unwrap(), "ours");
        assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "keep");
        // now it carries the marker: a second run needs no overwrite, removes its own
        // stale entries and still keeps the user's file
        let s = StagedDir::new(&out, false, NOT_OURS).unwrap();
        std::fs::write(s.path().join("run.json"), "{}").unwrap();
        s.commit().unwrap();
        assert!(!out.join("labels.tsv").exists());
        assert!(out.join("run.json").is_file() && out.join("notes.txt").is_file());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_dropped_stage_leaves_nothing() {
        let d = tmp("drop");
        let out = d.join("a/b/res");
        {
            let s = StagedDir::new(&out, false, NOT_OURS).unwrap();
            std::fs::write(s.path().join("x"), "1").unwrap();
        }
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0, "staging or parent folders left behind");
        let s = StagedDir::new(&out, false, NOT_OURS).unwrap();
        std::fs::create_dir(s.path().join("sub")).unwrap();
        s.commit().unwrap();
        assert!(out.join("sub").is_dir() && out.join(MARKER).is_file());
        // a file where a folder should go is never replaced
        std::fs::write(d.join("file"), "x").unwrap();
        assert!(StagedDir::new(&d.join("file"), true, NOT_OURS).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn overlaps_are_refused() {
        let d = tmp("overlap");
        let out = d.join("res");
        std::fs::create_dir(&out).unwrap();
        let labels = out.join("labels.tsv");
        std::fs::write(&labels, "cell\tl\n").unwrap();
        let e = refuse_overlap(&[Output::Dir("--out", &out)], &[("--labels", &labels)]).unwrap_err();
        assert!(e.to_string().contains("contains the input") && e.to_string().contains("--labels"), "{e}");
        let e = refuse_overlap(&[Output::Dir("--save-model", &d)], &[("--input", &d)]).unwrap_err();
        assert!(e.to_string().contains("is the input"), "{e}");
        // through a relative path with `..` and through a hard link
        let rel = out.join("../res");
        assert!(refuse_overlap(&[Output::Dir("--out", &rel)], &[("--labels", &labels)]).is_err());
        let link = d.join("link.tsv");
        std::fs::hard_link(&labels, &link).unwrap();
        assert!(refuse_overlap(&[Output::File("--out", &link)], &[("--labels", &labels)]).is_err());
        assert!(refuse_overlap(&[Output::Dir("--out", &out), Output::Dir("--save-model", &out.join("m"))], &[]).is_err());
        // a new folder inside an input folder is fine
        assert!(refuse_overlap(&[Output::Dir("--out", &out.join("new"))], &[("--input", &out)]).is_ok());
        let _ = std::fs::remove_dir_all(&d);
    }
}
