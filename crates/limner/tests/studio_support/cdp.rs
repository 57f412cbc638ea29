//! A small Chrome DevTools Protocol client: starts headless Chromium and drives one page over
//! its DevTools WebSocket (navigate, evaluate JavaScript, screenshot).

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The browser to use: `$LIMNER_CHROMIUM`, else Debian's `/usr/bin/chromium`.
pub fn chromium_path() -> Option<PathBuf> {
    let p = std::env::var_os("LIMNER_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(CHROMIUM));
    p.is_file().then_some(p)
}

pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Browser {
    /// Starts headless Chromium with a new empty profile and connects to its first page.
    pub fn launch(exe: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(exe)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--window-size=1280,860",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut line = String::new();
        let browser_ws = loop {
            line.clear();
            if err.read_line(&mut line).unwrap_or(0) == 0 || Instant::now() > deadline {
                let _ = child.kill();
                panic!("chromium did not print its DevTools address (last line: {line})");
            }
            if let Some(i) = line.find("ws://") {
                break line[i..].trim().to_string();
            }
        };
        std::thread::spawn(move || {
            let mut l = String::new();
            while err.read_line(&mut l).map(|n| n > 0).unwrap_or(false) {
                l.clear();
            }
        });
        // the first page's own socket, from the HTTP list beside the browser socket
        let hostport = browser_ws.trim_start_matches("ws://").split('/').next().unwrap().to_string();
        let t = Instant::now();
        let page_ws = loop {
            let list: Value = ureq::get(&format!("http://{hostport}/json/list")).call().unwrap().into_json().unwrap();
            if let Some(p) = list.as_array().unwrap().iter().find(|t| t["type"] == "page") {
                break p["webSocketDebuggerUrl"].as_str().unwrap().to_string();
            }
            assert!(t.elapsed() < Duration::from_secs(30), "chromium has no page: {list}");
            std::thread::sleep(Duration::from_millis(100));
        };
        let (ws, _) = tungstenite::connect(page_ws.as_str()).expect("connect to the page's DevTools socket");
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        }
        let mut b = Browser { child, _profile: profile, ws, next_id: 0 };
        b.call("Page.enable", json!({}));
        b
    }

    /// Sends a command and waits for its answer (events in between are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.ws.send(Message::Text(json!({"id": id, "method": method, "params": params}).to_string().into())).unwrap();
        loop {
            let msg = self.ws.read().unwrap_or_else(|e| panic!("DevTools socket ({method}): {e}"));
            let Message::Text(t) = msg else { continue };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("{method} failed: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    /// Evaluates JavaScript in the page (awaiting a promise) and returns its value.
    pub fn eval(&mut self, js: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": js, "awaitPromise": true, "returnByValue": true, "userGesture": true}));
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("page script failed: {js}\n{ex}");
        }
        r["result"]["value"].clone()
    }

    /// Polls a JavaScript condition until it is true.
    pub fn wait_for(&mut self, js: &str, what: &str) {
        let t = Instant::now();
        loop {
            if self.eval(&format!("(() => {{ try {{ return !!({js}); }} catch (e) {{ return false; }} }})()")) == json!(true) {
                return;
            }
            if t.elapsed() > Duration::from_secs(60) {
                let body = self.eval("document.body ? document.body.innerText.slice(0, 2000) : ''");
                panic!("timed out waiting for {what} ({js}); page text: {body}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for("document.readyState === 'complete' && document.body.dataset.ready === 'true'", "the page to load");
    }

    pub fn reload(&mut self) {
        self.eval("document.body.dataset.ready = 'stale'");
        self.call("Page.reload", json!({"ignoreCache": true}));
        self.wait_for("document.readyState === 'complete' && document.body.dataset.ready === 'true'", "the page to reload");
    }

    /// A PNG of the viewport.
    pub fn screenshot(&mut self) -> Vec<u8> {
        use base64::Engine;
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().unwrap()).unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
