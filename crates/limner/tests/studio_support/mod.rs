//! Shared by the studio tests: the real `limner studio` binary on loopback with a real SQLite
//! file, and a small HTTP client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod cdp;

use serde_json::Value;

pub struct Studio {
    pub child: Child,
    pub base: String,
    pub port: u16,
    pub data: PathBuf,
}

/// The limner binary: cargo's for the tests; for the browser benchmark (an example, in
/// `target/release/examples/`), the one built beside it in `target/release/`.
pub fn limner_exe() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_limner") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("this program's path");
    exe.parent().and_then(|d| d.parent()).map(|d| d.join("limner")).expect("target/release/limner")
}

impl Studio {
    /// Starts `limner studio --port 0 --data DATA ARGS...` with `LIMNER_HOME=home` and waits
    /// for the address it prints.
    pub fn start(home: &Path, data: &Path, args: &[&str]) -> Studio {
        let mut child = Command::new(limner_exe())
            .args(["studio", "--port", "0", "--data"])
            .arg(data)
            .args(args)
            .env("LIMNER_HOME", home)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start limner studio");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let base = loop {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 || Instant::now() > deadline {
                let _ = child.kill();
                panic!("limner studio did not print its address (exit: {:?})", child.wait());
            }
            if let Some(rest) = line.trim().strip_prefix("limner studio: open ") {
                break rest.trim_end_matches('/').to_string();
            }
        };
        // keep draining stdout so the server never blocks on a full pipe
        std::thread::spawn(move || {
            let mut l = String::new();
            while out.read_line(&mut l).map(|n| n > 0).unwrap_or(false) {
                l.clear();
            }
        });
        let port = base.rsplit(':').next().unwrap().parse().unwrap();
        Studio { child, base, port, data: data.to_path_buf() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then wait (a clean stop).
    pub fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "limner studio exited with {st} on SIGTERM");
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("limner studio did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Studio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `limner studio --check --data DATA`: (success, stdout).
pub fn check(home: &Path, data: &Path) -> (bool, String) {
    let o = Command::new(limner_exe()).args(["studio", "--check", "--data"]).arg(data).env("LIMNER_HOME", home).output().unwrap();
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// An HTTP answer.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build()
}

fn answer(r: Result<ureq::Response, ureq::Error>) -> Answer {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("HTTP failed: {e}"),
    };
    let status = resp.status();
    let headers = resp.headers_names().into_iter().map(|n| {
        let v = resp.header(&n).unwrap_or("").to_string();
        (n, v)
    }).collect();
    let mut body = vec![];
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
    Answer { status, headers, body }
}

pub fn get(url: &str) -> Answer {
    answer(agent().get(url).call())
}

pub fn send_json(method: &str, url: &str, body: &Value) -> Answer {
    answer(agent().request(method, url).set("Content-Type", "application/json").send_string(&body.to_string()))
}

pub fn send_raw(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut r = agent().request(method, url);
    for (k, v) in headers {
        r = r.set(k, v);
    }
    answer(r.send_string(body))
}

/// Decodes a PNG; panics with the reason when it is not one.
pub fn decode_png(bytes: &[u8]) -> image::RgbImage {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Png).expect("a PNG").to_rgb8()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Sends raw bytes (an upload) with a content type.
pub fn send_bytes(method: &str, url: &str, content_type: &str, body: &[u8]) -> Answer {
    answer(agent().request(method, url).set("Content-Type", content_type).send_bytes(body))
}
