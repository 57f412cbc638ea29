//! `limner studio`'s Your photo, Art and Animate over its JSON API, against the real server on
//! loopback with a real SQLite file: uploads refused unless they are pictures (with a face, for
//! a projection) and nothing stored then; a photo projected as a job (progress, cancel) and
//! kept, then edited like any face; style and DeepDream change a face and are kept with their
//! lineage and the right provenance label; animations are decodable GIF/APNG with the frames
//! asked for.
//!
//! Uploads are screened for explicit content with nsfwjs' classifier: a real face passes at the
//! default threshold, and a forced threshold of 0 refuses the same photo and painting with the
//! explicit message, storing nothing (the refusal path is tested with a clothed face and a
//! forced threshold because explicit test pictures cannot be shipped).
//!
//! Needs the fetched networks: face-api, InceptionV3 (with nsfwjs' head) and the style networks (`limner models
//! fetch`); under CI=true a missing one fails the test, elsewhere it is skipped with a note.
//! Faces: /work/shared/data/faces128 (or `$LIMNER_TEST_FACES`) when present, else a random-face
//! render.

mod studio_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use studio_support::*;

fn fetched(nets: &[&str]) -> bool {
    nets.iter().all(|n| limner_core::testing::fetched(limner_models::fetch::net_path(n)).is_some())
}

/// The studio with its own `LIMNER_HOME` whose `nets` are the fetched networks.
fn studio(home: &Path, args: &[&str]) -> Studio {
    let nets = limner_core::dirs::nets_dir();
    std::os::unix::fs::symlink(&nets, home.join("nets")).unwrap();
    Studio::start(home, &home.join("data"), args)
}

