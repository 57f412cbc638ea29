//! Interactive speed of `limner studio` in a real browser (bench/studio_browser.sh runs it, as
//! the `studio-browser` example of the limner crate, so that it shares the end-to-end tests'
//! support code and dev-dependencies, built once).
//!
//! It starts the studio binary on loopback and headless Chromium (driven over the DevTools
//! protocol by the end-to-end tests' own client, `crates/limner/tests/studio_support/cdp.rs`),
//! and measures in the page, with the page's own code doing the work:
//! - **slider**: from a slider's `input` event to the new image on screen (its `<img>` loaded
//!   and decoded, in the animation frame that paints it): the Sliders view on a kept face (a
//!   SeFa slider; POST /api/slide), and Meet's psi slider (GET /api/face), at 128 px (the default
//!   model) and at 256 px (random-face, when fetched);
//! - **refresh**: a page reload to its new face on screen (from the navigation's start: the
//!   page's `limner:face` mark, set once the face is decoded), and the New face button.
//!
//! For each case: p50/p95 against the issue's goals, and where the time went at the median
//! (server: request sent → first byte, i.e. queue + render + PNG encode; download; client: from
//! the last byte to the frame, i.e. JSON/base64, image decode and paint), with the worker's own
//! render time (`X-Limner-Render-Ms` / `render_ms`, PNG encoding included).

// the end-to-end tests' own support: the studio on loopback, the DevTools client
#[path = "../crates/limner/tests/studio_support/mod.rs"]
mod studio_support;

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use studio_support::{cdp, Studio};

struct Args {
    samples: usize,
    warmup: usize,
    workers: Option<usize>,
}

fn parse() -> Result<Args> {
    let mut a = Args { samples: 40, warmup: 4, workers: None };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--samples" => a.samples = v()?.parse()?,
            "--warmup" => a.warmup = v()?.parse()?,
            "--workers" => a.workers = Some(v()?.parse()?),
            _ => bail!("unknown option {k} (--samples N --warmup N --workers N)"),
        }
    }
    ensure!(a.samples >= 2, "--samples: at least 2");
    Ok(a)
}

/// One measured interaction.
#[derive(Clone, Copy, Default)]
struct Sample {
    ms: f64,
    server: f64,
    download: f64,
    client: f64,
    render: f64,
    bytes: f64,
}

fn sample(v: &Value) -> Result<Sample> {
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    ensure!(f("ms").is_finite(), "the page did not report a time: {v}");
    Ok(Sample { ms: f("ms"), server: f("server"), download: f("download"), client: f("client"), render: f("render"), bytes: f("bytes") })
}

fn pct(xs: &mut [f64], p: f64) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

struct Row {
    case: String,
    goal: Option<f64>,
    samples: Vec<Sample>,
}

impl Row {
    fn print(&self) {
        let col = |f: fn(&Sample) -> f64| self.samples.iter().map(f).collect::<Vec<f64>>();
        let (p50, p95) = (pct(&mut col(|s| s.ms), 0.5), pct(&mut col(|s| s.ms), 0.95));
        let verdict = match self.goal {
            Some(g) if p95 <= g => format!("≤ {g:.0} ms: met (p95)"),
            Some(g) if p50 <= g => format!("≤ {g:.0} ms: met at p50, not at p95"),
            Some(g) => format!("≤ {g:.0} ms: NOT met"),
            None => "(no goal)".into(),
        };
        println!(
            "{:<44} {:>3} {:>7.1} {:>7.1}   {:<30} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>8.0}",
            self.case,
            self.samples.len(),
            p50,
            p95,
            verdict,
            pct(&mut col(|s| s.server), 0.5),
            pct(&mut col(|s| s.render), 0.5),
            pct(&mut col(|s| s.download), 0.5),
            pct(&mut col(|s| s.client), 0.5),
            pct(&mut col(|s| s.bytes), 0.5),
        );
    }
}

/// The page's measurement of one input event: dispatch, then wait for `img`'s next load, its
/// decode and the animation frame that paints it (times in the page's clock). `RENDER` is read
/// from what the page shows of the worker's render time.
const INPUT_JS: &str = r#"(async () => {
  const img = document.querySelector(IMG);
  const input = document.querySelector(INPUT);
  performance.clearResourceTimings();
  const loaded = new Promise((res, rej) => { img.addEventListener('load', res, { once: true }); img.addEventListener('error', () => rej(new Error('image error')), { once: true }); });
  const t0 = performance.now();
  ACT;
  await loaded;
  await img.decode();
  await new Promise(res => requestAnimationFrame(() => res()));
  const t1 = performance.now();
  // the page's own bookkeeping finishes in the same task as the load; let it run
  await new Promise(res => setTimeout(res, 0));
  const r = performance.getEntriesByType('resource').filter(e => e.name.includes('/api/')).pop();
  const timing = document.querySelector(TIMING).textContent;
  const m = /render ([0-9.]+) ms/.exec(timing);
  return { ms: t1 - t0, server: r ? r.responseStart - r.requestStart : null, download: r ? r.responseEnd - r.responseStart : null,
           client: r ? t1 - r.responseEnd : null, bytes: r ? r.encodedBodySize : null, render: m ? +m[1] : null };
})()"#;

