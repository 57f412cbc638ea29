//! Broken IRs give errors that name the layer or tensor at fault.
//!
//! A small synthetic mapping IR (written here, runs on any clone) checks the converter end to
//! end, including the mapping forward against a host computation; copies of the real random-face
//! files, corrupted in a tempdir, check the synthesis side when the model is present.

mod common;

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use limner_core::{read_safetensors, tensor_from, to_vec};
use limner_photoreal::{convert_ir, MappingNetwork};

/// A 2-layer mapping IR in the random-face layout: pixel norm, then MatMul + Add(bias) + PReLU +
/// Multiply(gain) per layer. Returns (xml, bin, weights, biases).
fn synthetic_mapping() -> (String, Vec<u8>, Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut bin: Vec<u8> = vec![];
    let mut push = |v: &[f32]| -> (usize, usize) {
        let off = bin.len();
        bin.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        (off, v.len() * 4)
    };
    let mut layers = String::new();
    let mut edges = String::new();
    let port = |dims: &[usize]| dims.iter().map(|d| format!("<dim>{d}</dim>")).collect::<String>();
    let mut add_layer = |id: usize, kind: &str, name: &str, data: &str, ins: &[&[usize]], out: &[usize]| {
        let inputs: String = ins.iter().enumerate().map(|(i, d)| format!("<port id=\"{i}\">{}</port>", port(d))).collect();
        let inputs = if ins.is_empty() { String::new() } else { format!("<input>{inputs}</input>") };
        layers += &format!(
            "<layer id=\"{id}\" name=\"{name}\" type=\"{kind}\" version=\"opset1\"><data {data}/>{inputs}<output><port id=\"{}\">{}</port></output></layer>\n",
            ins.len(),
            port(out)
        );
    };
    let mut edge = |from: usize, fport: usize, to: usize, tport: usize| {
        edges += &format!("<edge from-layer=\"{from}\" from-port=\"{fport}\" to-layer=\"{to}\" to-port=\"{tport}\"/>\n");
    };
    let cdata = |shape: &str, (off, size): (usize, usize)| format!("element_type=\"f32\" shape=\"{shape}\" offset=\"{off}\" size=\"{size}\"");
    let d = 512;
    add_layer(0, "Parameter", "var", "shape=\"1, 512\" element_type=\"f32\"", &[], &[1, d]);
    // pixel norm: ReduceMean(var) + eps -> (multiplied back in the real IR; only eps is read)
    add_layer(1, "ReduceMean", "ReduceMean_1", "keep_dims=\"true\"", &[&[1, d]], &[1, 1]);
    edge(0, 0, 1, 0);
    let eps = push(&[1e-8]);
    add_layer(2, "Const", "Constant_2", &cdata("1, 1", eps), &[], &[1, 1]);
    add_layer(3, "Add", "Add_3", "auto_broadcast=\"numpy\"", &[&[1, 1], &[1, 1]], &[1, 1]);
    edge(1, 1, 3, 0);
    edge(2, 0, 3, 1);
    let mut prev = 0usize; // the layer feeding the next MatMul (port 0 for the Parameter, 2 for a Multiply)
    let mut prev_port = 0usize;
    let mut ws = vec![];
    let mut bs = vec![];
    for k in 0..2 {
        let base = 10 + k * 10;
        let w: Vec<f32> = (0..d * d).map(|i| (((i * 31 + k * 7) % 97) as f32 / 97.0 - 0.5) * 0.1).collect();
        let b: Vec<f32> = (0..d).map(|i| (i % 13) as f32 * 0.01 - 0.06).collect();
        let wl = push(&w);
        let bl = push(&b);
        let sl = push(&[0.2]);
        let gl = push(&[std::f32::consts::SQRT_2]);
        add_layer(base, "Const", &format!("w{k}"), &cdata("512, 512", wl), &[], &[d, d]);
        add_layer(base + 1, "MatMul", &format!("MatMul_{k}"), "transpose_a=\"false\" transpose_b=\"true\"", &[&[1, d], &[d, d]], &[1, d]);
        edge(prev, prev_port, base + 1, 0);
        edge(base, 0, base + 1, 1);
        add_layer(base + 2, "Const", &format!("b{k}"), &cdata("512", bl), &[], &[d]);
        add_layer(base + 3, "Add", &format!("Add_{k}"), "auto_broadcast=\"numpy\"", &[&[1, d], &[d]], &[1, d]);
        edge(base + 1, 2, base + 3, 0);
        edge(base + 2, 0, base + 3, 1);
        add_layer(base + 4, "Const", &format!("slope{k}"), &cdata("1", sl), &[], &[1]);
        add_layer(base + 5, "PReLU", &format!("LeakyRelu_{k}"), "", &[&[1, d], &[1]], &[1, d]);
        edge(base + 3, 2, base + 5, 0);
        edge(base + 4, 0, base + 5, 1);
        add_layer(base + 6, "Const", &format!("gain{k}"), &cdata("1, 1", gl), &[], &[1, 1]);
        add_layer(base + 7, "Multiply", &format!("Mul_{k}"), "auto_broadcast=\"numpy\"", &[&[1, d], &[1, 1]], &[1, d]);
        edge(base + 5, 2, base + 7, 0);
        edge(base + 6, 0, base + 7, 1);
        prev = base + 7;
        prev_port = 2;
        ws.push(w);
        bs.push(b);
    }
    add_layer(99, "Result", "style/sink_port_0", "", &[&[1, d]], &[]);
    edge(prev, prev_port, 99, 0);
    let xml = format!("<?xml version=\"1.0\" ?>\n<net name=\"MappingNetwork\" version=\"10\">\n<layers>\n{layers}</layers>\n<edges>\n{edges}</edges>\n</net>\n");
    (xml, bin, ws, bs)
}

