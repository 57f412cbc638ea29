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
    /// the latest art results, by the sha256 of their PNG (what `/api/keep {"art"}` keeps)
    pub art: Cache,
    /// projections of uploaded photos
    pub jobs: crate::jobs::Jobs,
    pub models: Mutex<Option<(Instant, Arc<Vec<ModelInfo>>)>>,
    /// the page and API answer only to these Host names (DNS-rebinding guard); empty = any
    pub allowed_hosts: Vec<String>,
    /// uploads nsfwjs scores above this (Porn + Hentai + Sexy) are refused
    pub nsfw_threshold: f32,
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

/// One route of the API: its path (axum's and OpenAPI's `{param}` syntax), the methods it
/// answers and its handlers. [`routes`] is the one list: the router is built from it, and a test
/// checks every route and method against the OpenAPI document ([`OPENAPI_JSON`]).
pub struct Route {
    pub path: &'static str,
    pub methods: &'static [&'static str],
    handler: axum::routing::MethodRouter<Arc<AppState>>,
}

fn route(path: &'static str, methods: &'static [&'static str], handler: axum::routing::MethodRouter<Arc<AppState>>) -> Route {
    Route { path, methods, handler }
}

/// Every route the studio serves.
pub fn routes() -> Vec<Route> {
    let upload = || DefaultBodyLimit::max(render::MAX_UPLOAD_BYTES);
    vec![
        route("/", &["GET"], get(page)),
        route("/app.js", &["GET"], get(app_js)),
        route("/app.css", &["GET"], get(app_css)),
        route("/api/openapi.json", &["GET"], get(openapi)),
        route("/api/models", &["GET"], get(models)),
        route("/api/face", &["GET"], get(face)),
        route("/api/keep", &["POST"], post(keep)),
        route("/api/images", &["GET"], get(list)),
        route("/api/images/{id}", &["GET", "PATCH"], get(one).patch(update)),
        route("/api/images/{id}/history", &["GET"], get(history)),
        route("/api/images/{id}/lineage", &["GET"], get(lineage)),
        route("/api/images/{id}/recipe", &["GET"], get(recipe)),
        route("/api/images/{id}/export", &["GET"], get(export)),
        route("/api/blob/{hash}", &["GET"], get(blob)),
        route("/api/stats", &["GET"], get(stats)),
        route("/api/breed", &["POST"], post(breed)),
        route("/api/slide", &["POST"], post(slide)),
        route("/api/sliders", &["GET"], get(sliders)),
        route("/api/photos", &["POST"], post(photos).layer(upload())),
        route("/api/jobs/{id}", &["GET", "DELETE"], get(job).delete(cancel_job)),
        route("/api/jobs/{id}/events", &["GET"], get(job_events)),
        route("/api/paintings", &["POST"], post(paintings).layer(upload())),
        route("/api/art", &["POST"], post(art)),
        route("/api/animate", &["POST"], post(animate)),
    ]
}

pub fn router(state: Arc<AppState>) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |r, rt| r.route(rt.path, rt.handler))
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// The API's OpenAPI 3.1 document (hand-written, embedded; served at `/api/openapi.json`).
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    let mut r = OPENAPI_JSON.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
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
    let limit = body_limit(req.uri().path());
    if announced.is_some_and(|n| n > limit as u64) {
        return ApiError(StatusCode::PAYLOAD_TOO_LARGE, too_large(limit)).into_response();
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

/// The largest body a route takes: uploads (a photo, a painting) up to
/// [`render::MAX_UPLOAD_BYTES`], everything else JSON up to [`MAX_JSON_BYTES`].
fn body_limit(path: &str) -> usize {
    if matches!(path, "/api/photos" | "/api/paintings") {
        render::MAX_UPLOAD_BYTES
    } else {
        MAX_JSON_BYTES
    }
}

fn too_large(limit: usize) -> String {
    if limit >= 1 << 20 {
        format!("the upload is over {} MiB: use a smaller picture (a portrait of a few MB is plenty)", limit >> 20)
    } else {
        format!("the body is over {} KiB", limit / 1024)
    }
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
    /// a recipe to keep instead of a seed (a bred child, a slid face), as `/api/breed` or
    /// `/api/slide` returned it
    recipe: Option<serde_json::Value>,
    /// the kept images it came from (a child's parents, a slid face's source)
    #[serde(default)]
    parents: Vec<i64>,
    /// or: child `child` of this `/api/breed` request (its parents are the request's)
    breed: Option<BreedBody>,
    child: Option<usize>,
    /// or: this `/api/slide` request's face (its parent is the slid image)
    slide: Option<SlideBody>,
    /// or: an `/api/art` result, by its `token` (its parent is the image the art was applied to)
    art: Option<String>,
    /// keep it even when it is a near copy of a training image (recorded in its label)
    #[serde(default)]
    allow_near_copy: bool,
}

/// `POST /api/keep {"model","seed","psi","noise","size","curator","notes","tags"}` → the kept
/// image (201; 200 when these exact pixels are already kept). Instead of a seed: `"breed": {an
/// /api/breed request with its seed}, "child": k` (parents recorded from the request), `"slide":
/// {an /api/slide request}` (parent: its image), or `"recipe": {...}, "parents": [ids]`.
async fn keep(State(s): St, Json(b): Json<KeepBody>) -> Result<Response, ApiError> {
    let curator = clean_curator(b.curator.as_deref())?;
    let tags = clean_tags(&b.tags)?;
    check_notes(&b.notes)?;
    let given = [b.recipe.is_some(), b.breed.is_some(), b.slide.is_some(), b.art.is_some()].iter().filter(|x| **x).count();
    if given > 1 {
        return Err(ApiError::bad("give one of `recipe`, `breed` (with `child`), `slide` or `art`"));
    }
    if b.child.is_some() != b.breed.is_some() {
        return Err(ApiError::bad("`breed` and `child` go together: the litter and which child of it to keep"));
    }
    let mut parents = b.parents.clone();
    let (r, model) = if let Some(token) = &b.art {
        if !b.parents.is_empty() {
            return Err(ApiError::bad("parents: an art picture's parent is the image it was made from (do not name it)"));
        }
        let r = s.art.get(token).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "no such art result here (the studio holds the last 16): apply the art step again, then keep it".into()))?;
        let v: serde_json::Value = serde_json::from_str(&r.recipe).map_err(|e| ApiError::internal(e.into()))?;
        let ar = limner_art::step::ArtRecipe::from_value(&v).ok_or_else(|| ApiError::internal(anyhow::anyhow!("an art result without its recipe")))?;
        let model = match &ar.source {
            limner_art::step::ArtSource::Image { image, .. } => {
                parents = vec![*image];
                s.store.get(*image).await?.map(|im| im.model).unwrap_or_else(|| "art".into())
            }
            limner_art::step::ArtSource::Photo { .. } => "photo".into(),
        };
        (r, model)
    } else {
        match &b.recipe {
        _ if b.breed.is_some() || b.slide.is_some() => {
            if !b.parents.is_empty() {
                return Err(ApiError::bad("parents: a kept child's parents are its litter's, a slid face's its source (do not name them)"));
            }
            let r = if let (Some(br), Some(k)) = (&b.breed, b.child) {
                if k >= MAX_CHILDREN {
                    return Err(ApiError::bad(format!("child: 0 to {}", MAX_CHILDREN - 1)));
                }
                // child k depends only on (parents, genes, mutation, seed, k): breed k + 1
                let mut br = br.clone();
                if br.seed.is_none() {
                    return Err(ApiError::bad("breed.seed: say which litter the child is from"));
                }
                br.children = Some(k + 1);
                parents = br.parents.clone();
                bred(&s, &br).await?.1.pop().ok_or_else(|| ApiError::internal(anyhow::anyhow!("an empty litter")))?
            } else {
                let sl = b.slide.as_ref().expect("a slide");
                parents = sl.image.into_iter().collect();
                slid(&s, sl).await?
            };
            let recipe: limner_edit::recipe::Recipe = serde_json::from_str(&r.recipe).map_err(|e| ApiError::internal(e.into()))?;
            (r, recipe.model.name)
        }
        Some(v) => {
            let recipe = checked_recipe(&s, v).await?;
            check_parents(&s, &b.parents, &recipe).await?;
            let model = recipe.model.name.clone();
            (rendered_recipe(&s, recipe).await?, model)
        }
        None => {
            if b.face.seed.is_none() {
                return Err(ApiError::bad(
                    "seed: say which face to keep (or give its recipe)",
                ));
            }
            if !b.parents.is_empty() {
                return Err(ApiError::bad(
                    "parents: only a kept recipe (a bred child, a slid face) has parents",
                ));
            }
            let req = b.face.into_request(&s).await?;
            let model = req.model.clone();
            (rendered(&s, &req).await?, model)
        }
        }
    };
    // a generated face is checked against its model's training set; the kept file's label
    // carries the nearest distances (the same pixels as shown)
    let mut png = r.png.clone();
    if b.art.is_none() {
        let recipe: limner_edit::recipe::Recipe = serde_json::from_str(&r.recipe).map_err(|e| ApiError::internal(e.into()))?;
        match checked(&s, &recipe, &png, b.allow_near_copy).await? {
            Ok(Some(record)) => png = Arc::new(render::with_record(&png, &recipe, &record)?),
            Ok(None) => {}
            Err(refused) => return Ok(refused),
        }
    }
    let blobs = s.blobs.clone();
    let hash = tokio::task::spawn_blocking(move || blobs.put(&png))
        .await
        .map_err(|e| ApiError::internal(e.into()))??;
    if let Some(id) = s.store.find_hash(&hash).await? {
        let im = s
            .store
            .get(id)
            .await?
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("image {id} vanished")))?;
        return Ok((StatusCode::OK, Json(im)).into_response());
    }
    // limner-edit's recipe, as its own JSON text (f32s as typed: 0.7, not 0.699999988…)
    let recipe: serde_json::Value =
        serde_json::from_str(&r.recipe).map_err(|e| ApiError::internal(e.into()))?;
    let id = s
        .store
        .insert(&NewImage {
            hash: &hash,
            width: r.width as i64,
            height: r.height as i64,
            model: &model,
            recipe: &recipe,
            parents: &parents,
            author: &curator,
            notes: &b.notes,
            tags: &tags,
        })
        .await?;
    let im = s
        .store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("image {id} vanished")))?;
    Ok((StatusCode::CREATED, Json(im)).into_response())
}

