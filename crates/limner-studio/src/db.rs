//! The gallery database: SQLite by default (WAL, full sync), PostgreSQL with the `postgres`
//! feature, both through sqlx's `Any` driver and the same SQL (`$n` parameters). The schema is
//! versioned: [`MIGRATIONS`] are applied in order, each in its own transaction, and recorded in
//! `schema_migrations`; a database made by a newer limner is refused, not touched.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

/// One schema step, in both dialects.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// Every schema version, oldest first. Never edit a released one; add the next.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "gallery: images, tags, history",
    sqlite: "
CREATE TABLE images (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  hash TEXT NOT NULL,
  width INTEGER NOT NULL,
  height INTEGER NOT NULL,
  model TEXT NOT NULL,
  recipe TEXT NOT NULL,
  parents TEXT NOT NULL DEFAULT '[]',
  author TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  rating INTEGER CHECK (rating BETWEEN 1 AND 5),
  favourite INTEGER NOT NULL DEFAULT 0,
  rejected INTEGER NOT NULL DEFAULT 0,
  notes TEXT NOT NULL DEFAULT ''
);
CREATE INDEX images_created ON images(created_ms);
CREATE INDEX images_hash ON images(hash);
CREATE TABLE tags (
  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  tag TEXT NOT NULL,
  PRIMARY KEY (image_id, tag)
);
CREATE INDEX tags_tag ON tags(tag);
CREATE TABLE history (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  curator TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  change TEXT NOT NULL
);
CREATE INDEX history_image ON history(image_id);
",
    postgres: "
CREATE TABLE images (
  id BIGSERIAL PRIMARY KEY,
  hash TEXT NOT NULL,
  width BIGINT NOT NULL,
  height BIGINT NOT NULL,
  model TEXT NOT NULL,
  recipe TEXT NOT NULL,
  parents TEXT NOT NULL DEFAULT '[]',
  author TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  updated_ms BIGINT NOT NULL,
  rating BIGINT CHECK (rating BETWEEN 1 AND 5),
  favourite BIGINT NOT NULL DEFAULT 0,
  rejected BIGINT NOT NULL DEFAULT 0,
  notes TEXT NOT NULL DEFAULT ''
);
CREATE INDEX images_created ON images(created_ms);
CREATE INDEX images_hash ON images(hash);
CREATE TABLE tags (
  image_id BIGINT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  tag TEXT NOT NULL,
  PRIMARY KEY (image_id, tag)
);
CREATE INDEX tags_tag ON tags(tag);
CREATE TABLE history (
  id BIGSERIAL PRIMARY KEY,
  image_id BIGINT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  curator TEXT NOT NULL,
  at_ms BIGINT NOT NULL,
  change TEXT NOT NULL
);
CREATE INDEX history_image ON history(image_id);
",
}];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// The gallery database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    kind: Kind,
}

/// A kept image as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Image {
    pub id: i64,
    pub hash: String,
    pub url: String,
    pub width: i64,
    pub height: i64,
    pub model: String,
    pub recipe: serde_json::Value,
    pub parents: Vec<i64>,
    pub author: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub rating: Option<i64>,
    pub favourite: bool,
    pub rejected: bool,
    pub notes: String,
    pub tags: Vec<String>,
}

/// What to store for a new image.
pub struct NewImage<'a> {
    pub hash: &'a str,
    pub width: i64,
    pub height: i64,
    pub model: &'a str,
    pub recipe: &'a serde_json::Value,
    pub parents: &'a [i64],
    pub author: &'a str,
    pub notes: &'a str,
    pub tags: &'a [String],
}

/// A change to an image's curation (absent fields stay as they are).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Update {
    /// 1–5, or 0 to clear the rating
    pub rating: Option<i64>,
    pub favourite: Option<bool>,
    pub rejected: Option<bool>,
    pub tags: Option<Vec<String>>,
    pub notes: Option<String>,
}

/// Gallery order.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    #[default]
    New,
    Old,
    Rating,
    Updated,
}

