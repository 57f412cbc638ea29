//! Times fast style transfer in limner (tract) and writes the exact network inputs and outputs
//! so `bench/style_ort.py` can run onnxruntime on the same tensors. Used by `bench/style.sh`.
//!
//!   style_bench OUT_DIR CONTENT.png STYLE.png [--iters N] [--sizes 256,512]
//!
//! For each size S (the content's longer side): the style predictor (256 px, once per style),
//! the transformer at S, the full `stylize` (predict + transform, as `limner style --style`),
//! and the 26-style network at S (`--preset`). Times are medians of N warm runs, in ms; the
//! first (cold) call, which parses and optimises the network, is reported separately.
//! Writes OUT_DIR/limner.json and OUT_DIR/<name>.f32 (raw little-endian f32) + shapes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use limner_art::fast::{self, FastOptions, Style, StyleVector};
use limner_art::Image;
use serde_json::json;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn time<T>(iters: usize, mut f: impl FnMut() -> Result<T>) -> Result<(f64, f64, T)> {
    let t = Instant::now();
    let mut out = f()?;
    let cold = t.elapsed().as_secs_f64() * 1e3;
    let mut times = vec![];
    for _ in 0..iters {
        let t = Instant::now();
        out = f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((cold, median(times), out))
}

fn write_f32(dir: &Path, name: &str, data: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join(format!("{name}.f32")), bytes).with_context(|| format!("writing {name}"))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: style_bench OUT_DIR CONTENT.png STYLE.png [--iters N] [--sizes 256,512]");
        std::process::exit(2);
    }
    let out = PathBuf::from(&args[1]);
    std::fs::create_dir_all(&out)?;
    let content = Image::load(Path::new(&args[2]))?;
    let style_img = Image::load(Path::new(&args[3]))?;
    let mut iters = 10;
    let mut sizes = vec![256usize, 512];
    let mut i = 4;
    while i < args.len() {
        match args[i].as_str() {
            "--iters" => iters = args[i + 1].parse()?,
            "--sizes" => sizes = args[i + 1].split(',').map(|s| s.parse()).collect::<Result<_, _>>()?,
            other => anyhow::bail!("unknown option {other}"),
        }
        i += 2;
    }
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    eprintln!("limner (tract 0.23.9, multithread-mm on rayon's pool, {threads} threads), {iters} timed runs each");

    // the predictor's input, exactly as stylize() makes it
    let style_in = style_img.center_square().resize(fast::STYLE_SIZE, fast::STYLE_SIZE);
    write_f32(&out, "style_in", &style_in.data)?;
    let (p_cold, p_ms, v): (f64, f64, StyleVector) = time(iters, || fast::style_vector(&style_img))?;
    write_f32(&out, "style_vec", &v)?;
    eprintln!("predict 256: cold {p_cold:.0} ms, warm {p_ms:.1} ms");
    let mut rows = vec![json!({"what": "predict", "size": 256, "cold_ms": p_cold, "ms": p_ms})];
    let preset = fast::parse_presets("style-07")?;
    for &s in &sizes {
        let (w, h) = fast::output_size(content.w, content.h, Some(s))?;
        let c = content.resize(w, h);
        assert!(w % fast::SIZE_MULTIPLE == 0 && h % fast::SIZE_MULTIPLE == 0, "bench sizes must need no padding");
        write_f32(&out, &format!("content_{s}"), &c.data)?;
        let (t_cold, t_ms, img) = time(iters, || fast::transform(&c, &v))?;
        write_f32(&out, &format!("transform_{s}"), &img.data)?;
        let (_, full_ms, _) = time(iters, || fast::stylize(&c, &Style::Vector(v), &FastOptions::default()).map(|_| ()))?;
        let (_, img_ms, _) = time(iters, || fast::stylize(&c, &Style::Image(style_img.clone()), &FastOptions::default()).map(|_| ()))?;
        let (m_cold, m_ms, m) = time(iters, || fast::multistyle(&c, &preset))?;
        write_f32(&out, &format!("multi_{s}"), &m.to_planes())?;
        eprintln!("{w}x{h}: transform cold {t_cold:.0} warm {t_ms:.1} ms; stylize(style image) {img_ms:.1} ms; multistyle cold {m_cold:.0} warm {m_ms:.1} ms");
        rows.push(json!({"what": "transform", "size": s, "w": w, "h": h, "cold_ms": t_cold, "ms": t_ms}));
        rows.push(json!({"what": "stylize_vector", "size": s, "w": w, "h": h, "ms": full_ms}));
        rows.push(json!({"what": "stylize_image", "size": s, "w": w, "h": h, "ms": img_ms}));
        rows.push(json!({"what": "multistyle", "size": s, "w": w, "h": h, "cold_ms": m_cold, "ms": m_ms}));
    }
    let report = json!({"threads": threads, "iters": iters, "sizes": sizes, "rows": rows,
        "nets": {
            "predict": limner_models::fetch::net_path(limner_models::fetch::STYLE_PREDICT)?,
            "transform": limner_models::fetch::net_path(limner_models::fetch::STYLE_TRANSFORM)?,
            "multi": limner_models::fetch::net_path(limner_models::fetch::STYLE_MULTI)?,
        }});
    std::fs::write(out.join("limner.json"), serde_json::to_string_pretty(&report)?)?;
    Ok(())
}
