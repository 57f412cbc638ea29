//! Provenance labels on every image limner writes: an XMP packet saying the picture was made by
//! a trained model (IPTC digital source type), by which software, from which recipe and model,
//! and for whom.
//!
//! The packet goes into the file's own XMP slot, where third-party readers (exiftool, Adobe
//! tools, browsers' "content credentials" inspectors) look for it:
//! - PNG and APNG: an `iTXt` chunk with the keyword `XML:com.adobe.xmp`, right after `IHDR`;
//! - JPEG: an `APP1` segment starting `http://ns.adobe.com/xap/1.0/\0`, after `SOI`/`APP0`;
//! - GIF: an application extension `XMP DataXMP` with the XMP "magic trailer";
//! - WebP: an `XMP ` chunk in an extended (`VP8X`) file.
//!
//! The packet holds no clock time, so the same seed and settings give the same bytes; the
//! pixels are never touched (the label is added to the encoded file).
//!
//! [`read_xmp`] and [`Label::parse`] read any of these back, for `limner inspect`.

use anyhow::{bail, ensure, Result};

/// The IPTC vocabulary for how a picture was made.
pub const IPTC_SOURCE_TYPE_PREFIX: &str = "http://cv.iptc.org/newscodes/digitalsourcetype/";
/// The namespace of limner's own XMP properties (`limner:Recipe`, `limner:ModelSHA256`).
pub const LIMNER_XMP_NS: &str = "https://limner.dev/ns/xmp/1.0/";
/// The largest XMP packet one JPEG APP1 segment holds.
pub const JPEG_MAX_XMP: usize = 65535 - 2 - JPEG_XMP_ID.len();
const JPEG_XMP_ID: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
const PNG_XMP_KEYWORD: &[u8] = b"XML:com.adobe.xmp";
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// How the picture was made, as the IPTC digital source type vocabulary names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceType {
    /// Made by a trained model from a seed or latent: `generate`, `random-face`, dreams and
    /// styles of a generated face.
    TrainedAlgorithmicMedia,
    /// A person's photo changed by a trained model: style transfer or DeepDream on a photo.
    CompositeWithTrainedAlgorithmicMedia,
}

impl SourceType {
    /// The IPTC code (the last part of the URI).
    pub fn code(self) -> &'static str {
        match self {
            Self::TrainedAlgorithmicMedia => "trainedAlgorithmicMedia",
            Self::CompositeWithTrainedAlgorithmicMedia => "compositeWithTrainedAlgorithmicMedia",
        }
    }
    /// The full IPTC URI written as `Iptc4xmpExt:DigitalSourceType`.
    pub fn uri(self) -> String {
        format!("{IPTC_SOURCE_TYPE_PREFIX}{}", self.code())
    }
}

/// What limner says about an image it writes. Build it with [`Provenance::new`] and the
/// `with_*` methods; the recipe is an opaque JSON string chosen by the caller.
#[derive(Clone, Debug, PartialEq)]
pub struct Provenance {
    pub source: SourceType,
    /// The settings that remake the image (JSON), e.g. `{"model":"default","seed":7,"psi":0.7}`.
    pub recipe: Option<String>,
    /// `xmp:CreatorTool`: `limner 0.1.0` by default.
    pub software: String,
    /// `dc:creator`: the person who made or curated the picture, when known.
    pub creator: Option<String>,
    /// sha256 (lower-case hex) of the model file that made the picture.
    pub model_sha256: Option<String>,
}

