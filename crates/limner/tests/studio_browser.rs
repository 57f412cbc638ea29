//! End to end: the real page in headless Chromium against the real `limner studio` on loopback
//! with a real SQLite file. Screenshots of each view go to `$LIMNER_SCREENSHOTS` (the README's
//! are made with `LIMNER_SCREENSHOTS=docs/studio`), else to the test's temporary folder.

mod studio_support;

use std::path::PathBuf;

use serde_json::json;
use studio_support::cdp::{chromium_path, Browser, CHROMIUM};
use studio_support::*;

fn browser_or_skip() -> Option<PathBuf> {
    match chromium_path() {
        Some(p) => Some(p),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("{CHROMIUM} is missing: `apt-get install chromium` (CI installs it in .ci/run)"),
        None => {
            eprintln!("note: {CHROMIUM} is missing, the browser test did not run (apt-get install chromium)");
            None
        }
    }
}

fn screenshot_dir() -> PathBuf {
    match std::env::var_os("LIMNER_SCREENSHOTS") {
        // relative to the workspace root
        Some(d) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(d),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("studio-screenshots"),
    }
}

fn save_screenshot(b: &mut Browser, name: &str) {
    let png = b.screenshot();
    decode_png(&png);
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, &png).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
    eprintln!("screenshot {}", dir.join(name).display());
}

const FACE_DIGEST: &str = "(async () => {
  const img = document.querySelector('#face');
  if (!(img.complete && img.naturalWidth > 0)) throw new Error('face not decoded');
  const b = await (await fetch(img.src)).arrayBuffer();
  const d = await crypto.subtle.digest('SHA-256', b);
  return Array.from(new Uint8Array(d)).map(x => x.toString(16).padStart(2, '0')).join('');
})()";

fn face_loaded(b: &mut Browser) -> (String, String) {
    b.wait_for("document.querySelector('#face').dataset.state === 'loaded'", "a face");
    let seed = b.eval("document.querySelector('#face').dataset.seed").as_str().unwrap().to_string();
    assert_eq!(b.eval("document.querySelector('#seed').textContent"), json!(seed), "the seed is shown");
    (seed, b.eval(FACE_DIGEST).as_str().unwrap().to_string())
}

fn card(id: i64) -> String {
    format!("document.querySelector('.card[data-id=\"{id}\"]')")
}