/// The copy check of a generated face on the pool: `Ok(record)` to keep or export it (none when
/// no training index applies), `Err(answer)`: 409 with the reason, the distances and the face
/// beside the closest training thumbnail (`side_by_side`, a PNG data URL).
async fn checked(s: &AppState, recipe: &limner_edit::recipe::Recipe, png: &Arc<Vec<u8>>, allow: bool) -> Result<Result<Option<serde_json::Value>, Response>, ApiError> {
    let (model, png) = (recipe.model.name.clone(), png.clone());
    match on_pool(s, "check the face against its training set", move |m| render::copy_check(m, &model, &png, allow)).await? {
        render::Checked::Passed(record) => Ok(Ok(record)),
        render::Checked::Refused { message, side_by_side, distances } => Ok(Err((
            StatusCode::CONFLICT,
            Json(json!({"error": message, "near_copy": true, "distances": distances, "side_by_side": side_by_side.as_deref().map(data_url)})),
        )
            .into_response())),
    }
}

/// Most parents of a litter, children in one litter, slider moves in one request.
pub const MAX_PARENTS: usize = 8;
pub const MAX_CHILDREN: usize = 12;
pub const MAX_MOVES: usize = 32;
/// Slider values (standard deviations) and mutation the API takes.
pub const SLIDER_RANGE: f32 = 10.0;
pub const MUTATION_RANGE: (f32, f32) = (0.0, 4.0);