static DEFAULT_CREATOR: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Sets, once per process, the creator every new [`Provenance`] starts with (the CLI's
/// `--creator` or `$LIMNER_CREATOR`), so every writer in every crate names the same person.
/// Later calls are ignored.
pub fn set_default_creator(creator: Option<String>) {
    let _ = DEFAULT_CREATOR.set(creator.filter(|c| !c.trim().is_empty()));
}

impl Provenance {
    /// A label with this source type, software `limner <version>`, the process's default
    /// creator (see [`set_default_creator`]), and nothing else.
    pub fn new(source: SourceType) -> Self {
        let creator = DEFAULT_CREATOR.get().cloned().flatten();
        Self { source, recipe: None, software: format!("limner {}", env!("CARGO_PKG_VERSION")), creator, model_sha256: None }
    }
    /// A generated picture ([`SourceType::TrainedAlgorithmicMedia`]).
    pub fn generated() -> Self {
        Self::new(SourceType::TrainedAlgorithmicMedia)
    }
    pub fn with_recipe(mut self, json: impl Into<String>) -> Self {
        self.recipe = Some(json.into());
        self
    }
    /// The recipe as JSON, numbers that came from `f32` settings written as typed (`0.7`, not
    /// `0.699999988079071`).
    pub fn with_recipe_json(self, mut recipe: serde_json::Value) -> Self {
        tidy_floats(&mut recipe);
        self.with_recipe(recipe.to_string())
    }
    pub fn with_software(mut self, software: impl Into<String>) -> Self {
        self.software = software.into();
        self
    }
    pub fn with_creator(mut self, creator: Option<String>) -> Self {
        self.creator = creator.filter(|c| !c.trim().is_empty());
        self
    }
    pub fn with_model_sha256(mut self, sha: Option<String>) -> Self {
        self.model_sha256 = sha;
        self
    }

    /// This label for one image of a batch: when the recipe is a JSON object, `key` is set to
    /// `value` in it (e.g. `"seed": 7` for `seed0007.png`); any other recipe is kept as it is.
    pub fn with_recipe_field(&self, key: &str, value: serde_json::Value) -> Self {
        let mut out = self.clone();
        if let Some(serde_json::Value::Object(mut m)) = self.recipe.as_deref().and_then(|r| serde_json::from_str(r).ok()) {
            m.insert(key.to_string(), value);
            out.recipe = Some(serde_json::Value::Object(m).to_string());
        }
        out
    }

    /// The XMP packet (UTF-8, no byte-order mark, no clock time: the same label gives the
    /// same bytes).
    pub fn xmp(&self) -> String {
        let mut d = String::new();
        d += &format!("   <Iptc4xmpExt:DigitalSourceType>{}</Iptc4xmpExt:DigitalSourceType>\n", escape(&self.source.uri()));
        d += &format!("   <xmp:CreatorTool>{}</xmp:CreatorTool>\n", escape(&self.software));
        if let Some(c) = &self.creator {
            d += &format!("   <dc:creator>\n    <rdf:Seq>\n     <rdf:li>{}</rdf:li>\n    </rdf:Seq>\n   </dc:creator>\n", escape(c));
        }
        if let Some(r) = &self.recipe {
            d += &format!("   <limner:Recipe>{}</limner:Recipe>\n", escape(r));
        }
        if let Some(s) = &self.model_sha256 {
            d += &format!("   <limner:ModelSHA256>{}</limner:ModelSHA256>\n", escape(s));
        }
        format!(
            "<?xpacket begin=\"\u{feff}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n\
             <x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n \
             <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n  \
             <rdf:Description rdf:about=\"\"\n    \
             xmlns:Iptc4xmpExt=\"http://iptc.org/std/Iptc4xmpExt/2008-02-29/\"\n    \
             xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\"\n    \
             xmlns:dc=\"http://purl.org/dc/elements/1.1/\"\n    \
             xmlns:limner=\"{LIMNER_XMP_NS}\">\n\
             {d}  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n<?xpacket end=\"r\"?>"
        )
    }
}

fn tidy_floats(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or_default();
            if f64::from(x as f32) == x {
                if let Some(t) = (x as f32).to_string().parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                    *n = t;
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(tidy_floats),
        Value::Object(o) => {
            // canonical key order whatever serde_json's features (a dependency may turn on
            // `preserve_order`): the same recipe is the same bytes
            o.sort_keys();
            o.values_mut().for_each(tidy_floats)
        }
        _ => {}
    }
}

/// Escapes text for XML element content or attributes. Characters XML 1.0 forbids (most
/// control characters) become U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out += "&amp;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '"' => out += "&quot;",
            '\'' => out += "&apos;",
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Undoes [`escape`] and numeric character references (`&#10;`, `&#x41;`).
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out += &rest[..i];
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|&e| e <= 12) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let ent = &rest[1..end];
        let c = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if ent.starts_with("#x") || ent.starts_with("#X") => u32::from_str_radix(&ent[2..], 16).ok().and_then(char::from_u32),
            _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out + rest
}

/// The container formats a label can go into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    Png,
    Jpeg,
    Gif,
    WebP,
}

