//! `limner studio`'s JSON API against the real server on loopback with a real SQLite file.

mod studio_support;

use std::collections::HashSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use studio_support::*;

fn keep(s: &Studio, seed: u64, curator: &str) -> Answer {
    send_json("POST", &s.url("/api/keep"), &json!({"model": "default", "seed": seed, "psi": 0.7, "noise": 1.0, "curator": curator}))
}

#[test]
fn faces_are_deterministic_and_a_new_one_each_time() {
    let home = tempfile::tempdir().unwrap();
    let s = Studio::start(home.path(), &home.path().join("data"), &["--workers", "1"]);
    let models = get(&s.url("/api/models")).json();
    assert_eq!(models["default"], "default");
    let m0 = &models["models"][0];
    assert_eq!(m0["name"], "default");
    let res = m0["resolution"].as_u64().unwrap() as u32;

    let a = get(&s.url("/api/face?seed=7&psi=0.7&noise=1"));
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.header("content-type"), Some("image/png"));
    assert_eq!(a.header("x-limner-seed"), Some("7"));
    let img = decode_png(&a.body);
    assert_eq!((img.width(), img.height()), (res, res));
    let b = get(&s.url("/api/face?seed=7&psi=0.7&noise=1"));
    assert_eq!(a.body, b.body, "the same recipe gives the same bytes");
    let c = get(&s.url("/api/face?seed=8&psi=0.7&noise=1"));
    assert_ne!(a.body, c.body, "another seed, another face");
    let psi = get(&s.url("/api/face?seed=7&psi=0.2&noise=1"));
    assert_ne!(a.body, psi.body, "psi changes the face");

    // no seed: a random one each time, named in the answer
    let r1 = get(&s.url("/api/face"));
    let r2 = get(&s.url("/api/face"));
    assert_eq!(r1.header("cache-control"), Some("no-store"));
    let (s1, s2) = (r1.header("x-limner-seed").unwrap().to_string(), r2.header("x-limner-seed").unwrap().to_string());
    assert_ne!(s1, s2);
    assert_ne!(r1.body, r2.body);
    // and that seed reproduces it
    let again = get(&s.url(&format!("/api/face?seed={s1}")));
    assert_eq!(again.body, r1.body);
    s.stop();
}