fn write(dir: &Path, stem: &str, xml: &str, bin: &[u8]) -> (PathBuf, PathBuf) {
    let (x, b) = (dir.join(format!("{stem}.xml")), dir.join(format!("{stem}.bin")));
    std::fs::write(&x, xml).unwrap();
    std::fs::write(&b, bin).unwrap();
    (x, b)
}

fn convert_err(xml: &Path, bin: &Path, out: &Path) -> String {
    let e = convert_ir(xml, bin, out).expect_err("a broken IR must not convert");
    assert!(!out.exists(), "nothing may be written for a broken IR");
    format!("{e:#}")
}

#[test]
fn synthetic_mapping_converts_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let (xml, bin, ws, bs) = synthetic_mapping();
    let (x, b) = write(tmp.path(), "MappingNetwork", &xml, &bin);
    let out = tmp.path().join("mapping.safetensors");
    convert_ir(&x, &b, &out).unwrap();
    let (sd, meta) = read_safetensors(&out).unwrap();
    assert_eq!(meta["part"], "mapping");
    let device = Device::flex();
    let m = MappingNetwork::from_state_dict(&sd, &device).unwrap();
    assert_eq!(m.layers.len(), 2);
    let z: Vec<f32> = (0..512).map(|i| ((i * 17 % 23) as f32 - 11.0) / 7.0).collect();
    let got = to_vec(&m.forward(tensor_from(z.clone(), [1, 512], &device)));
    // host reference
    let ms = z.iter().map(|v| v * v).sum::<f32>() / 512.0;
    let mut x: Vec<f32> = z.iter().map(|v| v / (ms + 1e-8).sqrt()).collect();
    for (w, b) in ws.iter().zip(&bs) {
        x = (0..512)
            .map(|o| {
                let y = (0..512).map(|i| x[i] * w[o * 512 + i]).sum::<f32>() + b[o];
                (if y < 0.0 { 0.2 * y } else { y }) * std::f32::consts::SQRT_2
            })
            .collect();
    }
    assert!(common::rel_err(&got, &x) < 1e-5, "synthetic mapping forward: {:.3e}", common::rel_err(&got, &x));
}

#[test]
fn synthetic_truncated_bin_names_the_constant() {
    let tmp = tempfile::tempdir().unwrap();
    let (xml, bin, _, _) = synthetic_mapping();
    let (x, b) = write(tmp.path(), "MappingNetwork", &xml, &bin[..bin.len() - 1000]);
    let e = convert_err(&x, &b, &tmp.path().join("o.safetensors"));
    assert!(e.contains("`b1`") && e.contains("past the end") && e.contains("truncated"), "{e}");
}

#[test]
fn synthetic_wrong_shape_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (xml, bin, _, _) = synthetic_mapping();
    // declare w1 as [256, 1024] (same byte size): the converter must notice the layout
    let xml = xml.replacen(
        "name=\"w1\" type=\"Const\" version=\"opset1\"><data element_type=\"f32\" shape=\"512, 512\"",
        "name=\"w1\" type=\"Const\" version=\"opset1\"><data element_type=\"f32\" shape=\"256, 1024\"",
        1,
    );
    let (x, b) = write(tmp.path(), "MappingNetwork", &xml, &bin);
    let e = convert_err(&x, &b, &tmp.path().join("o.safetensors"));
    assert!(e.contains("`w1`") && e.contains("[256, 1024]"), "{e}");
}

