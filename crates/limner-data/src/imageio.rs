//! Image I/O shared by all of limner: safe decoding (EXIF rotation, any colour
//! mode, size limits), atomic PNG writing, tensor <-> RGB8 conversion and grids.
//!
//! Images that limner *makes* are written with [`save_image_rgb`] / [`write_labeled`], which
//! add a provenance label (XMP, see [`crate::provenance`]); [`save_png_rgb`] writes a bare PNG
//! for charts and other pictures that are not generated media.

use std::fs::{self, File};
use std::io::{self, Cursor};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, ensure, Context, Result};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::metadata::Orientation;
use image::{
    DynamicImage, ExtendedColorType, ImageDecoder, ImageEncoder, ImageError, ImageFormat,
    ImageReader, Limits, RgbImage,
};

use crate::provenance::{embed, Provenance};
use crate::skip::{Oversize, SkipReason};
use limner_core::write_atomic_with;
use crate::source::read_bounded;

/// Default decompression-bomb guard: images declaring more pixels are refused.
pub const DEFAULT_MAX_PIXELS: u64 = 40_000_000;
/// Default limit on the size of one input file.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 << 20;

/// Loads an image file as 8-bit RGB, `(width, height, pixels)` with HWC layout.
///
/// Uses the same path as the dataset builder: EXIF orientation applied, grey /
/// 16-bit / alpha images converted (alpha composited over white), and images
/// declaring more than `max_pixels` pixels refused before anything is allocated.
pub fn load_image_rgb(path: &Path, max_pixels: u64) -> Result<(u32, u32, Vec<u8>)> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata()?.len();
    let max_bytes = DEFAULT_MAX_FILE_BYTES.max(max_pixels.saturating_mul(8));
    let img = read_bounded(file, len, max_bytes)
        .and_then(|bytes| decode_rgb(&bytes, max_pixels))
        .map_err(|reason| anyhow!("cannot load {}: {reason}", path.display()))?;
    Ok((img.width(), img.height(), img.into_raw()))
}

/// Decodes image bytes held in memory (an upload) as [`load_image_rgb`] decodes a file: the
/// format sniffed from the content (JPEG, PNG, WebP; never the name), truncated or corrupt data
/// and images declaring more than `max_pixels` refused with the reason, EXIF orientation applied.
pub fn decode_image_rgb(bytes: &[u8], max_pixels: u64) -> Result<(u32, u32, Vec<u8>)> {
    let img = decode_rgb(bytes, max_pixels).map_err(|reason| anyhow!("{reason}"))?;
    Ok((img.width(), img.height(), img.into_raw()))
}

/// Writes an 8-bit RGB image (HWC, `w * h * 3` bytes) as PNG, atomically.
pub fn save_png_rgb(path: &Path, w: u32, h: u32, rgb: &[u8]) -> Result<()> {
    ensure!(
        rgb.len() as u64 == u64::from(w) * u64::from(h) * 3,
        "save_png_rgb: {} bytes given for a {w}x{h} RGB image",
        rgb.len()
    );
    write_atomic_with(path, |out| {
        PngEncoder::new(out)
            .write_image(rgb, w, h, ExtendedColorType::Rgb8)
            .map_err(io::Error::other)
    })
}

/// JPEG quality of [`save_image_rgb`].
pub const JPEG_QUALITY: u8 = 92;

/// Writes an 8-bit RGB image (HWC, `w * h * 3` bytes) that limner made, with its provenance
/// label, atomically: as JPEG (quality [`JPEG_QUALITY`]) when `path` ends in `.jpg`/`.jpeg`,
/// otherwise as PNG. The label never changes the pixels, and the same image and label give the
/// same bytes.
pub fn save_image_rgb(path: &Path, w: u32, h: u32, rgb: &[u8], prov: &Provenance) -> Result<()> {
    ensure!(
        rgb.len() as u64 == u64::from(w) * u64::from(h) * 3,
        "cannot write {}: {} bytes given for a {w}x{h} RGB image",
        path.display(),
        rgb.len()
    );
    let jpeg = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"));
    let mut bytes = Vec::new();
    let encoded = if jpeg {
        JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY).write_image(rgb, w, h, ExtendedColorType::Rgb8)
    } else {
        PngEncoder::new(&mut bytes).write_image(rgb, w, h, ExtendedColorType::Rgb8)
    };
    encoded.with_context(|| format!("cannot encode {}", path.display()))?;
    write_labeled(path, &bytes, prov)
}

/// Writes an already encoded PNG/APNG, JPEG or GIF (an animation, say) with `prov`'s label
/// added, atomically.
pub fn write_labeled(path: &Path, encoded: &[u8], prov: &Provenance) -> Result<()> {
    let bytes = embed(encoded, prov).with_context(|| format!("cannot label {}", path.display()))?;
    limner_core::write_atomic(path, &bytes)
}