fn busy() -> ApiError {
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "the studio is busy: every render worker and queue slot is taken; retry in a second".into(),
    )
}

/// Runs generation work on the bounded pool (503 when it is full); the work is skipped if this
/// future is dropped (the client went away) before a worker reaches it.
async fn on_pool<T: Send + 'static>(
    s: &AppState,
    what: &str,
    f: impl FnOnce(&mut render::Models) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let rx = s.pool.submit_with(f).map_err(|_| busy())?;
    rx.await
        .map_err(|_| ApiError::internal(anyhow::anyhow!("a render worker stopped")))?
        .map_err(|e| {
            ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("cannot {what}: {e}"),
            )
        })
}

async fn rendered_recipe(
    s: &AppState,
    r: limner_edit::recipe::Recipe,
) -> Result<Rendered, ApiError> {
    on_pool(s, "render the recipe", move |m| {
        render::render_recipe(m, &r)
    })
    .await
}

/// A recipe from the client: parsed and checked by limner-edit, on a model offered here.
async fn checked_recipe(
    s: &AppState,
    v: &serde_json::Value,
) -> Result<limner_edit::recipe::Recipe, ApiError> {
    let r = limner_edit::recipe::Recipe::from_json(&v.to_string())
        .map_err(|e| ApiError::bad(format!("recipe: {e:#}")))?;
    check_offered(s, &r.model.name, r.size).await?;
    Ok(r)
}

/// Errors unless `model` at `size` is offered here.
async fn check_offered(s: &AppState, model: &str, size: usize) -> Result<(), ApiError> {
    let models = offered_models(s).await?;
    let Some(m) = models.iter().find(|m| m.name == model) else {
        return Err(ApiError::bad(format!(
            "model `{}` is not offered here (see /api/models)",
            model.chars().take(100).collect::<String>()
        )));
    };
    if !m.sizes.contains(&size) {
        return Err(ApiError::bad(format!(
            "size: model `{}` makes {:?}",
            m.name, m.sizes
        )));
    }
    Ok(())
}

/// The kept images `ids` (each must exist, no repeats).
async fn kept(s: &AppState, ids: &[i64]) -> Result<Vec<Image>, ApiError> {
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            return Err(ApiError::bad(format!("image {id} is named twice")));
        }
        out.push(
            s.store
                .get(*id)
                .await?
                .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no kept image {id}")))?,
        );
    }
    Ok(out)
}

/// A kept recipe's parents: kept images, as many as a bred child's recipe names.
async fn check_parents(
    s: &AppState,
    parents: &[i64],
    r: &limner_edit::recipe::Recipe,
) -> Result<(), ApiError> {
    if parents.len() > MAX_PARENTS {
        return Err(ApiError::bad(format!("parents: at most {MAX_PARENTS}")));
    }
    kept(s, parents).await?;
    if let limner_edit::recipe::Origin::Breed { parents: named, .. } = &r.origin {
        if named.len() != parents.len() {
            return Err(ApiError::bad(format!(
                "parents: the child's recipe names {} parents, the request {}",
                named.len(),
                parents.len()
            )));
        }
    }
    Ok(())
}

fn stored_recipe(im: &Image) -> Result<limner_edit::recipe::Recipe, ApiError> {
    if let Some(a) = limner_art::step::ArtRecipe::from_value(&im.recipe) {
        let from = match a.source {
            limner_art::step::ArtSource::Image { image, .. } => format!("image {image}"),
            limner_art::step::ArtSource::Photo { .. } => "a photo".into(),
        };
        return Err(ApiError::bad(format!("image {} is a picture made by the art step (from {from}), not a generator's face: breed, slide and animate its source face instead", im.id)));
    }
    limner_edit::recipe::Recipe::from_json(&im.recipe.to_string())
        .map_err(|e| ApiError::bad(format!("image {}'s recipe: {e:#}", im.id)))
}

