//! The .limner format: exact round trip, batches, and damaged files.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use image::DynamicImage;
use limner_data::imageio::nchw_to_rgb8;
use limner_data::{build_dataset, BuildOptions, PackedDataset};

const RES: usize = 16;

/// Builds a dataset of three noise images already at `RES`, so no resampling
/// happens and the stored pixels must equal the source pixels exactly.
fn build(dir: &Path) -> (PathBuf, Vec<Vec<u8>>) {
    let input = dir.join("in");
    let sources: Vec<Vec<u8>> = (0..3)
        .map(|seed| noise(RES as u32, RES as u32, seed).into_raw())
        .collect();
    for (i, px) in sources.iter().enumerate() {
        let img = image::RgbImage::from_raw(RES as u32, RES as u32, px.clone()).unwrap();
        write(
            &input,
            &format!("img{i}.png"),
            &png_bytes(&DynamicImage::ImageRgb8(img)),
        );
    }
    let out = dir.join("d.limner");
    let opts = BuildOptions {
        res: RES as u32,
        out: out.clone(),
        ..BuildOptions::default()
    };
    assert_eq!(build_dataset(&input, &opts, &|_, _| {}).unwrap().kept, 3);
    (out, sources)
}

#[test]
fn pixels_round_trip_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (out, sources) = build(dir.path());
    let ds = PackedDataset::open(&out).unwrap();
    ds.verify().unwrap();
    assert_eq!((ds.len(), ds.res(), ds.is_empty()), (3, RES as u32, false));
    assert_eq!(ds.names(), ["img0.png", "img1.png", "img2.png"]);
    for (i, src) in sources.iter().enumerate() {
        assert_eq!(ds.image(i), &src[..], "image {i}");
    }
    // The pixel block is 64-byte aligned and followed by an 8-byte trailer.
    let bytes = std::fs::read(&out).unwrap();
    let block = 3 * RES * RES * 3;
    let offset = bytes.len() - 8 - block;
    assert_eq!(offset % 64, 0);
    assert_eq!(&bytes[offset..offset + RES * RES * 3], &sources[0][..]);
    assert_eq!(&bytes[..8], b"LIMNERDS");
}

#[test]
fn batches_are_nchw_in_minus_one_to_one_and_flips_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let (out, sources) = build(dir.path());
    let ds = PackedDataset::open(&out).unwrap();
    let plane = RES * RES;
    let indices = [2, 0, 2];

    let mut batch = vec![42.0; 7]; // stale content must be replaced
    ds.fill_batch_nchw(&indices, &mut batch);
    assert_eq!(batch.len(), indices.len() * 3 * plane);
    for (k, &i) in indices.iter().enumerate() {
        for c in 0..3 {
            for y in 0..RES {
                for x in 0..RES {
                    let want = f32::from(sources[i][(y * RES + x) * 3 + c]) / 127.5 - 1.0;
                    assert_eq!(
                        batch[k * 3 * plane + c * plane + y * RES + x],
                        want,
                        "k={k} c={c} y={y} x={x}"
                    );
                }
            }
        }
    }
    assert!(batch.iter().all(|v| (-1.0..=1.0).contains(v)));
    // Back to bytes without loss.
    let back = nchw_to_rgb8(&batch, indices.len(), RES, RES);
    assert_eq!(back[0], sources[2]);
    assert_eq!(back[1], sources[0]);

    let mut flipped = Vec::new();
    ds.fill_batch_nchw_flip(&indices, &[true, false, false], &mut flipped);
    assert_eq!(
        flipped[3 * plane..],
        batch[3 * plane..],
        "unflagged samples are untouched"
    );
    for c in 0..3 {
        for y in 0..RES {
            for x in 0..RES {
                let at = |b: &[f32], x: usize| b[c * plane + y * RES + x];
                assert_eq!(
                    at(&flipped, x),
                    at(&batch, RES - 1 - x),
                    "c={c} y={y} x={x}"
                );
            }
        }
    }
}

fn open_err(path: &Path) -> String {
    format!("{:#}", PackedDataset::open(path).unwrap_err())
}

#[test]
fn damaged_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = build(dir.path());
    let good = std::fs::read(&out).unwrap();
    let damaged = dir.path().join("damaged.limner");

    std::fs::write(&damaged, &good[..good.len() - 100]).unwrap();
    let err = open_err(&damaged);
    assert!(
        err.contains("damaged.limner") && err.contains("truncated"),
        "{err}"
    );

    std::fs::write(&damaged, &good[..20]).unwrap();
    let err = open_err(&damaged);
    assert!(
        err.contains("damaged.limner") && err.contains("truncated"),
        "{err}"
    );

    let mut bad_magic = good.clone();
    bad_magic[..8].copy_from_slice(b"NOTADATA");
    std::fs::write(&damaged, &bad_magic).unwrap();
    let err = open_err(&damaged);
    assert!(
        err.contains("damaged.limner") && err.contains("not a limner dataset"),
        "{err}"
    );

    std::fs::write(&damaged, b"").unwrap();
    assert!(open_err(&damaged).contains("not a limner dataset"));

    let mut trailing = good.clone();
    trailing.extend([0; 5]);
    std::fs::write(&damaged, &trailing).unwrap();
    assert!(open_err(&damaged).contains("5 unexpected bytes"));

    let mut flipped_bit = good.clone();
    let mid = good.len() - 8 - 10;
    flipped_bit[mid] ^= 1;
    std::fs::write(&damaged, &flipped_bit).unwrap();
    let ds = PackedDataset::open(&damaged).unwrap();
    let err = format!("{:#}", ds.verify().unwrap_err());
    assert!(
        err.contains("damaged.limner") && err.contains("checksum"),
        "{err}"
    );

    let mut newer = good.clone();
    newer[8..12].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(&damaged, &newer).unwrap();
    assert!(open_err(&damaged).contains("format version 2"));

    assert!(open_err(&dir.path().join("missing.limner")).contains("cannot open dataset"));
}
