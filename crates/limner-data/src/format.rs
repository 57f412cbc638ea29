//! The packed `.limner` dataset format (see FORMAT.md): writing and memory-mapped reading.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::options::BuildOptions;
use limner_core::write_atomic_with;

/// First 8 bytes of every `.limner` file.
pub const MAGIC: [u8; 8] = *b"LIMNERDS";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Name of the trailer checksum, recorded in the header JSON.
pub(crate) const CHECKSUM_NAME: &str = "xxh3-64";

/// magic, version, res, channels, count, json length.
const FIXED_HEADER_LEN: u64 = 8 + 4 + 4 + 4 + 8 + 8;
const CHANNELS: u32 = 3;
const DATA_ALIGN: u64 = 64;
const TRAILER_LEN: u64 = 8;

/// The JSON header of a `.limner` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetMeta {
    /// The input directory or zip the dataset was built from.
    pub source: String,
    /// The options of the build.
    pub options: BuildOptions,
    /// Source file name of each image, in image order.
    pub names: Vec<String>,
    /// Mean colour of the images, each channel in 0..1.
    pub mean_rgb: [f32; 3],
    /// Program and version that wrote the file.
    pub created_by: String,
    /// Algorithm of the trailer checksum of the pixel block.
    pub checksum: String,
}

/// Offset of the pixel block: the header rounded up to a multiple of 64 bytes.
fn data_offset(json_len: u64) -> u64 {
    (FIXED_HEADER_LEN + json_len).next_multiple_of(DATA_ALIGN)
}

