//! Reading TensorFlow.js *layers* models as npm packages ship them.
//!
//! Two container formats exist: the plain `model.json` + `group1-shardNofM` binary shards
//! (face-api), and nsfwjs' `.min.js` files, where `model.min.js` is a UMD module whose
//! `exports` is the `model.json` object written as a JavaScript literal (unquoted keys, `!0`
//! for true, `.5` for 0.5) and each `group1-shardNofM.min.js` exports the shard's bytes as one
//! base64 string. Both end in the same place: the Keras topology (`modelTopology`) and a
//! weights manifest whose tensors are laid out back to back in the concatenated shards,
//! optionally quantised (`uint8`/`uint16` with `min`/`scale`, or `float16`).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use serde_json::{Map, Number, Value};

/// One weight tensor, dequantised to f32, in the Keras/TF layout (conv kernels are
/// `[kh, kw, in, out]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Weight {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A decoded layers model: its `modelTopology` and every weight by its manifest name
/// (`conv2d_1/kernel`, `batch_normalization_1/moving_mean`, ...).
#[derive(Clone, Debug)]
pub struct LayersModel {
    pub topology: Value,
    pub weights: BTreeMap<String, Weight>,
}

impl LayersModel {
    /// The Keras layer list (`modelTopology.model_config.config.layers`).
    pub fn layers(&self) -> Result<&Vec<Value>> {
        self.topology
            .pointer("/model_config/config/layers")
            .or_else(|| self.topology.pointer("/config/layers"))
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("the model topology has no layer list"))
    }

    /// A weight by name, or an error naming it.
    pub fn weight(&self, name: &str) -> Result<&Weight> {
        self.weights.get(name).ok_or_else(|| anyhow!("the model has no weight `{name}`"))
    }
}

/// Reads nsfwjs-style `.min.js` files: `model_js` is `model.min.js`, `shards_js` the shard
/// files in manifest order are looked up by `shard(name)` (`group1-shard1of6` → its text).
pub fn read_min_js(model_js: &str, mut shard: impl FnMut(&str) -> Result<String>) -> Result<LayersModel> {
    let model = exported_literal(model_js).context("model.min.js")?;
    let mut bytes = vec![];
    for path in shard_paths(&model)? {
        let js = shard(&path)?;
        let b64 = exported_string(&js).with_context(|| format!("{path}.min.js"))?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .with_context(|| format!("{path}.min.js does not hold valid base64"))?;
        bytes.extend_from_slice(&raw);
    }
    decode_model(model, &bytes)
}

/// Reads the plain format: `model.json` text and binary shards looked up by file name.
pub fn read_json(model_json: &str, mut shard: impl FnMut(&str) -> Result<Vec<u8>>) -> Result<LayersModel> {
    let model: Value = serde_json::from_str(model_json).context("model.json is not JSON")?;
    let mut bytes = vec![];
    for path in shard_paths(&model)? {
        bytes.extend_from_slice(&shard(&path)?);
    }
    decode_model(model, &bytes)
}

fn shard_paths(model: &Value) -> Result<Vec<String>> {
    let groups = model.get("weightsManifest").and_then(Value::as_array).ok_or_else(|| anyhow!("no weightsManifest"))?;
    let mut out = vec![];
    for g in groups {
        for p in g.get("paths").and_then(Value::as_array).ok_or_else(|| anyhow!("weightsManifest group without paths"))? {
            out.push(p.as_str().ok_or_else(|| anyhow!("non-string shard path"))?.to_string());
        }
    }
    Ok(out)
}

/// Reads a bare weights manifest (face-api's `*-weights_manifest.json`: a JSON array of
/// `{paths, weights}` groups, no topology) and its binary shards, looked up by file name,
/// into named, dequantised tensors (`conv0/filters`, `fc/age/weights`, ...).
pub fn read_weights_manifest(manifest_json: &str, mut shard: impl FnMut(&str) -> Result<Vec<u8>>) -> Result<BTreeMap<String, Weight>> {
    let manifest: Value = serde_json::from_str(manifest_json).context("the weights manifest is not JSON")?;
    if !manifest.is_array() {
        bail!("the weights manifest is not a list of weight groups");
    }
    let model = serde_json::json!({ "weightsManifest": manifest });
    let mut bytes = vec![];
    for path in shard_paths(&model)? {
        bytes.extend_from_slice(&shard(&path)?);
    }
    decode_weights(&model, &bytes)
}