#[test]
fn the_page_meets_keeps_and_curates_in_chromium() {
    let Some(exe) = browser_or_skip() else { return };
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let s = Studio::start(home.path(), &data, &["--workers", "2"]);
    let mut b = Browser::launch(&exe);

    // Meet: a face, its seed shown; it is the server's render of that seed
    b.navigate(&s.url("/"));
    b.eval("(() => { const c = document.querySelector('#curator'); c.value = 'Test Curator'; c.dispatchEvent(new Event('change')); })()");
    let (seed1, digest1) = face_loaded(&mut b);
    let served = get(&s.url(&format!("/api/face?seed={seed1}&psi=0.7&noise=1")));
    assert_eq!(sha256_hex(&served.body), digest1, "the page shows the API's face for its seed");

    // a refresh meets someone new
    b.reload();
    let (seed2, digest2) = face_loaded(&mut b);
    assert_ne!(seed1, seed2, "a refresh picks a new seed");
    assert_ne!(digest1, digest2, "a refresh shows a different face");
    assert_eq!(b.eval("document.querySelector('#curator').value"), json!("Test Curator"), "the curator's name is remembered");

    // the psi slider changes the face (same seed)
    b.eval("(() => { const r = document.querySelector('#psi'); r.value = '0.1'; r.dispatchEvent(new Event('input')); })()");
    b.wait_for("document.querySelector('#face').dataset.state === 'loaded' && document.querySelector('#psi-out').textContent === '0.10'", "the psi render");
    let (seed3, digest3) = face_loaded(&mut b);
    assert_eq!(seed3, seed2);
    assert_ne!(digest3, digest2, "psi 0.1 is another face than psi 0.7");
    b.eval("(() => { const r = document.querySelector('#psi'); r.value = '0.7'; r.dispatchEvent(new Event('input')); })()");
    b.wait_for("document.querySelector('#face').dataset.state === 'loaded'", "psi back");
    let (_, back) = face_loaded(&mut b);
    assert_eq!(back, digest2, "back at psi 0.7, the same face");
    save_screenshot(&mut b, "meet.png");

    // keep it
    b.eval("document.querySelector('#keep').click()");
    b.wait_for("document.querySelector('#keep').dataset.keptId", "the keep");
    let id: i64 = b.eval("document.querySelector('#keep').dataset.keptId").as_str().unwrap().parse().unwrap();
    let kept = get(&s.url(&format!("/api/images/{id}"))).json();
    assert_eq!(kept["hash"].as_str().unwrap(), digest2, "the kept image is the face on screen");
    assert_eq!(kept["author"], "Test Curator");
    assert_eq!(kept["recipe"]["origin"]["seed"].to_string(), seed2);
    s.stop();

    // after a restart the face is in the gallery; curate it
    let s = Studio::start(home.path(), &data, &["--workers", "2"]);
    b.navigate(&s.url("/#gallery"));
    let c = card(id);
    b.wait_for(&format!("{c} && {c}.querySelector('img').complete && {c}.querySelector('img').naturalWidth > 0"), "the kept face in the gallery");
    b.eval(&format!("{c}.querySelectorAll('.star')[3].click()"));
    b.wait_for(&format!("{c}.dataset.rating === '4'"), "the rating");
    b.eval(&format!("{c}.querySelector('.fav-btn').click()"));
    b.wait_for(&format!("{c}.classList.contains('fav')"), "the favourite");
    b.eval(&format!("(() => {{ const t = {c}.querySelector('.tags'); t.value = 'portrait, keeper'; t.dispatchEvent(new Event('change')); }})()"));
    b.wait_for(&format!("{c}.dataset.saved === '3'"), "the tags");
    let note = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\"> kind eyes & a <b>bold</b> look";
    b.eval(&format!(
        "(() => {{ {c}.querySelector('.notes-text').click(); const n = {c}.querySelector('.notes'); n.value = {}; n.dispatchEvent(new Event('change')); n.blur(); }})()",
        serde_json::to_string(note).unwrap()
    ));
    b.wait_for(&format!("{c}.dataset.saved === '4'"), "the notes");
    s.stop();

    // after another restart everything is still there, and the note is text, not markup
    let s = Studio::start(home.path(), &data, &["--workers", "2"]);
    b.navigate(&s.url("/#gallery"));
    b.wait_for(&format!("{c} && {c}.querySelector('img').naturalWidth > 0"), "the gallery after a restart");
    assert_eq!(b.eval(&format!("{c}.dataset.rating")), json!("4"));
    assert_eq!(b.eval(&format!("{c}.querySelectorAll('.star[aria-pressed=\"true\"]').length")), json!(4));
    assert_eq!(b.eval(&format!("{c}.classList.contains('fav')")), json!(true));
    assert_eq!(b.eval(&format!("{c}.querySelector('.tags').value")), json!("keeper, portrait"));
    assert_eq!(b.eval(&format!("{c}.querySelector('.notes').value")), json!(note));
    assert_eq!(b.eval(&format!("{c}.querySelector('.notes-text').textContent")), json!(note), "the note is shown as text");
    let html = b.eval(&format!("{c}.querySelector('.notes-text').innerHTML"));
    assert!(html.as_str().unwrap().contains("&lt;script&gt;"), "{html}");
    assert_eq!(b.eval(&format!("{c}.querySelectorAll('script, b').length + document.querySelectorAll('script:not([src])').length")), json!(0));
    assert_eq!(b.eval(&format!("{c}.querySelectorAll('img').length")), json!(1), "no image was injected");
    assert_eq!(b.eval("typeof window.__pwned"), json!("undefined"), "no script from a note ran");
    assert!(b.eval(&format!("{c}.querySelector('.meta').textContent")).as_str().unwrap().contains("by Test Curator"));
    // filters: favourites only still shows it, rejected-only does not
    b.eval("(() => { const f = document.querySelector('#f-rejected'); f.value = 'only'; f.dispatchEvent(new Event('input', {bubbles: true})); })()");
    b.wait_for(&format!("!{c} && document.querySelector('#grid').dataset.state === 'loaded'"), "the rejected-only filter");
    b.eval("(() => { const f = document.querySelector('#f-rejected'); f.value = 'hide'; f.dispatchEvent(new Event('input', {bubbles: true})); })()");
    b.wait_for(&format!("{c} && {c}.querySelector('img').naturalWidth > 0"), "the gallery again");
    // a fuller gallery for the screenshot
    for (i, seed) in [11u64, 23, 35, 47, 59, 61, 73].into_iter().enumerate() {
        let k = send_json("POST", &s.url("/api/keep"), &json!({"seed": seed, "psi": 0.7, "curator": "Test Curator"})).json();
        send_json("PATCH", &s.url(&format!("/api/images/{}", k["id"])), &json!({"rating": 1 + i % 5, "tags": ["study"]}));
    }
    b.reload();
    b.wait_for("document.querySelectorAll('.card').length === 8 && [...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)", "eight faces");
    save_screenshot(&mut b, "gallery.png");
    s.stop();
}