impl Container {
    /// Recognises the format from the first bytes.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(PNG_SIGNATURE) {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(Self::Gif)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::WebP)
        } else {
            None
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpeg => "JPEG",
            Self::Gif => "GIF",
            Self::WebP => "WebP",
        }
    }
}

/// Adds `prov`'s XMP packet to an encoded PNG/APNG, JPEG or GIF (see the module docs for
/// where). Any XMP already there is replaced; pixels and every other chunk are kept as they are.
///
/// With the `c2pa` feature and credentials set by [`set_c2pa`], the labelled file is then signed
/// with a C2PA manifest carrying the same claim (see `limner_c2pa`): the pixels and the XMP are
/// kept, and the signature (which holds a fresh instance id) makes the file's bytes differ run to
/// run.
pub fn embed(encoded: &[u8], prov: &Provenance) -> Result<Vec<u8>> {
    let labelled = embed_xmp(encoded, &prov.xmp())?;
    #[cfg(feature = "c2pa")]
    if let Some(creds) = C2PA.get().and_then(Option::as_ref) {
        return limner_c2pa::sign(&labelled, &c2pa_claim(prov), creds);
    }
    Ok(labelled)
}

#[cfg(feature = "c2pa")]
static C2PA: std::sync::OnceLock<Option<limner_c2pa::Credentials>> = std::sync::OnceLock::new();

/// Sets, once per process, the C2PA credentials every labelled image is signed with (the CLI
/// reads them from `$LIMNER_C2PA_CERT` / `$LIMNER_C2PA_KEY`); `None` signs nothing. Later calls
/// are ignored.
#[cfg(feature = "c2pa")]
pub fn set_c2pa(creds: Option<limner_c2pa::Credentials>) {
    let _ = C2PA.set(creds);
}

/// Whether images written now are signed with C2PA.
pub fn c2pa_signing() -> bool {
    #[cfg(feature = "c2pa")]
    return C2PA.get().is_some_and(Option::is_some);
    #[cfg(not(feature = "c2pa"))]
    false
}

/// The C2PA claim that says what `prov`'s XMP says.
#[cfg(feature = "c2pa")]
pub fn c2pa_claim(prov: &Provenance) -> limner_c2pa::Claim {
    limner_c2pa::Claim {
        title: "limner image".into(),
        composite: prov.source == SourceType::CompositeWithTrainedAlgorithmicMedia,
        software: prov.software.clone(),
        creator: prov.creator.clone(),
        recipe: prov.recipe.clone(),
        model_sha256: prov.model_sha256.clone(),
    }
}

/// [`embed`] with a ready XMP packet.
pub fn embed_xmp(encoded: &[u8], xmp: &str) -> Result<Vec<u8>> {
    match Container::sniff(encoded) {
        Some(Container::Png) => png_embed(encoded, xmp),
        Some(Container::Jpeg) => jpeg_embed(encoded, xmp),
        Some(Container::Gif) => gif_embed(encoded, xmp),
        Some(Container::WebP) => bail!("writing XMP into WebP is not supported yet (limner writes PNG, JPEG and GIF)"),
        None => bail!("cannot label these bytes: not a PNG, JPEG or GIF"),
    }
}

/// The PNG chunks as `(type, data, start, end)`, stopping at `IEND`; an error names where the
/// file is cut off.
fn png_chunks(b: &[u8]) -> Result<Vec<([u8; 4], &[u8], usize, usize)>> {
    match png_walk(b) {
        (chunks, None) => Ok(chunks),
        (_, Some(e)) => Err(e),
    }
}

type PngChunk<'a> = ([u8; 4], &'a [u8], usize, usize);

/// The whole chunks before the end or the cut, and what is wrong when the file is cut off.
fn png_walk(b: &[u8]) -> (Vec<PngChunk<'_>>, Option<anyhow::Error>) {
    let mut out = Vec::new();
    if !b.starts_with(PNG_SIGNATURE) {
        return (out, Some(anyhow::anyhow!("not a PNG")));
    }
    let mut pos = PNG_SIGNATURE.len();
    loop {
        let Some(head) = b.get(pos..pos + 8) else {
            return (out, Some(anyhow::anyhow!("the PNG is truncated: it ends at byte {} before the IEND chunk", b.len())));
        };
        let len = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = head[4..].try_into().unwrap();
        let end = pos.checked_add(12).and_then(|p| p.checked_add(len)).filter(|&e| e <= b.len());
        let Some(end) = end else {
            let e = anyhow::anyhow!("the PNG is truncated: its {} chunk at byte {pos} needs {len} bytes, the file ends at byte {}", String::from_utf8_lossy(&kind), b.len());
            return (out, Some(e));
        };
        out.push((kind, &b[pos + 8..pos + 8 + len], pos, end));
        pos = end;
        if &kind == b"IEND" {
            return (out, None);
        }
    }
}

