//! A reader for OpenVINO IR v10 (`.xml` graph + `.bin` weights): just enough to walk the
//! graph and pull out constants. It executes nothing; [`crate::convert`] uses it to find each
//! weight of the MobileStyleGAN and name it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};
use limner_core::HostTensor;

/// One `<layer>` of the IR.
#[derive(Clone, Debug)]
pub struct Layer {
    pub id: u32,
    pub name: String,
    /// The op type: `Const`, `Convolution`, `MatMul`, ...
    pub kind: String,
    /// The attributes of its `<data>` element.
    pub data: BTreeMap<String, String>,
    /// Input port ids and their dims, in document order.
    pub inputs: Vec<(u32, Vec<usize>)>,
    /// Output port ids and their dims, in document order.
    pub outputs: Vec<(u32, Vec<usize>)>,
}

impl Layer {
    /// `` `name` (Kind, id N) ``: how errors name a layer.
    pub fn describe(&self) -> String {
        format!("`{}` ({}, id {})", self.name, self.kind, self.id)
    }

    /// The dims of output port `i` (by position).
    pub fn out_dims(&self, i: usize) -> &[usize] {
        self.outputs.get(i).map(|(_, d)| d.as_slice()).unwrap_or(&[])
    }
}

/// A parsed IR: layers by id, its edges both ways, and the weights blob.
pub struct Graph {
    /// The `name` attribute of `<net>`.
    pub net_name: String,
    pub layers: BTreeMap<u32, Layer>,
    /// `(to_layer, to_port) -> (from_layer, from_port)`
    producer: HashMap<(u32, u32), (u32, u32)>,
    /// `from_layer -> [to_layer]`, in edge order
    consumers: HashMap<u32, Vec<u32>>,
    bin: Vec<u8>,
    bin_name: String,
}

fn parse_dims(node: roxmltree::Node) -> Result<Vec<usize>> {
    node.children()
        .filter(|c| c.has_tag_name("dim"))
        .map(|d| {
            let t = d.text().unwrap_or("").trim();
            t.parse::<usize>().with_context(|| format!("bad <dim> `{t}`"))
        })
        .collect()
}

fn parse_ports(layer: roxmltree::Node, tag: &str) -> Result<Vec<(u32, Vec<usize>)>> {
    let Some(list) = layer.children().find(|c| c.has_tag_name(tag)) else { return Ok(vec![]) };
    list.children()
        .filter(|c| c.has_tag_name("port"))
        .map(|p| {
            let id = p.attribute("id").context("<port> without id")?.parse::<u32>()?;
            Ok((id, parse_dims(p)?))
        })
        .collect()
}

impl Graph {
    /// Reads and parses `xml` and `bin`.
    pub fn read(xml: &Path, bin: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(xml).with_context(|| format!("cannot read {}", xml.display()))?;
        let bin_bytes = std::fs::read(bin).with_context(|| format!("cannot read {}", bin.display()))?;
        Self::parse(&text, bin_bytes, &bin.display().to_string())
            .with_context(|| format!("{} is not a usable OpenVINO IR", xml.display()))
    }

    /// Parses IR text plus its weights blob (`bin_name` is only used in messages).
    pub fn parse(xml: &str, bin: Vec<u8>, bin_name: &str) -> Result<Self> {
        let doc = roxmltree::Document::parse(xml).context("malformed XML")?;
        let net = doc.root_element();
        if !net.has_tag_name("net") {
            bail!("the root element is <{}>, not <net>", net.tag_name().name());
        }
        let version = net.attribute("version").unwrap_or("?");
        if version != "10" && version != "11" {
            bail!("IR version {version} is not supported (expected 10 or 11)");
        }
        let mut layers = BTreeMap::new();
        let layers_node = net.children().find(|c| c.has_tag_name("layers")).context("no <layers>")?;
        for l in layers_node.children().filter(|c| c.has_tag_name("layer")) {
            let id = l.attribute("id").context("<layer> without id")?.parse::<u32>()?;
            let name = l.attribute("name").unwrap_or("").to_string();
            let kind = l.attribute("type").context("<layer> without type")?.to_string();
            let data = l
                .children()
                .find(|c| c.has_tag_name("data"))
                .map(|d| d.attributes().map(|a| (a.name().to_string(), a.value().to_string())).collect())
                .unwrap_or_default();
            let inputs = parse_ports(l, "input").with_context(|| format!("layer `{name}` (id {id})"))?;
            let outputs = parse_ports(l, "output").with_context(|| format!("layer `{name}` (id {id})"))?;
            if layers.insert(id, Layer { id, name, kind, data, inputs, outputs }).is_some() {
                bail!("two layers have id {id}");
            }
        }
        let mut producer = HashMap::new();
        let mut consumers: HashMap<u32, Vec<u32>> = HashMap::new();
        let edges = net.children().find(|c| c.has_tag_name("edges")).context("no <edges>")?;
        for e in edges.children().filter(|c| c.has_tag_name("edge")) {
            let get = |k: &str| -> Result<u32> {
                Ok(e.attribute(k).with_context(|| format!("<edge> without {k}"))?.parse::<u32>()?)
            };
            let (fl, fp, tl, tp) = (get("from-layer")?, get("from-port")?, get("to-layer")?, get("to-port")?);
            for l in [fl, tl] {
                if !layers.contains_key(&l) {
                    bail!("an edge {fl}:{fp} -> {tl}:{tp} names layer id {l}, which does not exist");
                }
            }
            producer.insert((tl, tp), (fl, fp));
            consumers.entry(fl).or_default().push(tl);
        }
        Ok(Self {
            net_name: net.attribute("name").unwrap_or("").to_string(),
            layers,
            producer,
            consumers,
            bin,
            bin_name: bin_name.to_string(),
        })
    }

