//! The input of a dataset build: a directory tree or a zip file, as a sorted list of files.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use zip::ZipArchive;

use crate::skip::{Oversize, SkipReason};

/// Files to build from, sorted by name (relative path with `/` separators).
pub(crate) enum Source {
    Dir(Vec<(String, PathBuf)>),
    Zip {
        archive: ZipArchive<File>,
        entries: Vec<(String, usize)>,
    },
}

impl Source {
    /// Lists a directory (recursively) or the file entries of a zip archive.
    pub(crate) fn open(input: &Path) -> Result<Source> {
        if input.is_dir() {
            let mut files = Vec::new();
            walk(input, "", &mut files)?;
            files.sort();
            return Ok(Source::Dir(files));
        }
        if !input.is_file() {
            bail!(
                "input {} does not exist (expected a directory or a .zip file)",
                input.display()
            );
        }
        let mut magic = [0u8; 4];
        let is_zip = File::open(input)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok_and(|_| &magic == b"PK\x03\x04" || &magic == b"PK\x05\x06");
        if !is_zip {
            bail!(
                "input {} is neither a directory nor a .zip file",
                input.display()
            );
        }
        let file = File::open(input)?;
        let mut archive = ZipArchive::new(file)
            .with_context(|| format!("cannot read zip file {}", input.display()))?;
        let mut entries = Vec::new();
        for index in 0..archive.len() {
            let entry = archive
                .by_index_raw(index)
                .with_context(|| format!("cannot read zip file {}", input.display()))?;
            if !entry.is_dir() {
                entries.push((entry.name().to_string(), index));
            }
        }
        entries.sort();
        Ok(Source::Zip { archive, entries })
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Source::Dir(files) => files.len(),
            Source::Zip { entries, .. } => entries.len(),
        }
    }

    /// The name of file `i`: its path relative to the input.
    pub(crate) fn name(&self, i: usize) -> &str {
        match self {
            Source::Dir(files) => &files[i].0,
            Source::Zip { entries, .. } => &entries[i].0,
        }
    }

    /// Reads file `i`, refusing files over `max_bytes`.
    pub(crate) fn read(&mut self, i: usize, max_bytes: u64) -> Result<Vec<u8>, SkipReason> {
        match self {
            Source::Dir(files) => {
                let file = File::open(&files[i].1).map_err(read_error)?;
                let len = file.metadata().map_err(read_error)?.len();
                read_bounded(file, len, max_bytes)
            }
            Source::Zip { archive, entries } => {
                let entry = archive
                    .by_index(entries[i].1)
                    .map_err(|e| SkipReason::Corrupt(format!("zip entry: {e}")))?;
                let len = entry.size();
                read_bounded(entry, len, max_bytes)
            }
        }
    }
}

/// Reads all of `reader`, whose declared length is `len`, unless it is over `max` bytes
/// (the declared length is not trusted: at most `max + 1` bytes are read).
pub(crate) fn read_bounded(reader: impl Read, len: u64, max: u64) -> Result<Vec<u8>, SkipReason> {
    if len > max {
        return Err(SkipReason::TooLarge(Oversize::Bytes { len, max }));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    reader
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    match bytes.len() as u64 {
        0 => Err(SkipReason::Empty),
        n if n > max => Err(SkipReason::TooLarge(Oversize::Bytes { len: n, max })),
        _ => Ok(bytes),
    }
}

fn read_error(e: io::Error) -> SkipReason {
    SkipReason::Corrupt(format!("read error: {e}"))
}

/// Collects regular files under `dir` (symlinks to files included, symlinked
/// directories not followed, so there are no cycles).
fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            walk(&path, &rel, out)?;
        } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
            out.push((rel, path));
        }
    }
    Ok(())
}