/// Converts `n` NCHW float images in [-1, 1] to HWC RGB8 buffers (`h * w * 3` each),
/// rounding and clamping out-of-range values (NaN becomes 0).
///
/// Panics if `data.len() != n * 3 * h * w`.
pub fn nchw_to_rgb8(data: &[f32], n: usize, h: usize, w: usize) -> Vec<Vec<u8>> {
    let plane = h * w;
    assert_eq!(
        data.len(),
        n * 3 * plane,
        "nchw_to_rgb8: data is not {n}x3x{h}x{w}"
    );
    (0..n)
        .map(|i| {
            let img = &data[i * 3 * plane..(i + 1) * 3 * plane];
            let mut out = vec![0u8; 3 * plane];
            for (c, channel) in img.chunks_exact(plane.max(1)).enumerate() {
                for (p, &v) in channel.iter().enumerate() {
                    out[p * 3 + c] = ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8;
                }
            }
            out
        })
        .collect()
}

/// Tiles square RGB8 images (`res * res * 3` bytes each) into a grid with `cols`
/// columns and `pad` black pixels between and around them. Returns `(w, h, rgb)`;
/// an empty input gives `(0, 0, [])`.
///
/// Panics if an image does not have `res * res * 3` bytes.
pub fn make_grid(images: &[Vec<u8>], res: u32, cols: u32, pad: u32) -> (u32, u32, Vec<u8>) {
    let n = images.len() as u32;
    if n == 0 {
        return (0, 0, Vec::new());
    }
    let cols = cols.clamp(1, n);
    let rows = n.div_ceil(cols);
    let (w, h) = (cols * (res + pad) + pad, rows * (res + pad) + pad);
    let row_bytes = res as usize * 3;
    let mut out = vec![0u8; w as usize * h as usize * 3];
    for (i, img) in images.iter().enumerate() {
        assert_eq!(
            img.len(),
            row_bytes * res as usize,
            "make_grid: image {i} is not {res}x{res} RGB"
        );
        let x0 = pad + (i as u32 % cols) * (res + pad);
        let y0 = pad + (i as u32 / cols) * (res + pad);
        for (y, src) in img.chunks_exact(row_bytes).enumerate() {
            let start = ((y0 as usize + y) * w as usize + x0 as usize) * 3;
            out[start..start + row_bytes].copy_from_slice(src);
        }
    }
    (w, h, out)
}

/// The file name of seed `seed`'s image: `seed0007.png` (four digits at least).
pub fn seed_file_name(seed: u64) -> String {
    format!("seed{seed:04}.png")
}

/// Where [`save_seed_images`] wrote: one PNG per seed, and the grid.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SavedImages {
    pub images: Vec<PathBuf>,
    pub grid: Option<PathBuf>,
}

/// Writes generated images, one per seed, as `dir/seedNNNN.png` (when `dir` is given) and all
/// of them as one grid PNG of ⌈√n⌉ columns (when `grid` is given); every file atomically and
/// labelled with `prov` (each image's recipe gets its `seed`, the grid's its `seeds`, when the
/// recipe is a JSON object). `rgb` holds `size * size * 3` bytes per image, in the order of `seeds`.
pub fn save_seed_images(rgb: &[Vec<u8>], size: u32, seeds: &[u64], dir: Option<&Path>, grid: Option<&Path>, prov: &Provenance) -> Result<SavedImages> {
    ensure!(seeds.len() == rgb.len(), "{} seeds but {} images", seeds.len(), rgb.len());
    let mut saved = SavedImages::default();
    if let Some(dir) = dir {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (&s, px) in seeds.iter().zip(rgb) {
            let p = dir.join(seed_file_name(s));
            save_image_rgb(&p, size, size, px, &prov.with_recipe_field("seed", s.into()))?;
            saved.images.push(p);
        }
    }
    if let Some(grid) = grid.filter(|_| !rgb.is_empty()) {
        let cols = (rgb.len() as f64).sqrt().ceil() as u32;
        let (w, h, px) = make_grid(rgb, size, cols, 2);
        save_image_rgb(grid, w, h, &px, &prov.with_recipe_field("seeds", seeds.into()))?;
        saved.grid = Some(grid.to_path_buf());
    }
    Ok(saved)
}