#[test]
fn kept_faces_and_their_curation_survive_a_restart() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let s = Studio::start(home.path(), &data, &["--workers", "1"]);
    assert_eq!(get(&s.url("/api/images")).json(), json!([]));
    let shown = get(&s.url("/api/face?seed=101&psi=0.7&noise=1")).body;
    // the face carries limner's AI-provenance label (XMP), as every file the CLI writes does
    let xmp = limner_data::provenance::read_xmp(&shown).unwrap().expect("the studio's face carries an XMP label");
    let label = limner_data::provenance::Label::parse(&xmp);
    assert!(label.is_limner(), "{xmp}");
    assert_eq!(label.source_code(), Some("trainedAlgorithmicMedia"), "{xmp}");
    let recipe: Value = serde_json::from_str(label.recipe.as_deref().expect("the label holds the recipe")).unwrap();
    assert_eq!(recipe["origin"]["seed"], 101, "{recipe}");
    let k1 = keep(&s, 101, "Ada");
    assert_eq!(k1.status, 201, "{}", k1.text());
    let k1 = k1.json();
    assert_eq!(k1["author"], "Ada");
    assert_eq!(k1["recipe"]["origin"]["seed"], 101);
    assert_eq!(k1["recipe"]["origin"]["psi"], 0.7, "the recipe's psi reads as typed");
    assert_eq!(k1["recipe"]["model"]["name"], "default");
    assert_eq!(k1["hash"].as_str().unwrap(), sha256_hex(&shown), "the kept file is the face that was shown");
    // export: PNG and JPEG with the label (AI-made, recipe) and the curator who kept it as creator
    let kid = k1["id"].as_i64().unwrap();
    for (format, magic) in [("png", &b"\x89PNG"[..]), ("jpeg", &b"\xff\xd8\xff"[..])] {
        let e = get(&s.url(&format!("/api/images/{kid}/export?format={format}")));
        assert_eq!(e.status, 200, "{format}: {}", e.text());
        assert!(e.body.starts_with(magic), "{format}: not a {format} file");
        let xmp = limner_data::provenance::read_xmp(&e.body).unwrap().expect("the export carries an XMP label");
        let label = limner_data::provenance::Label::parse(&xmp);
        assert_eq!(label.source_code(), Some("trainedAlgorithmicMedia"), "{xmp}");
        assert_eq!(label.creator.as_deref(), Some("Ada"), "the curator is the export's creator: {xmp}");
        let r: Value = serde_json::from_str(label.recipe.as_deref().unwrap()).unwrap();
        assert_eq!(r["origin"]["seed"], 101, "{r}");
        let px = image::load_from_memory(&e.body).unwrap().to_rgb8();
        let shown_px = image::load_from_memory(&shown).unwrap().to_rgb8();
        assert_eq!(px.dimensions(), shown_px.dimensions());
        if format == "png" {
            assert_eq!(px, shown_px, "the PNG export has the kept pixels");
        }
    }
    assert_eq!(get(&s.url(&format!("/api/images/{kid}/export?format=tiff"))).status, 400);
    assert_eq!(get(&s.url("/api/images/999999/export")).status, 404);
    let again = keep(&s, 101, "Ada");
    assert_eq!(again.status, 200, "keeping the same face twice gives the same image");
    assert_eq!(again.json()["id"], k1["id"]);
    let k2 = keep(&s, 102, "").json();
    assert_eq!(k2["author"], "anonymous");
    let k3 = keep(&s, 103, "Ada").json();
    let id1 = k1["id"].as_i64().unwrap();
    let note = "<script>alert(1)</script> & \"quotes\" 'single' ünïcode";
    let up = send_json(
        "PATCH",
        &s.url(&format!("/api/images/{id1}")),
        &json!({"curator": "Grace", "rating": 4, "favourite": true, "tags": ["portrait", " best ", "portrait", ""], "notes": note}),
    );
    assert_eq!(up.status, 200, "{}", up.text());
    let up = up.json();
    assert_eq!(up["tags"], json!(["best", "portrait"]), "tags are trimmed, deduplicated, sorted");
    assert_eq!(up["notes"], note);
    let id3 = k3["id"].as_i64().unwrap();
    assert_eq!(send_json("PATCH", &s.url(&format!("/api/images/{id3}")), &json!({"rejected": true, "rating": 2})).status, 200);
    s.stop();

    let s = Studio::start(home.path(), &data, &["--workers", "1"]);
    let list = get(&s.url("/api/images")).json();
    let ids: Vec<i64> = list.as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![k2["id"].as_i64().unwrap(), id1], "newest first, rejected hidden");
    let one = get(&s.url(&format!("/api/images/{id1}"))).json();
    assert_eq!(one["rating"], 4);
    assert_eq!(one["favourite"], true);
    assert_eq!(one["notes"], note);
    assert_eq!(one["tags"], json!(["best", "portrait"]));
    assert_eq!(one["author"], "Ada", "the keeper stays the author");
    let blob = get(&s.url(one["url"].as_str().unwrap()));
    assert_eq!(blob.status, 200);
    assert_eq!(blob.body, shown);
    // filters and sorts
    let only_rej = get(&s.url("/api/images?rejected=only")).json();
    assert_eq!(only_rej.as_array().unwrap().len(), 1);
    assert_eq!(only_rej[0]["id"], id3);
    let all_by_rating = get(&s.url("/api/images?rejected=all&sort=rating")).json();
    let r: Vec<Value> = all_by_rating.as_array().unwrap().iter().map(|i| i["rating"].clone()).collect();
    assert_eq!(r, vec![json!(4), json!(2), Value::Null]);
    assert_eq!(get(&s.url("/api/images?tag=best")).json().as_array().unwrap().len(), 1);
    assert_eq!(get(&s.url("/api/images?favourite=true")).json().as_array().unwrap().len(), 1);
    assert_eq!(get(&s.url("/api/images?min_rating=5&rejected=all")).json().as_array().unwrap().len(), 0);
    assert_eq!(get(&s.url("/api/images?q=%3Cscript")).json().as_array().unwrap().len(), 1);
    assert_eq!(get(&s.url("/api/images?q=100%25")).json().as_array().unwrap().len(), 0, "% in a search is a literal");
    assert_eq!(get(&s.url("/api/images?author=Ada&rejected=all")).json().as_array().unwrap().len(), 2);
    // the history names who did what
    let h = get(&s.url(&format!("/api/images/{id1}/history"))).json();
    let curators: Vec<&str> = h.as_array().unwrap().iter().map(|e| e["curator"].as_str().unwrap()).collect();
    assert_eq!(curators, vec!["Ada", "Grace"]);
    // its recipe makes the same pixels again with `limner render`
    let rec = get(&s.url(&format!("/api/images/{id1}/recipe")));
    assert_eq!(rec.status, 200);
    assert!(rec.header("content-disposition").unwrap().contains("limner-"));
    let rec_path = home.path().join("kept.json");
    std::fs::write(&rec_path, &rec.body).unwrap();
    let out_png = home.path().join("again.png");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_limner")).arg("render").arg(&rec_path).arg("--out").arg(&out_png).env("LIMNER_HOME", home.path()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(decode_png(&std::fs::read(&out_png).unwrap()), decode_png(&shown), "the recipe re-renders the kept face");
    // clearing a rating
    let cleared = send_json("PATCH", &s.url(&format!("/api/images/{id1}")), &json!({"rating": 0})).json();
    assert_eq!(cleared["rating"], Value::Null);
    s.stop();
    let (ok, out) = check(home.path(), &data);
    assert!(ok, "{out}");
    assert!(out.contains("integrity ok") && out.contains("3 kept, 0 bad"), "{out}");
}