    /// Layers of one op type, in id (= topological, for these exports) order.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Layer> + 'a {
        self.layers.values().filter(move |l| l.kind == kind)
    }

    /// The layer with this `name`.
    pub fn by_name(&self, name: &str) -> Option<&Layer> {
        self.layers.values().find(|l| l.name == name)
    }

    /// The layer feeding input `i` (by position) of `layer`.
    pub fn input(&self, layer: &Layer, i: usize) -> Result<&Layer> {
        let (port, _) = layer
            .inputs
            .get(i)
            .with_context(|| format!("layer {} has no input #{i}", layer.describe()))?;
        let (from, _) = self
            .producer
            .get(&(layer.id, *port))
            .with_context(|| format!("input #{i} of layer {} is not connected", layer.describe()))?;
        Ok(&self.layers[from])
    }

    /// The layers that read `layer`'s outputs.
    pub fn consumers(&self, layer: &Layer) -> Vec<&Layer> {
        self.consumers.get(&layer.id).map(|v| v.iter().map(|id| &self.layers[id]).collect()).unwrap_or_default()
    }

    /// The single consumer of `layer` of op type `kind`.
    pub fn consumer(&self, layer: &Layer, kind: &str) -> Result<&Layer> {
        let c: Vec<&Layer> = self.consumers(layer).into_iter().filter(|l| l.kind == kind).collect();
        match c.as_slice() {
            [one] => Ok(one),
            [] => bail!("layer {} should feed a {kind} layer, but none reads it", layer.describe()),
            _ => bail!("layer {} feeds {} {kind} layers, expected one", layer.describe(), c.len()),
        }
    }

    /// Follows input `i` of `layer` through `Reshape`/`Convert`/`Unsqueeze`/`Squeeze` to a `Const`.
    pub fn const_input(&self, layer: &Layer, i: usize) -> Result<&Layer> {
        let mut l = self.input(layer, i)?;
        loop {
            match l.kind.as_str() {
                "Const" => return Ok(l),
                "Reshape" | "Convert" | "Unsqueeze" | "Squeeze" => l = self.input(l, 0)?,
                _ => bail!(
                    "input #{i} of layer {} should be a constant, but it is computed by {}",
                    layer.describe(),
                    l.describe()
                ),
            }
        }
    }

    /// The value of a `Const` layer as f32 (f32 and f16 storage), with bounds checks against the
    /// `.bin` and the layer's declared output shape.
    pub fn const_f32(&self, layer: &Layer) -> Result<HostTensor> {
        if layer.kind != "Const" {
            bail!("layer {} is not a Const", layer.describe());
        }
        let attr = |k: &str| -> Result<&str> {
            layer.data.get(k).map(String::as_str).with_context(|| format!("Const {} has no `{k}`", layer.describe()))
        };
        let et = attr("element_type")?;
        let shape: Vec<usize> = {
            let s = attr("shape")?.trim();
            if s.is_empty() {
                vec![]
            } else {
                s.split(',')
                    .map(|d| d.trim().parse::<usize>())
                    .collect::<std::result::Result<_, _>>()
                    .with_context(|| format!("Const {}: bad shape `{s}`", layer.describe()))?
            }
        };
        if layer.out_dims(0) != shape.as_slice() {
            bail!(
                "Const {}: its data shape {:?} differs from its output port's shape {:?}",
                layer.describe(),
                shape,
                layer.out_dims(0)
            );
        }
        let offset: usize = attr("offset")?.parse().with_context(|| format!("Const {}: bad offset", layer.describe()))?;
        let size: usize = attr("size")?.parse().with_context(|| format!("Const {}: bad size", layer.describe()))?;
        let numel: usize = shape.iter().product();
        let width = match et {
            "f32" => 4,
            "f16" => 2,
            other => bail!("Const {} holds {other}, expected f32 or f16", layer.describe()),
        };
        if size != numel * width {
            bail!(
                "Const {}: size {size} bytes does not match shape {shape:?} of {et} ({} bytes)",
                layer.describe(),
                numel * width
            );
        }
        let end = offset.checked_add(size).context("offset overflow")?;
        if end > self.bin.len() {
            bail!(
                "Const {}: its data [{offset}, {end}) lies past the end of {} ({} bytes): truncated weights file?",
                layer.describe(),
                self.bin_name,
                self.bin.len()
            );
        }
        let raw = &self.bin[offset..end];
        let data: Vec<f32> = if width == 4 {
            raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        } else {
            raw.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect()
        };
        if let Some(bad) = data.iter().position(|x| !x.is_finite()) {
            bail!("Const {} holds a non-finite value at index {bad}", layer.describe());
        }
        Ok(HostTensor { shape, data })
    }
}

/// IEEE half to single (no dependency on `half` for this one use).
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // subnormal: normalise
            let shift = m.leading_zeros() - 21;
            let m = (m << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (m << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::f16_to_f32;

    #[test]
    fn half_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.33325195);
        assert_eq!(f16_to_f32(0x0001), 5.9604645e-8);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
    }
}
