//! Load benchmark of `limner studio` (bench/studio.sh runs it).
//!
//! It starts the studio binary itself (so it can read the server's peak RSS from /proc), then:
//! 1. load: `--clients` concurrent clients each ask for `--requests` faces (distinct seeds),
//!    retrying after a 503 as its Retry-After says; every answer must decode as a PNG of the
//!    model's size and, afterwards, equal the same request made alone (single-user render);
//!    reports p50/p99 latency, throughput, 503s seen, the server's peak RSS;
//! 2. saturated: a studio with a small queue gets `--clients` requests at once with no retry:
//!    every answer must be a correct face or a 503 with Retry-After, and the peak RSS must stay
//!    near the idle one.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

struct Args {
    limner: PathBuf,
    clients: usize,
    requests: usize,
    workers: Option<usize>,
    model: String,
}

fn parse() -> Result<Args> {
    let mut a = Args { limner: PathBuf::from("target/release/limner"), clients: 200, requests: 3, workers: None, model: "default".into() };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--limner" => a.limner = PathBuf::from(v()?),
            "--clients" => a.clients = v()?.parse()?,
            "--requests" => a.requests = v()?.parse()?,
            "--workers" => a.workers = Some(v()?.parse()?),
            "--model" => a.model = v()?,
            _ => bail!("unknown option {k} (--limner PATH --clients N --requests N --workers N --model M)"),
        }
    }
    Ok(a)
}