/// Writes a `.limner` file atomically; `pixels` yields the whole pixel block and
/// `checksum` is its xxh3-64.
pub(crate) fn write_packed(
    path: &Path,
    meta: &DatasetMeta,
    res: u32,
    pixels: &mut impl Read,
    checksum: u64,
) -> Result<()> {
    let json = serde_json::to_vec(meta)?;
    let count = meta.names.len() as u64;
    let block_len = count * u64::from(res) * u64::from(res) * u64::from(CHANNELS);
    let json_len = json.len() as u64;
    write_atomic_with(path, |out| {
        out.write_all(&MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        out.write_all(&res.to_le_bytes())?;
        out.write_all(&CHANNELS.to_le_bytes())?;
        out.write_all(&count.to_le_bytes())?;
        out.write_all(&json_len.to_le_bytes())?;
        out.write_all(&json)?;
        out.write_all(&vec![
            0u8;
            (data_offset(json_len) - FIXED_HEADER_LEN - json_len)
                as usize
        ])?;
        let copied = io::copy(pixels, out)?;
        if copied != block_len {
            return Err(io::Error::other(format!(
                "pixel block has {copied} bytes, expected {block_len}"
            )));
        }
        out.write_all(&checksum.to_le_bytes())
    })
}

/// A `.limner` dataset, memory-mapped: images are read straight from the page cache.
pub struct PackedDataset {
    path: PathBuf,
    map: Mmap,
    res: u32,
    count: usize,
    data_offset: usize,
    meta: DatasetMeta,
}

impl PackedDataset {
    /// Opens and validates a dataset: magic, version, header and the exact file
    /// size (so truncation is detected). The checksum is checked by [`Self::verify`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let name = path.display();
        let mut file = File::open(path).with_context(|| format!("cannot open dataset {name}"))?;
        let size = file.metadata()?.len();

        let mut head = Vec::with_capacity(FIXED_HEADER_LEN as usize);
        (&mut file).take(FIXED_HEADER_LEN).read_to_end(&mut head)?;
        let magic_len = head.len().min(MAGIC.len());
        ensure!(
            head[..magic_len] == MAGIC[..magic_len] && size > 0,
            "{name} is not a limner dataset (bad magic: expected \"LIMNERDS\", found {:?})",
            String::from_utf8_lossy(&head[..magic_len])
        );
        ensure!(
            size >= FIXED_HEADER_LEN,
            "{name} is truncated: {size} bytes, shorter than the {FIXED_HEADER_LEN}-byte header"
        );
        let u32_at = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().unwrap());
        let (version, res, channels, count, json_len) =
            (u32_at(8), u32_at(12), u32_at(16), u64_at(20), u64_at(28));
        ensure!(
            version == FORMAT_VERSION,
            "{name} has format version {version}; this limner reads version {FORMAT_VERSION}"
        );
        ensure!(
            channels == CHANNELS,
            "{name} has {channels} channels; only RGB (3) is supported"
        );
        ensure!(
            res.is_power_of_two() && (8..=4096).contains(&res),
            "{name} has a corrupt header: resolution {res}"
        );
        if json_len > size - FIXED_HEADER_LEN {
            bail!(
                "{name} is truncated: {size} bytes, but the header alone declares {}",
                FIXED_HEADER_LEN + json_len
            );
        }

        let data_offset = data_offset(json_len);
        let image_len = u64::from(res) * u64::from(res) * u64::from(CHANNELS);
        let expected = count
            .checked_mul(image_len)
            .and_then(|block| block.checked_add(data_offset + TRAILER_LEN))
            .with_context(|| format!("{name} has a corrupt header: {count} images"))?;
        ensure!(size >= expected, "{name} is truncated: {size} bytes, expected {expected} ({count} images of {res}x{res})");
        ensure!(
            size == expected,
            "{name} has {} unexpected bytes after the data (expected {expected} bytes)",
            size - expected
        );

        // SAFETY: the file is only ever replaced by rename, never modified in place,
        // so the mapped pages do not change under us.
        let map = unsafe { Mmap::map(&file) }.with_context(|| format!("cannot map {name}"))?;
        let json = &map[FIXED_HEADER_LEN as usize..(FIXED_HEADER_LEN + json_len) as usize];
        let meta: DatasetMeta = serde_json::from_slice(json)
            .with_context(|| format!("{name} has a corrupt JSON header"))?;
        ensure!(
            meta.names.len() as u64 == count,
            "{name} has a corrupt header: {count} images but {} names",
            meta.names.len()
        );
        Ok(PackedDataset {
            path: path.to_path_buf(),
            map,
            res,
            count: count as usize,
            data_offset: data_offset as usize,
            meta,
        })
    }

    /// Checks the pixel block against the trailer checksum (reads the whole file).
    pub fn verify(&self) -> Result<()> {
        let block = &self.map[self.data_offset..self.map.len() - TRAILER_LEN as usize];
        let stored = u64::from_le_bytes(
            self.map[self.map.len() - TRAILER_LEN as usize..]
                .try_into()
                .unwrap(),
        );
        let actual = xxh3_64(block);
        ensure!(
            stored == actual,
            "{} is corrupt: pixel checksum {actual:016x} does not match the stored {stored:016x}",
            self.path.display()
        );
        Ok(())
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the dataset holds no image.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Side of the square images.
    pub fn res(&self) -> u32 {
        self.res
    }

    /// Source file name of each image.
    pub fn names(&self) -> &[String] {
        &self.meta.names
    }

    /// The whole JSON header.
    pub fn meta(&self) -> &DatasetMeta {
        &self.meta
    }

    /// Image `i` as HWC RGB8, `res * res * 3` bytes. Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        assert!(
            i < self.count,
            "image index {i} out of range (dataset has {})",
            self.count
        );
        let len = self.res as usize * self.res as usize * CHANNELS as usize;
        let start = self.data_offset + i * len;
        &self.map[start..start + len]
    }

    /// Writes the images at `indices` into `out` (resized to fit) as NCHW float32
    /// in [-1, 1] (`x / 127.5 - 1`). Panics if an index is out of range.
    pub fn fill_batch_nchw(&self, indices: &[usize], out: &mut Vec<f32>) {
        self.fill(indices, |_| false, out);
    }

    /// Like [`Self::fill_batch_nchw`], mirroring horizontally each sample whose
    /// `flips` flag is set (x-flip augmentation). Panics if the lengths differ.
    pub fn fill_batch_nchw_flip(&self, indices: &[usize], flips: &[bool], out: &mut Vec<f32>) {
        assert_eq!(indices.len(), flips.len(), "one flip flag per index");
        self.fill(indices, |k| flips[k], out);
    }

    fn fill(&self, indices: &[usize], flip: impl Fn(usize) -> bool, out: &mut Vec<f32>) {
        let res = self.res as usize;
        let plane = res * res;
        out.clear();
        out.resize(indices.len() * 3 * plane, 0.0);
        for (k, (&i, dst)) in indices
            .iter()
            .zip(out.chunks_exact_mut(3 * plane))
            .enumerate()
        {
            let src = self.image(i);
            let flipped = flip(k);
            for (y, row) in src.chunks_exact(res * 3).enumerate() {
                for x in 0..res {
                    let sx = if flipped { res - 1 - x } else { x };
                    for c in 0..3 {
                        dst[c * plane + y * res + x] = f32::from(row[sx * 3 + c]) / 127.5 - 1.0;
                    }
                }
            }
        }
    }
}

impl std::fmt::Debug for PackedDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedDataset")
            .field("path", &self.path)
            .field("len", &self.count)
            .field("res", &self.res)
            .finish()
    }
}
