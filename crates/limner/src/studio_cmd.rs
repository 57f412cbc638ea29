//! `limner studio`: argument parsing and printing over `limner_studio` (the server, page and
//! gallery live there).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

/// `limner studio`
#[derive(Args)]
pub struct StudioArgs {
    /// address to listen on (loopback by default; 0.0.0.0 serves your network, without login)
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// port (0 = any free one; the address is printed)
    #[arg(long, default_value_t = 7860)]
    pub port: u16,
    /// the gallery's folder: gallery.db and the kept images (default: $LIMNER_HOME/studio, else ~/.local/share/limner/studio)
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// gallery database URL (default: sqlite://DATA/gallery.db; postgres://… with the `postgres` feature)
    #[arg(long)]
    pub db: Option<String>,
    /// render workers (default: the number of cores)
    #[arg(long)]
    pub workers: Option<usize>,
    /// renders that may wait for a worker; beyond it requests get 503 + Retry-After (default: 4 per worker)
    #[arg(long)]
    pub queue: Option<usize>,
    /// refuse uploads (your photo, a style painting) whose probability of being explicit by
    /// nsfwjs' classifier, P(Porn) + P(Hentai) + P(Sexy), is above this (0 to 1)
    #[arg(long, default_value_t = limner_studio::render::NSFW_THRESHOLD, value_name = "P")]
    pub nsfw_threshold: f32,
    /// check the gallery (database integrity, every kept image's file) and exit
    #[arg(long)]
    pub check: bool,
}

pub fn studio(a: StudioArgs) -> Result<()> {
    let workers = a.workers.unwrap_or_else(limner_studio::cores);
    if workers == 0 {
        bail!("--workers must be at least 1");
    }
    if !(0.0..=1.0).contains(&a.nsfw_threshold) {
        bail!("--nsfw-threshold is a probability: 0 to 1 (got {})", a.nsfw_threshold);
    }
    let cfg = limner_studio::Config {
        host: a.host,
        port: a.port,
        data: a.data.unwrap_or_else(limner_studio::default_data_dir),
        db: a.db,
        workers,
        queue: a.queue.unwrap_or(4 * workers),
        nsfw_threshold: a.nsfw_threshold,
    };
    if a.check {
        let r = limner_studio::check(&cfg)?;
        println!("database {}: integrity {}, schema version {}", cfg.db_url(), r.integrity, r.schema_version);
        println!("images in {}: {} kept, {} bad", limner_studio::images_dir(&cfg.data).display(), r.images, r.bad.len());
        for (id, hash, why) in &r.bad {
            println!("  #{id} {hash}: {why}");
        }
        if !r.ok() {
            bail!("the gallery has problems (listed above)");
        }
        println!("ok");
        return Ok(());
    }
    limner_studio::run(cfg, |addr, cfg| {
        println!("limner studio: open http://{addr}/");
        println!("gallery: {} ({} render workers, queue {})", cfg.data.display(), cfg.workers, cfg.queue);
        println!("uploads screened with nsfwjs: refused over P(explicit) = {}", cfg.nsfw_threshold);
        if !addr.ip().is_loopback() {
            println!("warning: serving {} to the network, without login", addr.ip());
        }
        let _ = std::io::stdout().flush();
    })
}