/// Whether the file holds all of its structure (PNG chunks to `IEND`, JPEG to `EOI`, GIF to its
/// trailer, WebP's RIFF size); the error says where it is cut off.
pub fn check_complete(bytes: &[u8]) -> Result<()> {
    match Container::sniff(bytes) {
        Some(Container::Png) => png_chunks(bytes).map(|_| ()),
        Some(Container::Jpeg) => {
            jpeg_segments(bytes)?;
            ensure!(!crate::imageio::is_truncated(image::ImageFormat::Jpeg, bytes), "the JPEG is truncated: its image data has no end");
            Ok(())
        }
        Some(Container::Gif) => gif_blocks(bytes).map(|_| ()),
        Some(Container::WebP) => {
            let size = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
            ensure!(size + 8 <= bytes.len(), "the WebP is truncated: it declares {} bytes and has {}", size + 8, bytes.len());
            Ok(())
        }
        None => bail!("not an image limner can read (PNG, JPEG, GIF or WebP)"),
    }
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(data.len() + 12);
    c.extend_from_slice(&(data.len() as u32).to_be_bytes());
    c.extend_from_slice(kind);
    c.extend_from_slice(data);
    let mut h = crc32fast::Hasher::new();
    h.update(kind);
    h.update(data);
    c.extend_from_slice(&h.finalize().to_be_bytes());
    c
}

fn is_png_xmp(kind: &[u8; 4], data: &[u8]) -> bool {
    kind == b"iTXt" && data.starts_with(PNG_XMP_KEYWORD) && data.get(PNG_XMP_KEYWORD.len()) == Some(&0)
}

fn png_embed(b: &[u8], xmp: &str) -> Result<Vec<u8>> {
    let chunks = png_chunks(b)?;
    ensure!(chunks.first().map(|c| &c.0) == Some(b"IHDR"), "the PNG does not start with IHDR");
    // keyword, NUL, compression flag 0, method 0, empty language tag, empty translated keyword
    let mut data = PNG_XMP_KEYWORD.to_vec();
    data.extend_from_slice(&[0, 0, 0, 0, 0]);
    data.extend_from_slice(xmp.as_bytes());
    let mut out = Vec::with_capacity(b.len() + data.len() + 12);
    out.extend_from_slice(PNG_SIGNATURE);
    for (i, (kind, cdata, start, end)) in chunks.iter().enumerate() {
        if is_png_xmp(kind, cdata) {
            continue;
        }
        out.extend_from_slice(&b[*start..*end]);
        if i == 0 {
            out.extend_from_slice(&png_chunk(b"iTXt", &data));
        }
    }
    Ok(out)
}