/// Which rejected images a listing shows.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Rejected {
    #[default]
    Hide,
    Only,
    All,
}

/// A gallery query.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Filter {
    pub sort: Sort,
    pub rejected: Rejected,
    pub favourite: Option<bool>,
    pub min_rating: Option<i64>,
    pub tag: Option<String>,
    /// substring of the notes
    pub q: Option<String>,
    pub author: Option<String>,
    pub model: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

pub const MAX_LIMIT: i64 = 500;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The sqlx URL of an SQLite file (created when missing).
pub fn sqlite_url(path: &Path) -> String {
    let s = path.to_string_lossy().replace('%', "%25").replace('?', "%3F").replace('#', "%23");
    format!("sqlite://{s}?mode=rwc")
}

const COLUMNS: &str = "id, hash, width, height, model, recipe, parents, author, created_ms, updated_ms, rating, favourite, rejected, notes";

fn like_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            o.push('\\');
        }
        o.push(c);
    }
    o.push('%');
    o
}

impl Store {
    /// Connects and brings the schema up to date. `url`: `sqlite://FILE?mode=rwc` (see
    /// [`sqlite_url`]) or `postgres://…` (with the `postgres` feature).
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let kind = if url.starts_with("sqlite:") {
            Kind::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            if !cfg!(feature = "postgres") {
                bail!("--db {url}: this limner was built without PostgreSQL; rebuild with `--features limner-studio/postgres`");
            }
            Kind::Postgres
        } else {
            bail!("--db {url}: give sqlite://FILE or postgres://USER@HOST/DB");
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if kind == Kind::Sqlite { 4 } else { 16 })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if kind == Kind::Sqlite {
                        // WAL: readers never block the writer; FULL: a kept image is on disk when
                        // the API answers; busy_timeout: concurrent writers wait instead of failing
                        conn.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON").await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .with_context(|| format!("cannot open the gallery database {url}"))?;
        let store = Self { pool, kind };
        store.migrate().await.with_context(|| format!("cannot bring the gallery database {url} up to date"))?;
        Ok(store)
    }

