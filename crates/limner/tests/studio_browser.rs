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