/// The XMP of a PNG; a file cut off after its XMP chunk still gives it (limner writes the
/// chunk right after the header).
fn png_read(b: &[u8]) -> Result<Option<String>> {
    let (chunks, cut) = png_walk(b);
    for (kind, data, _, _) in chunks {
        if !is_png_xmp(&kind, data) {
            continue;
        }
        let rest = &data[PNG_XMP_KEYWORD.len() + 1..];
        ensure!(rest.len() >= 2, "the PNG's XMP chunk is cut short");
        let (compressed, rest) = (rest[0], &rest[2..]);
        // language tag and translated keyword, each NUL-terminated
        let mut rest = rest;
        for _ in 0..2 {
            let Some(nul) = rest.iter().position(|&c| c == 0) else { bail!("the PNG's XMP chunk is malformed") };
            rest = &rest[nul + 1..];
        }
        ensure!(compressed == 0, "the PNG's XMP is compressed; limner reads only uncompressed XMP (exiftool reads both)");
        return Ok(Some(String::from_utf8_lossy(rest).into_owned()));
    }
    match cut {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// The JPEG segments before the scan as `(marker, start, end)`.
fn jpeg_segments(b: &[u8]) -> Result<Vec<(u8, usize, usize)>> {
    let mut pos = 2;
    let mut out = Vec::new();
    loop {
        ensure!(b.len() >= pos + 4, "the JPEG is truncated: it ends at byte {} before its image data", b.len());
        ensure!(b[pos] == 0xFF, "the JPEG is malformed at byte {pos}");
        let marker = b[pos + 1];
        if marker == 0xDA || marker == 0xD9 {
            return Ok(out);
        }
        let len = usize::from(u16::from_be_bytes([b[pos + 2], b[pos + 3]]));
        ensure!(len >= 2 && pos + 2 + len <= b.len(), "the JPEG is truncated: its segment at byte {pos} runs past the end");
        out.push((marker, pos, pos + 2 + len));
        pos += 2 + len;
    }
}

fn jpeg_embed(b: &[u8], xmp: &str) -> Result<Vec<u8>> {
    ensure!(xmp.len() <= JPEG_MAX_XMP, "the XMP packet is {} bytes; one JPEG segment holds {JPEG_MAX_XMP} (shorten the recipe)", xmp.len());
    let segs = jpeg_segments(b)?;
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((2 + JPEG_XMP_ID.len() + xmp.len()) as u16).to_be_bytes());
    app1.extend_from_slice(JPEG_XMP_ID);
    app1.extend_from_slice(xmp.as_bytes());
    let mut out = Vec::with_capacity(b.len() + app1.len());
    out.extend_from_slice(&b[..2]);
    // after the JFIF/EXIF segments (APP0 first, as JFIF asks), before everything else
    let insert_after = segs.iter().take_while(|s| s.0 == 0xE0).count();
    let mut last = 2;
    for (i, &(marker, start, end)) in segs.iter().enumerate() {
        if i == insert_after {
            out.extend_from_slice(&app1);
        }
        if !(marker == 0xE1 && b[start + 4..end].starts_with(JPEG_XMP_ID)) {
            out.extend_from_slice(&b[start..end]);
        }
        last = end;
    }
    if insert_after == segs.len() {
        out.extend_from_slice(&app1);
    }
    out.extend_from_slice(&b[last..]);
    Ok(out)
}

fn jpeg_read(b: &[u8]) -> Result<Option<String>> {
    for (marker, start, end) in jpeg_segments(b)? {
        let data = &b[start + 4..end];
        if marker == 0xE1 && data.starts_with(JPEG_XMP_ID) {
            return Ok(Some(String::from_utf8_lossy(&data[JPEG_XMP_ID.len()..]).into_owned()));
        }
    }
    Ok(None)
}

const GIF_XMP_APP: &[u8] = b"XMP DataXMP";

/// The GIF's blocks after the header and global colour table as `(start, end, is_xmp)`; the
/// last one is the trailer.
fn gif_blocks(b: &[u8]) -> Result<(usize, Vec<(usize, usize, bool)>)> {
    let cut = || anyhow::anyhow!("the GIF is truncated: it ends at byte {} before its trailer", b.len());
    ensure!(b.len() >= 13, cut());
    let mut pos = 13;
    if b[10] & 0x80 != 0 {
        pos += 3 << ((b[10] & 7) + 1);
    }
    let header_end = pos;
    let mut out = Vec::new();
    // skips data sub-blocks from `p`, returning the position after the terminator
    let sub_blocks = |mut p: usize| -> Result<usize> {
        loop {
            let n = *b.get(p).ok_or_else(cut)? as usize;
            p += 1 + n;
            if n == 0 {
                return Ok(p);
            }
        }
    };
    loop {
        let start = pos;
        match b.get(pos).ok_or_else(cut)? {
            0x3B => {
                out.push((start, pos + 1, false));
                return Ok((header_end, out));
            }
            0x21 => {
                let label = *b.get(pos + 1).ok_or_else(cut)?;
                let is_xmp = label == 0xFF && b.get(pos + 2) == Some(&11) && b.get(pos + 3..pos + 14) == Some(GIF_XMP_APP);
                pos = sub_blocks(pos + 2)?;
                out.push((start, pos, is_xmp));
            }
            0x2C => {
                let flags = *b.get(pos + 9).ok_or_else(cut)?;
                pos += 10;
                if flags & 0x80 != 0 {
                    pos += 3 << ((flags & 7) + 1);
                }
                pos = sub_blocks(pos + 1)?; // LZW minimum code size, then the data
                out.push((start, pos, false));
            }
            other => bail!("the GIF is malformed: block type 0x{other:02x} at byte {pos}"),
        }
    }
}

fn gif_embed(b: &[u8], xmp: &str) -> Result<Vec<u8>> {
    ensure!(!xmp.as_bytes().contains(&0), "an XMP packet for GIF cannot hold NUL bytes");
    let (header_end, blocks) = gif_blocks(b)?;
    let mut out = Vec::with_capacity(b.len() + xmp.len() + 300);
    out.extend_from_slice(&b[..header_end]);
    out.extend_from_slice(&[0x21, 0xFF, 11]);
    out.extend_from_slice(GIF_XMP_APP);
    out.extend_from_slice(xmp.as_bytes());
    // the "magic trailer": makes the raw packet read as valid sub-blocks
    out.push(1);
    out.extend((0..=255u8).rev());
    out.push(0);
    for (start, end, is_xmp) in blocks {
        if !is_xmp {
            out.extend_from_slice(&b[start..end]);
        }
    }
    if &b[..6] == b"GIF87a" {
        out[..6].copy_from_slice(b"GIF89a"); // extensions need 89a
    }
    Ok(out)
}

fn gif_read(b: &[u8]) -> Result<Option<String>> {
    let (_, blocks) = gif_blocks(b)?;
    for (start, end, is_xmp) in blocks {
        if is_xmp {
            let data = &b[start + 14..end];
            let stop = data.windows(3).position(|w| w == [1, 0xFF, 0xFE]).unwrap_or(data.len());
            return Ok(Some(String::from_utf8_lossy(&data[..stop]).into_owned()));
        }
    }
    Ok(None)
}

fn webp_read(b: &[u8]) -> Result<Option<String>> {
    let mut pos = 12;
    while pos + 8 <= b.len() {
        let len = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let end = pos + 8 + len;
        ensure!(end <= b.len(), "the WebP is truncated: its chunk at byte {pos} runs past the end");
        if &b[pos..pos + 4] == b"XMP " {
            return Ok(Some(String::from_utf8_lossy(&b[pos + 8..end]).into_owned()));
        }
        pos = end + (len & 1);
    }
    Ok(None)
}

/// The XMP packet of a PNG/APNG, JPEG, GIF or WebP file, `None` when it has none. A file that
/// is none of these, or is cut off before its metadata ends, is an error saying so.
pub fn read_xmp(bytes: &[u8]) -> Result<Option<String>> {
    match Container::sniff(bytes) {
        Some(Container::Png) => png_read(bytes),
        Some(Container::Jpeg) => jpeg_read(bytes),
        Some(Container::Gif) => gif_read(bytes),
        Some(Container::WebP) => webp_read(bytes),
        None => bail!("not an image limner can read (PNG, JPEG, GIF or WebP)"),
    }
}

/// What an XMP packet says about an image, read back.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Label {
    /// `Iptc4xmpExt:DigitalSourceType`, as written (a URI).
    pub digital_source_type: Option<String>,
    /// `xmp:CreatorTool`.
    pub software: Option<String>,
    /// `dc:creator` (the first name).
    pub creator: Option<String>,
    /// `limner:Recipe` (JSON text).
    pub recipe: Option<String>,
    /// `limner:ModelSHA256`.
    pub model_sha256: Option<String>,
}

