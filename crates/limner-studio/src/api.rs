//! The HTTP JSON API (what the page uses; scriptable with curl) and the embedded page.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::blobs::{is_hash, Blobs};
use crate::db::{Filter, Image, NewImage, Store, Update};
use crate::render::{self, Cache, FaceRequest, ModelInfo, Pool, Rendered};

/// Longest curator name, tag, tag list and note.
pub const MAX_CURATOR: usize = 100;
pub const MAX_TAG: usize = 64;
pub const MAX_TAGS: usize = 32;
pub const MAX_NOTES: usize = 10_000;
/// Largest JSON body.
pub const MAX_JSON_BYTES: usize = 64 * 1024;

pub struct AppState {
    pub store: Store,
    pub blobs: Blobs,
    pub pool: Pool,
    pub cache: Cache,
    pub models: Mutex<Option<(Instant, Arc<Vec<ModelInfo>>)>>,
    /// the page and API answer only to these Host names (DNS-rebinding guard); empty = any
    pub allowed_hosts: Vec<String>,
}

type St = State<Arc<AppState>>;

/// An API error: a status and a message for the person reading it.
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad(msg: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, msg.into())
    }
    fn internal(e: anyhow::Error) -> Self {
        eprintln!("limner studio: {e:#}");
        Self(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(e)
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/app.js", get(app_js))
        .route("/app.css", get(app_css))
        .route("/api/models", get(models))
        .route("/api/face", get(face))
        .route("/api/keep", post(keep))
        .route("/api/images", get(list))
        .route("/api/images/{id}", get(one).patch(update))
        .route("/api/images/{id}/history", get(history))
        .route("/api/images/{id}/recipe", get(recipe))
        .route("/api/blob/{hash}", get(blob))
        .route("/api/stats", get(stats))
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Same-origin only: a request whose Host is not one this server answers to (DNS rebinding),
/// or a write whose Origin is another site (cross-site request forgery), is refused. No CORS
/// headers are ever sent, so other sites cannot read answers either.
async fn guard(State(s): St, req: Request, next: Next) -> Response {
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    if !s.allowed_hosts.is_empty() {
        let name = host_name(&host);
        if !s.allowed_hosts.iter().any(|h| h == name) {
            return ApiError(StatusCode::FORBIDDEN, format!("host `{host}` is not this studio (it answers to {:?}; start it with --host to serve another name)", s.allowed_hosts)).into_response();
        }
    }
    // an announced oversize body is refused before a byte of it is read
    let announced = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_JSON_BYTES as u64) {
        return ApiError(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is over {} KiB", MAX_JSON_BYTES / 1024)).into_response();
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let o = origin.to_str().unwrap_or("");
            let same = o.strip_prefix("http://").or_else(|| o.strip_prefix("https://")).is_some_and(|rest| rest == host);
            if !same {
                return ApiError(StatusCode::FORBIDDEN, format!("cross-origin write from `{o}` refused")).into_response();
            }
        }
    }
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

/// The name part of a Host header (`[::1]:8080` → `[::1]`, `localhost:1` → `localhost`).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map(|(a, _)| &host[..a.len() + 1]).unwrap_or(host);
    }
    host.rsplit_once(':').map(|(a, _)| a).unwrap_or(host)
}

const CSP: &str = "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; connect-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

fn asset(body: &'static str, ctype: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn page() -> Response {
    asset(crate::assets::INDEX_HTML, "text/html; charset=utf-8")
}
async fn app_js() -> Response {
    asset(crate::assets::APP_JS, "text/javascript; charset=utf-8")
}
async fn app_css() -> Response {
    asset(crate::assets::APP_CSS, "text/css; charset=utf-8")
}

/// The offered models, listed at most every 10 s (listing loads each generator file).
pub async fn offered_models(s: &AppState) -> Result<Arc<Vec<ModelInfo>>, ApiError> {
    if let Some((t, m)) = s.models.lock().unwrap().as_ref() {
        if t.elapsed() < Duration::from_secs(10) {
            return Ok(m.clone());
        }
    }
    let m = Arc::new(tokio::task::spawn_blocking(render::list_models).await.map_err(|e| ApiError::internal(e.into()))?);
    *s.models.lock().unwrap() = Some((Instant::now(), m.clone()));
    Ok(m)
}

async fn models(State(s): St) -> Result<Json<serde_json::Value>, ApiError> {
    let m = offered_models(&s).await?;
    Ok(Json(json!({ "models": *m, "default": limner_models::DEFAULT_NAME })))
}

