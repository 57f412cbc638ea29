//! A converted human-models graph (`limner models fetch --only human-models`): every constant
//! by its short node name, and the graph's nodes (op, inputs, strides, padding, fused ops),
//! so that each port ([`super::blazeface`], [`super::faceres`], [`super::emotion`]) writes its
//! architecture out and takes each layer's weights *and* hyperparameters from the graph by node
//! name. A node that is missing or not what the port expects is an error naming the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use limner_core::{read_safetensors, HostTensor};
use serde::Deserialize;

use crate::layers::{conv, Padding};

/// One non-constant node of the graph.
#[derive(Clone, Debug, Deserialize)]
pub struct Node {
    pub name: String,
    pub op: String,
    #[serde(default)]
    pub inputs: Vec<String>,
    #[serde(default)]
    pub strides: Vec<i64>,
    #[serde(default)]
    pub ksize: Vec<i64>,
    #[serde(default)]
    pub padding: Option<String>,
    #[serde(default)]
    pub fused_ops: Vec<String>,
}

/// The weights and nodes of one converted graph model.
pub struct Graph {
    path: PathBuf,
    tensors: BTreeMap<String, HostTensor>,
    nodes: BTreeMap<String, Node>,
    device: Device,
}

impl Graph {
    /// Reads `path` and checks its `format` metadata is `limner-faces/NET/1`.
    pub fn open(path: &Path, net: &str, device: &Device) -> Result<Self> {
        let (tensors, meta) = read_safetensors(path)?;
        let want = format!("limner-faces/{net}/1");
        if meta.get("format") != Some(&want) {
            bail!(
                "{} is not human-models' {net} as limner converts it (format {:?}, expected {want}): run `limner models fetch --only human-models --force`",
                path.display(),
                meta.get("format")
            );
        }
        let graph: Vec<Node> = serde_json::from_str(meta.get("graph").map(String::as_str).unwrap_or("[]"))
            .map_err(|e| anyhow!("{}: unreadable `graph` metadata ({e}): run `limner models fetch --only human-models --force`", path.display()))?;
        let nodes = graph.into_iter().map(|n| (n.name.clone(), n)).collect();
        Ok(Self { path: path.to_path_buf(), tensors, nodes, device: device.clone() })
    }

    /// The fetched network `net` (`human-blazeface`, `human-faceres`, `human-emotion`).
    pub fn fetched(net: &str, device: &Device) -> Result<Self> {
        Self::open(&limner_models::fetch::net_path(net)?, net, device)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, what: String) -> anyhow::Error {
        anyhow!("{}: {what} (not the graph limner ported: run `limner models fetch --only human-models --force`)", self.path.display())
    }

    /// A node, checked to have op `op` (one of `|`-separated names).
    pub fn node(&self, name: &str, op: &str) -> Result<&Node> {
        let n = self.nodes.get(name).ok_or_else(|| self.err(format!("no node `{name}`")))?;
        if !op.split('|').any(|o| o == n.op) {
            return Err(self.err(format!("node `{name}` is a {}, expected {op}", n.op)));
        }
        Ok(n)
    }

    /// A constant's host values.
    pub fn host(&self, name: &str) -> Result<&HostTensor> {
        self.tensors.get(name).ok_or_else(|| self.err(format!("no constant `{name}`")))
    }

    /// A constant with `D` dimensions.
    pub fn tensor<const D: usize>(&self, name: &str) -> Result<Tensor<D>> {
        let t = self.host(name)?;
        if t.shape.len() != D {
            return Err(self.err(format!("`{name}` has shape {:?}, expected {D} dimensions", t.shape)));
        }
        let shape: [usize; D] = t.shape.clone().try_into().expect("checked length");
        Ok(Tensor::from_data(TensorData::new(t.data.clone(), shape), &self.device))
    }

    /// A one-value constant (a clip bound).
    pub fn scalar(&self, name: &str) -> Result<f32> {
        let t = self.host(name)?;
        match t.data[..] {
            [v] => Ok(v),
            _ => Err(self.err(format!("`{name}` holds {} values, expected one", t.data.len()))),
        }
    }