struct Server {
    child: Child,
    base: String,
    _home: tempdir::Dir,
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Server {
    fn start(limner: &PathBuf, extra: &[String]) -> Result<Server> {
        let home = std::env::temp_dir().join(format!("limner-studio-load-{}-{}", std::process::id(), Instant::now().elapsed().as_nanos()));
        std::fs::create_dir_all(&home)?;
        let mut child = Command::new(limner)
            .args(["studio", "--port", "0", "--data"])
            .arg(home.join("data"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", limner.display()))?;
        let mut out = child.stdout.take().unwrap();
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        let base = loop {
            if out.read(&mut byte)? == 0 {
                bail!("the studio exited before printing its address");
            }
            buf.push(byte[0]);
            let s = String::from_utf8_lossy(&buf);
            if let Some(i) = s.find("open http://") {
                if s.ends_with('\n') {
                    break s[i + 5..].trim().trim_end_matches('/').to_string();
                }
            }
        };
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Ok(Server { child, base, _home: tempdir::Dir(home) })
    }

    /// (current, peak) resident memory in MiB.
    fn rss(&self) -> (f64, f64) {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let field = |name: &str| s.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 1024.0;
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(600)).build()
}

enum Got {
    Face(Vec<u8>),
    Busy(Option<String>),
}

fn fetch(agent: &ureq::Agent, url: &str) -> Result<Got> {
    match agent.get(url).call() {
        Ok(r) => {
            let mut b = vec![];
            r.into_reader().read_to_end(&mut b)?;
            Ok(Got::Face(b))
        }
        Err(ureq::Error::Status(503, r)) => Ok(Got::Busy(r.header("retry-after").map(str::to_string))),
        Err(ureq::Error::Status(c, r)) => bail!("{url}: HTTP {c}: {}", r.into_string().unwrap_or_default()),
        Err(e) => bail!("{url}: {e}"),
    }
}

fn check_png(b: &[u8], res: u32) -> Result<()> {
    let img = image::load_from_memory_with_format(b, image::ImageFormat::Png).context("an answer is not a PNG")?;
    ensure!(img.width() == res && img.height() == res, "an answer is {}x{}, not {res}²", img.width(), img.height());
    Ok(())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<()> {
    let a = parse()?;
    let workers = a.workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    println!("# limner studio load: {} clients x {} requests, model {}, {} render workers", a.clients, a.requests, a.model, workers);

    // ---- 1. load with retry
    let srv = Server::start(&a.limner, &["--workers".into(), workers.to_string()])?;
    let models: serde_json::Value = agent().get(&format!("{}/api/models", srv.base)).call()?.into_json()?;
    let res = models["models"].as_array().unwrap().iter().find(|m| m["name"] == a.model.as_str()).context("model not offered")?["default_size"].as_u64().unwrap() as u32;
    let face_url = |seed: u64| format!("{}/api/face?model={}&psi=0.7&noise=1&seed={seed}", srv.base, a.model);
    // warm every worker's model
    for s in 0..workers as u64 * 2 {
        if let Got::Busy(_) = fetch(&agent(), &face_url(1_000_000 + s))? {
            bail!("busy while warming up");
        }
    }
    let (idle_rss, _) = srv.rss();
    let barrier = Arc::new(Barrier::new(a.clients));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..a.clients)
        .map(|c| {
            let barrier = barrier.clone();
            let urls: Vec<(u64, String)> = (0..a.requests as u64).map(|k| (c as u64 * 1000 + k, face_url(c as u64 * 1000 + k))).collect();
            std::thread::spawn(move || -> Result<(Vec<f64>, usize, Vec<(u64, Vec<u8>)>)> {
                let ag = agent();
                barrier.wait();
                let (mut lat, mut busy, mut got) = (vec![], 0, vec![]);
                for (seed, url) in urls {
                    let t = Instant::now();
                    loop {
                        match fetch(&ag, &url)? {
                            Got::Face(b) => {
                                lat.push(t.elapsed().as_secs_f64() * 1e3);
                                got.push((seed, b));
                                break;
                            }
                            Got::Busy(ra) => {
                                ensure!(ra.is_some(), "a 503 without Retry-After");
                                busy += 1;
                                std::thread::sleep(Duration::from_millis(200 + (seed % 7) * 50));
                            }
                        }
                    }
                }
                Ok((lat, busy, got))
            })
        })
        .collect();
    let mut lat = vec![];
    let mut busy = 0;
    let mut answers = vec![];
    let mut peak_during = 0f64;
    let mut results = vec![];
    for h in handles {
        while !h.is_finished() {
            peak_during = peak_during.max(srv.rss().0);
            std::thread::sleep(Duration::from_millis(20));
        }
        results.push(h.join().unwrap()?);
    }
    let wall = t0.elapsed().as_secs_f64();
    for (l, b, g) in results {
        lat.extend(l);
        busy += b;
        answers.extend(g);
    }
    lat.sort_by(|x, y| x.partial_cmp(y).unwrap());
    ensure!(answers.len() == a.clients * a.requests, "lost answers: {} of {}", answers.len(), a.clients * a.requests);
    // correctness: each answer decodes and equals the same request made alone
    let ag = agent();
    let mut mismatched = 0;
    for (seed, b) in &answers {
        check_png(b, res)?;
        let Got::Face(single) = fetch(&ag, &face_url(*seed))? else { bail!("busy with one client") };
        if &single != b {
            mismatched += 1;
        }
    }
    let (_, hwm) = srv.rss();
    println!("load: {} faces in {wall:.1} s = {:.1} faces/s; latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; 503s retried {busy}", answers.len(), answers.len() as f64 / wall, pct(&lat, 0.5), pct(&lat, 0.99), pct(&lat, 1.0));
    println!("load: {} answers decoded, {mismatched} differ from the single-user render", answers.len());
    println!("load: server RSS idle {idle_rss:.0} MiB, peak {:.0} MiB (VmHWM {hwm:.0} MiB)", peak_during.max(idle_rss));
    ensure!(mismatched == 0, "{mismatched} answers differ from the single-user render");
    drop(srv);

    // ---- 2. saturated: a small queue, everyone at once, no retry
    let queue = 2 * workers;
    let srv = Server::start(&a.limner, &["--workers".into(), workers.to_string(), "--queue".into(), queue.to_string()])?;
    for s in 0..workers as u64 * 2 {
        let _ = fetch(&agent(), &format!("{}/api/face?model={}&seed={}", srv.base, a.model, 2_000_000 + s))?;
    }
    let (idle_rss, _) = srv.rss();
    let barrier = Arc::new(Barrier::new(a.clients));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..a.clients)
        .map(|c| {
            let barrier = barrier.clone();
            let url = format!("{}/api/face?model={}&psi=0.7&noise=1&seed={}", srv.base, a.model, 3_000_000 + c);
            std::thread::spawn(move || -> Result<(u64, Got, f64)> {
                let ag = agent();
                barrier.wait();
                let t = Instant::now();
                Ok((3_000_000 + c as u64, fetch(&ag, &url)?, t.elapsed().as_secs_f64() * 1e3))
            })
        })
        .collect();
    let (mut ok, mut rejected, mut rej_lat, mut peak) = (vec![], 0usize, vec![], 0f64);
    for h in handles {
        while !h.is_finished() {
            peak = peak.max(srv.rss().0);
            std::thread::sleep(Duration::from_millis(5));
        }
        match h.join().unwrap()? {
            (seed, Got::Face(b), _) => ok.push((seed, b)),
            (_, Got::Busy(ra), ms) => {
                ensure!(ra.as_deref() == Some("1"), "a 503 without Retry-After: 1");
                rejected += 1;
                rej_lat.push(ms);
            }
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    rej_lat.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let ag = agent();
    for (seed, b) in &ok {
        check_png(b, res)?;
        let Got::Face(single) = fetch(&ag, &format!("{}/api/face?model={}&psi=0.7&noise=1&seed={seed}", srv.base, a.model))? else { bail!("busy alone") };
        ensure!(&single == b, "seed {seed}: differs from the single-user render");
    }
    let stats: serde_json::Value = ag.get(&format!("{}/api/stats", srv.base)).call()?.into_json()?;
    println!(
        "saturated (queue {queue}): {} served, {rejected} refused with 503 + Retry-After (p50 {:.0} ms, p99 {:.0} ms to refuse) in {wall:.1} s; max queued {} of {queue}",
        ok.len(),
        pct(&rej_lat, 0.5),
        pct(&rej_lat, 0.99),
        stats["max_queued"]
    );
    println!("saturated: server RSS idle {idle_rss:.0} MiB, peak {peak:.0} MiB");
    ensure!(ok.len() + rejected == a.clients, "lost answers");
    ensure!(stats["max_queued"].as_u64().unwrap_or(u64::MAX) <= queue as u64, "the queue bound was broken: {stats}");
    Ok(())
}