fn data_url(png: &[u8]) -> String {
    use base64::Engine;
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

fn rendered_json(r: &Rendered) -> Result<serde_json::Value, ApiError> {
    let recipe: serde_json::Value =
        serde_json::from_str(&r.recipe).map_err(|e| ApiError::internal(e.into()))?;
    Ok(
        json!({ "png": data_url(&r.png), "width": r.width, "height": r.height, "recipe": recipe, "render_ms": r.render_ms }),
    )
}

#[derive(Clone, Deserialize)]
pub struct BreedBody {
    parents: Vec<i64>,
    /// per layer group, the first parent's weight (0–1; the others share the rest)
    #[serde(default)]
    coarse: Option<f32>,
    #[serde(default)]
    middle: Option<f32>,
    #[serde(default)]
    fine: Option<f32>,
    #[serde(default)]
    mutation: f32,
    seed: Option<u64>,
    children: Option<usize>,
}

/// `POST /api/breed {"parents":[ids], "coarse","middle","fine": first parent's weight 0-1,
/// "mutation": 0-4, "seed", "children": 1-12}` → `{"seed", "parents", "children": [{"png": data
/// URL, "recipe", ...}]}`. Children are not kept: `POST /api/keep {"recipe", "parents"}` keeps one.
async fn breed(
    State(s): St,
    Json(b): Json<BreedBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (seed, litter) = bred(&s, &b).await?;
    let children = litter
        .iter()
        .map(rendered_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(
        json!({ "seed": seed, "parents": b.parents, "children": children }),
    ))
}

/// A checked litter: its seed and children.
async fn bred(s: &AppState, b: &BreedBody) -> Result<(u64, Vec<Rendered>), ApiError> {
    if b.parents.len() < 2 || b.parents.len() > MAX_PARENTS {
        return Err(ApiError::bad(format!(
            "parents: 2 to {MAX_PARENTS} kept images"
        )));
    }
    let children = b.children.unwrap_or(6);
    if !(1..=MAX_CHILDREN).contains(&children) {
        return Err(ApiError::bad(format!("children: 1 to {MAX_CHILDREN}")));
    }
    if !b.mutation.is_finite() || !(MUTATION_RANGE.0..=MUTATION_RANGE.1).contains(&b.mutation) {
        return Err(ApiError::bad(format!(
            "mutation: a number from {} to {}",
            MUTATION_RANGE.0, MUTATION_RANGE.1
        )));
    }
    let mut genes = vec![];
    for (name, v) in [("coarse", b.coarse), ("middle", b.middle), ("fine", b.fine)] {
        if let Some(v) = v {
            if !v.is_finite() || !(0.0..=1.0).contains(&v) {
                return Err(ApiError::bad(format!(
                    "{name}: the first parent's share, from 0 to 1"
                )));
            }
            genes.push(format!("{name}={v}"));
        }
    }
    let seed = b
        .seed
        .unwrap_or_else(|| rand::random::<u64>() & render::MAX_SEED);
    if seed > render::MAX_SEED {
        return Err(ApiError::bad(format!("seed: 0 to {}", render::MAX_SEED)));
    }
    let ims = kept(&s, &b.parents).await?;
    let parents = ims
        .iter()
        .map(stored_recipe)
        .collect::<Result<Vec<_>, _>>()?;
    let (m0, s0) = (parents[0].model.clone(), parents[0].size);
    if let Some((im, _)) = ims
        .iter()
        .zip(&parents)
        .find(|(_, p)| p.model.sha256 != m0.sha256 || p.size != s0)
    {
        return Err(ApiError::bad(format!("parents: image {} is from another model or size than image {} (breed faces of one model)", im.id, ims[0].id)));
    }
    check_offered(&s, &m0.name, s0).await?;
    let req = render::BreedRequest {
        parents,
        options: limner_edit::breed::BreedOptions {
            genes: genes.join(","),
            mutation: b.mutation,
            seed,
            children,
        },
    };
    let litter = on_pool(s, "breed", move |m| render::breed(m, &req)).await?;
    Ok((seed, litter))
}

#[derive(Deserialize)]
pub struct Move {
    slider: String,
    value: f32,
}

#[derive(Deserialize)]
pub struct SlideBody {
    /// a kept image to start from…
    image: Option<i64>,
    /// …or a recipe
    recipe: Option<serde_json::Value>,
    #[serde(default)]
    moves: Vec<Move>,
}

fn is_slider_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-' | b','))
}

/// `POST /api/slide {"image": id | "recipe": {...}, "moves": [{"slider": "age", "value": 1.5}]}`
/// → `{"png": data URL, "recipe", "width", "height", "render_ms"}`; values in standard
/// deviations, -10 to 10.
async fn slide(
    State(s): St,
    Json(b): Json<SlideBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(rendered_json(&slid(&s, &b).await?)?))
}

/// A checked slide, rendered.
async fn slid(s: &AppState, b: &SlideBody) -> Result<Rendered, ApiError> {
    if b.moves.len() > MAX_MOVES {
        return Err(ApiError::bad(format!("moves: at most {MAX_MOVES}")));
    }
    let mut moves = Vec::with_capacity(b.moves.len());
    for m in &b.moves {
        if !is_slider_id(&m.slider) {
            return Err(ApiError::bad(
                "slider: an id from /api/sliders (age, sefa:coarse:0)",
            ));
        }
        if !m.value.is_finite() || m.value.abs() > SLIDER_RANGE {
            return Err(ApiError::bad(format!(
                "slider `{}`: a value from -{SLIDER_RANGE} to {SLIDER_RANGE}",
                m.slider
            )));
        }
        moves.push((m.slider.clone(), m.value));
    }
    let base = match (b.image, &b.recipe) {
        (Some(id), None) => {
            let im =
                s.store.get(id).await?.ok_or_else(|| {
                    ApiError(StatusCode::NOT_FOUND, format!("no kept image {id}"))
                })?;
            let r = stored_recipe(&im)?;
            check_offered(&s, &r.model.name, r.size).await?;
            r
        }
        (None, Some(v)) => checked_recipe(&s, v).await?,
        _ => {
            return Err(ApiError::bad(
                "give `image` (a kept image's id) or `recipe`, one of them",
            ))
        }
    };
    on_pool(s, "move the sliders", move |m| render::slide(m, &base, &moves)).await
}

#[derive(Deserialize)]
pub struct SlidersQuery {
    model: Option<String>,
    size: Option<usize>,
}

/// `GET /api/sliders?model=default&size=` → `{"model", "size", "sliders": [{"id", "kind": named|sefa, "group", "label"}]}`
async fn sliders(
    State(s): St,
    Query(q): Query<SlidersQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = q
        .model
        .unwrap_or_else(|| limner_models::DEFAULT_NAME.to_string());
    if !render::is_model_name(&name) {
        return Err(ApiError::bad("model: give a name from /api/models"));
    }
    let models = offered_models(&s).await?;
    let size = match q.size {
        Some(z) => z,
        None => models
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.default_size)
            .unwrap_or(0),
    };
    check_offered(&s, &name, size).await?;
    let n2 = name.clone();
    let list = on_pool(&s, "list the sliders", move |m| {
        render::sliders(m, &n2, size)
    })
    .await?;
    Ok(Json(
        json!({ "model": name, "size": size, "sliders": list }),
    ))
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

