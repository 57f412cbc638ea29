//! Builders of test inputs: synthetic images, hand-made EXIF and PNG bytes.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::Cursor;
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ImageFormat, Luma, Rgb, RgbImage, Rgba, RgbaImage};

pub fn jpeg_bytes(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .unwrap();
    out
}

pub fn png_bytes(img: &DynamicImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

pub fn webp_bytes(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    WebPEncoder::new_lossless(&mut out)
        .encode(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// RGBA gradient whose left quarter is fully transparent.
pub fn gradient_rgba() -> DynamicImage {
    DynamicImage::ImageRgba8(RgbaImage::from_fn(64, 64, |x, y| {
        Rgba([
            (x * 4) as u8,
            40,
            255 - (y * 4) as u8,
            if x < 16 { 0 } else { 255 },
        ])
    }))
}

/// A yellow disc on green, 120x80.
pub fn circle() -> RgbImage {
    RgbImage::from_fn(120, 80, |x, y| {
        let (dx, dy) = (x as i32 - 60, y as i32 - 40);
        if dx * dx + dy * dy < 30 * 30 {
            Rgb([250, 220, 40])
        } else {
            Rgb([30, 120, 60])
        }
    })
}

/// 16-bit grey vertical gradient with a white square, 50x90.
pub fn grey16() -> DynamicImage {
    DynamicImage::ImageLuma16(image::ImageBuffer::from_fn(50, 90, |x, y| {
        if (10..30).contains(&x) && (20..40).contains(&y) {
            Luma([65535u16])
        } else {
            Luma([(y * 700) as u16])
        }
    }))
}

/// Red and white diagonal stripes, 70x70.
pub fn stripes() -> RgbImage {
    RgbImage::from_fn(70, 70, |x, y| {
        if (x + y) / 10 % 2 == 0 {
            Rgb([200, 30, 30])
        } else {
            Rgb([255, 255, 255])
        }
    })
}

/// 80x40 as stored: left half red, right half blue.
pub fn red_left_blue_right() -> RgbImage {
    RgbImage::from_fn(80, 40, |x, _| {
        if x < 40 {
            Rgb([220, 20, 20])
        } else {
            Rgb([20, 20, 220])
        }
    })
}

/// Pseudo-random noise (an LCG seeded by `seed`), `w` x `h`.
pub fn noise(w: u32, h: u32, seed: u32) -> RgbImage {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    RgbImage::from_fn(w, h, |_, _| {
        let mut next = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        };
        Rgb([next(), next(), next()])
    })
}

/// A JPEG APP1 segment holding a minimal little-endian EXIF block with one
/// Orientation (0x0112) entry.
pub fn exif_app1(orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend(b"II*\0");
    tiff.extend(8u32.to_le_bytes()); // offset of IFD0
    tiff.extend(1u16.to_le_bytes()); // one entry
    tiff.extend(0x0112u16.to_le_bytes()); // tag: Orientation
    tiff.extend(3u16.to_le_bytes()); // type: SHORT
    tiff.extend(1u32.to_le_bytes()); // count
    tiff.extend(orientation.to_le_bytes());
    tiff.extend([0, 0]); // value padding
    tiff.extend(0u32.to_le_bytes()); // no next IFD
    let mut seg = vec![0xFF, 0xE1];
    seg.extend(((2 + 6 + tiff.len()) as u16).to_be_bytes());
    seg.extend(b"Exif\0\0");
    seg.extend(tiff);
    seg
}

/// `jpeg` with an EXIF orientation segment inserted right after SOI.
pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    [&jpeg[..2], &exif_app1(orientation), &jpeg[2..]].concat()
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    [
        &(data.len() as u32).to_be_bytes()[..],
        kind,
        data,
        &crc.finalize().to_be_bytes(),
    ]
    .concat()
}

/// A small PNG whose header declares a `w` x `h` RGB image (a decompression bomb).
pub fn bomb_png(w: u32, h: u32) -> Vec<u8> {
    let ihdr = [&w.to_be_bytes()[..], &h.to_be_bytes(), &[8, 2, 0, 0, 0]].concat();
    let idat = [0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]; // an empty zlib stream
    [
        &b"\x89PNG\r\n\x1a\n"[..],
        &png_chunk(b"IHDR", &ihdr),
        &png_chunk(b"IDAT", &idat),
        &png_chunk(b"IEND", &[]),
    ]
    .concat()
}

/// Names of the entries of `dir` (not recursive), sorted.
pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