#[test]
fn kill_9_mid_write_loses_nothing_that_was_kept() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let s = Studio::start(home.path(), &data, &["--workers", "2"]);
    let kept: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = s.url("/api/keep");
    let threads: Vec<_> = (0..6u64)
        .map(|t| {
            let (kept, stop, url) = (kept.clone(), stop.clone(), url.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(20)).build();
                let mut seed = 10_000 + t * 100_000;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    seed += 1;
                    let body = json!({"model": "default", "seed": seed, "curator": "crash test", "notes": "x".repeat(2000), "tags": ["a", "b", "c"]});
                    match agent.post(&url).set("Content-Type", "application/json").send_string(&body.to_string()) {
                        Ok(r) if r.status() == 201 => {
                            let v: Value = r.into_json().unwrap();
                            kept.lock().unwrap().push((v["id"].as_i64().unwrap(), v["hash"].as_str().unwrap().to_string()));
                        }
                        Ok(r) => panic!("unexpected answer {}", r.status()),
                        Err(ureq::Error::Status(503, _)) => {}
                        Err(ureq::Error::Status(c, r)) => panic!("unexpected answer {c}: {}", r.into_string().unwrap_or_default()),
                        Err(_) => break, // the server died under us: this request was never answered
                    }
                }
            })
        })
        .collect();
    // let it write for a while, then kill it in the middle of requests
    let t = Instant::now();
    while kept.lock().unwrap().len() < 20 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    s.kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let kept = kept.lock().unwrap().clone();
    assert!(kept.len() >= 20, "only {} kept before the kill", kept.len());

    let (ok, out) = check(home.path(), &data);
    assert!(ok, "after kill -9: {out}");
    assert!(out.contains("integrity ok"), "{out}");

    let s = Studio::start(home.path(), &data, &["--workers", "1"]);
    let list = get(&s.url("/api/images?limit=500")).json();
    let have: HashSet<(i64, String)> = list.as_array().unwrap().iter().map(|i| (i["id"].as_i64().unwrap(), i["hash"].as_str().unwrap().to_string())).collect();
    for (id, hash) in &kept {
        assert!(have.contains(&(*id, hash.clone())), "image {id} was kept (201) but is gone after kill -9");
        let b = get(&s.url(&format!("/api/blob/{hash}")));
        assert_eq!(b.status, 200);
        assert_eq!(&sha256_hex(&b.body), hash);
        decode_png(&b.body);
    }
    for i in list.as_array().unwrap() {
        assert_eq!(i["tags"], json!(["a", "b", "c"]), "an image and its tags are one transaction");
    }
    s.stop();
}