/// SHA-256 of the PNG in a `data:` URL image (`sel`), computed in the page.
fn data_img_digest(b: &mut Browser, sel: &str) -> String {
    let js = format!(
        "(async () => {{
  const img = document.querySelector('{sel}');
  if (!(img.complete && img.naturalWidth > 0)) throw new Error('image not decoded');
  const b64 = img.src.split(',')[1];
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const d = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(d)).map(x => x.toString(16).padStart(2, '0')).join('');
}})()"
    );
    b.eval(&js).as_str().unwrap().to_string()
}

fn png_of_data_url(v: &serde_json::Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap().strip_prefix("data:image/png;base64,").unwrap()).unwrap()
}

#[test]
fn the_page_breeds_and_slides_in_chromium() {
    let Some(exe) = browser_or_skip() else { return };
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let s = Studio::start(home.path(), &data, &["--workers", "2"]);
    let mut ids = vec![];
    for seed in [401u64, 402, 403, 404] {
        let k = send_json("POST", &s.url("/api/keep"), &json!({"seed": seed, "psi": 0.7, "curator": "Test Curator"}));
        assert_eq!(k.status, 201, "{}", k.text());
        ids.push(k.json()["id"].as_i64().unwrap());
    }
    let (a, b2) = (ids[0], ids[1]);
    let mut b = Browser::launch(&exe);

    // Breed: pick two kept faces, breed, a litter appears
    b.navigate(&s.url("/#breed"));
    b.eval("(() => { const c = document.querySelector('#curator'); c.value = 'Test Curator'; c.dispatchEvent(new Event('change')); })()");
    b.wait_for("document.querySelector('#breed-parents').dataset.state === 'loaded' && document.querySelectorAll('#breed-parents .pick').length === 4", "the kept faces to pick from");
    assert_eq!(b.eval("document.querySelector('#breed').disabled"), json!(true), "breeding needs two parents");
    for id in [a, b2] {
        b.eval(&format!("document.querySelector('#breed-parents .pick[data-id=\"{id}\"]').click()"));
    }
    b.eval("document.querySelector('#breed').click()");
    b.wait_for(
        "document.querySelector('#litter').dataset.state === 'loaded' && document.querySelectorAll('#litter .child').length === 6 && [...document.querySelectorAll('#litter .child img')].every(i => i.complete && i.naturalWidth > 0)",
        "the litter",
    );
    let d0 = data_img_digest(&mut b, "#litter .child img");
    let parent_hash = get(&s.url(&format!("/api/images/{a}"))).json()["hash"].as_str().unwrap().to_string();
    assert_ne!(d0, parent_hash, "a child is not its parent");
    // a fuller litter for the screenshot: a third parent on the page is not needed; keep child 1
    b.eval("document.querySelectorAll('#litter .child .keep-child')[1].click()");
    b.wait_for("document.querySelector('#lineage').dataset.child && !document.querySelector('#lineage').hidden && [...document.querySelectorAll('#lineage img')].every(i => i.complete && i.naturalWidth > 0)", "the lineage");
    let child: i64 = b.eval("document.querySelector('#lineage').dataset.child").as_str().unwrap().parse().unwrap();
    assert_eq!(b.eval("document.querySelector('#lineage').dataset.parents"), json!(format!("{a},{b2}")), "the lineage names both parents");
    assert_eq!(b.eval("document.querySelectorAll('#lineage .ps figure').length"), json!(2));
    let kept = get(&s.url(&format!("/api/images/{child}"))).json();
    assert_eq!(kept["parents"], json!([a, b2]), "the gallery records both parents");
    assert_eq!(kept["author"], "Test Curator");
    let shown = data_img_digest(&mut b, "#litter .child:nth-child(2) img");
    assert_eq!(kept["hash"].as_str().unwrap(), shown, "the kept child is the one on screen");

    // a second generation: the kept child bred with another face; the lineage view draws the
    // family tree, grandparents → parents → child
    let other = ids[2];
    b.wait_for(&format!("document.querySelector('#breed-parents .pick[data-id=\"{child}\"]') && document.querySelectorAll('#breed-parents .pick').length === 5"), "the kept child among the parents");
    for id in [a, b2, child, other] {
        b.eval(&format!("document.querySelector('#breed-parents .pick[data-id=\"{id}\"]').click()"));
    }
    assert_eq!(b.eval("breed.picked.slice().sort((x, y) => x - y).join(',')"), json!(format!("{},{}", child.min(other), child.max(other))));
    b.eval("document.querySelector('#breed').click()");
    b.wait_for(
        &format!("document.querySelector('#litter').dataset.state === 'loaded' && document.querySelector('#litter-seed').textContent.includes('#{child}') && [...document.querySelectorAll('#litter .child img')].every(i => i.complete && i.naturalWidth > 0)"),
        "the second litter",
    );
    b.eval("document.querySelectorAll('#litter .child .keep-child')[0].click()");
    b.wait_for("document.querySelector('#lineage').dataset.generations === '3' && [...document.querySelectorAll('#lineage img')].every(i => i.complete && i.naturalWidth > 0)", "the three-generation lineage");
    let grandchild: i64 = b.eval("document.querySelector('#lineage').dataset.child").as_str().unwrap().parse().unwrap();
    assert_eq!(get(&s.url(&format!("/api/images/{grandchild}"))).json()["parents"], json!([child, other]));
    let gen_ids = |b: &mut Browser, g: u32| -> Vec<i64> {
        let v = b.eval(&format!("[...document.querySelectorAll('#lineage .node[data-generation=\"{g}\"]')].map(n => +n.dataset.id)"));
        let mut v: Vec<i64> = v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
        v.sort();
        v
    };
    assert_eq!(gen_ids(&mut b, 0), vec![grandchild], "the child at the root");
    assert_eq!(gen_ids(&mut b, 1), { let mut v = vec![child, other]; v.sort(); v }, "its parents");
    assert_eq!(gen_ids(&mut b, 2), { let mut v = vec![a, b2]; v.sort(); v }, "its grandparents, above the parent they had");
    assert_eq!(b.eval(&format!("[...document.querySelectorAll('#lineage .node[data-id=\"{child}\"] > .ps > .node')].map(n => +n.dataset.id).sort((x, y) => x - y).join(',')")), json!(format!("{a},{b2}")), "the grandparents are drawn above their child");
    assert!(b.eval("document.querySelector('#lineage .legend').textContent").as_str().unwrap().contains("grandparents → parents → child"));
    save_screenshot(&mut b, "breed.png");

    // Sliders: pick a kept face; a drag changes the image; only the latest value is shown
    b.navigate(&s.url("/#sliders"));
    b.wait_for("document.querySelector('#slide-picks').dataset.state === 'loaded' && document.querySelectorAll('#slider-list input').length > 0", "the sliders");
    b.eval(&format!("document.querySelector('#slide-picks .pick[data-id=\"{a}\"]').click()"));
    b.wait_for(&format!("document.querySelector('#slide-face').dataset.state === 'loaded' && slide.image.id === {a} && !slide.inflight && !slide.dirty"), "the face to slide");
    let before = data_img_digest(&mut b, "#slide-face");
    assert_eq!(before, parent_hash, "at zero the sliders show the kept face");
    let slider = b.eval("document.querySelector('#slider-list input').dataset.slider").as_str().unwrap().to_string();
    // a drag: many input events in a row
    b.eval("(() => { const r = document.querySelector('#slider-list input'); for (let i = 1; i <= 25; i++) { r.value = String(i * 0.1); r.dispatchEvent(new Event('input')); } })()");
    b.wait_for("document.querySelector('#slide-face').dataset.state === 'loaded' && !slide.inflight && !slide.dirty && document.querySelector('#slider-list output').textContent === '2.5'", "the drag's render");
    let after = data_img_digest(&mut b, "#slide-face");
    assert_ne!(after, before, "the slider changes the image");
    let renders: u64 = b.eval("document.querySelector('#slide-face').dataset.renders").as_str().unwrap().parse().unwrap();
    assert!(renders <= 6, "a drag of 25 steps renders only the latest values ({renders} renders)");
    let want = send_json("POST", &s.url("/api/slide"), &json!({"image": a, "moves": [{"slider": slider, "value": 2.5}]})).json();
    assert_eq!(sha256_hex(&png_of_data_url(&want["png"])), after, "the image on screen is the last value's");
    // GANSpace's sliders are offered beside SeFa's and the named ones, and move the face too
    assert!(b.eval("document.querySelectorAll('#slider-list input[data-slider^=\"sefa:\"]').length").as_u64().unwrap() > 0);
    assert!(b.eval("[...document.querySelectorAll('#slider-list h3')].some(h => h.textContent.startsWith('GANSpace'))") == json!(true));
    b.eval("(() => { const r = document.querySelector('#slider-list input[data-slider=\"ganspace:all:0\"]'); r.value = '2'; r.dispatchEvent(new Event('input')); })()");
    b.wait_for("document.querySelector('#slide-face').dataset.state === 'loaded' && !slide.inflight && !slide.dirty && moves().length === 2", "the GANSpace render");
    let gan = data_img_digest(&mut b, "#slide-face");
    assert_ne!(gan, after, "a GANSpace slider changes the image");
    let want = send_json("POST", &s.url("/api/slide"), &json!({"image": a, "moves": [{"slider": slider, "value": 2.5}, {"slider": "ganspace:all:0", "value": 2.0}]})).json();
    assert_eq!(sha256_hex(&png_of_data_url(&want["png"])), gan, "the image on screen is both sliders' render");
    b.eval("(() => { const r = document.querySelector('#slider-list input[data-slider=\"ganspace:all:0\"]'); r.value = '0'; r.dispatchEvent(new Event('input')); })()");
    b.wait_for("document.querySelector('#slide-face').dataset.state === 'loaded' && !slide.inflight && !slide.dirty && moves().length === 1", "back to one slider");
    assert_eq!(data_img_digest(&mut b, "#slide-face"), after);
    save_screenshot(&mut b, "sliders.png");
    // keep the slid face: it is the one on screen, and it came from the picked face
    b.eval("document.querySelector('#slide-keep').click()");
    b.wait_for("document.querySelector('#slide-keep').dataset.keptId", "the slid keep");
    let kid: i64 = b.eval("document.querySelector('#slide-keep').dataset.keptId").as_str().unwrap().parse().unwrap();
    let k = get(&s.url(&format!("/api/images/{kid}"))).json();
    assert_eq!(k["hash"].as_str().unwrap(), after);
    assert_eq!(k["parents"], json!([a]));
    s.stop();
}

