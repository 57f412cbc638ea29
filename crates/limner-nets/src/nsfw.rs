//! nsfwjs' full classifier (npm `nsfwjs@4.3.0`, its InceptionV3 model): limner's
//! [`InceptionV3`] trunk up to `mixed5`, then `mixed6` … `mixed10`, an 8×8 average pool and
//! nsfwjs' dense head (2048 → 256 ReLU → 128 ReLU → 5 softmax), giving the probabilities of
//! its five classes, in its order: [`CLASSES`].
//!
//! The weights are two files `limner models fetch --only inception-v3` converts from the same
//! package: `inception-v3.safetensors` (the trunk every other InceptionV3 user loads) and
//! `nsfwjs-head.safetensors` (the rest; see `limner_models::convert::inception_v3`).
//!
//! Preprocessing is nsfwjs': RGB / 255, then a bilinear resize with aligned corners to
//! [`NSFW_SIZE`]² (`tf.image.resizeBilinear(x, [299, 299], true)`), no other normalisation.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use limner_core::read_safetensors;

use crate::inception::{check_conv_range, resize, ConvBn, InceptionV3, LAST_CONV, LAST_CONV_MIXED10};

/// The side nsfwjs' InceptionV3 model takes (its `options.size`).
pub const NSFW_SIZE: usize = 299;

/// nsfwjs' classes in the order of its outputs (`NSFW_CLASSES`); the loader checks the file's.
pub const CLASSES: [&str; 5] = ["Drawing", "Hentai", "Neutral", "Porn", "Sexy"];

/// [`NsfwClassifier::classify_rgb8`] brings pictures with a longer side over this down to it
/// (in 8-bit) first.
pub const MAX_SIDE: usize = 1024;

/// Images per forward pass (299 px activations: about 60 MB an image at the widest layer).
const BATCH: usize = 4;

/// One image's class probabilities (they sum to 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NsfwScores {
    /// in [`CLASSES`] order: Drawing, Hentai, Neutral, Porn, Sexy
    pub probs: [f32; 5],
}

impl NsfwScores {
    pub fn drawing(&self) -> f32 {
        self.probs[0]
    }
    pub fn hentai(&self) -> f32 {
        self.probs[1]
    }
    pub fn neutral(&self) -> f32 {
        self.probs[2]
    }
    pub fn porn(&self) -> f32 {
        self.probs[3]
    }
    pub fn sexy(&self) -> f32 {
        self.probs[4]
    }
    /// The probability that the image is explicit: Porn + Hentai + Sexy (in [0, 1]).
    pub fn explicit(&self) -> f32 {
        self.porn() + self.hentai() + self.sexy()
    }
    /// The most probable class and its probability.
    pub fn top(&self) -> (&'static str, f32) {
        let (i, p) = self.probs.iter().enumerate().fold((0, f32::MIN), |b, (i, &p)| if p > b.1 { (i, p) } else { b });
        (CLASSES[i], p)
    }
}

/// nsfwjs' InceptionV3 classifier.
#[derive(Clone, Debug)]
pub struct NsfwClassifier {
    /// the trunk with `conv2d_51` … `conv2d_94` added
    net: InceptionV3,
    /// `dense_1` … `dense_3`: weight `[in, out]`, bias `[out]`
    dense: Vec<(Tensor<2>, Tensor<1>)>,
}

