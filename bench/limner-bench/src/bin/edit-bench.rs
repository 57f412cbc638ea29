//! edit-bench: what the studio's live editing costs on this CPU, through `limner_edit`: one
//! slider move or one breed child re-rendered (default model at 64 px; random-face at 256 px
//! when fetched), SeFa for one layer group, and projection (default model, 300 steps). Each
//! measurement prints `RESULT limner edit/<what> ms=<median>` (`bench/edit.sh` tabulates them).
//!
//! Usage: edit-bench [--quick]

use std::time::Instant;

use burn::tensor::Device;
use limner_edit::breed::{breed, seed_recipe, BreedOptions};
use limner_edit::model::{open, seed_ws, LayerGroup, Model};
use limner_edit::sliders::{self, Catalogue};

fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[t.len() / 2]
}

fn live(m: &dyn Model, name: &str, runs: usize) -> anyhow::Result<()> {
    let cat = Catalogue::new(sliders::named_directions(&m.id().name, None)?);
    let t0 = Instant::now();
    let set = cat.sefa(m, LayerGroup::Coarse)?;
    println!("RESULT limner edit/{name}/sefa-coarse-first-use ms={:.1}", t0.elapsed().as_secs_f64() * 1e3);
    let slider = set.slider(0)?;
    let base = seed_ws(m, &[12], 0.7).pop().unwrap();
    let mut v = 0.0f32;
    let ms = median_ms(runs, || {
        v += 0.5;
        let mut w = base.clone();
        slider.apply(&mut w, v, &slider.rows);
        std::hint::black_box(m.render(&[w], &[12], 1.0));
    });
    println!("RESULT limner edit/{name}/slider-move-rerender ms={ms:.1}");
    let parents = [seed_recipe(m, 12, 0.7, 1.0), seed_recipe(m, 40, 0.7, 1.0)];
    let mut seed = 0;
    let ms = median_ms(runs, || {
        seed += 1;
        let kid = breed(m, &parents, &BreedOptions { genes: "coarse=0.7,middle=0.3,fine=0.5".into(), mutation: 0.2, seed, children: 1 }).unwrap();
        std::hint::black_box(m.render(&[kid[0].0.clone()], &[12], 1.0));
    });
    println!("RESULT limner edit/{name}/breed-child ms={ms:.1}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    limner_kernels::keep_freed_memory();
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 5 } else { 21 };
    let dev = Device::flex();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("# edit-bench: burn 0.22.1 flex, {runs} runs per line (median), loadavg at start: {}", load.trim());
    let m = open("default", None, &dev)?;
    live(m.as_ref(), "default-64", runs)?;
    match open(limner_photoreal::MODEL_NAME, Some(256), &dev) {
        Ok(rf) => live(rf.as_ref(), "random-face-256", runs.min(7))?,
        Err(e) => println!("# random-face skipped: {e:#}"),
    }
    // projection: default model, 300 steps from w_avg, on its own seed-5 face (no photo needed)
    match limner_nets::perceptual::InceptionPerceptual::load_fetched(&dev) {
        Ok(dist) => {
            let m = m.as_ref();
            let target = m.render(&seed_ws(m, &[5], 0.7), &[5], 0.0).pop().unwrap();
            let steps = if quick { 100 } else { 300 };
            let t0 = Instant::now();
            let p = limner_edit::project::project(m, &target, &dist, &limner_edit::project::ProjectOptions { steps, ..Default::default() }, &mut |_, _| {})?;
            println!("RESULT limner edit/default-64/project-{steps}-steps ms={:.0}", t0.elapsed().as_secs_f64() * 1e3);
            println!("# projection distance {:.4} from {:.4}", p.distance, p.start_distance);
        }
        Err(e) => println!("# projection skipped: {e:#}"),
    }
    Ok(())
}