/// The page's Your photo, Art and Animate views: a photo uploaded in the page is projected (its
/// progress shown), kept and slid; style and DeepDream change a kept face; the gallery animates a
/// face to a GIF. Needs face-api, InceptionV3 and the style networks fetched (under CI=true a
/// missing one fails the test).
#[test]
fn the_page_projects_a_photo_styles_dreams_and_animates_in_chromium() {
    let Some(exe) = browser_or_skip() else { return };
    for net in ["tiny-face-detector", "inception-v3", "nsfwjs-head", "multistyle26", "arbitrary_predict", "arbitrary_transform"] {
        if limner_core::testing::fetched(limner_models::fetch::net_path(net)).is_none() {
            return;
        }
    }
    let home = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(limner_core::dirs::nets_dir(), home.path().join("nets")).unwrap();
    let data = home.path().join("data");
    let s = Studio::start(home.path(), &data, &["--workers", "2"]);
    let a = send_json("POST", &s.url("/api/keep"), &json!({"seed": 401, "psi": 0.7, "curator": "Test Curator"})).json()["id"].as_i64().unwrap();
    let mut b = Browser::launch(&exe);

    // Your photo: pick a file, project it (progress on the page), keep it
    let faces = std::env::var_os("LIMNER_TEST_FACES").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/work/shared/data/faces128"));
    let photo = match std::fs::read(faces.join("0001_00004.jpg")) {
        Ok(p) => p,
        Err(_) => {
            let out = home.path().join("rf");
            let o = std::process::Command::new(env!("CARGO_BIN_EXE_limner")).args(["generate", "--model", "random-face", "--size", "128", "--seeds", "11", "--out"]).arg(&out).output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            std::fs::read(out.join("seed0011.png")).unwrap()
        }
    };
    let b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&photo)
    };
    b.navigate(&s.url("/#photo"));
    b.eval("(() => { const c = document.querySelector('#curator'); c.value = 'Test Curator'; c.dispatchEvent(new Event('change')); })()");
    b.wait_for("document.querySelectorAll('#photo-model option').length > 0", "the models");
    b.eval(&format!(
        "(() => {{ const bytes = Uint8Array.from(atob('{b64}'), c => c.charCodeAt(0)); const dt = new DataTransfer();
           dt.items.add(new File([bytes], 'me.jpg', {{ type: 'image/jpeg' }})); const f = document.querySelector('#photo-file'); f.files = dt.files;
           f.dispatchEvent(new Event('change')); const r = document.querySelector('#photo-steps'); r.value = '30'; r.dispatchEvent(new Event('input')); }})()"
    ));
    b.wait_for("!document.querySelector('#photo-go').disabled", "the project button");
    b.eval("document.querySelector('#photo-go').click()");
    b.wait_for("document.querySelector('#photo-before').dataset.state === 'loaded'", "the aligned photo");
    b.wait_for("document.querySelector('#photo-state').dataset.status === 'done' && document.querySelector('#photo-after').dataset.state === 'loaded' && !document.querySelector('#photo-keep').disabled", "the projection");
    assert_eq!(b.eval("document.querySelector('#photo-progress').value"), json!(30));
    assert_eq!(b.eval("document.querySelector('#photo-progress').dataset.following"), json!("events"), "the page followed the projection by its event stream (EventSource), not by polling");
    assert!(b.eval("document.querySelector('#photo-state').textContent").as_str().unwrap().contains("30 steps"));
    let projected = data_img_digest(&mut b, "#photo-after");
    let projected_png: String = b.eval("document.querySelector('#photo-after').src.split(',')[1]").as_str().unwrap().to_string();
    save_screenshot(&mut b, "photo.png");
    b.eval("document.querySelector('#photo-keep').click()");
    b.wait_for("document.querySelector('#photo-keep').dataset.keptId && !document.querySelector('#photo-next').hidden", "the keep");
    let pid: i64 = b.eval("document.querySelector('#photo-keep').dataset.keptId").as_str().unwrap().parse().unwrap();
    let kept = get(&s.url(&format!("/api/images/{pid}"))).json();
    // the kept face is the projection on screen (its file's label adds the nearest training
    // distances when the copy check's networks are there)
    let on_screen = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &projected_png).unwrap();
    assert_eq!(sha256_hex(&on_screen), projected);
    let kept_png = get(&s.url(kept["url"].as_str().unwrap())).body;
    assert_eq!(decode_png(&kept_png), decode_png(&on_screen), "the kept face is the projection on screen");
    assert_eq!(kept["recipe"]["origin"]["kind"], "projection");
    assert_eq!(kept["recipe"]["origin"]["source_sha256"], sha256_hex(&photo));
    assert_eq!(kept["author"], "Test Curator");
    // …and it is editable: on to Sliders with it picked; a slider changes it
    b.eval("document.querySelector('#photo-to-sliders').click()");
    b.wait_for(&format!("document.querySelector('#slide-face').dataset.state === 'loaded' && slide.image && slide.image.id === {pid} && !slide.inflight && !slide.dirty && document.querySelectorAll('#slider-list input').length > 0"), "the projected face in Sliders");
    assert_eq!(data_img_digest(&mut b, "#slide-face"), projected);
    b.eval("(() => { const r = document.querySelector('#slider-list input[data-slider^=\"sefa\"]'); r.value = '3'; r.dispatchEvent(new Event('input')); })()");
    b.wait_for("document.querySelector('#slide-face').dataset.state === 'loaded' && !slide.inflight && !slide.dirty && moves().length === 1", "the slid projection");
    assert_ne!(data_img_digest(&mut b, "#slide-face"), projected, "a slider moves the projected face");

    // Art: style, then DeepDream, on a kept face; keep the dream
    b.navigate(&s.url("/#art"));
    b.wait_for(&format!("document.querySelector('#art-picks').dataset.state === 'loaded' && document.querySelector('#art-picks .pick[data-id=\"{a}\"]')"), "the faces to style");
    b.eval(&format!("document.querySelector('#art-picks .pick[data-id=\"{a}\"]').click()"));
    b.wait_for("document.querySelector('#art-before').dataset.state === 'loaded' && !document.querySelector('#art-go').disabled", "the face to style");
    b.eval("document.querySelector('#art-go').click()");
    b.wait_for("document.querySelector('#art-after').dataset.state === 'loaded'", "the styled face");
    let styled = data_img_digest(&mut b, "#art-after");
    let source = get(&s.url(&format!("/api/images/{a}"))).json()["hash"].as_str().unwrap().to_string();
    assert_ne!(styled, source);
    let styled_px = decode_png(&png_of_data_url(&b.eval("document.querySelector('#art-after').src")));
    let src_px = decode_png(&get(&s.url(&format!("/api/blob/{source}"))).body);
    let up = image::imageops::resize(&src_px, styled_px.width(), styled_px.height(), image::imageops::FilterType::Triangle);
    let diff = styled_px.as_raw().iter().zip(up.as_raw()).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / up.as_raw().len() as f64;
    assert!(diff > 10.0, "style changes the face (mean difference {diff:.1} of 255)");
    save_screenshot(&mut b, "art.png");
    b.eval("(() => { const k = document.querySelector('#art-kind'); k.value = 'dream'; k.dispatchEvent(new Event('change')); })()");
    b.eval("document.querySelector('#art-go').click()");
    b.wait_for(&format!("document.querySelector('#art-after').dataset.state === 'loaded' && document.querySelector('#art-after').dataset.token !== '{styled}'"), "the dream");
    let dreamed = data_img_digest(&mut b, "#art-after");
    assert_ne!(dreamed, styled);
    assert_ne!(dreamed, source);
    b.eval("document.querySelector('#art-keep').click()");
    b.wait_for("document.querySelector('#art-keep').dataset.keptId", "the kept dream");
    let did: i64 = b.eval("document.querySelector('#art-keep').dataset.keptId").as_str().unwrap().parse().unwrap();
    let kd = get(&s.url(&format!("/api/images/{did}"))).json();
    assert_eq!(kd["hash"].as_str().unwrap(), dreamed);
    assert_eq!(kd["parents"], json!([a]));
    assert_eq!(kd["recipe"]["art"]["kind"], "dream");

    // Animate from the gallery: a slider sweep of the kept face, as a GIF on the page
    b.navigate(&s.url("/#gallery"));
    let c = card(a);
    b.wait_for(&format!("{c} && {c}.querySelector('.animate-btn')"), "the gallery");
    assert_eq!(b.eval(&format!("!!{}.querySelector('.animate-btn')", card(did))), json!(false), "an art picture is not animated");
    b.eval(&format!("{c}.querySelector('.animate-btn').click()"));
    b.wait_for("!document.querySelector('#animate-panel').hidden && document.querySelectorAll('#anim-slider option').length > 0", "the animate panel");
    assert_eq!(b.eval("document.querySelector('#anim-kind').value"), json!("sweep"), "a face without parents sweeps a slider");
    b.eval("(() => { const f = document.querySelector('#anim-frames'); f.value = '12'; })()");
    b.eval("document.querySelector('#anim-go').click()");
    b.wait_for("document.querySelector('#anim-out').dataset.state === 'loaded' && !document.querySelector('#anim-download').hidden", "the animation");
    assert_eq!(b.eval("document.querySelector('#anim-out').dataset.frames"), json!("12"));
    assert!(b.eval("document.querySelector('#anim-format option[value=mp4]').textContent").as_str().unwrap().contains("not written"));
    save_screenshot(&mut b, "animate.png");
    s.stop();
}
