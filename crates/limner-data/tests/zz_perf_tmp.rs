mod common;
use common::*;
#[test]
fn perf() {
    let dir = tempfile::tempdir().unwrap();
    let big = image::RgbImage::from_fn(6000, 4000, |x, y| image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8]));
    for i in 0..4 { write(dir.path(), &format!("in/{i}.jpg"), &jpeg_bytes(&noise(6000, 4000, i), 90)); }
    let _ = big;
    let t = std::time::Instant::now();
    let opts = limner_data::BuildOptions { res: 256, out: dir.path().join("o.limner"), ..Default::default() };
    let r = limner_data::build_dataset(&dir.path().join("in"), &opts, &|d, t| eprintln!("{d}/{t}")).unwrap();
    eprintln!("{r}\n{:?}", t.elapsed());
}