impl NsfwClassifier {
    /// Loads the trunk (`inception-v3.safetensors`) and the rest (`nsfwjs-head.safetensors`).
    pub fn load(trunk: &Path, head: &Path, device: &Device) -> Result<Self> {
        let mut net = InceptionV3::load(trunk, device)?;
        let (sd, meta) = read_safetensors(head)?;
        let ctx = || format!("{} is not nsfwjs' classifier head (run `limner models fetch --only inception-v3`)", head.display());
        if meta.get("format").map(String::as_str) != Some("limner-nets/nsfwjs-head/1") {
            return Err(anyhow!("missing or unknown `format` metadata")).with_context(ctx);
        }
        check_conv_range(meta.get("convs"), LAST_CONV + 1..=LAST_CONV_MIXED10).with_context(ctx)?;
        let classes: Vec<String> = meta.get("classes").and_then(|c| serde_json::from_str(c).ok()).unwrap_or_default();
        if classes != CLASSES {
            return Err(anyhow!("classes {classes:?}, expected {CLASSES:?}")).with_context(ctx);
        }
        if meta.get("pool").map(String::as_str) != Some("[8,8]") {
            return Err(anyhow!("the pool after mixed10 is {:?}, expected [8,8]", meta.get("pool"))).with_context(ctx);
        }
        let tensor = |key: &str, dims: usize| {
            let t = sd.get(key).ok_or_else(|| anyhow!("missing tensor `{key}`"))?;
            if t.shape.len() != dims || t.data.iter().any(|v| !v.is_finite()) {
                bail!("tensor `{key}` has shape {:?} or non-finite values", t.shape);
            }
            Ok(t)
        };
        let mut convs = Vec::with_capacity(LAST_CONV_MIXED10 - LAST_CONV);
        for n in LAST_CONV + 1..=LAST_CONV_MIXED10 {
            let w = tensor(&format!("conv2d_{n}.weight"), 4).with_context(ctx)?;
            let b = tensor(&format!("conv2d_{n}.bias"), 1).with_context(ctx)?;
            let cin = expected_input_channels(n);
            if b.shape[0] != w.shape[0] || w.shape[1] != cin {
                return Err(anyhow!("conv2d_{n}: weight {:?}, bias {:?}; the architecture feeds it {cin} channels", w.shape, b.shape)).with_context(ctx);
            }
            let weight = Tensor::from_data(TensorData::new(w.data.clone(), [w.shape[0], w.shape[1], w.shape[2], w.shape[3]]), device);
            let bias = Tensor::from_data(TensorData::new(b.data.clone(), [b.shape[0]]), device);
            convs.push(ConvBn { weight, bias });
        }
        let mut dense = vec![];
        for (n, (i, o)) in [(2048, 256), (256, 128), (128, CLASSES.len())].into_iter().enumerate() {
            let w = tensor(&format!("dense_{}.weight", n + 1), 2).with_context(ctx)?;
            let b = tensor(&format!("dense_{}.bias", n + 1), 1).with_context(ctx)?;
            if w.shape != [i, o] || b.shape != [o] {
                return Err(anyhow!("dense_{}: weight {:?}, bias {:?}, expected [{i}, {o}] and [{o}]", n + 1, w.shape, b.shape)).with_context(ctx);
            }
            dense.push((Tensor::from_data(TensorData::new(w.data.clone(), [i, o]), device), Tensor::from_data(TensorData::new(b.data.clone(), [o]), device)));
        }
        if sd.len() != 2 * (LAST_CONV_MIXED10 - LAST_CONV) + 6 {
            return Err(anyhow!("{} tensors, expected {}", sd.len(), 2 * (LAST_CONV_MIXED10 - LAST_CONV) + 6)).with_context(ctx);
        }
        net.add_convs(convs);
        Ok(Self { net, dense })
    }

    /// Loads the fetched model from the cache (`limner models fetch --only inception-v3`).
    pub fn load_fetched(device: &Device) -> Result<Self> {
        let trunk = limner_models::fetch::net_path("inception-v3")?;
        let head = limner_models::fetch::net_path(limner_models::fetch::NSFW_HEAD)?;
        Self::load(&trunk, &head, device)
    }