/// Most generations and images a lineage answer holds.
pub const MAX_GENERATIONS: usize = 8;
pub const MAX_LINEAGE_IMAGES: usize = 128;

#[derive(Deserialize)]
pub struct LineageQuery {
    generations: Option<usize>,
}

/// `GET /api/images/{id}/lineage?generations=4` → `{"root": id, "generations": n, "images": [{id,
/// url, parents, model, author, created_ms, generation}], "truncated"}`: the image and its
/// ancestors, breadth first, `generation` 0 for the image, 1 for its parents, 2 for theirs…
/// (each image once, at its nearest generation; at most 128).
async fn lineage(State(s): St, Path(id): Path<i64>, Query(q): Query<LineageQuery>) -> Result<Json<serde_json::Value>, ApiError> {
    let generations = q.generations.unwrap_or(4);
    if !(1..=MAX_GENERATIONS).contains(&generations) {
        return Err(ApiError::bad(format!("generations: 1 to {MAX_GENERATIONS}")));
    }
    let root = s.store.get(id).await?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no image {id}")))?;
    let mut seen = std::collections::HashSet::from([id]);
    let mut out = vec![];
    let mut level = vec![root];
    let mut truncated = false;
    for g in 0..generations {
        let mut next = vec![];
        for im in &level {
            for p in &im.parents {
                if g + 1 < generations && seen.insert(*p) {
                    if seen.len() > MAX_LINEAGE_IMAGES {
                        truncated = true;
                        continue;
                    }
                    if let Some(pi) = s.store.get(*p).await? {
                        next.push(pi);
                    }
                }
            }
        }
        out.extend(level.into_iter().map(|im| json!({"id": im.id, "url": im.url, "parents": im.parents, "model": im.model, "author": im.author, "created_ms": im.created_ms, "generation": g})));
        if next.is_empty() {
            break;
        }
        level = next;
    }
    Ok(Json(json!({"root": id, "generations": generations, "images": out, "truncated": truncated})))
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
pub struct ExportQuery {
    format: Option<String>,
    /// export a near copy of a training image anyway (recorded in its label)
    #[serde(default)]
    allow_near_copy: bool,
}

/// `GET /api/images/{id}/export?format=png|jpeg`: the kept face as a file to take away, labelled
/// as AI-made with its recipe, the curator who kept it as creator.
async fn export(State(s): St, Path(id): Path<i64>, Query(q): Query<ExportQuery>) -> Result<Response, ApiError> {
    let format = render::ExportFormat::parse(q.format.as_deref().unwrap_or("png")).ok_or_else(|| ApiError::bad("format: png or jpeg"))?;
    let im = s.store.get(id).await?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no image {id}")))?;
    let blobs = s.blobs.clone();
    let hash = im.hash.clone();
    let png = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        blobs.get(&hash)?.ok_or_else(|| anyhow::anyhow!("image {id}'s file {hash} is missing (run `limner studio --check`)"))
    })
    .await
    .map_err(|e| ApiError::internal(e.into()))??;
    // the nearest training distances: those measured when it was kept (in its file's label),
    // else (a face kept before the check existed) measured now, refusing a near copy
    let record = match limner_audit::guard::record_in(&png) {
        Some(r) => Some(r),
        None => match limner_edit::recipe::Recipe::from_json(&im.recipe.to_string()) {
            Ok(recipe) => match checked(&s, &recipe, &Arc::new(png.clone()), q.allow_near_copy).await? {
                Ok(r) => r,
                Err(refused) => return Ok(refused),
            },
            // an art step's picture: its source face was checked when kept
            Err(_) => None,
        },
    };
    let bytes = tokio::task::spawn_blocking(move || render::export(&png, &im.recipe, &im.author, format, record.as_ref()))
        .await
        .map_err(|e| ApiError::internal(e.into()))??;
    let mut r = Response::new(Body::from(bytes));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.mime()));
    r.headers_mut().insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&format!("attachment; filename=\"limner-{id}.{}\"", format.extension())).unwrap());
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

// ---------------------------------------------------------------------------------------
// Your photo

#[derive(Deserialize)]
pub struct PhotoQuery {
    model: Option<String>,
    size: Option<usize>,
    steps: Option<usize>,
}

/// An upload's body must say it is a picture (`image/jpeg`, `image/png`, `image/webp`) or raw
/// bytes (`application/octet-stream`): a form another site's page posts is never one. The bytes
/// are then judged by decoding them, not by this header.
fn check_upload_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if matches!(mime.as_str(), "image/jpeg" | "image/png" | "image/webp" | "application/octet-stream") {
        return Ok(());
    }
    Err(ApiError(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("send the picture's bytes as the body with Content-Type image/jpeg, image/png, image/webp or application/octet-stream (got `{}`)", mime.chars().take(60).collect::<String>()),
    ))
}