/// A face's parameters as the query string or JSON gives them (all optional but the model).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct FaceParams {
    model: Option<String>,
    seed: Option<u64>,
    psi: Option<f32>,
    noise: Option<f32>,
    size: Option<usize>,
}

impl FaceParams {
    async fn into_request(self, s: &AppState) -> Result<FaceRequest, ApiError> {
        let mut req = FaceRequest {
            model: self.model.unwrap_or_else(|| limner_models::DEFAULT_NAME.to_string()),
            seed: self.seed.unwrap_or_else(|| rand::random::<u64>() & render::MAX_SEED),
            psi: self.psi.unwrap_or(0.7),
            noise: self.noise.unwrap_or(1.0),
            size: self.size.unwrap_or(0),
        };
        let models = offered_models(s).await?;
        render::check(&mut req, &models).map_err(|e| ApiError::bad(format!("{e:#}")))?;
        Ok(req)
    }
}

/// Renders a face through the pool (or takes it from the cache). If the client goes away while
/// the render waits, this future is dropped with its receiver and the worker skips the render.
async fn rendered(s: &AppState, req: &FaceRequest) -> Result<Rendered, ApiError> {
    let key = req.key();
    if let Some(r) = s.cache.get(&key) {
        return Ok(r);
    }
    let rx = s.pool.submit(req.clone()).map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "the studio is busy: every render worker and queue slot is taken; retry in a second".into()))?;
    let r = rx.await.map_err(|_| ApiError::internal(anyhow::anyhow!("a render worker stopped")))?.map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, format!("cannot render {}: {e}", req.model)))?;
    s.cache.put(key, r.clone());
    Ok(r)
}

/// `GET /api/face?model=default&seed=42&psi=0.7&noise=1&size=` → PNG; the seed (chosen at random
/// when absent) and the render time are in `X-Limner-Seed` / `X-Limner-Render-Ms`.
async fn face(State(s): St, Query(p): Query<FaceParams>) -> Result<Response, ApiError> {
    let explicit_seed = p.seed.is_some();
    let req = p.into_request(&s).await?;
    let r = rendered(&s, &req).await?;
    let mut resp = Response::new(Body::from(r.png.as_ref().clone()));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    h.insert("x-limner-seed", HeaderValue::from(req.seed));
    h.insert("x-limner-render-ms", HeaderValue::from_str(&format!("{:.1}", r.render_ms)).unwrap());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(if explicit_seed { "private, max-age=3600" } else { "no-store" }));
    Ok(resp)
}

fn clean_curator(c: Option<&str>) -> Result<String, ApiError> {
    let c = c.unwrap_or("").trim();
    if c.chars().count() > MAX_CURATOR || c.chars().any(char::is_control) {
        return Err(ApiError::bad(format!("curator: a name of at most {MAX_CURATOR} characters, no control characters")));
    }
    Ok(if c.is_empty() { "anonymous".into() } else { c.to_string() })
}

