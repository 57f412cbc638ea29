//! Building datasets from messy directories and zips.

mod common;

use std::cell::Cell;
use std::io::Write;

use common::*;
use image::DynamicImage;
use limner_data::imageio::DEFAULT_MAX_PIXELS;
use limner_data::{build_dataset, BuildOptions, Oversize, PackedDataset, SkipReason};

const RES: u32 = 32;

fn options(out: &std::path::Path) -> BuildOptions {
    BuildOptions {
        res: RES,
        out: out.to_path_buf(),
        ..BuildOptions::default()
    }
}

fn pixel(img: &[u8], x: u32, y: u32) -> [u8; 3] {
    let i = ((y * RES + x) * 3) as usize;
    [img[i], img[i + 1], img[i + 2]]
}

/// A directory with one input of every kind the builder must handle.
fn messy_dir(dir: &std::path::Path) {
    let circle_jpeg = jpeg_bytes(&circle(), 92);
    write(dir, "a_grad.png", &png_bytes(&gradient_rgba()));
    write(dir, "b_circle.jpg", &circle_jpeg);
    write(dir, "b_circle_copy.jpg", &circle_jpeg);
    write(dir, "b_circle_q_low.jpg", &jpeg_bytes(&circle(), 45));
    write(dir, "bomb.png", &bomb_png(100_000, 100_000));
    write(dir, "c_grey16.png", &png_bytes(&grey16()));
    write(
        dir,
        "e_rot.jpg",
        &with_exif_orientation(&jpeg_bytes(&red_left_blue_right(), 95), 6),
    );
    write(dir, "empty.jpg", b"");
    write(dir, "half.jpg", &circle_jpeg[..circle_jpeg.len() / 2]);
    write(
        dir,
        "notes.jpg",
        b"these are not the pixels you are looking for\n",
    );
    write(dir, "skip_this0.jpg", &jpeg_bytes(&noise(64, 64, 7), 90));
    write(dir, "sub/d_stripes.webp", &webp_bytes(&stripes()));
    write(
        dir,
        "tiny.png",
        &png_bytes(&DynamicImage::ImageRgb8(noise(8, 8, 3))),
    );
}