/// `POST /api/photos?model=default&steps=150` with a photo as the body (JPEG, PNG or WebP, at
/// most 16 MiB; `curl -H 'Content-Type: image/jpeg' --data-binary @me.jpg`) → 202 `{"id", "status", "aligned": PNG data URL,
/// "faces", ...}`: the face was found and aligned, and its projection is queued as a job (follow
/// it at `/api/jobs/{id}`), with its `screening` (nsfwjs' probabilities). Not an image → 415;
/// explicit (nsfwjs: Porn + Hentai + Sexy over `--nsfw-threshold`) → 422; no face → 422;
/// nothing is stored in any of these cases.
async fn photos(State(s): St, Query(q): Query<PhotoQuery>, headers: HeaderMap, body: axum::body::Bytes) -> Result<Response, ApiError> {
    check_upload_type(&headers)?;
    let model = q.model.unwrap_or_else(|| limner_models::DEFAULT_NAME.to_string());
    if !render::is_model_name(&model) {
        return Err(ApiError::bad("model: give a name from /api/models"));
    }
    let models = offered_models(&s).await?;
    let Some(info) = models.iter().find(|m| m.name == model) else { return Err(ApiError::bad(format!("model `{model}` is not offered here (see /api/models)"))) };
    let size = q.size.unwrap_or(info.default_size);
    check_offered(&s, &model, size).await?;
    let steps = q.steps.unwrap_or(render::default_project_steps(&model));
    if !(1..=render::MAX_PROJECT_STEPS).contains(&steps) {
        return Err(ApiError::bad(format!("steps: 1 to {}", render::MAX_PROJECT_STEPS)));
    }
    if body.is_empty() {
        return Err(ApiError::bad("send the photo as the request body (curl -H 'Content-Type: image/jpeg' --data-binary @me.jpg)"));
    }
    // decoded, screened and its face found on the pool, so the memory a photo takes is bounded
    // by the workers, whatever the number of uploads at once
    let m2 = model.clone();
    let threshold = s.nsfw_threshold;
    let found = on_pool(&s, "use the photo", move |m| -> anyhow::Result<Result<(String, render::Aligned, render::Screening), ApiError>> {
        let up = match render::decode_upload(&body, "photo") {
            Ok(u) => u,
            Err(e) => return Ok(Err(ApiError(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("{e:#}")))),
        };
        let screened = render::screen(m, &up, threshold)?;
        if screened.refused() {
            return Ok(Err(explicit(&screened, "photo")));
        }
        Ok(Ok((up.sha256.clone(), render::align(m, &up, &m2, size)?, screened)))
    })
    .await?;
    let (sha256, aligned, screened) = found?;
    let job = s.jobs.add(model, size, steps, sha256, aligned.png, aligned.faces).map_err(|_| {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("{} projections are waiting or running: wait for one to finish", crate::jobs::MAX_JOBS))
    })?;
    let (j, target) = (job.clone(), aligned.image);
    let rx = match s.pool.submit_with(move |m| crate::jobs::run_projection(m, &j, &target)) {
        Ok(rx) => rx,
        Err(_) => {
            s.jobs.remove(job.id);
            return Err(busy());
        }
    };
    let j = job.clone();
    tokio::spawn(async move {
        let err = match rx.await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some("a render worker stopped".into()),
        };
        if let Some(e) = err {
            j.update(|p| {
                p.status = crate::jobs::Status::Failed;
                p.error = Some(e);
            });
        }
    });
    let mut v = job_json(&job)?;
    v["aligned"] = json!(data_url(&job.aligned_png));
    v["screening"] = json!(screened);
    Ok((StatusCode::ACCEPTED, Json(v)).into_response())
}

/// The refusal of an upload nsfwjs' classifier finds explicit.
fn explicit(screened: &render::Screening, what: &str) -> ApiError {
    ApiError(StatusCode::UNPROCESSABLE_ENTITY, screened.message(what))
}

fn job_json(job: &crate::jobs::Job) -> Result<serde_json::Value, ApiError> {
    let p = job.progress();
    let per_step = match (p.started_ms, p.step) {
        (Some(t), n) if n > 0 => Some((p.elapsed_ms - t) / n as f64),
        _ => None,
    };
    Ok(json!({
        "id": job.id,
        "kind": "projection",
        "status": p.status,
        "model": job.model,
        "size": job.size,
        "steps": job.steps,
        "step": p.step,
        "distance": p.distance,
        "start_distance": p.start_distance,
        "faces": job.faces,
        "source_sha256": job.source_sha256,
        "preview": p.preview.as_ref().map(|(_, png)| data_url(png)),
        "preview_step": p.preview.as_ref().map(|(n, _)| *n),
        "result": p.result.as_ref().map(rendered_json).transpose()?,
        "error": p.error,
        "elapsed_ms": p.elapsed_ms,
        "ms_per_step": per_step,
    }))
}

fn find_job(s: &AppState, id: u64) -> Result<Arc<crate::jobs::Job>, ApiError> {
    s.jobs.get(id).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no job {id} (the studio remembers the last {} projections)", crate::jobs::MAX_JOBS)))
}

/// `GET /api/jobs/{id}` → the projection's progress: `status` (queued, running, done, failed,
/// cancelled), `step` of `steps`, `distance`, a `preview` PNG data URL every few steps, and when
/// done the `result` (`{"png", "recipe", ...}`: keep it with `POST /api/keep {"recipe"}`). A job
/// nobody asks about for a minute is cancelled.
async fn job(State(s): St, Path(id): Path<u64>) -> Result<Json<serde_json::Value>, ApiError> {
    let j = find_job(&s, id)?;
    j.touch();
    Ok(Json(job_json(&j)?))
}

