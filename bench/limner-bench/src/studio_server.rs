//! The real `limner studio` binary on loopback with a fresh gallery folder, for the studio
//! benchmarks (studio-load, studio-browser). It uses the machine's model cache (random-face when
//! fetched) and removes its gallery when dropped.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

pub struct Server {
    pub child: Child,
    pub base: String,
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
    /// Starts `limner studio --port 0 --data TMP EXTRA...` and waits for the address it prints.
    pub fn start(limner: &Path, extra: &[String]) -> Result<Server> {
        let home = std::env::temp_dir().join(format!("limner-studio-bench-{}-{}", std::process::id(), Instant::now().elapsed().as_nanos()));
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

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// (current, peak) resident memory in MiB.
    pub fn rss(&self) -> (f64, f64) {
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

/// The limner binary beside this one, else `target/release/limner`.
pub fn default_limner() -> PathBuf {
    std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join("limner"))).filter(|p| p.is_file()).unwrap_or_else(|| PathBuf::from("target/release/limner"))
}