    /// The class probabilities `[N, 5]` of images already at [`NSFW_SIZE`] (NCHW RGB in [0, 1]).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let [n, _, h, w] = x.dims();
        assert!(h == NSFW_SIZE && w == NSFW_SIZE, "nsfwjs' classifier takes {NSFW_SIZE}×{NSFW_SIZE} px, got {h}×{w} (use `classify`, which resizes)");
        let f = self.net.forward_mixed10(x); //                     [N, 2048, 8, 8]
        let f = f.mean_dim(3).mean_dim(2).reshape([n, 2048]); //   average_pooling2d_10 (8×8, valid) + flatten
        let d = |x: Tensor<2>, k: usize| x.matmul(self.dense[k].0.clone()) + self.dense[k].1.clone().unsqueeze::<2>();
        let x = relu(d(f, 0)); //                                  [N, 256]
        let x = relu(d(x, 1)); //                                  [N, 128]
        softmax(d(x, 2), 1) //                                     [N, 5]
    }

    /// Classifies images as nsfwjs does: `images` NCHW RGB in [0, 1] (8-bit values / 255), any
    /// size, resized bilinearly with aligned corners to [`NSFW_SIZE`]; run in small batches.
    pub fn classify(&self, images: Tensor<4>) -> Vec<NsfwScores> {
        let [n, _, _, _] = images.dims();
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(BATCH) {
            let end = (start + BATCH).min(n);
            let p = self.forward(resize(images.clone().slice([start..end]), NSFW_SIZE));
            let v: Vec<f32> = p.into_data().try_into_vec_as::<f32>().expect("f32");
            out.extend(v.chunks_exact(CLASSES.len()).map(|c| NsfwScores { probs: c.try_into().expect("5 classes") }));
        }
        out
    }

    /// Classifies one 8-bit RGB picture (`rgb` row-major, `w`×`h`×3), as nsfwjs does with a
    /// decoded image; a picture whose longer side is over [`MAX_SIDE`] is first brought down to
    /// it in 8-bit (triangle filter), so a large photo never becomes a large float copy (nsfwjs'
    /// own bilinear resize to 299 px would only sample it more coarsely).
    pub fn classify_rgb8(&self, w: usize, h: usize, rgb: &[u8]) -> Result<NsfwScores> {
        if w == 0 || h == 0 || rgb.len() != w * h * 3 {
            bail!("{} bytes are not a {w}×{h} RGB picture", rgb.len());
        }
        let small;
        let (w, h, rgb) = if w.max(h) > MAX_SIDE {
            let s = MAX_SIDE as f64 / w.max(h) as f64;
            let (sw, sh) = (((w as f64 * s).round() as u32).max(1), ((h as f64 * s).round() as u32).max(1));
            let full = image::RgbImage::from_raw(w as u32, h as u32, rgb.to_vec()).ok_or_else(|| anyhow!("bad picture buffer"))?;
            small = image::imageops::resize(&full, sw, sh, image::imageops::FilterType::Triangle);
            (sw as usize, sh as usize, small.as_raw().as_slice())
        } else {
            (w, h, rgb)
        };
        let data: Vec<f32> = rgb.iter().map(|&v| v as f32 / 255.0).collect();
        let x = Tensor::<4>::from_data(TensorData::new(data, [1, h, w, 3]), &self.net.device()).permute([0, 3, 1, 2]);
        Ok(self.classify(x).pop().expect("one image"))
    }
}

/// The channels the architecture feeds `conv2d_n` (n = 51 ..= 94).
fn expected_input_channels(n: usize) -> usize {
    match n {
        // mixed6 (51..=60, c7 = 160), mixed7 (61..=70, c7 = 192): block input 768
        51..=70 => {
            let (k, c7) = if n <= 60 { (n - 51, 160) } else { (n - 61, 192) };
            match k {
                0 | 1 | 4 | 9 => 768,
                _ => c7,
            }
        }
        // mixed8: 71 and 73 read mixed7; 72, 74, 75, 76 the 192-channel branch before them
        71 | 73 => 768,
        72 | 74..=76 => 192,
        // mixed9 (77.., input 1280), mixed10 (86.., input 2048)
        _ => {
            let (k, cin) = if n <= 85 { (n - 77, 1280) } else { (n - 86, 2048) };
            match k {
                0 | 1 | 4 | 8 => cin,
                2 | 3 | 6 | 7 => 384,
                5 => 448,
                _ => unreachable!(),
            }
        }
    }
}