/// Splits the concatenated shard bytes into dequantised tensors, following the manifest.
fn decode_model(model: Value, bytes: &[u8]) -> Result<LayersModel> {
    let weights = decode_weights(&model, bytes)?;
    let topology = model.get("modelTopology").cloned().ok_or_else(|| anyhow!("no modelTopology"))?;
    Ok(LayersModel { topology, weights })
}

fn decode_weights(model: &Value, bytes: &[u8]) -> Result<BTreeMap<String, Weight>> {
    let mut weights = BTreeMap::new();
    let mut off = 0usize;
    // tfjs concatenates every group's shards and reads each group's weights in order; with
    // several groups, each group's weights start at its own first shard.
    for g in model["weightsManifest"].as_array().into_iter().flatten() {
        for w in g.get("weights").and_then(Value::as_array).ok_or_else(|| anyhow!("manifest group without weights"))? {
            let name = w["name"].as_str().ok_or_else(|| anyhow!("weight without a name"))?.to_string();
            let shape: Vec<usize> = w["shape"]
                .as_array()
                .ok_or_else(|| anyhow!("weight `{name}` has no shape"))?
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize).ok_or_else(|| anyhow!("weight `{name}`: bad dim {d}")))
                .collect::<Result<_>>()?;
            let n: usize = shape.iter().product();
            let dtype = w["dtype"].as_str().unwrap_or("float32");
            let q = w.get("quantization");
            let (width, data): (usize, Box<dyn Fn(&[u8]) -> Vec<f32>>) = match (dtype, q.and_then(|q| q["dtype"].as_str())) {
                ("float32" | "int32", Some(qd @ ("uint8" | "uint16"))) => {
                    let q = q.unwrap();
                    let min = q["min"].as_f64().ok_or_else(|| anyhow!("`{name}`: quantisation without min"))?;
                    let scale = q["scale"].as_f64().ok_or_else(|| anyhow!("`{name}`: quantisation without scale"))?;
                    // tfjs: value = q * scale + min, computed in double, stored as float32
                    // (int32 weights are rounded to the nearest integer)
                    let int = dtype == "int32";
                    let deq = move |v: f64| if int { (v * scale + min).round() as f32 } else { (v * scale + min) as f32 };
                    if qd == "uint8" {
                        (1, Box::new(move |b: &[u8]| b.iter().map(|&v| deq(v as f64)).collect()))
                    } else {
                        (2, Box::new(move |b: &[u8]| b.chunks_exact(2).map(|c| deq(u16::from_le_bytes([c[0], c[1]]) as f64)).collect()))
                    }
                }
                ("float32", Some("float16")) => (2, Box::new(|b: &[u8]| {
                    b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
                })),
                ("float32", None) => (4, Box::new(|b: &[u8]| {
                    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
                })),
                ("int32", None) => (4, Box::new(|b: &[u8]| {
                    b.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32).collect()
                })),
                (d, q) => bail!("weight `{name}`: unsupported dtype {d} (quantisation {q:?})"),
            };
            let len = n * width;
            let chunk = bytes.get(off..off + len).ok_or_else(|| {
                anyhow!("the weight shards end early: `{name}` needs bytes {off}..{} of {}", off + len, bytes.len())
            })?;
            off += len;
            weights.insert(name, Weight { shape, data: data(chunk) });
        }
    }
    if off != bytes.len() {
        bail!("the weight shards hold {} bytes, the manifest describes {off}", bytes.len());
    }
    Ok(weights)
}

