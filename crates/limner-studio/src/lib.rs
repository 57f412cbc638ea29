//! limner studio: the web page and JSON API over limner's generators, with a curated gallery.
//!
//! [`run`] serves the embedded page (`assets/`: one HTML/JS/CSS app, no build step, nothing
//! fetched from the network) and the API ([`api`]) on an axum server; renders go through a
//! bounded worker pool ([`render::Pool`]), a photo's projection as a job the page follows
//! ([`jobs`]); kept images are content-addressed PNG files ([`blobs`]) beside the gallery
//! database ([`db`], SQLite by default, PostgreSQL with the `postgres` feature). The work itself
//! (generation, projection, style and dream, animation) is the libraries' (limner-edit,
//! limner-art), called from [`render`].

pub mod api;
mod assets;
pub mod blobs;
pub mod db;
pub mod jobs;
pub mod render;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

/// How to run the studio.
#[derive(Clone, Debug)]
pub struct Config {
    /// address to bind (loopback by default; anything else serves the network)
    pub host: String,
    /// port (0 = any free one; the address is printed)
    pub port: u16,
    /// folder of the gallery (`gallery.db` and `images/`)
    pub data: PathBuf,
    /// database URL (default: `sqlite://DATA/gallery.db`)
    pub db: Option<String>,
    /// render workers (default: the number of cores)
    pub workers: usize,
    /// renders that may wait for a worker before requests get 503
    pub queue: usize,
    /// an upload whose explicit probability (nsfwjs: Porn + Hentai + Sexy) is above this is
    /// refused ([`render::NSFW_THRESHOLD`] by default)
    pub nsfw_threshold: f32,
}

/// The default data folder: `$LIMNER_HOME/studio`, else `$XDG_DATA_HOME/limner/studio`, else
/// `~/.local/share/limner/studio`.
pub fn default_data_dir() -> PathBuf {
    if let Ok(h) = std::env::var("LIMNER_HOME") {
        return PathBuf::from(h).join("studio");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("limner/studio");
    }
    let home = std::env::var("HOME").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("."));
    home.join(".local/share/limner/studio")
}

/// The number of cores (the default worker count).
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

impl Config {
    pub fn db_url(&self) -> String {
        self.db.clone().unwrap_or_else(|| db::sqlite_url(&self.data.join("gallery.db")))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("cannot start the async runtime")
}

async fn open(cfg: &Config) -> Result<(db::Store, blobs::Blobs)> {
    std::fs::create_dir_all(&cfg.data).with_context(|| format!("cannot create the studio folder {} (pass another --data)", cfg.data.display()))?;
    let blobs = blobs::Blobs::open(&cfg.data.join("images"))?;
    let store = db::Store::open(&cfg.db_url()).await?;
    Ok((store, blobs))
}

/// Serves until Ctrl-C or SIGTERM. `on_ready` gets the bound address (the CLI prints it).
pub fn run(cfg: Config, on_ready: impl FnOnce(SocketAddr, &Config)) -> Result<()> {
    runtime()?.block_on(async move {
        let (store, blobs) = open(&cfg).await?;
        let ip: IpAddr = match cfg.host.as_str() {
            "localhost" => IpAddr::from([127, 0, 0, 1]),
            h => h.parse().with_context(|| format!("--host {h}: give an IP address such as 127.0.0.1 or 0.0.0.0"))?,
        };
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, cfg.port))
            .await
            .with_context(|| format!("cannot listen on {}:{} (is another studio running there? try --port 0)", cfg.host, cfg.port))?;
        let addr = listener.local_addr()?;
        // on loopback, answer only to loopback names (a page on another site that rebinds its
        // DNS name to 127.0.0.1 must not reach the gallery)
        let allowed_hosts = if ip.is_loopback() { vec!["127.0.0.1".into(), "localhost".into(), "[::1]".into()] } else { vec![] };
        let workers = if cfg.workers == 0 { cores() } else { cfg.workers };
        let state = Arc::new(api::AppState {
            store: store.clone(),
            blobs,
            pool: render::Pool::new(workers, cfg.queue.max(1)),
            cache: render::Cache::new(32),
            art: render::Cache::new(16),
            jobs: jobs::Jobs::default(),
            models: Mutex::new(None),
            allowed_hosts,
            nsfw_threshold: cfg.nsfw_threshold,
        });
        on_ready(addr, &cfg);
        axum::serve(listener, api::router(state)).with_graceful_shutdown(shutdown()).await.context("the server stopped")?;
        store.close().await;
        Ok(())
    })
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// What `limner studio --check` found.
#[derive(Debug)]
pub struct CheckReport {
    pub integrity: String,
    pub schema_version: i64,
    pub images: usize,
    /// `(id, hash, problem)` for each kept image whose file is missing or does not match its name
    pub bad: Vec<(i64, String, String)>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.integrity == "ok" && self.bad.is_empty()
    }
}

/// Checks the gallery: the database's integrity and every kept image's file (present, and its
/// bytes hash to its name).
pub fn check(cfg: &Config) -> Result<CheckReport> {
    runtime()?.block_on(async move {
        let (store, blobs) = open(cfg).await?;
        let integrity = store.integrity_check().await?;
        let schema_version = store.version().await?;
        let all = store.all_hashes().await?;
        let mut bad = vec![];
        for (id, hash) in &all {
            match blobs.get(hash) {
                Ok(Some(b)) if blobs::hash_bytes(&b) == *hash => {}
                Ok(Some(_)) => bad.push((*id, hash.clone(), "its bytes do not match its name".into())),
                Ok(None) => bad.push((*id, hash.clone(), "its file is missing".into())),
                Err(e) => bad.push((*id, hash.clone(), format!("{e:#}"))),
            }
        }
        store.close().await;
        Ok(CheckReport { integrity, schema_version, images: all.len(), bad })
    })
}

/// Where the gallery of `data` keeps its images (for messages).
pub fn images_dir(data: &Path) -> PathBuf {
    data.join("images")
}