impl Label {
    /// Reads the properties limner writes from any XMP packet, as elements or as attributes of
    /// `rdf:Description`; others' properties are ignored.
    pub fn parse(xmp: &str) -> Self {
        let creator = xml_value(xmp, "dc:creator").map(|c| match xml_value(&c, "rdf:li") {
            Some(li) => li,
            None => c,
        });
        Self {
            digital_source_type: xml_value(xmp, "Iptc4xmpExt:DigitalSourceType"),
            software: xml_value(xmp, "xmp:CreatorTool"),
            creator: creator.map(|c| unescape(c.trim())),
            recipe: xml_value(xmp, "limner:Recipe").map(|r| unescape(&r)),
            model_sha256: xml_value(xmp, "limner:ModelSHA256").map(|s| unescape(s.trim())),
        }
        .unescaped_uris()
    }

    fn unescaped_uris(mut self) -> Self {
        self.digital_source_type = self.digital_source_type.map(|s| unescape(s.trim()));
        self.software = self.software.map(|s| unescape(s.trim()));
        self
    }

    /// Whether limner wrote it: it has limner's recipe or model hash, or names limner as the tool.
    pub fn is_limner(&self) -> bool {
        self.recipe.is_some() || self.model_sha256.is_some() || self.software.as_deref().is_some_and(|s| s.starts_with("limner"))
    }

