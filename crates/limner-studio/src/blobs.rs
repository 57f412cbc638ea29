//! Content-addressed image files beside the gallery database: `images/ab/abcdef….png`, named by
//! the SHA-256 of their bytes, written atomically (temporary file, fsync, rename, fsync of the
//! folder), so a file under its final name is always complete and a name always matches its bytes.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// The image store under one folder.
#[derive(Clone, Debug)]
pub struct Blobs {
    dir: PathBuf,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The lowercase hex SHA-256 of some bytes (the name of a stored image).
pub fn hash_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `s` has the form of a blob name: exactly 64 lowercase hex digits. Anything else (a
/// `/`, `..`, a NUL, upper case) is refused before it comes near the file system.
pub fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Blobs {
    /// Opens (creating) the store at `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create the image folder {} (check its permissions or pass another --data)", dir.display()))?;
        Ok(Self { dir: dir.to_path_buf() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob named `hash` lives (`None` for anything that is not a blob name).
    pub fn path(&self, hash: &str) -> Option<PathBuf> {
        is_hash(hash).then(|| self.dir.join(&hash[..2]).join(format!("{hash}.png")))
    }

    /// Stores PNG bytes and returns their hash; a blob already there is left as it is.
    pub fn put(&self, bytes: &[u8]) -> Result<String> {
        let hash = hash_bytes(bytes);
        let path = self.path(&hash).expect("a sha256 is a blob name");
        if path.is_file() {
            return Ok(hash);
        }
        let sub = path.parent().expect("blob has a folder");
        fs::create_dir_all(sub).with_context(|| format!("cannot create {}", sub.display()))?;
        let tmp = sub.join(format!(".tmp-{}-{}-{}", &hash[..16], std::process::id(), TMP_COUNTER.fetch_add(1, Ordering::Relaxed)));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &path)?;
            // the rename itself must reach the disk before the database row that names it
            File::open(sub)?.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("cannot write image {} (is the disk full?)", path.display()));
        }
        Ok(hash)
    }

    /// Reads a blob (`None` when absent or not a blob name).
    pub fn get(&self, hash: &str) -> Result<Option<Vec<u8>>> {
        let Some(p) = self.path(hash) else { return Ok(None) };
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read image {}", p.display())),
        }
    }
}