/// Decodes JPEG, PNG or WebP bytes to upright 8-bit RGB, never panicking.
pub(crate) fn decode_rgb(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, SkipReason> {
    if bytes.is_empty() {
        return Err(SkipReason::Empty);
    }
    let format = sniff_format(bytes)?;
    if is_truncated(format, bytes) {
        return Err(SkipReason::Truncated);
    }
    panic::catch_unwind(AssertUnwindSafe(|| {
        decode_checked(bytes, format, max_pixels)
    }))
    .unwrap_or_else(|_| Err(SkipReason::Corrupt("the decoder panicked".into())))
}

/// Identifies the format from the content (file extensions are not trusted).
fn sniff_format(bytes: &[u8]) -> Result<ImageFormat, SkipReason> {
    match image::guess_format(bytes) {
        Ok(format @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP)) => Ok(format),
        Ok(other) => Err(SkipReason::Unsupported(format!("{other:?}"))),
        Err(_) if is_heif(bytes) => Err(SkipReason::Unsupported("HEIF/HEIC".into())),
        Err(_) => Err(SkipReason::NotAnImage),
    }
}

/// HEIF/HEIC (iPhone photos): an ISO-BMFF `ftyp` box with a HEIF brand.
fn is_heif(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(b"ftyp")
        && matches!(
            bytes.get(8..12),
            Some(b"heic" | b"heix" | b"heim" | b"heis" | b"mif1" | b"msf1")
        )
}

/// Decodes after checking the declared size against `max_pixels`.
fn decode_checked(
    bytes: &[u8],
    format: ImageFormat,
    max_pixels: u64,
) -> Result<RgbImage, SkipReason> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    // Only headers are read here; the declared size is checked before decoding.
    reader.no_limits();
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (w, h) = decoder.dimensions();
    let too_large = SkipReason::TooLarge(Oversize::Pixels {
        w,
        h,
        max: max_pixels,
    });
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(too_large);
    }
    if w == 0 || h == 0 {
        return Err(SkipReason::Corrupt(format!(
            "image declares a {w}x{h} size"
        )));
    }
    let mut limits = Limits::default();
    // Worst case is 16-bit RGBA (8 bytes per pixel), plus room for decoder state.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    decoder.set_limits(limits).map_err(classify)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        ImageError::Limits(_) => too_large,
        other => classify(other),
    })?;
    img.apply_orientation(orientation);
    Ok(flatten_to_rgb(img))
}

/// Maps a decoder error to a skip reason.
fn classify(e: ImageError) -> SkipReason {
    match &e {
        ImageError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            SkipReason::Truncated
        }
        _ if e.to_string().to_lowercase().contains("eof") => SkipReason::Truncated,
        _ => SkipReason::Corrupt(e.to_string()),
    }
}

/// Converts any colour mode to 8-bit RGB, compositing alpha over white.
fn flatten_to_rgb(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let mut out = RgbImage::new(rgba.width(), rgba.height());
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(src[3]);
        for c in 0..3 {
            dst[c] = ((u32::from(src[c]) * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

/// Whether the file visibly ends before its image data does. Decoders are
/// lenient with cut-off files (a half JPEG decodes with a grey bottom), so the
/// container structure is checked first. Unknown structure counts as not truncated:
/// the decoder then judges.
pub(crate) fn is_truncated(format: ImageFormat, b: &[u8]) -> bool {
    match format {
        ImageFormat::Jpeg => jpeg_truncated(b),
        ImageFormat::Png => png_truncated(b),
        ImageFormat::WebP => match b.get(4..8) {
            Some(size) => {
                u64::from(u32::from_le_bytes(size.try_into().unwrap())) + 8 > b.len() as u64
            }
            None => true,
        },
        _ => false,
    }
}

/// Walks the JPEG marker segments to the first scan, then looks for the
/// end-of-image marker (entropy-coded data never contains `FF D9`).
fn jpeg_truncated(b: &[u8]) -> bool {
    let mut pos = 2; // after SOI
    loop {
        while b.get(pos) == Some(&0xFF) && b.get(pos + 1) == Some(&0xFF) {
            pos += 1; // fill bytes
        }
        match (b.get(pos), b.get(pos + 1)) {
            (None, _) | (Some(0xFF), None) => return true,
            (Some(0xFF), Some(&marker)) => {
                pos += 2;
                match marker {
                    0xD9 => return false,
                    0x01 | 0xD0..=0xD7 => {}
                    0xDA => return !b[pos..].windows(2).any(|w| w == [0xFF, 0xD9]),
                    _ => {
                        let Some(len) = b.get(pos..pos + 2) else {
                            return true;
                        };
                        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                        if len < 2 {
                            return false;
                        }
                        pos += len;
                    }
                }
            }
            _ => return false,
        }
    }
}

/// Walks the PNG chunks; the file must hold every chunk up to `IEND`.
fn png_truncated(b: &[u8]) -> bool {
    let mut pos = 8; // after the signature
    loop {
        let Some(head) = b.get(pos..pos + 8) else {
            return true;
        };
        let len = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
        pos += 12 + len; // length, type, data, CRC
        if pos > b.len() {
            return true;
        }
        if &head[4..] == b"IEND" {
            return false;
        }
    }
}