    /// The IPTC code of the source type (`trainedAlgorithmicMedia`), when it is one.
    pub fn source_code(&self) -> Option<&str> {
        self.digital_source_type.as_deref().and_then(|u| u.strip_prefix(IPTC_SOURCE_TYPE_PREFIX))
    }
}

/// The raw (still escaped) content of element `name`, or the value of attribute `name="…"`.
fn xml_value(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}");
    let mut from = 0;
    while let Some(i) = xml[from..].find(&open) {
        let at = from + i + open.len();
        from = at;
        match xml[at..].chars().next() {
            Some('>') => {
                let body = &xml[at + 1..];
                let close = format!("</{name}>");
                return body.find(&close).map(|e| body[..e].to_string());
            }
            Some(c) if c.is_whitespace() => {
                let gt = xml[at..].find('>')? + at;
                if xml[..gt].ends_with('/') {
                    continue;
                }
                let body = &xml[gt + 1..];
                let close = format!("</{name}>");
                return body.find(&close).map(|e| body[..e].to_string());
            }
            _ => continue,
        }
    }
    for q in ['"', '\''] {
        let attr = format!("{name}={q}");
        if let Some(i) = xml.find(&attr) {
            let v = &xml[i + attr.len()..];
            return v.find(q).map(|e| v[..e].to_string());
        }
    }
    None
}

/// sha256 of `bytes`, lower-case hex (the form of `limner:ModelSHA256`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a file's content, streamed; the error names the file.
pub fn sha256_file(path: &std::path::Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trips_and_strips_control_characters() {
        let s = "a<b>&\"c\"'d' é \u{1}";
        let e = escape(s);
        assert!(!e.contains('<') && !e.contains('\u{1}'), "{e}");
        assert_eq!(unescape(&e), "a<b>&\"c\"'d' é \u{fffd}");
        assert_eq!(unescape("&#65;&#x42;&bogus; & x"), "AB&bogus; & x");
    }

    #[test]
    fn packet_parses_back() {
        let p = Provenance::generated()
            .with_recipe(r#"{"model":"default","note":"</limner:Recipe><x>"}"#)
            .with_creator(Some("Ada & <Bob>".into()))
            .with_model_sha256(Some("ab".repeat(32)));
        let l = Label::parse(&p.xmp());
        assert_eq!(l.recipe.as_deref(), p.recipe.as_deref());
        assert_eq!(l.creator.as_deref(), Some("Ada & <Bob>"));
        assert_eq!(l.source_code(), Some("trainedAlgorithmicMedia"));
        assert_eq!(l.model_sha256, p.model_sha256);
        assert!(l.is_limner());
        assert_eq!(p.xmp(), p.xmp(), "deterministic");
    }

    #[test]
    fn attribute_form_is_read() {
        let x = r#"<rdf:Description xmlns:Iptc4xmpExt="x" Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture" xmp:CreatorTool="Camera"/>"#;
        let l = Label::parse(x);
        assert_eq!(l.source_code(), Some("digitalCapture"));
        assert_eq!(l.software.as_deref(), Some("Camera"));
        assert!(!l.is_limner());
    }

    #[test]
    fn recipe_field_per_image() {
        let p = Provenance::generated().with_recipe(r#"{"model":"default","psi":0.7}"#);
        let r: serde_json::Value = serde_json::from_str(p.with_recipe_field("seed", 7.into()).recipe.as_deref().unwrap()).unwrap();
        assert_eq!(r["seed"], 7);
        assert_eq!(r["model"], "default");
        let t = Provenance::generated().with_recipe_json(serde_json::json!({"psi": 0.7f32, "xs": [0.1f32], "n": 3}));
        assert_eq!(t.recipe.as_deref(), Some(r#"{"n":3,"psi":0.7,"xs":[0.1]}"#));
        let q = Provenance::generated().with_recipe("not json");
        assert_eq!(q.with_recipe_field("seed", 7.into()).recipe.as_deref(), Some("not json"));
    }
}