/// The object literal assigned to `exports` in a bundled module (`...exports={...}`).
pub fn exported_literal(js: &str) -> Result<Value> {
    let at = js.find("exports={").ok_or_else(|| anyhow!("no `exports={{` in the module"))?;
    let mut p = JsParser { s: js.as_bytes(), i: at + "exports=".len() };
    p.value()
}

/// The string literal assigned to `exports` (`...exports="..."`).
pub fn exported_string(js: &str) -> Result<String> {
    let at = js.find("exports=\"").ok_or_else(|| anyhow!("no `exports=\"` in the module"))?;
    let mut p = JsParser { s: js.as_bytes(), i: at + "exports=".len() };
    p.string()
}

/// Parses one JavaScript literal (the subset minifiers emit for JSON data) into JSON.
pub fn parse_js_literal(src: &str) -> Result<Value> {
    JsParser { s: src.as_bytes(), i: 0 }.value()
}

struct JsParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsParser<'_> {
    fn err<T>(&self, what: &str) -> Result<T> {
        let ctx = String::from_utf8_lossy(&self.s[self.i..(self.i + 40).min(self.s.len())]).into_owned();
        bail!("JavaScript literal: {what} at byte {} (`{ctx}`)", self.i)
    }
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }
    fn value(&mut self) -> Result<Value> {
        self.ws();
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') | Some(b'\'') => Ok(Value::String(self.string()?)),
            Some(b'-' | b'+' | b'.' | b'0'..=b'9') => self.number(),
            _ => {
                for (lit, v) in [
                    ("!0", Value::Bool(true)),
                    ("!1", Value::Bool(false)),
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                    ("void 0", Value::Null),
                    ("undefined", Value::Null),
                ] {
                    if self.eat(lit) {
                        return Ok(v);
                    }
                }
                self.err("unexpected token")
            }
        }
    }
    fn object(&mut self) -> Result<Value> {
        self.i += 1;
        let mut m = Map::new();
        loop {
            self.ws();
            if self.eat("}") {
                return Ok(Value::Object(m));
            }
            let key = match self.peek() {
                Some(b'"') | Some(b'\'') => self.string()?,
                Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' => {
                    let st = self.i;
                    while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$') {
                        self.i += 1;
                    }
                    String::from_utf8_lossy(&self.s[st..self.i]).into_owned()
                }
                _ => return self.err("expected a key"),
            };
            self.ws();
            if !self.eat(":") {
                return self.err("expected `:`");
            }
            let v = self.value()?;
            m.insert(key, v);
            self.ws();
            if !self.eat(",") && self.peek() != Some(b'}') {
                return self.err("expected `,` or `}`");
            }
        }
    }
    fn array(&mut self) -> Result<Value> {
        self.i += 1;
        let mut v = vec![];
        loop {
            self.ws();
            if self.eat("]") {
                return Ok(Value::Array(v));
            }
            v.push(self.value()?);
            self.ws();
            if !self.eat(",") && self.peek() != Some(b']') {
                return self.err("expected `,` or `]`");
            }
        }
    }
    fn string(&mut self) -> Result<String> {
        let q = self.s[self.i];
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return self.err("unterminated string"),
                Some(c) if c == q => {
                    self.i += 1;
                    return String::from_utf8(out).map_err(|_| anyhow!("JavaScript literal: string is not UTF-8"));
                }
                Some(b'\\') => {
                    let e = self.s.get(self.i + 1).copied();
                    self.i += 2;
                    match e {
                        Some(b'n') => out.push(b'\n'),
                        Some(b't') => out.push(b'\t'),
                        Some(b'r') => out.push(b'\r'),
                        Some(b'u') => {
                            let hex = std::str::from_utf8(self.s.get(self.i..self.i + 4).unwrap_or_default()).unwrap_or("");
                            let cp = u32::from_str_radix(hex, 16).map_err(|_| anyhow!("JavaScript literal: bad \\u escape"))?;
                            self.i += 4;
                            let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                            out.extend_from_slice(ch.to_string().as_bytes());
                        }
                        Some(c) => out.push(c),
                        None => return self.err("unterminated escape"),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
    fn number(&mut self) -> Result<Value> {
        let st = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')) {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[st..self.i]).unwrap();
        // JSON wants a digit before the point and after the exponent sign
        let mut t = text.trim_start_matches('+').to_string();
        if t.starts_with('.') {
            t.insert(0, '0');
        } else if t.starts_with("-.") {
            t.insert(1, '0');
        }
        if let Ok(i) = t.parse::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        let f: f64 = t.parse().map_err(|_| anyhow!("JavaScript literal: bad number `{text}`"))?;
        Number::from_f64(f).map(Value::Number).ok_or_else(|| anyhow!("JavaScript literal: non-finite number `{text}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_literals() {
        let v = parse_js_literal(r#"{a:.5,b:[-.25,1e-3,4e-30,7],"c d":!0,e:!1,f:null,g:"x\"y",h:{}}"#).unwrap();
        assert_eq!(v["a"], 0.5);
        assert_eq!(v["b"][0], -0.25);
        assert_eq!(v["b"][1], 1e-3);
        assert_eq!(v["b"][3], 7);
        assert_eq!(v["c d"], true);
        assert_eq!(v["e"], false);
        assert!(v["f"].is_null());
        assert_eq!(v["g"], "x\"y");
        assert!(parse_js_literal("{a:}").is_err());
    }

    #[test]
    fn dequantises_like_tfjs() {
        let js_model = r#"!function(){}({1:[function(a,n,i){n.exports={modelTopology:{x:1},weightsManifest:[{paths:["s1"],weights:[
            {name:"k",shape:[2,2],dtype:"float32",quantization:{min:-1,scale:.5,dtype:"uint8"}},
            {name:"b",shape:[1],dtype:"float32"}]}]}},{}]})"#;
        let mut shard = vec![0u8, 1, 2, 4];
        shard.extend_from_slice(&3.5f32.to_le_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(&shard);
        let js_shard = format!("!function(){{}}({{1:[function(d,h,Z){{h.exports=\"{b64}\"}},{{}}]}})");
        let m = read_min_js(js_model, |p| {
            assert_eq!(p, "s1");
            Ok(js_shard.clone())
        })
        .unwrap();
        assert_eq!(m.weight("k").unwrap().data, vec![-1.0, -0.5, 0.0, 1.0]);
        assert_eq!(m.weight("b").unwrap().data, vec![3.5]);
        // a short shard is an error, not garbage
        let short = format!("h.exports=\"{}\"", base64::engine::general_purpose::STANDARD.encode(&shard[..6]));
        assert!(read_min_js(js_model, |_| Ok(short.clone())).is_err());
    }

    #[test]
    fn reads_bare_weights_manifests() {
        let manifest = r#"[{"paths":["a.bin"],"weights":[
            {"name":"conv0/filters","shape":[3],"dtype":"float32","quantization":{"dtype":"uint8","min":-0.5,"scale":0.25}},
            {"name":"n","shape":[],"dtype":"int32","quantization":{"dtype":"uint8","min":0.4,"scale":1.0}},
            {"name":"b","shape":[1],"dtype":"float32"}]}]"#;
        let mut bin = vec![0u8, 2, 4, 3];
        bin.extend_from_slice(&(-2.0f32).to_le_bytes());
        let w = read_weights_manifest(manifest, |p| {
            assert_eq!(p, "a.bin");
            Ok(bin.clone())
        })
        .unwrap();
        assert_eq!(w["conv0/filters"].data, vec![-0.5, 0.0, 0.5]);
        assert_eq!(w["n"].data, vec![3.0], "int32 weights are rounded like tfjs");
        assert!(w["n"].shape.is_empty());
        assert_eq!(w["b"].data, vec![-2.0]);
        assert!(read_weights_manifest(manifest, |_| Ok(bin[..5].to_vec())).is_err());
        assert!(read_weights_manifest("{}", |_| Ok(vec![])).is_err());
    }
}