#[test]
fn bad_input_is_refused_clearly_and_other_sites_are_shut_out() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let s = Studio::start(home.path(), &data, &["--workers", "1"]);
    // with no --host it listens on loopback only: the kernel's own table of listening sockets
    // has its port on 127.0.0.1 and nowhere else
    assert!(s.base.starts_with("http://127.0.0.1:"), "{}", s.base);
    let listening: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|t| t.lines().skip(1).map(str::to_string).collect::<Vec<_>>())
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local address HEXIP:HEXPORT, state 0A = LISTEN
            (f.len() > 3 && f[3] == "0A" && f[1].ends_with(&format!(":{:04X}", s.port))).then(|| f[1].split(':').next().unwrap().to_string())
        })
        .collect();
    assert_eq!(listening, vec!["0100007F".to_string()], "listening on 127.0.0.1 only");
    for (q, needle) in [
        ("psi=NaN", "psi"),
        ("psi=inf", "psi"),
        ("psi=5", "psi"),
        ("noise=-1", "noise"),
        ("seed=9007199254740992", "seed"),
        ("seed=-1", ""),
        ("seed=abc", ""),
        ("model=..%2F..%2Fetc%2Fpasswd", "model"),
        ("model=%2Fetc%2Fpasswd", "model"),
        ("model=nosuchmodel", "not offered"),
        ("size=256", "size"),
    ] {
        let a = get(&s.url(&format!("/api/face?{q}")));
        assert_eq!(a.status, 400, "{q}: {}", a.text());
        assert!(a.text().contains(needle), "{q}: {}", a.text());
    }
    for p in ["/api/blob/..%2F..%2Fgallery.db", "/api/blob/../gallery.db", "/api/blob/ABCDEF", &format!("/api/blob/{}", "0".repeat(64))] {
        let a = get(&s.url(p));
        assert_eq!(a.status, 404, "{p}");
        assert!(!a.text().contains("SQLite"), "{p}");
    }
    let id = send_json("POST", &s.url("/api/keep"), &json!({"seed": 1})).json()["id"].as_i64().unwrap();
    let img = s.url(&format!("/api/images/{id}"));
    for (body, needle) in [
        (json!({"rating": 6}), "rating"),
        (json!({"rating": -1}), "rating"),
        (json!({"notes": "n".repeat(10_001)}), "notes"),
        (json!({"tags": ["t".repeat(65)]}), "tag"),
        (json!({"tags": (0..33).map(|i| i.to_string()).collect::<Vec<_>>()}), "tags"),
        (json!({"curator": "c".repeat(101)}), "curator"),
        (json!({"curator": "bad\u{7}name"}), "curator"),
    ] {
        let a = send_json("PATCH", &img, &body);
        assert_eq!(a.status, 400, "{body}: {}", a.text());
        assert!(a.text().contains(needle), "{body}: {}", a.text());
    }
    assert_eq!(send_json("PATCH", &s.url("/api/images/999999"), &json!({"rating": 1})).status, 404);
    assert_eq!(send_json("POST", &s.url("/api/keep"), &json!({"psi": 0.5})).status, 400, "keep needs a seed");
    // a JSON body over the cap
    // (announced, so the server refuses before reading it; the client sends no body)
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    write!(c, "POST /api/keep HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", s.port).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = [0u8; 12];
    std::io::Read::read_exact(&mut c, &mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413", "an oversize body is refused");
    // nothing above changed the image
    let now = get(&img).json();
    assert_eq!((now["rating"].clone(), now["notes"].clone(), now["tags"].clone()), (Value::Null, json!(""), json!([])));

    // a form post from another page (no JSON content type) is refused
    let form = send_raw("POST", &s.url("/api/keep"), &[("Content-Type", "application/x-www-form-urlencoded")], "seed=1");
    assert_eq!(form.status, 415);
    // a write from another origin is refused, and no answer carries CORS permissions
    let xo = send_raw("PATCH", &img, &[("Content-Type", "application/json"), ("Origin", "http://evil.example")], r#"{"rating":1}"#);
    assert_eq!(xo.status, 403, "{}", xo.text());
    let same = send_raw("PATCH", &img, &[("Content-Type", "application/json"), ("Origin", &s.base)], r#"{"rating":1}"#);
    assert_eq!(same.status, 200, "{}", same.text());
    let pre = send_raw("OPTIONS", &img, &[("Origin", "http://evil.example"), ("Access-Control-Request-Method", "PATCH")], "");
    assert!(pre.header("access-control-allow-origin").is_none());
    assert!(get(&s.url("/api/images")).header("access-control-allow-origin").is_none());
    // DNS rebinding: a loopback studio answers only to loopback names
    let rebound = send_raw("GET", &s.url("/api/images"), &[("Host", "evil.example")], "");
    assert_eq!(rebound.status, 403);
    assert_eq!(send_raw("GET", &s.url("/api/images"), &[("Host", &format!("localhost:{}", s.port))], "").status, 200);
    // the page is served with a strict content security policy
    let page = get(&s.url("/"));
    assert_eq!(page.status, 200);
    assert!(page.header("content-security-policy").unwrap().contains("script-src 'self'"));
    assert!(page.text().contains("/app.js"));
    s.stop();
}

/// A generator big enough that one render takes a while on these cores (random weights: the
/// pool does not care what the face looks like).
fn slow_model(home: &Path) {
    use limner_gan::config::GeneratorConfig;
    use limner_gan::generate::{save_generator, GeneratorInfo};
    let dir = home.join("models");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = GeneratorConfig { channel_base: 32768, channel_max: 256, ..GeneratorConfig::limner_default(256) };
    let mut g = limner_gan::Generator::new(&cfg, &burn::tensor::Device::flex());
    save_generator(&dir.join("slow.safetensors"), &mut g, &GeneratorInfo::default(), limner_gan::params::Precision::F16).unwrap();
}

fn stats(s: &Studio) -> Value {
    get(&s.url("/api/stats")).json()
}

#[test]
fn a_full_queue_answers_503_with_retry_after_and_the_bound_holds() {
    let home = tempfile::tempdir().unwrap();
    slow_model(home.path());
    let s = Studio::start(home.path(), &home.path().join("data"), &["--workers", "1", "--queue", "2"]);
    // load the model on the worker first, so what follows measures renders only
    let warm = get(&s.url("/api/face?model=slow&seed=0"));
    assert_eq!(warm.status, 200, "{}", warm.text());
    let n = 16;
    let barrier = Arc::new(Barrier::new(n));
    let url = s.url("/api/face?model=slow&psi=0.7&noise=1&seed=");
    let answers: Vec<Answer> = (0..n)
        .map(|i| {
            let (b, url) = (barrier.clone(), url.clone());
            std::thread::spawn(move || {
                b.wait();
                get(&format!("{url}{}", 1 + i))
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let busy: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    assert_eq!(ok + busy.len(), n, "only 200 or 503: {:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    assert!(!busy.is_empty(), "16 renders at once on 1 worker + 2 queue slots must overflow");
    assert!(ok >= 1);
    for a in &busy {
        assert_eq!(a.header("retry-after"), Some("1"));
        assert!(a.text().contains("busy"));
    }
    for a in answers.iter().filter(|a| a.status == 200) {
        decode_png(&a.body);
    }
    // a worker answers its client before it counts the render: wait until it is idle
    let t0 = Instant::now();
    let mut st = stats(&s);
    while (st["busy"] != 0 || st["queued"] != 0) && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
        st = stats(&s);
    }
    assert_eq!(st["workers"], 1);
    assert_eq!(st["queue_capacity"], 2);
    assert!(st["max_queued"].as_u64().unwrap() <= 2, "{st}");
    assert_eq!(st["rejected"].as_u64().unwrap(), busy.len() as u64, "{st}");
    assert_eq!(st["rendered"].as_u64().unwrap(), 1 + ok as u64, "{st}");
    s.stop();
}

/// Every render the pool has seen: waiting, drawing, or finished one way or another.
fn submitted(st: &Value) -> u64 {
    ["queued", "busy", "rendered", "abandoned", "failed"].iter().map(|k| st[*k].as_u64().unwrap()).sum()
}

/// A render whose client hangs up while it waits in the queue is never drawn. The hung-up
/// request waits behind up to three renders of live clients (seconds of work on one worker), so
/// the server sees the hang-up long before the worker reaches it, even on loaded cores; the
/// test checks that it was still queued when its client left (each step waits on the pool's
/// counters, not on a clock).
#[test]
fn a_render_whose_client_left_is_dropped() {
    let home = tempfile::tempdir().unwrap();
    slow_model(home.path());
    let s = Studio::start(home.path(), &home.path().join("data"), &["--workers", "1", "--queue", "4"]);
    assert_eq!(get(&s.url("/api/face?model=slow&seed=0")).status, 200);
    let wait = |what: &str, ok: &dyn Fn(&Value) -> bool| -> Value {
        let t0 = Instant::now();
        loop {
            let st = stats(&s);
            if ok(&st) {
                return st;
            }
            assert!(t0.elapsed() < Duration::from_secs(120), "{what}: {st}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let base = submitted(&wait("the warm-up render to be counted", &|st| st["busy"] == 0 && st["queued"] == 0));
    // three live clients, one after the other (so their order in the queue is known)
    let live: Vec<_> = (1..=3u64)
        .map(|seed| {
            let url = s.url(&format!("/api/face?model=slow&seed={seed}"));
            let t = std::thread::spawn(move || get(&url));
            wait("a live render to be submitted", &|st| submitted(st) == base + seed);
            t
        })
        .collect();
    // the fourth queues behind them; its client hangs up before a worker can reach it
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    write!(c, "GET /api/face?model=slow&seed=4 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n", s.port).unwrap();
    let st = wait("the fourth render to be submitted", &|st| submitted(st) == base + 4);
    drop(c);
    // it was still waiting when its client left: it is the last submitted, so while anything is
    // queued, it is
    assert!(st["queued"].as_u64().unwrap() >= 1, "the worker reached the fourth render before its client left (the cores are too loaded for this test): {st}");
    for t in live {
        let a = t.join().unwrap();
        assert_eq!(a.status, 200, "{}", a.text());
        decode_png(&a.body);
    }
    let st = wait("the pool to be idle", &|st| st["queued"] == 0 && st["busy"] == 0);
    assert_eq!(st["abandoned"], 1, "the render whose client left was dropped: {st}");
    assert_eq!(st["rendered"], 4, "the warm-up and the three live renders were drawn, the abandoned one was not: {st}");
    assert_eq!(st["failed"], 0, "{st}");
    s.stop();
}

/// The PNG in a `data:image/png;base64,` URL.
fn data_png(v: &Value) -> Vec<u8> {
    use base64::Engine;
    let s = v.as_str().expect("a data URL");
    let b = s.strip_prefix("data:image/png;base64,").expect("a PNG data URL");
    base64::engine::general_purpose::STANDARD.decode(b).expect("base64")
}

#[test]
fn breeding_two_kept_faces_gives_children_that_name_their_parents() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let s = Studio::start(home.path(), &data, &["--workers", "1"]);
    let a = keep(&s, 201, "Ada").json()["id"].as_i64().unwrap();
    let b = keep(&s, 202, "Ada").json()["id"].as_i64().unwrap();
    let body = json!({"parents": [a, b], "coarse": 0.8, "middle": 0.5, "fine": 0.2, "mutation": 0.3, "seed": 5, "children": 3});
    let l1 = send_json("POST", &s.url("/api/breed"), &body);
    assert_eq!(l1.status, 200, "{}", l1.text());
    let l1 = l1.json();
    assert_eq!(l1["seed"], 5);
    let kids = l1["children"].as_array().unwrap();
    assert_eq!(kids.len(), 3);
    let pngs: Vec<Vec<u8>> = kids.iter().map(|k| data_png(&k["png"])).collect();
    for p in &pngs {
        decode_png(p);
    }
    assert_ne!(pngs[0], pngs[1], "mutation makes each child its own");
    let pa = get(&s.url(&format!("/api/images/{a}"))).json();
    let pa_png = get(&s.url(pa["url"].as_str().unwrap())).body;
    assert!(pngs.iter().all(|p| *p != pa_png), "a child is not its parent");
    for k in kids {
        let o = &k["recipe"]["origin"];
        assert_eq!(o["kind"], "breed");
        assert_eq!(o["parents"].as_array().unwrap().len(), 2);
        assert_eq!(o["parents"][0]["origin"]["seed"], 201);
        assert_eq!(o["parents"][1]["origin"]["seed"], 202);
    }
    // same parents, genes, mutation and seed → the same litter, byte for byte
    let l2 = send_json("POST", &s.url("/api/breed"), &body).json();
    let again: Vec<Vec<u8>> = l2["children"].as_array().unwrap().iter().map(|k| data_png(&k["png"])).collect();
    assert_eq!(pngs, again);
    let other = send_json("POST", &s.url("/api/breed"), &json!({"parents": [a, b], "mutation": 0.3, "seed": 6, "children": 3})).json();
    assert_ne!(data_png(&other["children"][0]["png"]), pngs[0], "another seed, another litter");
    // nothing is kept until asked
    assert_eq!(get(&s.url("/api/images")).json().as_array().unwrap().len(), 2);
    let k = send_json("POST", &s.url("/api/keep"), &json!({"recipe": kids[1]["recipe"], "parents": [a, b], "curator": "Grace"}));
    assert_eq!(k.status, 201, "{}", k.text());
    let k = k.json();
    assert_eq!(k["parents"], json!([a, b]));
    assert_eq!(k["author"], "Grace");
    assert_eq!(k["hash"].as_str().unwrap(), sha256_hex(&pngs[1]), "the kept child is the one shown");
    let cid = k["id"].as_i64().unwrap();
    // keeping by the litter's request (what the page does): the same child, parents from the request
    let k2 = send_json("POST", &s.url("/api/keep"), &json!({"breed": body, "child": 2, "curator": "Grace"}));
    assert_eq!(k2.status, 201, "{}", k2.text());
    let k2 = k2.json();
    assert_eq!(k2["parents"], json!([a, b]));
    assert_eq!(k2["hash"].as_str().unwrap(), sha256_hex(&pngs[2]), "child 2 of the same request is the one shown");
    for bad in [
        json!({"breed": body, "child": 2, "parents": [a, b]}),
        json!({"breed": body}),
        json!({"child": 1, "seed": 4}),
        json!({"breed": {"parents": [a, b], "mutation": 0.3}, "child": 0}),
        json!({"breed": body, "child": 99}),
        json!({"breed": body, "child": 0, "recipe": kids[0]["recipe"]}),
    ] {
        let r = send_json("POST", &s.url("/api/keep"), &bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    s.stop();
    // the lineage survives a restart
    let s = Studio::start(home.path(), &data, &["--workers", "1"]);
    let one = get(&s.url(&format!("/api/images/{cid}"))).json();
    assert_eq!(one["parents"], json!([a, b]));
    assert_eq!(one["recipe"]["origin"]["kind"], "breed");
    // a grandchild: the child bred with another face; its lineage has three generations
    let c = keep(&s, 203, "Ada").json()["id"].as_i64().unwrap();
    let g = send_json("POST", &s.url("/api/keep"), &json!({"breed": {"parents": [cid, c], "mutation": 0.2, "seed": 9}, "child": 0, "curator": "Grace"}));
    assert_eq!(g.status, 201, "{}", g.text());
    let gid = g.json()["id"].as_i64().unwrap();
    let l = get(&s.url(&format!("/api/images/{gid}/lineage")));
    assert_eq!(l.status, 200, "{}", l.text());
    let l = l.json();
    assert_eq!(l["root"], gid);
    let at = |gen: u64| -> Vec<i64> {
        let mut v: Vec<i64> = l["images"].as_array().unwrap().iter().filter(|i| i["generation"] == gen).map(|i| i["id"].as_i64().unwrap()).collect();
        v.sort();
        v
    };
    assert_eq!(at(0), vec![gid]);
    assert_eq!(at(1), { let mut v = vec![cid, c]; v.sort(); v });
    assert_eq!(at(2), vec![a, b], "the grandparents");
    assert!(at(3).is_empty());
    assert_eq!(get(&s.url(&format!("/api/images/{gid}/lineage?generations=2"))).json()["images"].as_array().unwrap().len(), 3, "two generations: the image and its parents");
    assert_eq!(get(&s.url(&format!("/api/images/{gid}/lineage?generations=0"))).status, 400);
    assert_eq!(get(&s.url(&format!("/api/images/{gid}/lineage?generations=99"))).status, 400);
    assert_eq!(get(&s.url("/api/images/4242/lineage")).status, 404);
    // bad input
    for (bad, why) in [
        (json!({"parents": [a]}), "2 to"),
        (json!({"parents": [a, a]}), "twice"),
        (json!({"parents": [a, 9999]}), "no kept image 9999"),
        (json!({"parents": [a, b], "mutation": 9}), "mutation"),
        (json!({"parents": [a, b], "mutation": -1}), "mutation"),
        (json!({"parents": [a, b], "coarse": 1.5}), "coarse"),
        (json!({"parents": [a, b], "children": 0}), "children"),
        (json!({"parents": [a, b], "children": 1000}), "children"),
        (json!({"parents": [a, b], "seed": 1u64 << 60}), "seed"),
    ] {
        let r = send_json("POST", &s.url("/api/breed"), &bad);
        assert!(r.status == 400 || r.status == 404, "{bad}: {} {}", r.status, r.text());
        assert!(r.text().contains(why), "{bad}: {}", r.text());
    }
    // a child kept with the wrong number of parents, or parents that are not kept, is refused
    let r = send_json("POST", &s.url("/api/keep"), &json!({"recipe": kids[0]["recipe"], "parents": [a]}));
    assert_eq!(r.status, 400, "{}", r.text());
    let r = send_json("POST", &s.url("/api/keep"), &json!({"recipe": kids[0]["recipe"], "parents": [a, 777]}));
    assert_eq!(r.status, 404, "{}", r.text());
    let mut broken = kids[0]["recipe"].clone();
    broken["w_shape"] = json!([1, 1]);
    let r = send_json("POST", &s.url("/api/keep"), &json!({"recipe": broken, "parents": [a, b]}));
    assert_eq!(r.status, 400, "{}", r.text());
    s.stop();
}

#[test]
fn sliders_are_listed_and_move_the_face() {
    let home = tempfile::tempdir().unwrap();
    let s = Studio::start(home.path(), &home.path().join("data"), &["--workers", "1"]);
    let list = get(&s.url("/api/sliders?model=default"));
    assert_eq!(list.status, 200, "{}", list.text());
    let list = list.json();
    let sl = list["sliders"].as_array().unwrap();
    let ids: Vec<&str> = sl.iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"sefa:coarse:0"), "{ids:?}");
    assert!(sl.iter().any(|x| x["kind"] == "sefa"));
    assert!(ids.contains(&"ganspace:all:0"), "GANSpace beside SeFa: {ids:?}");
    assert!(sl.iter().filter(|x| x["kind"] == "ganspace").all(|x| x["id"].as_str().unwrap().starts_with("ganspace:")));
    let id = keep(&s, 301, "Ada").json()["id"].as_i64().unwrap();
    let shown = get(&s.url(&format!("/api/face?seed=301&psi=0.7&noise=1"))).body;
    // no moves: the kept face itself
    let still = send_json("POST", &s.url("/api/slide"), &json!({"image": id, "moves": []}));
    assert_eq!(still.status, 200, "{}", still.text());
    assert_eq!(data_png(&still.json()["png"]), shown);
    let mut seen = vec![shown.clone()];
    for sid in ids.iter().take(3).chain(["sefa:fine:0", "ganspace:all:0", "ganspace:all:1"].iter()) {
        let r = send_json("POST", &s.url("/api/slide"), &json!({"image": id, "moves": [{"slider": sid, "value": 3.0}]}));
        assert_eq!(r.status, 200, "{sid}: {}", r.text());
        let r = r.json();
        let png = data_png(&r["png"]);
        decode_png(&png);
        assert!(!seen.contains(&png), "slider {sid} changes the image");
        seen.push(png.clone());
        let e = &r["recipe"]["edits"];
        assert_eq!(e[0]["kind"], "slider");
        assert_eq!(e[0]["value"], 3.0);
        // the recipe makes the same image again
        let again = send_json("POST", &s.url("/api/slide"), &json!({"recipe": r["recipe"], "moves": []})).json();
        assert_eq!(data_png(&again["png"]), png, "{sid}: its recipe renders it again");
    }
    // keeping a slid face records where it came from
    let slid = send_json("POST", &s.url("/api/slide"), &json!({"image": id, "moves": [{"slider": "sefa:coarse:0", "value": -2.0}]})).json();
    let k = send_json("POST", &s.url("/api/keep"), &json!({"recipe": slid["recipe"], "parents": [id]}));
    assert_eq!(k.status, 201, "{}", k.text());
    assert_eq!(k.json()["parents"], json!([id]));
    // or by the slide request (what the page does): the same face, its source as parent
    let k2 = send_json("POST", &s.url("/api/keep"), &json!({"slide": {"image": id, "moves": [{"slider": "sefa:coarse:0", "value": -2.0}]}}));
    assert_eq!(k2.status, 200, "the same pixels are already kept: {}", k2.text());
    assert_eq!(k2.json()["id"], k.json()["id"]);
    let k3 = send_json("POST", &s.url("/api/keep"), &json!({"slide": {"image": id, "moves": [{"slider": "sefa:middle:1", "value": 2.5}]}}));
    assert_eq!(k3.status, 201, "{}", k3.text());
    assert_eq!(k3.json()["parents"], json!([id]));
    assert_eq!(k3.json()["recipe"]["edits"][0]["slider"], "sefa:middle:1");
    // bad input
    for (bad, code) in [
        (json!({"image": id, "moves": [{"slider": "age", "value": 11}]}), 400),
        (json!({"image": id, "moves": [{"slider": "../etc", "value": 1}]}), 400),
        (json!({"image": id, "moves": [{"slider": "sefa:coarse:99", "value": 1}]}), 422),
        (json!({"image": id, "moves": [{"slider": "nonsense", "value": 1}]}), 422),
        (json!({"moves": []}), 400),
        (json!({"image": 4242, "moves": []}), 404),
        (json!({"recipe": {"limner_recipe": 99}, "moves": []}), 400),
    ] {
        let r = send_json("POST", &s.url("/api/slide"), &bad);
        assert_eq!(r.status, code, "{bad}: {}", r.text());
        assert!(r.json()["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    assert_eq!(get(&s.url("/api/sliders?model=../x")).status, 400);
    assert_eq!(get(&s.url("/api/sliders?model=nope")).status, 400);
    s.stop();
}

/// `/api/openapi.json` documents every route the router serves, with each of its methods, and
/// nothing it does not serve (the route list is the one the router is built from).
#[test]
fn the_openapi_document_covers_every_route() {
    let home = tempfile::tempdir().unwrap();
    let s = Studio::start(home.path(), &home.path().join("data"), &["--workers", "1"]);
    let r = get(&s.url("/api/openapi.json"));
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("application/json"));
    let doc = r.json();
    assert_eq!(doc, serde_json::from_str::<Value>(limner_studio::api::OPENAPI_JSON).unwrap(), "the served document is the embedded one");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let routes = limner_studio::api::routes();
    assert!(routes.len() >= 20);
    let mut served = HashSet::new();
    for rt in &routes {
        let ops = paths.get(rt.path).unwrap_or_else(|| panic!("{} is not in the OpenAPI document", rt.path));
        for m in rt.methods {
            let op = &ops[m.to_ascii_lowercase()];
            assert!(op.is_object(), "{m} {} is not in the OpenAPI document", rt.path);
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{m} {}: no responses", rt.path);
            assert!(op["summary"].as_str().is_some_and(|t| !t.is_empty()), "{m} {}: no summary", rt.path);
            served.insert((rt.path.to_string(), m.to_ascii_lowercase()));
        }
        // path parameters are declared
        for seg in rt.path.split('/').filter(|x| x.starts_with('{')) {
            let name = seg.trim_matches(|c| c == '{' || c == '}');
            for m in rt.methods {
                let params = ops[m.to_ascii_lowercase()]["parameters"].as_array().cloned().unwrap_or_default();
                assert!(params.iter().any(|p| p["in"] == "path" && p["name"] == name), "{m} {}: path parameter {name} undeclared", rt.path);
            }
        }
    }
    for (path, ops) in paths {
        for m in ops.as_object().unwrap().keys() {
            assert!(served.contains(&(path.clone(), m.clone())), "the document has {m} {path}, which the studio does not serve");
        }
    }
    // every $ref resolves
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    if k == "$ref" {
                        out.push(x.as_str().unwrap().to_string());
                    } else {
                        refs(x, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = vec![];
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let ptr = r.strip_prefix('#').unwrap_or_else(|| panic!("{r}: only local refs"));
        assert!(doc.pointer(ptr).is_some(), "{r} does not resolve");
    }
    // and the routes really answer (a route in the list that the router missed would 404 with no body)
    assert_eq!(get(&s.url("/api/stats")).status, 200);
    s.stop();
}