/// `GET /api/jobs/{id}/events`: the projection's progress as Server-Sent Events (what the page's
/// `EventSource` follows; `GET /api/jobs/{id}` stays for polling): an `event: progress` whose
/// `data` is the JSON of `GET /api/jobs/{id}` at once, then on every change (every step; at
/// least every 15 s while nothing changes), the last one when the job has finished, after
/// which the stream ends. An open stream counts as polling (the job is not abandoned).
async fn job_events(State(s): St, Path(id): Path<u64>) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, Sse};
    let j = find_job(&s, id)?;
    j.touch();
    let rx = j.subscribe();
    let events = futures_util::stream::unfold((j, rx, true, false), |(j, mut rx, first, finished)| async move {
        if finished {
            return None;
        }
        if !first {
            let _ = tokio::time::timeout(Duration::from_secs(15), rx.changed()).await;
        }
        rx.borrow_and_update();
        j.touch();
        let finished = j.progress().status.finished();
        let ev = match job_json(&j).map_err(|e| e.1).and_then(|v| Event::default().event("progress").json_data(v).map_err(|e| e.to_string())) {
            Ok(ev) => ev,
            Err(e) => Event::default().event("error").data(e),
        };
        Some((Ok::<_, std::convert::Infallible>(ev), (j, rx, false, finished)))
    });
    let mut r = Sse::new(events).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(r)
}

/// `DELETE /api/jobs/{id}` cancels the projection (it stops at its next step).
async fn cancel_job(State(s): St, Path(id): Path<u64>) -> Result<Json<serde_json::Value>, ApiError> {
    let j = find_job(&s, id)?;
    j.cancel();
    Ok(Json(job_json(&j)?))
}

// ---------------------------------------------------------------------------------------
// Art

/// `POST /api/paintings` with a picture as the body (JPEG, PNG or WebP, at most 16 MiB) → 201
/// `{"painting": sha256, "url", "width", "height"}`: kept (at most 512 px, pixels only) as a
/// style for `/api/art`, with its `screening`. Not an image → 415; explicit (as a photo) → 422;
/// nothing stored either way.
async fn paintings(State(s): St, headers: HeaderMap, body: axum::body::Bytes) -> Result<Response, ApiError> {
    check_upload_type(&headers)?;
    if body.is_empty() {
        return Err(ApiError::bad("send the painting as the request body (curl -H 'Content-Type: image/jpeg' --data-binary @painting.jpg)"));
    }
    // decoded and screened on the pool (bounded memory, as a photo)
    let threshold = s.nsfw_threshold;
    let made = on_pool(&s, "use the painting", move |m| -> anyhow::Result<Result<(Vec<u8>, render::Screening), ApiError>> {
        let up = match render::decode_upload(&body, "painting") {
            Ok(up) => up,
            Err(e) => return Ok(Err(ApiError(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("{e:#}")))),
        };
        let screened = render::screen(m, &up, threshold)?;
        if screened.refused() {
            return Ok(Err(explicit(&screened, "painting")));
        }
        Ok(Ok((render::painting_png(&up)?, screened)))
    })
    .await?;
    let (png, screened) = made?;
    let blobs = s.blobs.clone();
    let (hash, w, h) = tokio::task::spawn_blocking(move || -> Result<(String, u32, u32), ApiError> {
        let img = image::load_from_memory_with_format(&png, image::ImageFormat::Png).map_err(|e| ApiError::internal(e.into()))?;
        Ok((blobs.put(&png)?, img.width(), img.height()))
    })
    .await
    .map_err(|e| ApiError::internal(e.into()))??;
    Ok((StatusCode::CREATED, Json(json!({"painting": hash, "url": format!("/api/blob/{hash}"), "width": w, "height": h, "screening": screened}))).into_response())
}

#[derive(Deserialize)]
pub struct ArtBody {
    /// a kept image…
    image: Option<i64>,
    /// …or the photo of a projection job (its aligned face: the result is a composite of it)
    photo: Option<u64>,
    art: limner_art::step::ArtStep,
}