#[test]
fn synthetic_missing_layer_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (xml, bin, _, _) = synthetic_mapping();
    // drop the bias constant of layer 1 and its edge
    let xml: String = xml
        .lines()
        .filter(|l| !l.contains("name=\"b1\"") && !l.contains("from-layer=\"22\""))
        .map(|l| format!("{l}\n"))
        .collect();
    let (x, b) = write(tmp.path(), "MappingNetwork", &xml, &bin);
    let e = convert_err(&x, &b, &tmp.path().join("o.safetensors"));
    assert!(e.contains("fc1") && e.contains("`Add_1`") && e.contains("not connected"), "{e}");
}

fn real_copy(tmp: &Path) -> Option<(String, Vec<u8>)> {
    let dir = common::model_dir()?;
    let _ = tmp;
    Some((
        std::fs::read_to_string(dir.join("SynthesisNetwork.xml")).unwrap(),
        std::fs::read(dir.join("SynthesisNetwork.bin")).unwrap(),
    ))
}

#[test]
fn real_synthesis_missing_layer_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((xml, bin)) = real_copy(tmp.path()) else { return };
    // remove the Const `m.layers.3.conv1.bias` (its <layer> element and edges)
    let start = xml.find("name=\"m.layers.3.conv1.bias\"").unwrap();
    let lstart = xml[..start].rfind("<layer ").unwrap();
    let lend = start + xml[start..].find("</layer>").unwrap() + "</layer>".len();
    let id: String = xml[lstart..].split('"').nth(1).unwrap().to_string();
    let mut cut = format!("{}{}", &xml[..lstart], &xml[lend..]);
    cut = cut.lines().filter(|l| !l.contains(&format!("from-layer=\"{id}\""))).map(|l| format!("{l}\n")).collect();
    let (x, b) = write(tmp.path(), "SynthesisNetwork", &cut, &bin);
    let e = convert_err(&x, &b, &tmp.path().join("o.safetensors"));
    assert!(e.contains("missing tensor `m.layers.3.conv1.bias`"), "{e}");
}

#[test]
fn real_synthesis_truncated_bin_names_the_constant() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((xml, bin)) = real_copy(tmp.path()) else { return };
    let (x, b) = write(tmp.path(), "SynthesisNetwork", &xml, &bin[..bin.len() / 2]);
    let e = convert_err(&x, &b, &tmp.path().join("o.safetensors"));
    // the first constant past 16 MB of the .bin
    assert!(e.contains("past the end") && e.contains("m.layers.") && e.contains("truncated"), "{e}");
}

#[test]
fn real_synthesis_wrong_shape_names_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((xml, bin)) = real_copy(tmp.path()) else { return };
    // to_img weight [12, 64, 1, 1] declared as [6, 128, 1, 1] (same size, port dims too)
    let start = xml.find("name=\"m.layers.6.to_img.conv.weight\"").unwrap();
    let lend = start + xml[start..].find("</layer>").unwrap();
    let layer = xml[start..lend]
        .replace("shape=\"12, 64, 1, 1\"", "shape=\"6, 128, 1, 1\"")
        .replacen("<dim>12</dim>", "<dim>6</dim>", 1)
        .replacen("<dim>64</dim>", "<dim>128</dim>", 1);
    let bad = format!("{}{}{}", &xml[..start], layer, &xml[lend..]);
    let (x, b) = write(tmp.path(), "SynthesisNetwork", &bad, &bin);
    let e = convert_err(&x, &b, &tmp.path().join("o.safetensors"));
    assert!(e.contains("tensor `m.layers.6.to_img.conv.weight` has shape [6, 128, 1, 1], expected [12, 64, 1, 1]"), "{e}");
}

#[test]
fn real_ir_converts_to_f32() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(dir) = common::model_dir() else { return };
    for stem in ["MappingNetwork", "SynthesisNetwork"] {
        let out = tmp.path().join(format!("{stem}.safetensors"));
        convert_ir(&dir.join(format!("{stem}.xml")), &dir.join(format!("{stem}.bin")), &out).unwrap();
        let (sd, meta) = read_safetensors(&out).unwrap();
        assert!(meta["license"].contains("non-commercial"));
        let n: usize = sd.values().map(|t| t.data.len()).sum();
        eprintln!("{stem}: {} tensors, {n} parameters", sd.len());
    }
}