    /// Opens an SQLite gallery file.
    pub async fn open_sqlite(path: &Path) -> Result<Self> {
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        Self::open(&sqlite_url(path)).await
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The schema version in the database.
    pub async fn version(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations").fetch_one(&self.pool).await?;
        Ok(row.try_get::<i64, _>("v")?)
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)").execute(&self.pool).await?;
        let have = self.version().await?;
        let newest = MIGRATIONS.last().map_or(0, |m| m.version);
        if have > newest {
            bail!("the database is at schema version {have}, this limner knows up to {newest}: use a newer limner (nothing was changed)");
        }
        for m in MIGRATIONS.iter().filter(|m| m.version > have) {
            let mut tx = self.pool.begin().await?;
            let sql = if self.kind == Kind::Sqlite { m.sqlite } else { m.postgres };
            sqlx::raw_sql(sql).execute(&mut *tx).await.with_context(|| format!("migration {} ({})", m.version, m.name))?;
            sqlx::query("INSERT INTO schema_migrations (version, name, applied_ms) VALUES ($1, $2, $3)").bind(m.version).bind(m.name).bind(now_ms()).execute(&mut *tx).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// SQLite's `PRAGMA integrity_check` ("ok" when sound); PostgreSQL: "ok" when reachable.
    pub async fn integrity_check(&self) -> Result<String> {
        if self.kind == Kind::Postgres {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            return Ok("ok".into());
        }
        let rows = sqlx::query("PRAGMA integrity_check").fetch_all(&self.pool).await?;
        let lines: Vec<String> = rows.iter().map(|r| r.try_get::<String, _>(0)).collect::<Result<_, _>>()?;
        Ok(lines.join("\n"))
    }

    /// The id of an image with these bytes, if one is kept.
    pub async fn find_hash(&self, hash: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT id FROM images WHERE hash = $1 ORDER BY id LIMIT 1").bind(hash).fetch_optional(&self.pool).await?;
        Ok(match row {
            Some(r) => Some(r.try_get::<i64, _>("id")?),
            None => None,
        })
    }

    /// Stores a new image (its row, tags and a history entry, in one transaction).
    pub async fn insert(&self, n: &NewImage<'_>) -> Result<i64> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO images (hash, width, height, model, recipe, parents, author, created_ms, updated_ms, notes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) RETURNING id",
        )
        .bind(n.hash)
        .bind(n.width)
        .bind(n.height)
        .bind(n.model)
        .bind(n.recipe.to_string())
        .bind(serde_json::to_string(n.parents)?)
        .bind(n.author)
        .bind(now)
        .bind(n.notes)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        for t in n.tags {
            sqlx::query("INSERT INTO tags (image_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING").bind(id).bind(t).execute(&mut *tx).await?;
        }
        let change = serde_json::json!({"kept": {"model": n.model, "recipe": n.recipe}});
        sqlx::query("INSERT INTO history (image_id, curator, at_ms, change) VALUES ($1, $2, $3, $4)").bind(id).bind(n.author).bind(now).bind(change.to_string()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Applies a curation change by `curator`; `None` when there is no such image.
    pub async fn update(&self, id: i64, curator: &str, u: &Update) -> Result<Option<Image>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT id FROM images WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
        if exists.is_none() {
            return Ok(None);
        }
        if let Some(r) = u.rating {
            let v: Option<i64> = (r != 0).then_some(r);
            sqlx::query("UPDATE images SET rating = $1 WHERE id = $2").bind(v).bind(id).execute(&mut *tx).await?;
        }
        if let Some(f) = u.favourite {
            sqlx::query("UPDATE images SET favourite = $1 WHERE id = $2").bind(f as i64).bind(id).execute(&mut *tx).await?;
        }
        if let Some(r) = u.rejected {
            sqlx::query("UPDATE images SET rejected = $1 WHERE id = $2").bind(r as i64).bind(id).execute(&mut *tx).await?;
        }
        if let Some(n) = &u.notes {
            sqlx::query("UPDATE images SET notes = $1 WHERE id = $2").bind(n.as_str()).bind(id).execute(&mut *tx).await?;
        }
        if let Some(tags) = &u.tags {
            sqlx::query("DELETE FROM tags WHERE image_id = $1").bind(id).execute(&mut *tx).await?;
            for t in tags {
                sqlx::query("INSERT INTO tags (image_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING").bind(id).bind(t.as_str()).execute(&mut *tx).await?;
            }
        }
        sqlx::query("UPDATE images SET updated_ms = $1 WHERE id = $2").bind(now).bind(id).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO history (image_id, curator, at_ms, change) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(curator)
            .bind(now)
            .bind(serde_json::to_string(u)?)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.get(id).await
    }

    /// One image.
    pub async fn get(&self, id: i64) -> Result<Option<Image>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM images WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        let Some(row) = row else { return Ok(None) };
        let mut v = vec![image_from_row(&row)?];
        self.fill_tags(&mut v).await?;
        Ok(v.pop())
    }

    /// The curation history of an image, oldest first: `(curator, at_ms, change)`.
    pub async fn history(&self, id: i64) -> Result<Vec<(String, i64, serde_json::Value)>> {
        let rows = sqlx::query("SELECT curator, at_ms, change FROM history WHERE image_id = $1 ORDER BY id").bind(id).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("curator")?, r.try_get("at_ms")?, serde_json::from_str(&r.try_get::<String, _>("change")?).unwrap_or(serde_json::Value::Null))))
            .collect()
    }

    /// The gallery, filtered and sorted.
    pub async fn list(&self, f: &Filter) -> Result<Vec<Image>> {
        let mut conds: Vec<String> = vec![];
        let mut args: Vec<Arg> = vec![];
        let p = |a: Arg, args: &mut Vec<Arg>| {
            args.push(a);
            format!("${}", args.len())
        };
        match f.rejected {
            Rejected::Hide => conds.push("rejected = 0".into()),
            Rejected::Only => conds.push("rejected = 1".into()),
            Rejected::All => {}
        }
        if let Some(fav) = f.favourite {
            conds.push(format!("favourite = {}", fav as i64));
        }
        if let Some(r) = f.min_rating {
            let n = p(Arg::I(r), &mut args);
            conds.push(format!("rating >= {n}"));
        }
        if let Some(t) = f.tag.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            let n = p(Arg::S(t.to_string()), &mut args);
            conds.push(format!("id IN (SELECT image_id FROM tags WHERE tag = {n})"));
        }
        if let Some(q) = f.q.as_deref().filter(|q| !q.is_empty()) {
            let n = p(Arg::S(like_escape(q)), &mut args);
            conds.push(format!("notes LIKE {n} ESCAPE '\\'"));
        }
        if let Some(a) = f.author.as_deref().filter(|a| !a.is_empty()) {
            let n = p(Arg::S(a.to_string()), &mut args);
            conds.push(format!("author = {n}"));
        }
        if let Some(m) = f.model.as_deref().filter(|m| !m.is_empty()) {
            let n = p(Arg::S(m.to_string()), &mut args);
            conds.push(format!("model = {n}"));
        }
        let order = match f.sort {
            Sort::New => "created_ms DESC, id DESC",
            Sort::Old => "created_ms ASC, id ASC",
            Sort::Rating => "COALESCE(rating, 0) DESC, favourite DESC, created_ms DESC, id DESC",
            Sort::Updated => "updated_ms DESC, id DESC",
        };
        let limit = f.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
        let offset = f.offset.unwrap_or(0).max(0);
        let lim = p(Arg::I(limit), &mut args);
        let off = p(Arg::I(offset), &mut args);
        let where_ = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
        let sql = format!("SELECT {COLUMNS} FROM images {where_} ORDER BY {order} LIMIT {lim} OFFSET {off}");
        let mut q = sqlx::query(&sql);
        for a in args {
            q = match a {
                Arg::I(i) => q.bind(i),
                Arg::S(s) => q.bind(s),
            };
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut v = rows.iter().map(image_from_row).collect::<Result<Vec<_>>>()?;
        self.fill_tags(&mut v).await?;
        Ok(v)
    }

    /// Every (id, hash) kept, for `--check`.
    pub async fn all_hashes(&self) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query("SELECT id, hash FROM images ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("hash")?))).collect()
    }

    async fn fill_tags(&self, v: &mut [Image]) -> Result<()> {
        if v.is_empty() {
            return Ok(());
        }
        let ph: Vec<String> = (1..=v.len()).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT image_id, tag FROM tags WHERE image_id IN ({}) ORDER BY tag", ph.join(", "));
        let mut q = sqlx::query(&sql);
        for im in v.iter() {
            q = q.bind(im.id);
        }
        for r in q.fetch_all(&self.pool).await? {
            let id: i64 = r.try_get("image_id")?;
            let tag: String = r.try_get("tag")?;
            if let Some(im) = v.iter_mut().find(|i| i.id == id) {
                im.tags.push(tag);
            }
        }
        Ok(())
    }
}

enum Arg {
    I(i64),
    S(String),
}

fn image_from_row(r: &AnyRow) -> Result<Image> {
    let hash: String = r.try_get("hash")?;
    let recipe: String = r.try_get("recipe")?;
    let parents: String = r.try_get("parents")?;
    Ok(Image {
        id: r.try_get("id")?,
        url: format!("/api/blob/{hash}"),
        hash,
        width: r.try_get("width")?,
        height: r.try_get("height")?,
        model: r.try_get("model")?,
        recipe: serde_json::from_str(&recipe).context("corrupt recipe in the gallery")?,
        parents: serde_json::from_str(&parents).context("corrupt lineage in the gallery")?,
        author: r.try_get("author")?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
        rating: r.try_get("rating")?,
        favourite: r.try_get::<i64, _>("favourite")? != 0,
        rejected: r.try_get::<i64, _>("rejected")? != 0,
        notes: r.try_get("notes")?,
        tags: vec![],
    })
}
