//! Long renders the page follows step by step (a photo's projection): each is one job on the
//! render pool, with its progress (step, distance, a preview every few steps) kept here for the
//! page to poll, cancellable, and cancelled by itself when nobody has asked about it for
//! [`ABANDONED_AFTER`]. At most [`MAX_JOBS`] are remembered (the oldest finished are forgotten).
//! Every change of a job's progress is also announced ([`Job::subscribe`]), so the API can
//! stream it to the page (Server-Sent Events) instead of being polled.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::render::Rendered;

pub const MAX_JOBS: usize = 32;
/// A job nobody has polled for this long is cancelled (its page has gone).
pub const ABANDONED_AFTER: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl Status {
    pub fn finished(self) -> bool {
        matches!(self, Status::Done | Status::Failed | Status::Cancelled)
    }
}

/// Where a job is.
#[derive(Clone)]
pub struct Progress {
    pub status: Status,
    pub step: usize,
    pub distance: Option<f32>,
    pub start_distance: Option<f32>,
    /// the latest preview (PNG) and the step it shows
    pub preview: Option<(usize, Arc<Vec<u8>>)>,
    pub result: Option<Rendered>,
    pub error: Option<String>,
    pub started_ms: Option<f64>,
    pub elapsed_ms: f64,
}

/// A projection of an uploaded photo.
pub struct Job {
    pub id: u64,
    pub model: String,
    pub size: usize,
    pub steps: usize,
    /// sha256 of the uploaded file
    pub source_sha256: String,
    /// the photo's face, aligned (PNG), and how many faces the photo had
    pub aligned_png: Arc<Vec<u8>>,
    pub faces: usize,
    created: Instant,
    cancel: AtomicBool,
    seen: Mutex<Instant>,
    progress: Mutex<Progress>,
    /// bumped on every progress change
    changed: tokio::sync::watch::Sender<u64>,
}

impl Job {
    /// A poll: the job is still wanted.
    pub fn touch(&self) {
        *self.seen.lock().unwrap() = Instant::now();
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Whether the job should stop: cancelled, or nobody has polled it for [`ABANDONED_AFTER`].
    pub fn should_stop(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.seen.lock().unwrap().elapsed() > ABANDONED_AFTER
    }

    pub fn progress(&self) -> Progress {
        let mut p = self.progress.lock().unwrap().clone();
        if !p.status.finished() {
            p.elapsed_ms = self.created.elapsed().as_secs_f64() * 1e3;
        }
        p
    }

    pub fn update(&self, f: impl FnOnce(&mut Progress)) {
        {
            let mut p = self.progress.lock().unwrap();
            f(&mut p);
            if p.status.finished() {
                p.elapsed_ms = self.created.elapsed().as_secs_f64() * 1e3;
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// A receiver that wakes on every progress change after this call.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// The jobs remembered.
#[derive(Default)]
pub struct Jobs {
    list: Mutex<VecDeque<Arc<Job>>>,
    next: AtomicU64,
}

/// Every remembered job is still running.
#[derive(Debug)]
pub struct Full;

impl Jobs {
    /// Registers a queued job; `Err(Full)` when [`MAX_JOBS`] are remembered and none has finished.
    pub fn add(&self, model: String, size: usize, steps: usize, source_sha256: String, aligned_png: Vec<u8>, faces: usize) -> Result<Arc<Job>, Full> {
        let mut list = self.list.lock().unwrap();
        if list.len() >= MAX_JOBS {
            let Some(i) = list.iter().position(|j| j.progress.lock().unwrap().status.finished()) else { return Err(Full) };
            list.remove(i);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let job = Arc::new(Job {
            id,
            model,
            size,
            steps,
            source_sha256,
            aligned_png: Arc::new(aligned_png),
            faces,
            created: Instant::now(),
            cancel: AtomicBool::new(false),
            seen: Mutex::new(Instant::now()),
            progress: Mutex::new(Progress {
                status: Status::Queued,
                step: 0,
                distance: None,
                start_distance: None,
                preview: None,
                result: None,
                error: None,
                started_ms: None,
                elapsed_ms: 0.0,
            }),
            changed: tokio::sync::watch::channel(0).0,
        });
        list.push_back(job.clone());
        Ok(job)
    }

    pub fn get(&self, id: u64) -> Option<Arc<Job>> {
        self.list.lock().unwrap().iter().find(|j| j.id == id).cloned()
    }

    /// Forgets a job (one that never reached the pool).
    pub fn remove(&self, id: u64) {
        self.list.lock().unwrap().retain(|j| j.id != id);
    }
}

/// Runs a projection job on a render worker (its progress goes into the job as it runs).
pub fn run_projection(models: &mut crate::render::Models, job: &Job, target: &limner_faces::Image) -> anyhow::Result<()> {
    if job.should_stop() {
        job.update(|p| p.status = Status::Cancelled);
        return Ok(());
    }
    let t0 = job.created.elapsed().as_secs_f64() * 1e3;
    job.update(|p| {
        p.status = Status::Running;
        p.started_ms = Some(t0);
    });
    let r = crate::render::project(models, &job.model, job.size, target, &job.source_sha256, job.steps, &mut |st| {
        job.update(|p| {
            p.step = st.step;
            p.distance = Some(st.distance);
            p.start_distance.get_or_insert(st.distance);
            if let Some(png) = st.preview {
                p.preview = Some((st.step, Arc::new(png)));
            }
        });
        if job.should_stop() {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
    match r {
        Ok((rendered, start, distance)) => job.update(|p| {
            p.status = Status::Done;
            p.preview = Some((job.steps, rendered.png.clone()));
            p.result = Some(rendered);
            p.start_distance = Some(start);
            p.distance = Some(distance);
        }),
        Err(e) if e.downcast_ref::<limner_edit::project::Cancelled>().is_some() => job.update(|p| p.status = Status::Cancelled),
        Err(e) => job.update(|p| {
            p.status = Status::Failed;
            p.error = Some(format!("{e:#}"));
        }),
    }
    Ok(())
}