/// `POST /api/art {"image": id, "art": {"kind": "style", "preset": "style-07" | "painting_sha256":
/// from /api/paintings, "strength": 0-1, "keep_colours": bool} | {"kind": "dream", "layer":
/// "mixed3", "strength": 0-1, "seed": 0}}` → `{"png", "recipe", "token", ...}`; `POST /api/keep
/// {"art": token}` keeps it. Instead of `image`, `"photo": job` styles the uploaded photo's face.
async fn art(State(s): St, Json(b): Json<ArtBody>) -> Result<Json<serde_json::Value>, ApiError> {
    use limner_art::step::{ArtRecipe, ArtSource, ArtStep};
    b.art.check().map_err(|e| ApiError::bad(format!("art: {e:#}")))?;
    let (png, source) = match (b.image, b.photo) {
        (Some(id), None) => {
            let im = s.store.get(id).await?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no kept image {id}")))?;
            let blobs = s.blobs.clone();
            let h = im.hash.clone();
            let png = tokio::task::spawn_blocking(move || blobs.get(&h)).await.map_err(|e| ApiError::internal(e.into()))??;
            let png = png.ok_or_else(|| ApiError::internal(anyhow::anyhow!("image {id}'s file is missing (run `limner studio --check`)")))?;
            (Arc::new(png), ArtSource::Image { image: id, sha256: im.hash, recipe: im.recipe })
        }
        (None, Some(job)) => {
            let j = find_job(&s, job)?;
            (j.aligned_png.clone(), ArtSource::Photo { sha256: j.source_sha256.clone() })
        }
        _ => return Err(ApiError::bad("give `image` (a kept image's id) or `photo` (a projection job's id), one of them")),
    };
    let painting = match &b.art {
        ArtStep::Style { painting_sha256: Some(h), .. } => {
            if !crate::blobs::is_hash(h) {
                return Err(ApiError::bad("painting_sha256: the `painting` /api/paintings answered"));
            }
            let blobs = s.blobs.clone();
            let h2 = h.clone();
            let p = tokio::task::spawn_blocking(move || blobs.get(&h2)).await.map_err(|e| ApiError::internal(e.into()))??;
            Some(p.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no painting {h} here: upload it with POST /api/paintings")))?)
        }
        _ => None,
    };
    let recipe = ArtRecipe::new(b.art, source);
    let r = on_pool(&s, "apply the art step", move |m| {
        let img = image::load_from_memory_with_format(&png, image::ImageFormat::Png)?.to_rgb8();
        render::art(m, img.as_raw(), img.width() as usize, img.height() as usize, painting.as_deref(), &recipe)
    })
    .await?;
    let token = crate::blobs::hash_bytes(&r.png);
    s.art.put(token.clone(), r.clone());
    let mut v = rendered_json(&r)?;
    v["token"] = json!(token);
    Ok(Json(v))
}

// ---------------------------------------------------------------------------------------
// Animate

#[derive(Deserialize)]
pub struct SweepBody {
    image: i64,
    slider: String,
    from: f32,
    to: f32,
}

#[derive(Deserialize)]
pub struct AnimateBody {
    /// keyframes: kept images, in order…
    images: Option<Vec<i64>>,
    /// …or a kept image's lineage: its first parent → it → its other parents…
    lineage: Option<i64>,
    /// …or one kept image with a slider swept
    sweep: Option<SweepBody>,
    frames: Option<usize>,
    fps: Option<u16>,
    #[serde(default, rename = "loop")]
    looped: bool,
    /// gif (default) or apng; mp4 is explained, not written
    format: Option<String>,
    /// write it even when a frame is a near copy of a training image (recorded in its label)
    #[serde(default)]
    allow_near_copy: bool,
}

/// `POST /api/animate {"images": [ids] | "lineage": id | "sweep": {"image", "slider", "from",
/// "to"}, "frames": 24, "fps": 12, "loop": false, "format": "gif" | "apng"}` → the animation file
/// (labelled AI-made, its model, frames and fps). MP4 is not written (no pure-Rust encoder).
async fn animate(State(s): St, Json(b): Json<AnimateBody>) -> Result<Response, ApiError> {
    use limner_edit::animate::Format;
    let fmt = b.format.as_deref().unwrap_or("gif");
    if fmt.len() > 8 || !fmt.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::bad("format: gif or apng"));
    }
    let format = Format::from_path(std::path::Path::new(&format!("animation.{fmt}"))).map_err(|e| ApiError::bad(format!("format `{fmt}`: {e:#}")))?;
    let frames = b.frames.unwrap_or(24);
    if !(2..=render::MAX_FRAMES).contains(&frames) {
        return Err(ApiError::bad(format!("frames: 2 to {}", render::MAX_FRAMES)));
    }
    let fps = b.fps.unwrap_or(12);
    if !(1..=50).contains(&fps) {
        return Err(ApiError::bad("fps: 1 to 50"));
    }
    let given = [b.images.is_some(), b.lineage.is_some(), b.sweep.is_some()].iter().filter(|x| **x).count();
    if given != 1 {
        return Err(ApiError::bad("give one of `images` (keyframes), `lineage` (a kept image) or `sweep`"));
    }
    let ids: Vec<i64> = if let Some(ids) = &b.images {
        if ids.len() < 2 || ids.len() > 16 {
            return Err(ApiError::bad("images: 2 to 16 kept images, in order"));
        }
        ids.clone()
    } else if let Some(id) = b.lineage {
        let im = s.store.get(id).await?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no kept image {id}")))?;
        let Some((first, rest)) = im.parents.split_first() else {
            return Err(ApiError::bad(format!("image {id} has no parents to animate from (it was not bred, slid or styled from a kept face): sweep a slider instead, or name keyframes")));
        };
        std::iter::once(*first).chain([id]).chain(rest.iter().copied()).collect()
    } else {
        vec![b.sweep.as_ref().expect("a sweep").image]
    };
    let ims = kept(&s, &ids).await?;
    let keys = ims.iter().map(stored_recipe).collect::<Result<Vec<_>, _>>()?;
    if let Some((im, _)) = ims.iter().zip(&keys).find(|(_, k)| k.model.sha256 != keys[0].model.sha256 || k.size != keys[0].size) {
        return Err(ApiError::bad(format!("image {} is from another model or size than image {} (animate faces of one model)", im.id, ims[0].id)));
    }
    check_offered(&s, &keys[0].model.name, keys[0].size).await?;
    let a = match &b.sweep {
        Some(sw) => {
            if !is_slider_id(&sw.slider) {
                return Err(ApiError::bad("sweep.slider: an id from /api/sliders (age, sefa:coarse:0)"));
            }
            if !(sw.from.is_finite() && sw.to.is_finite() && sw.from.abs() <= SLIDER_RANGE && sw.to.abs() <= SLIDER_RANGE) {
                return Err(ApiError::bad(format!("sweep: from and to between -{SLIDER_RANGE} and {SLIDER_RANGE}")));
            }
            render::Animation::Sweep { key: keys.into_iter().next().expect("one key"), slider: sw.slider.clone(), from: sw.from, to: sw.to }
        }
        None => render::Animation::Through { keys },
    };
    let (looped, allow) = (b.looped, b.allow_near_copy);
    let bytes = on_pool(&s, "animate", move |m| render::animate(m, &a, frames, looped, fps, format, allow)).await?;
    let (mime, ext) = match format {
        Format::Gif => ("image/gif", "gif"),
        Format::Apng => ("image/apng", "png"),
    };
    let mut r = Response::new(Body::from(bytes));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    r.headers_mut().insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&format!("attachment; filename=\"limner-animation.{ext}\"")).unwrap());
    r.headers_mut().insert("x-limner-frames", HeaderValue::from(frames));
    Ok(r)
}