fn clean_tags(tags: &[String]) -> Result<Vec<String>, ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::bad(format!("tags: at most {MAX_TAGS}")));
    }
    let mut out: Vec<String> = vec![];
    for t in tags {
        let t = t.trim();
        if t.is_empty() {
            continue;
        }
        if t.chars().count() > MAX_TAG || t.chars().any(char::is_control) {
            return Err(ApiError::bad(format!("tag `{}`: at most {MAX_TAG} characters, no control characters", t.chars().take(MAX_TAG).collect::<String>())));
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

fn check_notes(n: &str) -> Result<(), ApiError> {
    if n.chars().count() > MAX_NOTES {
        return Err(ApiError::bad(format!("notes: at most {MAX_NOTES} characters")));
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct KeepBody {
    #[serde(flatten)]
    face: FaceParams,
    curator: Option<String>,
    #[serde(default)]
    notes: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// `POST /api/keep {"model","seed","psi","noise","size","curator","notes","tags"}` → the kept
/// image (201; 200 when these exact pixels are already kept).
async fn keep(State(s): St, Json(b): Json<KeepBody>) -> Result<Response, ApiError> {
    if b.face.seed.is_none() {
        return Err(ApiError::bad("seed: say which face to keep"));
    }
    let curator = clean_curator(b.curator.as_deref())?;
    let tags = clean_tags(&b.tags)?;
    check_notes(&b.notes)?;
    let req = b.face.into_request(&s).await?;
    let r = rendered(&s, &req).await?;
    let blobs = s.blobs.clone();
    let png = r.png.clone();
    let hash = tokio::task::spawn_blocking(move || blobs.put(&png)).await.map_err(|e| ApiError::internal(e.into()))??;
    if let Some(id) = s.store.find_hash(&hash).await? {
        let im = s.store.get(id).await?.ok_or_else(|| ApiError::internal(anyhow::anyhow!("image {id} vanished")))?;
        return Ok((StatusCode::OK, Json(im)).into_response());
    }
    // limner-edit's recipe, as its own JSON text (f32s as typed: 0.7, not 0.699999988…)
    let recipe: serde_json::Value = serde_json::from_str(&r.recipe).map_err(|e| ApiError::internal(e.into()))?;
    let id = s
        .store
        .insert(&NewImage { hash: &hash, width: r.width as i64, height: r.height as i64, model: &req.model, recipe: &recipe, parents: &[], author: &curator, notes: &b.notes, tags: &tags })
        .await?;
    let im = s.store.get(id).await?.ok_or_else(|| ApiError::internal(anyhow::anyhow!("image {id} vanished")))?;
    Ok((StatusCode::CREATED, Json(im)).into_response())
}

/// `GET /api/images?sort=new|old|rating|updated&rejected=hide|only|all&favourite=true&min_rating=3&tag=T&q=TEXT&author=A&model=M&limit=100&offset=0`
async fn list(State(s): St, Query(f): Query<Filter>) -> Result<Json<Vec<Image>>, ApiError> {
    if let Some(r) = f.min_rating {
        if !(1..=5).contains(&r) {
            return Err(ApiError::bad("min_rating: 1 to 5"));
        }
    }
    Ok(Json(s.store.list(&f).await?))
}

async fn one(State(s): St, Path(id): Path<i64>) -> Result<Json<Image>, ApiError> {
    s.store.get(id).await?.map(Json).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no image {id}")))
}

async fn history(State(s): St, Path(id): Path<i64>) -> Result<Json<serde_json::Value>, ApiError> {
    let h = s.store.history(id).await?;
    Ok(Json(json!(h.into_iter().map(|(c, t, ch)| json!({"curator": c, "at_ms": t, "change": ch})).collect::<Vec<_>>())))
}

/// `GET /api/images/{id}/recipe`: the image's recipe as a file (`limner render FILE --out X.png` makes it again).
async fn recipe(State(s): St, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let im = s.store.get(id).await?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no image {id}")))?;
    let mut r = Response::new(Body::from(serde_json::to_string_pretty(&im.recipe).map_err(|e| ApiError::internal(e.into()))?));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&format!("attachment; filename=\"limner-{id}.json\"")).unwrap());
    Ok(r)
}

#[derive(Deserialize)]
pub struct UpdateBody {
    curator: Option<String>,
    #[serde(flatten)]
    update: Update,
}

/// `PATCH /api/images/{id} {"curator", "rating": 0-5 (0 clears), "favourite", "rejected", "tags": [...], "notes"}`
async fn update(State(s): St, Path(id): Path<i64>, Json(b): Json<UpdateBody>) -> Result<Json<Image>, ApiError> {
    let curator = clean_curator(b.curator.as_deref())?;
    let mut u = b.update;
    if let Some(r) = u.rating {
        if !(0..=5).contains(&r) {
            return Err(ApiError::bad("rating: 1 to 5 (0 clears it)"));
        }
    }
    if let Some(t) = &u.tags {
        u.tags = Some(clean_tags(t)?);
    }
    if let Some(n) = &u.notes {
        check_notes(n)?;
    }
    s.store.update(id, &curator, &u).await?.map(Json).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no image {id}")))
}

/// `GET /api/blob/{sha256}` → the kept PNG. Only a 64-hex-digit name reaches the file system.
async fn blob(State(s): St, Path(hash): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    if !is_hash(&hash) {
        return Err(ApiError(StatusCode::NOT_FOUND, "no such image (a blob is named by its sha256)".into()));
    }
    let etag = format!("\"{hash}\"");
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let blobs = s.blobs.clone();
    let h2 = hash.clone();
    let bytes = tokio::task::spawn_blocking(move || blobs.get(&h2)).await.map_err(|e| ApiError::internal(e.into()))??;
    let Some(bytes) = bytes else { return Err(ApiError(StatusCode::NOT_FOUND, format!("no image {hash}"))) };
    let mut r = Response::new(Body::from(bytes));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"));
    r.headers_mut().insert(header::ETAG, HeaderValue::from_str(&etag).unwrap());
    Ok(r)
}

async fn stats(State(s): St) -> Json<render::StatsView> {
    Json(s.pool.stats())
}