fn input_js(img: &str, input: &str, act: &str, timing: &str) -> String {
    INPUT_JS.replace("IMG", &json!(img).to_string()).replace("INPUT", &json!(input).to_string()).replace("ACT", act).replace("TIMING", &json!(timing).to_string())
}

fn set_range(value: &str) -> String {
    format!("input.value = '{value}'; input.dispatchEvent(new Event('input'))")
}

/// Values a range input can take that are not `avoid` (so each sample asks for a new render).
fn values(min: f64, max: f64, step: f64, n: usize, avoid: f64) -> Vec<String> {
    let count = ((max - min) / step).round() as usize + 1;
    let all: Vec<f64> = (0..count).map(|i| min + i as f64 * step).filter(|v| (v - avoid).abs() > step / 2.0).collect();
    // spread over the range, alternating ends (a drag back and forth)
    (0..n).map(|i| all[(i * 7919) % all.len()]).map(|v| format!("{v:.2}")).collect()
}

fn measure(b: &mut cdp::Browser, warmup: usize, js: impl Fn(usize) -> String, n: usize) -> Result<Vec<Sample>> {
    let mut out = vec![];
    for i in 0..warmup + n {
        let v = b.eval(&js(i));
        if i >= warmup {
            out.push(sample(&v)?);
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    Ok(out)
}

fn keep(srv: &Studio, body: Value) -> Result<i64> {
    let r = ureq::post(&srv.url("/api/keep")).send_json(body.clone());
    match r {
        Ok(r) => Ok(r.into_json::<Value>()?["id"].as_i64().context("no id")?),
        Err(ureq::Error::Status(c, r)) => bail!("keep {body}: HTTP {c}: {}", r.into_string().unwrap_or_default()),
        Err(e) => bail!("keep {body}: {e}"),
    }
}

fn main() -> Result<()> {
    let a = parse()?;
    let exe = cdp::chromium_path().with_context(|| format!("{} is missing: apt-get install chromium (or set LIMNER_CHROMIUM)", cdp::CHROMIUM))?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let workers = a.workers.unwrap_or(cores);
    // a fresh gallery; the machine's model cache (random-face when fetched)
    let home = tempfile::tempdir()?;
    std::os::unix::fs::symlink(limner_core::dirs::nets_dir(), home.path().join("nets"))?;
    let w = workers.to_string();
    let srv = Studio::start(home.path(), &home.path().join("data"), &["--workers", &w]);
    let models: Value = ureq::get(&srv.url("/api/models")).call()?.into_json()?;
    let has_rf = models["models"].as_array().is_some_and(|m| m.iter().any(|m| m["name"] == "random-face"));
    println!("# limner studio in headless Chromium: {} samples a case after {} warm-up, {workers} render workers, {cores} cores", a.samples, a.warmup);
    if !has_rf {
        println!("# random-face is not fetched (limner models fetch --only random-face): the 256 px cases are not measured");
    }
    let mut b = cdp::Browser::launch(&exe);
    let n = a.samples;
    let mut rows = vec![];

    // --- refresh: reload → the new face on screen, from the navigation's start
    b.navigate(&srv.url("/#meet"));
    let mut refresh = vec![];
    for i in 0..a.warmup + n {
        b.reload();
        b.wait_for("document.querySelector('#face').dataset.state === 'loaded' && performance.getEntriesByName('limner:face').length > 0", "the face after a reload");
        let v = b.eval(
            r#"(() => {
  const t1 = performance.getEntriesByName('limner:face')[0].startTime;
  const r = performance.getEntriesByType('resource').find(e => e.name.includes('/api/face'));
  const m = /render ([0-9.]+) ms/.exec(document.querySelector('#timing').textContent);
  return { ms: t1, server: r ? r.responseStart - r.requestStart : null, download: r ? r.responseEnd - r.responseStart : null,
           client: r ? t1 - r.responseEnd : null, bytes: r ? r.encodedBodySize : null, render: m ? +m[1] : null };
})()"#,
        );
        if i >= a.warmup {
            refresh.push(sample(&v)?);
        }
    }
    rows.push(Row { case: "refresh → new face (128 px, default)".into(), goal: Some(150.0), samples: refresh });

    // --- New face button, psi slider (Meet, default)
    b.wait_for("document.querySelector('#model').dataset.state === 'loaded'", "the model list");
    let new_face = input_js("#face", "#new", "input.click()", "#timing");
    rows.push(Row { case: "New face button → face (128 px, default)".into(), goal: Some(150.0), samples: measure(&mut b, a.warmup, |_| new_face.clone(), n)? });
    let psi = values(-1.0, 2.0, 0.05, a.warmup + n, 0.7);
    rows.push(Row { case: "Meet psi slider → face (128 px, default)".into(), goal: Some(100.0), samples: measure(&mut b, a.warmup, |i| input_js("#face", "#psi", &set_range(&psi[i]), "#timing"), n)? });

    // --- Sliders view (default): a kept face, a SeFa slider
    let id64 = keep(&srv, json!({"model": "default", "seed": 100401, "psi": 0.7}))?;
    let slide_case = |b: &mut cdp::Browser, id: i64, what: &str| -> Result<Row> {
        // (a query makes it a new document, so the page lists the kept faces afresh)
        b.navigate(&srv.url(&format!("/?face={id}#sliders")));
        b.wait_for(&format!("document.querySelector('#slide-picks .pick[data-id=\"{id}\"]')"), "the kept face to pick");
        b.eval(&format!("document.querySelector('#slide-picks .pick[data-id=\"{id}\"]').click()"));
        b.wait_for(&format!("document.querySelector('#slide-face').dataset.state === 'loaded' && slide.image.id === {id} && !slide.inflight && !slide.dirty && document.querySelector('#slider-list input[data-slider=\"sefa:coarse:0\"]')"), "the face to slide");
        let vals = values(-5.0, 5.0, 0.1, a.warmup + n, 0.0);
        let samples = measure(b, a.warmup, |i| input_js("#slide-face", "#slider-list input[data-slider=\"sefa:coarse:0\"]", &set_range(&vals[i]), "#slide-timing"), n)?;
        Ok(Row { case: what.into(), goal: Some(if what.contains("256") { 250.0 } else { 100.0 }), samples })
    };
    rows.push(slide_case(&mut b, id64, "Sliders: SeFa slider → face (128 px, default)")?);

    if has_rf {
        // --- 256 px, random-face: Sliders view and Meet's psi
        let id256 = keep(&srv, json!({"model": "random-face", "size": 256, "seed": 11, "psi": 0.7}))?;
        rows.push(slide_case(&mut b, id256, "Sliders: SeFa slider → face (256 px, random-face)")?);
        b.navigate(&srv.url("/?rf#meet"));
        b.wait_for("document.querySelector('#model').dataset.state === 'loaded' && document.querySelector('#face').dataset.state === 'loaded'", "Meet");
        b.eval("(() => { const m = document.querySelector('#model'); m.value = 'random-face'; m.dispatchEvent(new Event('change')); const s = document.querySelector('#size'); s.value = '256'; s.dispatchEvent(new Event('change')); })()");
        b.wait_for("document.querySelector('#face').dataset.state === 'loaded' && document.querySelector('#face').naturalWidth === 256 && !meet.inflight && !meet.dirty", "a random-face face at 256 px");
        let psi = values(-1.0, 2.0, 0.05, a.warmup + n, 0.7);
        rows.push(Row { case: "Meet psi slider → face (256 px, random-face)".into(), goal: Some(250.0), samples: measure(&mut b, a.warmup, |i| input_js("#face", "#psi", &set_range(&psi[i]), "#timing"), n)? });
        rows.push(Row { case: "New face button → face (256 px, random-face)".into(), goal: None, samples: measure(&mut b, a.warmup, |_| new_face.clone(), n)? });
    }

    println!();
    println!(
        "{:<44} {:>3} {:>7} {:>7}   {:<30} {:>7} {:>7} {:>7} {:>7} {:>8}",
        "case (ms, in the page)", "n", "p50", "p95", "goal", "server", "render", "downl.", "client", "bytes"
    );
    for r in &rows {
        r.print();
    }
    println!();
    println!("server: request sent → first byte (queue + render + PNG encode + HTTP); render: the worker's time (PNG encode included);");
    println!("download: first → last byte; client: last byte → the frame that paints the decoded image (JSON/base64, decode, layout). Medians.");
    let st: Value = ureq::get(&srv.url("/api/stats")).call()?.into_json()?;
    println!("pool: {} rendered, {} refused (503), {} abandoned", st["rendered"], st["rejected"], st["abandoned"]);
    srv.stop();
    Ok(())
}