#[test]
fn builds_from_a_messy_directory() {
    let input = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    messy_dir(input.path());
    let out = out_dir.path().join("faces.limner");
    let opts = BuildOptions {
        exclude: vec!["*0.jpg".into()],
        ..options(&out)
    };
    let last_progress = Cell::new((0, 0));
    let report = build_dataset(input.path(), &opts, &|done, total| {
        last_progress.set((done, total))
    })
    .unwrap();

    let kept = [
        "a_grad.png",
        "b_circle.jpg",
        "c_grey16.png",
        "e_rot.jpg",
        "sub/d_stripes.webp",
    ];
    let dup_of_circle = || SkipReason::Duplicate {
        of: "b_circle.jpg".into(),
    };
    let expected_skips = vec![
        ("b_circle_copy.jpg".to_string(), dup_of_circle()),
        ("b_circle_q_low.jpg".to_string(), dup_of_circle()),
        (
            "bomb.png".to_string(),
            SkipReason::TooLarge(Oversize::Pixels {
                w: 100_000,
                h: 100_000,
                max: DEFAULT_MAX_PIXELS,
            }),
        ),
        ("empty.jpg".to_string(), SkipReason::Empty),
        ("half.jpg".to_string(), SkipReason::Truncated),
        ("notes.jpg".to_string(), SkipReason::NotAnImage),
        ("skip_this0.jpg".to_string(), SkipReason::Excluded),
        ("tiny.png".to_string(), SkipReason::TooSmall { w: 8, h: 8 }),
    ];
    assert_eq!(report.skipped, expected_skips, "report:\n{report}");
    assert_eq!(report.kept, kept.len());
    assert_eq!(report.res, RES);
    assert_eq!(last_progress.get(), (13, 13));
    assert_eq!(report.out_bytes, std::fs::metadata(&out).unwrap().len());
    // Only the dataset is left in the output directory: no temp files.
    assert_eq!(list(out_dir.path()), ["faces.limner"]);

    let text = report.to_string();
    println!("{text}");
    for needle in [
        "kept 5 of 13",
        "duplicate of b_circle.jpg",
        "too large: 100000x100000",
        "truncated",
        "mean colour",
    ] {
        assert!(text.contains(needle), "report lacks {needle:?}:\n{text}");
    }

    let ds = PackedDataset::open(&out).unwrap();
    ds.verify().unwrap();
    assert_eq!(ds.len(), 5);
    assert_eq!(ds.res(), RES);
    assert_eq!(ds.names(), kept);
    assert_eq!(ds.meta().mean_rgb, report.mean_rgb);
    // the header records every option but where the file was written
    assert_eq!(ds.meta().options, BuildOptions { out: BuildOptions::default().out, ..opts.clone() });
    assert!(!String::from_utf8_lossy(&std::fs::read(&out).unwrap()[..4096]).contains(&*out.to_string_lossy()), "the header holds the output path");

    // Transparent pixels are composited over white.
    let grad = ds.image(0);
    for y in [2, 16, 29] {
        assert!(
            pixel(grad, 2, y).iter().all(|&c| c >= 250),
            "not white: {:?}",
            pixel(grad, 2, y)
        );
    }
    // 16-bit grey stays grey.
    assert!(ds.image(2).chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    // EXIF orientation 6 (rotate 90° clockwise): the red left half ends up on top.
    let rot = ds.image(3);
    let is_red = |p: [u8; 3]| p[0] > 180 && p[2] < 70;
    let is_blue = |p: [u8; 3]| p[2] > 180 && p[0] < 70;
    for (x, y) in [(4, 4), (28, 4)] {
        assert!(
            is_red(pixel(rot, x, y)),
            "({x},{y}) = {:?} should be red",
            pixel(rot, x, y)
        );
    }
    for (x, y) in [(4, 28), (28, 28)] {
        assert!(
            is_blue(pixel(rot, x, y)),
            "({x},{y}) = {:?} should be blue",
            pixel(rot, x, y)
        );
    }

    // The reported mean colour is that of the stored pixels.
    let mut sums = [0f64; 3];
    for i in 0..ds.len() {
        for p in ds.image(i).chunks(3) {
            for c in 0..3 {
                sums[c] += f64::from(p[c]);
            }
        }
    }
    for (c, sum) in sums.iter().enumerate() {
        let mean = sum / (ds.len() as f64 * f64::from(RES * RES) * 255.0);
        assert!(
            (mean - f64::from(report.mean_rgb[c])).abs() < 1e-4,
            "channel {c}: {mean} vs {:?}",
            report.mean_rgb
        );
    }
}

#[test]
fn large_images_are_centre_cropped_and_downscaled() {
    let input = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    // Wide: black margins left and right of a centred 480x480 square with coloured quadrants.
    let wide = image::RgbImage::from_fn(640, 480, |x, y| match (x, y) {
        (x, _) if !(80..560).contains(&x) => image::Rgb([0, 0, 0]),
        (x, y) => match (x < 320, y < 240) {
            (true, true) => image::Rgb([255, 0, 0]),
            (false, true) => image::Rgb([0, 255, 0]),
            (true, false) => image::Rgb([0, 0, 255]),
            (false, false) => image::Rgb([255, 255, 255]),
        },
    });
    // Tall: black bands above and below a centred 300x300 square, yellow over magenta.
    let tall = image::RgbImage::from_fn(300, 900, |_, y| match y {
        300..450 => image::Rgb([255, 255, 0]),
        450..600 => image::Rgb([255, 0, 255]),
        _ => image::Rgb([0, 0, 0]),
    });
    write(
        input.path(),
        "tall.png",
        &png_bytes(&DynamicImage::ImageRgb8(tall)),
    );
    write(
        input.path(),
        "wide.png",
        &png_bytes(&DynamicImage::ImageRgb8(wide)),
    );
    let out = out_dir.path().join("d.limner");
    assert_eq!(
        build_dataset(input.path(), &options(&out), &|_, _| {})
            .unwrap()
            .kept,
        2
    );
    let ds = PackedDataset::open(&out).unwrap();
    let close =
        |got: [u8; 3], want: [u8; 3]| got.iter().zip(want).all(|(&g, w)| g.abs_diff(w) <= 3);
    let tall = ds.image(0);
    for (x, y, want) in [
        (0, 0, [255, 255, 0]),
        (31, 12, [255, 255, 0]),
        (0, 31, [255, 0, 255]),
        (31, 20, [255, 0, 255]),
    ] {
        assert!(
            close(pixel(tall, x, y), want),
            "tall ({x},{y}) = {:?}",
            pixel(tall, x, y)
        );
    }
    let wide = ds.image(1);
    let corners = [
        (0, 0, [255, 0, 0]),
        (31, 0, [0, 255, 0]),
        (0, 31, [0, 0, 255]),
        (31, 31, [255, 255, 255]),
    ];
    for (x, y, want) in corners
        .into_iter()
        .chain([(12, 12, [255, 0, 0]), (20, 20, [255, 255, 255])])
    {
        assert!(
            close(pixel(wide, x, y), want),
            "wide ({x},{y}) = {:?}",
            pixel(wide, x, y)
        );
    }
}

#[test]
fn threshold_zero_keeps_near_duplicates_but_not_exact_ones() {
    let input = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let circle_jpeg = jpeg_bytes(&circle(), 92);
    write(input.path(), "a.jpg", &circle_jpeg);
    write(input.path(), "b.jpg", &jpeg_bytes(&circle(), 45));
    write(input.path(), "c.jpg", &circle_jpeg);
    let out = out_dir.path().join("d.limner");
    let opts = BuildOptions {
        near_dup_threshold: 0,
        ..options(&out)
    };
    let report = build_dataset(input.path(), &opts, &|_, _| {}).unwrap();
    assert_eq!(report.kept, 2);
    assert_eq!(
        report.skipped,
        vec![(
            "c.jpg".to_string(),
            SkipReason::Duplicate { of: "a.jpg".into() }
        )]
    );
}

#[test]
fn decompression_bomb_is_refused_without_allocating() {
    let input = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    // 4 giga-pixels declared: decoding it would need 12 GB.
    write(input.path(), "bomb.png", &bomb_png(65_535, 65_535));
    write(
        input.path(),
        "ok.png",
        &png_bytes(&DynamicImage::ImageRgb8(noise(40, 40, 1))),
    );
    let report = build_dataset(
        input.path(),
        &options(&out_dir.path().join("d.limner")),
        &|_, _| {},
    )
    .unwrap();
    assert_eq!(report.kept, 1);
    assert_eq!(
        report.skipped,
        vec![(
            "bomb.png".to_string(),
            SkipReason::TooLarge(Oversize::Pixels {
                w: 65_535,
                h: 65_535,
                max: DEFAULT_MAX_PIXELS
            })
        )]
    );
    let err =
        limner_data::imageio::load_image_rgb(&input.path().join("bomb.png"), DEFAULT_MAX_PIXELS)
            .unwrap_err();
    assert!(err.to_string().contains("too large: 65535x65535"), "{err}");
}

#[test]
fn oversize_file_is_refused() {
    let input = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let big = png_bytes(&DynamicImage::ImageRgb8(noise(100, 100, 5)));
    write(input.path(), "big.png", &big);
    write(
        input.path(),
        "ok.png",
        &png_bytes(&DynamicImage::ImageRgb8(noise(40, 40, 1))),
    );
    let opts = BuildOptions {
        max_file_bytes: 10_000,
        ..options(&out_dir.path().join("d.limner"))
    };
    let report = build_dataset(input.path(), &opts, &|_, _| {}).unwrap();
    assert_eq!(
        report.skipped,
        vec![(
            "big.png".to_string(),
            SkipReason::TooLarge(Oversize::Bytes {
                len: big.len() as u64,
                max: 10_000
            })
        )]
    );
}

#[test]
fn directory_without_images_is_an_error_and_writes_nothing() {
    let input = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    write(input.path(), "readme.txt", b"hello");
    write(input.path(), "notes.md", b"# notes");
    write(input.path(), "deep/more.csv", b"a,b\n1,2\n");
    let out = out_dir.path().join("d.limner");
    let err = build_dataset(input.path(), &options(&out), &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains(&input.path().display().to_string()), "{err}");
    assert!(err.contains("no decodable images"), "{err}");
    assert!(err.contains("3 files, 3 not an image"), "{err}");
    assert!(
        list(out_dir.path()).is_empty(),
        "left behind: {:?}",
        list(out_dir.path())
    );
}

#[test]
fn empty_directory_and_bad_inputs_are_errors() {
    let input = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("d.limner");
    let err = build_dataset(input.path(), &options(&out), &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("no files found"), "{err}");

    let missing = input.path().join("nope");
    let err = build_dataset(&missing, &options(&out), &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");

    write(
        input.path(),
        "x.png",
        &png_bytes(&DynamicImage::ImageRgb8(noise(40, 40, 1))),
    );
    let err = build_dataset(
        input.path(),
        &BuildOptions {
            res: 48,
            ..options(&out)
        },
        &|_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("power of two"), "{err}");
    assert!(list(out_dir.path()).is_empty());
}

#[test]
fn builds_from_a_zip() {
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("faces.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    let deflated =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let entries: [(&str, Vec<u8>); 4] = [
        (
            "people/b.png",
            png_bytes(&DynamicImage::ImageRgb8(noise(48, 40, 2))),
        ),
        ("people/a.jpg", jpeg_bytes(&circle(), 90)),
        ("people/c.webp", webp_bytes(&stripes())),
        ("readme.txt", b"not an image".to_vec()),
    ];
    zip.add_directory("people/", deflated).unwrap();
    for (name, bytes) in &entries {
        zip.start_file(*name, deflated).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();

    let out = dir.path().join("out/faces.limner");
    let report = build_dataset(&zip_path, &options(&out), &|_, _| {}).unwrap();
    assert_eq!(report.kept, 3);
    assert_eq!(
        report.skipped,
        vec![("readme.txt".to_string(), SkipReason::NotAnImage)]
    );
    let ds = PackedDataset::open(&out).unwrap();
    ds.verify().unwrap();
    assert_eq!(
        ds.names(),
        ["people/a.jpg", "people/b.png", "people/c.webp"]
    );
}