/// A real photo of a face (JPEG bytes).
fn face_photo(tmp: &Path) -> Vec<u8> {
    let shared = std::env::var_os("LIMNER_TEST_FACES").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/work/shared/data/faces128"));
    let p = shared.join("0001_00004.jpg");
    if p.is_file() {
        return std::fs::read(p).unwrap();
    }
    let out = tmp.join("rf");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_limner"))
        .args(["generate", "--model", "random-face", "--size", "128", "--seeds", "11", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read(out.join("seed0011.png")).unwrap()
}

/// A 96×80 smooth colour ramp: a picture without a face.
fn no_face_png() -> Vec<u8> {
    let (w, h) = (96u32, 80u32);
    let px: Vec<u8> = (0..h).flat_map(|y| (0..w).flat_map(move |x| [(x * 2) as u8, (y * 3) as u8, 128])).collect();
    let mut out = vec![];
    image::ImageEncoder::write_image(image::codecs::png::PngEncoder::new(&mut out), &px, w, h, image::ExtendedColorType::Rgb8).unwrap();
    out
}

fn png_of(v: &Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(v.as_str().expect("a data URL").strip_prefix("data:image/png;base64,").expect("a PNG data URL")).unwrap()
}

fn files_under(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.map(|e| e.unwrap().path()).map(|p| if p.is_dir() { files_under(&p) } else { 1 }).sum()
}

fn label(bytes: &[u8]) -> limner_data::provenance::Label {
    let xmp = limner_data::provenance::read_xmp(bytes).unwrap().expect("an XMP label");
    limner_data::provenance::Label::parse(&xmp)
}

/// Polls a job until it has finished (or `limit` passes).
fn wait_job(s: &Studio, id: i64, limit: Duration) -> (Value, Vec<Value>) {
    let t = Instant::now();
    let mut seen = vec![];
    loop {
        let j = get(&s.url(&format!("/api/jobs/{id}"))).json();
        seen.push(j.clone());
        if ["done", "failed", "cancelled"].contains(&j["status"].as_str().unwrap()) {
            return (j, seen);
        }
        assert!(t.elapsed() < limit, "job {id} did not finish in {limit:?}: {j}");
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// Follows `/api/jobs/{id}/events` (Server-Sent Events) until the server ends the stream: the
/// `progress` events' JSON, in order.
fn job_events(s: &Studio, id: i64) -> Vec<Value> {
    use std::io::BufRead;
    let r = ureq::AgentBuilder::new().timeout(Duration::from_secs(300)).build().get(&s.url(&format!("/api/jobs/{id}/events"))).call().unwrap();
    assert!(r.content_type().starts_with("text/event-stream"), "{}", r.content_type());
    let mut out = vec![];
    let mut event = String::new();
    for line in std::io::BufReader::new(r.into_reader()).lines() {
        let line = line.unwrap();
        if let Some(e) = line.strip_prefix("event:") {
            event = e.trim().to_string();
        } else if let Some(d) = line.strip_prefix("data:") {
            assert_eq!(event, "progress", "{line}");
            out.push(serde_json::from_str(d.trim()).unwrap());
        }
    }
    out
}

fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / a.as_raw().len() as f64
}

#[test]
fn a_photo_is_refused_without_a_face_and_projected_kept_and_edited_with_one() {
    if !fetched(&["tiny-face-detector", "inception-v3", "nsfwjs-head"]) {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let s = studio(home.path(), &["--workers", "2"]);
    let models = get(&s.url("/api/models")).json();
    let default = models["models"].as_array().unwrap().iter().find(|m| m["name"] == "default").unwrap().clone();
    assert_eq!(default["projectable"], true);
    let res = default["resolution"].as_u64().unwrap() as u32;
    let photos = s.url("/api/photos");

    // refused, each with a clear message, and nothing stored
    let a = send_bytes("POST", &photos, "image/png", b"hello, not a picture");
    assert_eq!(a.status, 415, "{}", a.text());
    assert!(a.text().contains("not an image"), "{}", a.text());
    let face = face_photo(home.path());
    let a = send_bytes("POST", &photos, "image/jpeg", &face[..face.len() / 3]);
    assert_eq!(a.status, 415, "{}", a.text());
    assert!(a.text().contains("truncated") || a.text().contains("corrupt"), "{}", a.text());
    let a = send_bytes("POST", &photos, "image/png", &no_face_png());
    assert_eq!(a.status, 422, "{}", a.text());
    assert!(a.text().contains("no face"), "{}", a.text());
    let a = send_bytes("POST", &photos, "application/x-www-form-urlencoded", &face);
    assert_eq!(a.status, 415, "a form post is not an upload: {}", a.text());
    let a = send_bytes("POST", &s.url("/api/photos?steps=0"), "image/jpeg", &face);
    assert_eq!(a.status, 400, "{}", a.text());
    if models["models"].as_array().unwrap().iter().any(|m| m["name"] == "random-face") {
        let rf = models["models"].as_array().unwrap().iter().find(|m| m["name"] == "random-face").unwrap();
        assert_eq!(rf["projectable"], true, "random-face takes photos too (its autodiff path)");
        let a = send_bytes("POST", &s.url("/api/photos?model=random-face&size=256&steps=2"), "image/jpeg", &face);
        assert_eq!(a.status, 202, "{}", a.text());
        let j = a.json();
        assert_eq!(decode_png(&png_of(&j["aligned"])).dimensions(), (256, 256), "aligned at random-face's asked size");
        let (done, _) = wait_job(&s, j["id"].as_i64().unwrap(), Duration::from_secs(600));
        assert_eq!(done["status"], "done", "{done}");
        assert_eq!(decode_png(&png_of(&done["result"]["png"])).dimensions(), (256, 256));
        eprintln!("random-face: a photo projected at 256 px in 2 steps, distance {} from {}", done["distance"], done["start_distance"]);
    }
    // an announced oversize upload is refused before a byte of it is read
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    write!(c, "POST /api/photos HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", s.port, 17u64 << 20).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = [0u8; 12];
    c.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413", "an oversize upload is refused");
    drop(c);
    assert_eq!(get(&s.url("/api/images")).json(), json!([]));
    assert_eq!(files_under(&home.path().join("data/images")), 0, "a refused upload leaves no file");

    // a real face: screened (not explicit), aligned at once, projected as a job the page can follow
    let a = send_bytes("POST", &s.url("/api/photos?steps=40"), "image/jpeg", &face);
    assert_eq!(a.status, 202, "{}", a.text());
    let j = a.json();
    let sc = &j["screening"];
    let explicit = sc["explicit"].as_f64().unwrap();
    assert!(explicit < 0.6 && (sc["threshold"].as_f64().unwrap() - 0.6).abs() < 1e-6, "a clothed face passes the default threshold: {sc}");
    let probs = sc["probabilities"].as_object().unwrap();
    assert_eq!(probs.len(), 5);
    assert!((probs.values().map(|p| p.as_f64().unwrap()).sum::<f64>() - 1.0).abs() < 1e-3, "{sc}");
    eprintln!("screening a {} byte face photo: {sc}", face.len());
    let aligned = decode_png(&png_of(&j["aligned"]));
    assert_eq!(aligned.dimensions(), (res, res), "the face is aligned at the model's size");
    assert!(j["faces"].as_u64().unwrap() >= 1);
    assert_eq!(j["steps"], 40);
    let id = j["id"].as_i64().unwrap();
    // its progress streamed (Server-Sent Events): every step as it comes, the stream ending
    // with the finished job
    let events = job_events(&s, id);
    assert!(events.len() >= 5, "progress events as the job runs: {}", events.len());
    let steps: Vec<u64> = events.iter().map(|e| e["step"].as_u64().unwrap()).collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]) && steps.iter().filter(|&&n| n > 0 && n < 40).count() >= 3, "steps go up one by one: {steps:?}");
    let last = events.last().unwrap();
    assert_eq!((last["status"].as_str(), last["step"].as_u64()), (Some("done"), Some(40)), "the last event is the finished job");
    assert!(last["result"]["png"].is_string());
    // …and polling gives the same job (the page's fallback)
    let (done, seen) = wait_job(&s, id, Duration::from_secs(300));
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["result"]["recipe"], last["result"]["recipe"]);
    assert_eq!(done["step"], 40);
    let (d, d0) = (done["distance"].as_f64().unwrap(), done["start_distance"].as_f64().unwrap());
    assert!(d.is_finite() && d0.is_finite() && d < d0, "the projection comes closer to the photo: {d} from {d0}");
    assert!(seen.iter().all(|p| p["step"].as_u64().unwrap() <= 40));
    let result = &done["result"];
    let png = png_of(&result["png"]);
    assert_eq!(decode_png(&png).dimensions(), (res, res));
    assert_eq!(label(&png).source_code(), Some("trainedAlgorithmicMedia"), "all the projection's pixels are the generator's");
    let origin = &result["recipe"]["origin"];
    assert_eq!(origin["kind"], "projection");
    assert_eq!(origin["source_sha256"], sha256_hex(&face), "the recipe names the photo by its hash");
    assert_eq!(origin["steps"], 40);
    assert!(done["preview"].is_string());

    // kept like any face, by its curator; then slid and bred like any face
    let k = send_json("POST", &s.url("/api/keep"), &json!({"recipe": result["recipe"], "curator": "Ada"}));
    assert_eq!(k.status, 201, "{}", k.text());
    let k = k.json();
    assert_eq!(k["author"], "Ada");
    // the kept face is the projection shown, its label adding the nearest training distances
    let kept = get(&s.url(k["url"].as_str().unwrap())).body;
    assert_eq!(decode_png(&kept), decode_png(&png), "the kept face is the projection shown");
    assert_eq!(nearest(&kept)["near_copy"], false, "{}", nearest(&kept));
    let kid = k["id"].as_i64().unwrap();
    let slid = send_json("POST", &s.url("/api/slide"), &json!({"image": kid, "moves": [{"slider": "sefa:coarse:0", "value": 3.0}]}));
    assert_eq!(slid.status, 200, "{}", slid.text());
    assert_ne!(png_of(&slid.json()["png"]), png, "the slider moves the projected face");
    let other = send_json("POST", &s.url("/api/keep"), &json!({"seed": 5, "curator": "Ada"})).json()["id"].as_i64().unwrap();
    let litter = send_json("POST", &s.url("/api/breed"), &json!({"parents": [kid, other], "children": 2, "seed": 1}));
    assert_eq!(litter.status, 200, "{}", litter.text());

    // a long projection is cancelled at its next step
    let a = send_bytes("POST", &s.url("/api/photos?steps=1000"), "image/jpeg", &face).json();
    let long = a["id"].as_i64().unwrap();
    let t = Instant::now();
    while get(&s.url(&format!("/api/jobs/{long}"))).json()["step"].as_u64().unwrap() < 2 {
        assert!(t.elapsed() < Duration::from_secs(120), "the long projection never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(send_raw("DELETE", &s.url(&format!("/api/jobs/{long}")), &[], "").status, 200);
    let (end, _) = wait_job(&s, long, Duration::from_secs(60));
    assert_eq!(end["status"], "cancelled", "{end}");
    assert!(end["step"].as_u64().unwrap() < 1000);
    assert!(end["result"].is_null());
    assert_eq!(get(&s.url("/api/jobs/999999")).status, 404);
    s.stop();
}

#[test]
fn an_upload_over_the_explicit_threshold_is_refused_and_nothing_is_stored() {
    if !fetched(&["tiny-face-detector", "inception-v3", "nsfwjs-head"]) {
        return;
    }
    // we cannot ship explicit pictures to test with: a threshold of 0 makes nsfwjs' explicit
    // score of a real, clothed face photo (small but never 0) count as explicit
    let home = tempfile::tempdir().unwrap();
    let s = studio(home.path(), &["--workers", "1", "--nsfw-threshold", "0"]);
    let face = face_photo(home.path());
    let a = send_bytes("POST", &s.url("/api/photos?steps=5"), "image/jpeg", &face);
    assert_eq!(a.status, 422, "{}", a.text());
    let msg = a.json()["error"].as_str().unwrap().to_string();
    assert!(msg.contains("refused as explicit") && msg.contains("P(Porn) + P(Hentai) + P(Sexy)") && msg.contains("threshold 0.000") && msg.contains("nothing was stored"), "{msg}");
    let p = send_bytes("POST", &s.url("/api/paintings"), "image/jpeg", &face);
    assert_eq!(p.status, 422, "{}", p.text());
    assert!(p.text().contains("painting is refused as explicit"), "{}", p.text());
    // not an image is still 415, before any screening
    assert_eq!(send_bytes("POST", &s.url("/api/paintings"), "image/png", b"not a picture").status, 415);
    // nothing stored: no job, no kept image, no file
    assert_eq!(get(&s.url("/api/jobs/1")).status, 404, "a refused photo makes no job");
    assert_eq!(get(&s.url("/api/images")).json(), json!([]));
    assert_eq!(files_under(&home.path().join("data/images")), 0, "a refused upload leaves no file");
    s.stop();
    let (ok, out) = check(home.path(), &home.path().join("data"));
    assert!(ok && out.contains(": 0 kept, 0 bad"), "the database holds nothing: {out}");

    // a threshold that is not a probability is refused at start
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_limner")).args(["studio", "--port", "0", "--nsfw-threshold", "1.5"]).env("LIMNER_HOME", home.path()).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--nsfw-threshold"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn style_and_dream_change_a_face_and_are_kept_with_their_lineage() {
    if !fetched(&["tiny-face-detector", "inception-v3", "nsfwjs-head", "multistyle26", "arbitrary_predict", "arbitrary_transform"]) {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let s = studio(home.path(), &["--workers", "2"]);
    let k = send_json("POST", &s.url("/api/keep"), &json!({"seed": 7, "curator": "Ada"})).json();
    let id = k["id"].as_i64().unwrap();
    let src = decode_png(&get(&s.url(k["url"].as_str().unwrap())).body);
    let up = image::imageops::resize(&src, 256, 256, image::imageops::FilterType::Triangle);
    let art = |body: Value| send_json("POST", &s.url("/api/art"), &body);

    let preset = art(json!({"image": id, "art": {"kind": "style", "preset": "style-07", "strength": 1.0, "keep_colours": false}}));
    assert_eq!(preset.status, 200, "{}", preset.text());
    let preset = preset.json();
    let p_png = png_of(&preset["png"]);
    let p_img = decode_png(&p_png);
    assert_eq!(p_img.dimensions(), (256, 256), "styled at 256 px");
    assert!(mean_abs_diff(&p_img, &up) > 10.0, "style changes the face: {}", mean_abs_diff(&p_img, &up));
    let l = label(&p_png);
    assert_eq!(l.source_code(), Some("trainedAlgorithmicMedia"), "style on a generated face is wholly generated");
    let colours = art(json!({"image": id, "art": {"kind": "style", "preset": "style-07", "strength": 1.0, "keep_colours": true}})).json();
    assert_ne!(png_of(&colours["png"]), p_png, "keeping the colours is another picture");

    // a painting of one's own as the style
    let bad = send_bytes("POST", &s.url("/api/paintings"), "image/png", b"not a picture");
    assert_eq!(bad.status, 415, "{}", bad.text());
    let painting = send_bytes("POST", &s.url("/api/paintings"), "image/png", &no_face_png());
    assert_eq!(painting.status, 201, "{}", painting.text());
    assert!(painting.json()["screening"]["explicit"].as_f64().unwrap() < 0.6, "{}", painting.text());
    let sha = painting.json()["painting"].as_str().unwrap().to_string();
    let painted = art(json!({"image": id, "art": {"kind": "style", "painting_sha256": sha, "strength": 0.8, "keep_colours": false}}));
    assert_eq!(painted.status, 200, "{}", painted.text());
    assert!(mean_abs_diff(&decode_png(&png_of(&painted.json()["png"])), &up) > 5.0, "the painting's style changes the face");

    // DeepDream
    let dream = art(json!({"image": id, "art": {"kind": "dream", "layer": "mixed3", "strength": 0.3, "seed": 0}}));
    assert_eq!(dream.status, 200, "{}", dream.text());
    let dream = dream.json();
    let d_img = decode_png(&png_of(&dream["png"]));
    assert!(mean_abs_diff(&d_img, &up) > 3.0, "the dream changes the face: {}", mean_abs_diff(&d_img, &up));

    // kept with its lineage: the art step and its source
    let kept = send_json("POST", &s.url("/api/keep"), &json!({"art": preset["token"], "curator": "Ada"}));
    assert_eq!(kept.status, 201, "{}", kept.text());
    let kept = kept.json();
    assert_eq!(kept["parents"], json!([id]));
    assert_eq!(kept["hash"].as_str().unwrap(), sha256_hex(&p_png), "the kept picture is the one shown");
    assert_eq!(kept["recipe"]["limner_art"], 1);
    assert_eq!(kept["recipe"]["art"]["preset"], "style-07");
    assert_eq!(kept["recipe"]["source"]["image"], id);
    let aid = kept["id"].as_i64().unwrap();
    let e = get(&s.url(&format!("/api/images/{aid}/export?format=png")));
    assert_eq!(e.status, 200);
    let l = label(&e.body);
    assert_eq!(l.source_code(), Some("trainedAlgorithmicMedia"));
    assert_eq!(l.creator.as_deref(), Some("Ada"));
    let d_kept = send_json("POST", &s.url("/api/keep"), &json!({"art": dream["token"], "curator": "Grace"})).json();
    assert_eq!(d_kept["recipe"]["art"]["kind"], "dream");
    // an art picture is no generator face: breeding or sliding it says so
    let slid = send_json("POST", &s.url("/api/slide"), &json!({"image": aid, "moves": []}));
    assert_eq!(slid.status, 400);
    assert!(slid.text().contains("art step"), "{}", slid.text());

    // on a person's own photo the result is a composite
    let job = send_bytes("POST", &s.url("/api/photos?steps=1"), "image/jpeg", &face_photo(home.path()));
    assert_eq!(job.status, 202, "{}", job.text());
    let job = job.json()["id"].as_i64().unwrap();
    let on_photo = art(json!({"photo": job, "art": {"kind": "style", "preset": "style-03", "strength": 1.0, "keep_colours": false}}));
    assert_eq!(on_photo.status, 200, "{}", on_photo.text());
    let on_photo = on_photo.json();
    assert_eq!(label(&png_of(&on_photo["png"])).source_code(), Some("compositeWithTrainedAlgorithmicMedia"));
    let kp = send_json("POST", &s.url("/api/keep"), &json!({"art": on_photo["token"], "curator": "Ada"})).json();
    assert_eq!(kp["parents"], json!([]));
    let e = get(&s.url(&format!("/api/images/{}/export?format=jpeg", kp["id"])));
    assert_eq!(label(&e.body).source_code(), Some("compositeWithTrainedAlgorithmicMedia"), "the export says so too");

    // bad requests
    for (body, status, needle) in [
        (json!({"image": id, "art": {"kind": "dream", "layer": "mixed9", "strength": 0.5, "seed": 0}}), 400, "layer"),
        (json!({"image": id, "art": {"kind": "style", "preset": "style-07", "strength": 2.0, "keep_colours": false}}), 400, "strength"),
        (json!({"image": id, "art": {"kind": "style", "preset": "style-07", "painting_sha256": sha, "strength": 1.0, "keep_colours": false}}), 400, "one of them"),
        (json!({"image": id, "art": {"kind": "style", "painting_sha256": "0".repeat(64), "strength": 1.0, "keep_colours": false}}), 404, "paintings"),
        (json!({"image": id, "art": {"kind": "style", "painting_sha256": "../../gallery.db", "strength": 1.0, "keep_colours": false}}), 400, "painting"),
        (json!({"image": 999999, "art": {"kind": "dream", "layer": "mixed3", "strength": 0.5, "seed": 0}}), 404, "999999"),
    ] {
        let a = art(body.clone());
        assert_eq!(a.status, status, "{body}: {}", a.text());
        assert!(a.text().contains(needle), "{body}: {}", a.text());
    }
    assert_eq!(send_json("POST", &s.url("/api/keep"), &json!({"art": "0".repeat(64)})).status, 404);
    s.stop();
}

fn gif_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut o = gif::DecodeOptions::new();
    o.set_color_output(gif::ColorOutput::RGBA);
    let mut d = o.read_info(bytes).expect("a GIF");
    let mut frames = vec![];
    while let Some(f) = d.read_next_frame().expect("a GIF frame") {
        frames.push(f.buffer.to_vec());
    }
    frames
}

#[test]
fn lineages_and_slider_sweeps_animate_to_gif_and_apng() {
    let home = tempfile::tempdir().unwrap();
    let s = Studio::start(home.path(), &home.path().join("data"), &["--workers", "2"]);
    let keep = |seed: u64| send_json("POST", &s.url("/api/keep"), &json!({"seed": seed, "curator": "Ada"})).json()["id"].as_i64().unwrap();
    let (a, b) = (keep(11), keep(12));
    let res = get(&s.url("/api/models")).json()["models"][0]["resolution"].as_u64().unwrap() as u16;
    let animate = |body: Value| send_json("POST", &s.url("/api/animate"), &body);

    let g = animate(json!({"images": [a, b], "frames": 8, "fps": 10}));
    assert_eq!(g.status, 200, "{}", g.text());
    assert_eq!(g.header("content-type"), Some("image/gif"));
    assert_eq!(g.header("x-limner-frames"), Some("8"));
    let frames = gif_frames(&g.body);
    assert_eq!(frames.len(), 8, "a GIF with the frames asked for");
    assert_ne!(frames[0], frames[7], "the first face becomes the second");
    let info = gif::DecodeOptions::new().read_info(&g.body[..]).unwrap();
    assert_eq!((info.width(), info.height()), (res, res));
    let l = label(&g.body);
    assert_eq!(l.source_code(), Some("trainedAlgorithmicMedia"), "the animation is labelled AI-made");
    assert!(l.recipe.as_deref().unwrap().contains("\"frames\":8"), "{:?}", l.recipe);

    // a bred child's lineage: parent → child → other parent
    let k = send_json("POST", &s.url("/api/keep"), &json!({"breed": {"parents": [a, b], "seed": 3}, "child": 0, "curator": "Ada"})).json();
    let child = k["id"].as_i64().unwrap();
    let lin = animate(json!({"lineage": child, "frames": 6}));
    assert_eq!(lin.status, 200, "{}", lin.text());
    assert_eq!(gif_frames(&lin.body).len(), 6);

    // one slider swept, as a lossless APNG
    let p = animate(json!({"sweep": {"image": a, "slider": "sefa:coarse:0", "from": -3.0, "to": 3.0}, "frames": 5, "format": "apng"}));
    assert_eq!(p.status, 200, "{}", p.text());
    assert_eq!(p.header("content-type"), Some("image/apng"));
    let mut dec = png::Decoder::new(std::io::Cursor::new(&p.body)).read_info().expect("a PNG");
    assert_eq!(dec.info().animation_control.expect("an APNG").num_frames, 5);
    let mut buf = vec![0; dec.output_buffer_size().unwrap()];
    dec.next_frame(&mut buf).unwrap();
    let first = buf.clone();
    for _ in 1..5 {
        dec.next_frame(&mut buf).unwrap();
    }
    assert_ne!(first, buf, "the sweep moves the face");
    assert_eq!(label(&p.body).source_code(), Some("trainedAlgorithmicMedia"));

    // MP4 is explained, not written; bad requests are clear
    for (body, needle) in [
        (json!({"images": [a, b], "format": "mp4"}), "MP4"),
        (json!({"images": [a, b], "frames": 1}), "frames"),
        (json!({"images": [a, b], "frames": 100000}), "frames"),
        (json!({"images": [a]}), "images"),
        (json!({"lineage": a}), "no parents"),
        (json!({"images": [a, b], "lineage": child}), "one of"),
        (json!({"sweep": {"image": a, "slider": "../x", "from": 0.0, "to": 1.0}}), "slider"),
        (json!({"sweep": {"image": a, "slider": "sefa:coarse:0", "from": 0.0, "to": 99.0}}), "sweep"),
    ] {
        let r = animate(body.clone());
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.text().contains(needle), "{body}: {}", r.text());
    }
    assert_eq!(animate(json!({"images": [a, 999999]})).status, 404);
    s.stop();
}

/// The nearest-training record a file's label carries (`limner_audit::guard`).
fn nearest(bytes: &[u8]) -> Value {
    let r: Value = serde_json::from_str(label(bytes).recipe.as_deref().expect("a recipe in the label")).unwrap();
    r["nearest_training"].clone()
}

/// The copy check on the studio's kept faces and exports (issue 18 §3), with the default model's
/// embedded training index: a new face is kept and exported with its nearest training distances
/// in the label (the same pixels as shown); psi 1 seed 38, a near copy of its training image
/// `seed00000038.png`, is refused (409, the reason, the pair side by side, nothing kept) unless
/// the request sets `allow_near_copy`, which the kept file and its export record.
#[test]
fn kept_and_exported_faces_carry_nearest_training_distances_and_near_copies_need_an_override() {
    if !fetched(&["face-recognition", "inception-v3"]) {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let s = studio(home.path(), &["--workers", "1"]);
    let keep = |seed: u64, psi: f64, allow: Option<bool>| {
        let mut b = json!({"model": "default", "seed": seed, "psi": psi, "noise": 1.0, "curator": "Ada"});
        if let Some(a) = allow {
            b["allow_near_copy"] = a.into();
        }
        send_json("POST", &s.url("/api/keep"), &b)
    };
    let k = keep(100001, 0.7, None);
    assert_eq!(k.status, 201, "{}", k.text());
    let k = k.json();
    let kept = get(&s.url(k["url"].as_str().unwrap())).body;
    let shown = get(&s.url("/api/face?seed=100001&psi=0.7&noise=1")).body;
    assert_eq!(decode_png(&kept), decode_png(&shown), "the kept file has the pixels shown");
    let nt = nearest(&kept);
    assert_eq!(nt["near_copy"], false, "{nt}");
    for space in ["identity", "inception"] {
        let d = &nt["distances"][space];
        assert!(d["distance"].as_f64().unwrap() >= d["threshold"].as_f64().unwrap(), "{space}: {nt}");
        assert!(d["nearest"].as_str().unwrap().starts_with("seed"), "{nt}");
    }
    let id = k["id"].as_i64().unwrap();
    for format in ["png", "jpeg"] {
        let e = get(&s.url(&format!("/api/images/{id}/export?format={format}")));
        assert_eq!(e.status, 200, "{}", e.text());
        assert_eq!(nearest(&e.body), nt, "{format}: the export carries the kept face's distances");
    }

    // a near copy: refused, with the reason and the pair; nothing kept
    let r = keep(38, 1.0, None);
    assert_eq!(r.status, 409, "{}", r.text());
    let j = r.json();
    let msg = j["error"].as_str().unwrap();
    assert!(msg.contains("near copy") && msg.contains("seed00000038") && msg.contains("allow_near_copy"), "{msg}");
    assert!(j["side_by_side"].as_str().unwrap().starts_with("data:image/png;base64,"), "{j}");
    let pair = png_of(&j["side_by_side"]);
    assert_eq!(decode_png(&pair).dimensions(), (196, 96));
    assert_eq!(get(&s.url("/api/images")).json().as_array().unwrap().len(), 1, "the refused face was not kept");
    // the override: kept, and recorded in its file and its export
    let r = keep(38, 1.0, Some(true));
    assert_eq!(r.status, 201, "{}", r.text());
    let r = r.json();
    let nt = nearest(&get(&s.url(r["url"].as_str().unwrap())).body);
    assert_eq!((nt["near_copy"].clone(), nt["allowed_by_user"].clone()), (json!(true), json!(true)), "{nt}");
    let e = get(&s.url(&format!("/api/images/{}/export?format=png", r["id"])));
    assert_eq!(e.status, 200, "{}", e.text());
    assert_eq!(nearest(&e.body)["allowed_by_user"], true);
    // an animation from it: its first frame is that near copy, refused unless allowed
    let body = json!({"images": [r["id"], k["id"]], "frames": 4});
    let a = send_json("POST", &s.url("/api/animate"), &body);
    assert_eq!(a.status, 422, "{}", a.text());
    assert!(a.text().contains("near copy") && a.text().contains("frame 0") && a.text().contains("allow_near_copy"), "{}", a.text());
    let mut body = body;
    body["allow_near_copy"] = true.into();
    let a = send_json("POST", &s.url("/api/animate"), &body);
    assert_eq!(a.status, 200, "{}", a.text());
    let nt = nearest(&a.body);
    assert_eq!((nt["near_copy_frames"][0].clone(), nt["allowed_by_user"].clone()), (json!(0), json!(true)), "{nt}");
    s.stop();
}
