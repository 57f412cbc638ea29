//! The image helpers: PNG save/load, tensor conversion, grids, safe decoding.

mod common;

use common::*;
use image::DynamicImage;
use limner_data::provenance::Provenance;
use limner_data::imageio::{
    load_image_rgb, make_grid, nchw_to_rgb8, save_png_rgb, save_seed_images, DEFAULT_MAX_PIXELS,
};

#[test]
fn png_save_and_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let img = noise(7, 5, 9);
    let path = dir.path().join("x.png");
    save_png_rgb(&path, 7, 5, img.as_raw()).unwrap();
    assert_eq!(list(dir.path()), ["x.png"], "no temp file left");
    let (w, h, px) = load_image_rgb(&path, DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!((w, h), (7, 5));
    assert_eq!(px, img.into_raw());
    assert!(save_png_rgb(&path, 8, 5, &px).is_err(), "wrong buffer size");
}

#[test]
fn load_applies_exif_rotation_and_flattens_modes() {
    let dir = tempfile::tempdir().unwrap();
    let rotated = dir.path().join("r.jpg");
    std::fs::write(
        &rotated,
        with_exif_orientation(&jpeg_bytes(&red_left_blue_right(), 95), 6),
    )
    .unwrap();
    let (w, h, px) = load_image_rgb(&rotated, DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!((w, h), (40, 80));
    let at = |x: u32, y: u32| &px[((y * w + x) * 3) as usize..][..3];
    assert!(
        at(20, 10)[0] > 180 && at(20, 10)[2] < 70,
        "top should be red: {:?}",
        at(20, 10)
    );
    assert!(
        at(20, 70)[2] > 180 && at(20, 70)[0] < 70,
        "bottom should be blue: {:?}",
        at(20, 70)
    );

    let grey = dir.path().join("g.png");
    std::fs::write(&grey, png_bytes(&grey16())).unwrap();
    let (w, h, px) = load_image_rgb(&grey, DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!((w, h, px.len()), (50, 90, 50 * 90 * 3));
    assert_eq!(&px[..3], &[0, 0, 0]);
    assert_eq!(&px[(25 * 50 + 15) * 3..][..3], &[255, 255, 255]);

    let rgba = dir.path().join("a.png");
    std::fs::write(&rgba, png_bytes(&gradient_rgba())).unwrap();
    let (_, _, px) = load_image_rgb(&rgba, DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!(&px[..3], &[255, 255, 255], "transparent over white");
    assert_eq!(
        &px[(64 * 10 + 20) * 3..][..3],
        &[80, 40, 215],
        "opaque pixel unchanged"
    );

    let small_limit = load_image_rgb(&grey, 1000).unwrap_err().to_string();
    assert!(
        small_limit.contains("g.png") && small_limit.contains("too large"),
        "{small_limit}"
    );
    let text = dir.path().join("t.png");
    std::fs::write(&text, "plain text").unwrap();
    assert!(load_image_rgb(&text, DEFAULT_MAX_PIXELS)
        .unwrap_err()
        .to_string()
        .contains("not an image"));
}

#[test]
fn truncated_and_corrupt_files_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let files: [(&str, Vec<u8>); 4] = [
        (
            "cut.png",
            png_bytes(&DynamicImage::ImageRgb8(noise(60, 60, 4))),
        ),
        ("cut.jpg", jpeg_bytes(&noise(60, 60, 4), 90)),
        ("cut.webp", webp_bytes(&noise(60, 60, 4))),
        (
            "garbage.jpg",
            [&[0xFF, 0xD8, 0xFF][..], &[0x17; 500]].concat(),
        ),
    ];
    for (name, bytes) in files {
        let path = dir.path().join(name);
        for cut in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let err = load_image_rgb(&path, DEFAULT_MAX_PIXELS)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("truncated") || err.contains("corrupt"),
                "{name} cut at {cut}: {err}"
            );
        }
    }
}

#[test]
fn nchw_to_rgb8_rounds_and_clamps() {
    // One 1x2 image: channel planes R = [-1, 1], G = [0, 2], B = [-3, NaN].
    let data = [-1.0, 1.0, 0.0, 2.0, -3.0, f32::NAN];
    assert_eq!(
        nchw_to_rgb8(&data, 1, 1, 2),
        vec![vec![0, 128, 0, 255, 255, 0]]
    );
    let values = [-0.996, 0.004, 0.5];
    let planes: Vec<f32> = (0..3).flat_map(|_| values).collect(); // three grey pixels
    let out = nchw_to_rgb8(&planes, 1, 1, 3);
    assert_eq!(out[0], vec![1, 1, 1, 128, 128, 128, 191, 191, 191]);
}

#[test]
fn grid_places_images_in_rows_with_padding() {
    let tile = |v: u8| vec![v; 2 * 2 * 3];
    let (w, h, px) = make_grid(&[tile(10), tile(20), tile(30)], 2, 2, 1);
    assert_eq!((w, h), (7, 7));
    assert_eq!(px.len(), 7 * 7 * 3);
    let at = |x: u32, y: u32| px[((y * w + x) * 3) as usize];
    assert_eq!((at(0, 0), at(1, 1), at(2, 2), at(3, 1)), (0, 10, 10, 0));
    assert_eq!((at(4, 1), at(5, 2), at(6, 1)), (20, 20, 0));
    assert_eq!(
        (at(1, 4), at(2, 5), at(4, 4)),
        (30, 30, 0),
        "last row: one image, then padding"
    );
    assert_eq!(make_grid(&[], 2, 2, 1), (0, 0, Vec::new()));
    assert_eq!(
        make_grid(&[tile(5)], 2, 8, 0),
        (2, 2, tile(5)),
        "cols beyond the image count shrink"
    );
}

#[test]
fn seed_images_and_their_grid_are_written_by_seed() {
    let dir = tempfile::tempdir().unwrap();
    let imgs: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i * 100; 4 * 4 * 3]).collect();
    let out = dir.path().join("faces");
    let grid = dir.path().join("grid.png");
    let saved = save_seed_images(&imgs, 4, &[7, 12345, 0], Some(&out), Some(&grid), &Provenance::generated()).unwrap();
    let names: Vec<String> = saved.images.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["seed0007.png", "seed12345.png", "seed0000.png"]);
    let (w, h, px) = load_image_rgb(&out.join("seed12345.png"), 1 << 20).unwrap();
    assert_eq!((w, h, px), (4, 4, imgs[1].clone()));
    // 3 images: 2 columns, 2 rows, 2 px of padding
    let (w, h, _) = load_image_rgb(&grid, 1 << 20).unwrap();
    assert_eq!((w, h), (2 * 6 + 2, 2 * 6 + 2));
    assert_eq!(saved.grid.as_deref(), Some(grid.as_path()));
    // mismatched lengths: an error, nothing written
    let e = save_seed_images(&imgs, 4, &[1], Some(&dir.path().join("no")), None, &Provenance::generated()).unwrap_err();
    assert!(e.to_string().contains("1 seeds but 3 images"), "{e}");
    assert!(!dir.path().join("no").exists());
}