    fn stride_padding(&self, n: &Node) -> Result<(usize, Padding)> {
        let s = match n.strides[..] {
            [1, a, b, 1] if a == b && a > 0 => a as usize,
            _ => return Err(self.err(format!("`{}` has strides {:?}", n.name, n.strides))),
        };
        let p = match n.padding.as_deref() {
            Some("SAME") => Padding::Same,
            Some("VALID") => Padding::Valid,
            p => return Err(self.err(format!("`{}` has padding {p:?}", n.name))),
        };
        Ok((s, p))
    }

    /// The convolution computed by node `name` (`Conv2D`, or `_FusedConv2D` with a bias and an
    /// optional ReLU), with its stride and padding from the graph.
    pub fn conv(&self, name: &str) -> Result<GConv> {
        let n = self.node(name, "Conv2D|_FusedConv2D")?;
        let (stride, padding) = self.stride_padding(n)?;
        let weight: Tensor<4> = self.tensor(n.inputs.get(1).ok_or_else(|| self.err(format!("`{name}` has no filter")))?)?;
        let (bias, relu) = match (n.op.as_str(), &n.fused_ops[..]) {
            ("Conv2D", _) => (None, false),
            (_, [b]) if b == "BiasAdd" => (Some(self.tensor::<1>(&n.inputs[2])?), false),
            (_, [b, r]) if b == "BiasAdd" && r == "Relu" => (Some(self.tensor::<1>(&n.inputs[2])?), true),
            (_, f) => return Err(self.err(format!("`{name}` fuses {f:?}"))),
        };
        Ok(GConv { weight, bias, stride, padding, relu, groups: 1 })
    }

    /// The depthwise convolution of node `name` (`DepthwiseConv2dNative`, no bias).
    pub fn depthwise(&self, name: &str) -> Result<GConv> {
        let n = self.node(name, "DepthwiseConv2dNative")?;
        let (stride, padding) = self.stride_padding(n)?;
        let weight: Tensor<4> = self.tensor(n.inputs.get(1).ok_or_else(|| self.err(format!("`{name}` has no filter")))?)?;
        let groups = weight.dims()[0];
        Ok(GConv { weight, bias: None, stride, padding, relu: false, groups })
    }

    /// `(kernel, stride)` of the max pool `name`, checked to be TF "same" (its padding is
    /// [`crate::layers::max_pool_same`]'s).
    pub fn max_pool(&self, name: &str) -> Result<(usize, usize)> {
        let n = self.node(name, "MaxPool")?;
        let (s, p) = self.stride_padding(n)?;
        match (&n.ksize[..], p) {
            (&[1, a, b, 1], Padding::Same) if a == b => Ok((a as usize, s)),
            _ => Err(self.err(format!("max pool `{name}` with window {:?} and padding {:?}", n.ksize, n.padding))),
        }
    }

    /// `(weights [in, out], bias [out], relu)` of the `_FusedMatMul` node `name`.
    pub fn matmul(&self, name: &str) -> Result<(Tensor<2>, Tensor<1>, bool)> {
        let n = self.node(name, "_FusedMatMul")?;
        let relu = match &n.fused_ops[..] {
            [b] if b == "BiasAdd" => false,
            [b, r] if b == "BiasAdd" && r == "Relu" => true,
            f => return Err(self.err(format!("`{name}` fuses {f:?}"))),
        };
        Ok((self.tensor(&n.inputs[1])?, self.tensor(&n.inputs[2])?, relu))
    }
}

/// A convolution read from the graph: weight `[out, in / groups, kh, kw]`, optional bias,
/// stride, TF padding, optional fused ReLU.
#[derive(Clone, Debug)]
pub struct GConv {
    pub weight: Tensor<4>,
    pub bias: Option<Tensor<1>>,
    pub stride: usize,
    pub padding: Padding,
    pub relu: bool,
    pub groups: usize,
}

impl GConv {
    /// `[N, in, H, W] -> [N, out, H', W']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = conv(x, self.weight.clone(), self.bias.clone(), self.stride, self.padding, self.groups);
        if self.relu {
            relu(y)
        } else {
            y
        }
    }

    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }
}
