//! Official StyleGAN2-ADA snapshots made by NVIDIA's own code (tools/stylegan2-pickle/make.py):
//! the networks, their names, shapes, stored precisions and constructor arguments.

use std::path::PathBuf;

use limner_pickle::stylegan2::{kwarg, read_snapshot};
use limner_pickle::torch::DType;
use limner_pickle::{Limits, Value};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The outputs recorded beside a fixture (safetensors, f32).
fn io(name: &str) -> std::collections::HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(fixture(&format!("{name}.io.safetensors"))).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| (k, (v.shape().to_vec(), v.data().chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())))
        .collect()
}

#[test]
fn tiny_snapshot_has_the_training_loop_networks_with_official_names() {
    let s = read_snapshot(&fixture("tiny.pkl"), &Limits::default()).unwrap();
    let keys: Vec<&str> = s.networks.keys().map(String::as_str).collect();
    assert_eq!(keys, ["D", "G", "G_ema", "augment_pipe"]);
    let g = s.network("G_ema").unwrap();
    assert_eq!(g.class_name, "Generator");
    assert_eq!(s.network("D").unwrap().class_name, "Discriminator");
    assert_eq!(s.network("augment_pipe").unwrap().class_name, "AugmentPipe");
    assert_eq!(g.stored_dtypes.iter().copied().collect::<Vec<_>>(), [DType::F32]);
    // state_dict() names and shapes (16 px, channels min(512 / res, 32) = 32 everywhere)
    let shape = |k: &str| g.state_dict.get(k).unwrap_or_else(|| panic!("no {k}")).shape.clone();
    assert_eq!(shape("mapping.fc0.weight"), [16, 16]);
    assert_eq!(shape("mapping.fc1.bias"), [16]);
    assert_eq!(shape("mapping.w_avg"), [16]);
    assert_eq!(shape("synthesis.b4.const"), [32, 4, 4]);
    assert_eq!(shape("synthesis.b16.conv0.weight"), [32, 32, 3, 3]);
    assert_eq!(shape("synthesis.b16.conv0.noise_strength"), Vec::<usize>::new());
    assert_eq!(shape("synthesis.b16.conv1.noise_const"), [16, 16]);
    assert_eq!(shape("synthesis.b16.torgb.weight"), [3, 32, 1, 1]);
    assert_eq!(shape("synthesis.b8.resample_filter"), [4, 4]);
    assert!(!g.state_dict.keys().any(|k| k.contains("_init") || k.contains("embed")));
    // 3 blocks: b4 has 1 conv + torgb, b8/b16 2 convs + torgb; mapping 2 fc + w_avg
    let params: usize = g.state_dict.iter().filter(|(k, _)| !k.ends_with("resample_filter") && !k.ends_with("noise_const") && !k.ends_with("w_avg")).map(|(_, t)| t.data.len()).sum();
    assert!(params > 40_000 && params < 80_000, "{params}");
    // the FIR buffer holds [1,3,3,1] x [1,3,3,1] / 64
    let f = &g.state_dict["synthesis.b8.resample_filter"].data;
    assert!((f[0] - 1.0 / 64.0).abs() < 1e-7 && (f[5] - 9.0 / 64.0).abs() < 1e-7, "{f:?}");
    // w_avg was randomised by the fixture script: not zeros
    assert!(g.state_dict["mapping.w_avg"].data.iter().any(|&x| x.abs() > 0.1));
    // the constructor arguments, as train.py passes them
    let kw = &g.init_kwargs;
    assert_eq!(kwarg(kw, &["z_dim"]).and_then(|v| v.as_int()), Some(16));
    assert_eq!(kwarg(kw, &["c_dim"]).and_then(|v| v.as_int()), Some(0));
    assert_eq!(kwarg(kw, &["img_resolution"]).and_then(|v| v.as_int()), Some(16));
    assert_eq!(kwarg(kw, &["mapping_kwargs", "num_layers"]).and_then(|v| v.as_int()), Some(2));
    assert_eq!(kwarg(kw, &["synthesis_kwargs", "channel_base"]).and_then(|v| v.as_int()), Some(512));
    assert!(matches!(kwarg(kw, &["synthesis_kwargs", "conv_clamp"]), Some(Value::None)));
    assert_eq!(s.training_set_kwargs.as_ref().and_then(|t| t.get("resolution")).and_then(|v| v.as_int()), Some(16));
    // the recorded inputs belong to this network
    assert_eq!(io("tiny")["z"].0, [4, 16]);
}

#[test]
fn half_precision_tensors_read_exactly() {
    // clamp16: G_ema was stored with .half(), G (the same weights) in f32
    let s = read_snapshot(&fixture("clamp16.pkl"), &Limits::default()).unwrap();
    let (g, ema) = (s.network("G").unwrap(), s.network("G_ema").unwrap());
    assert_eq!(ema.stored_dtypes.iter().copied().collect::<Vec<_>>(), [DType::F16]);
    assert_eq!(g.stored_dtypes.iter().copied().collect::<Vec<_>>(), [DType::F32]);
    assert_eq!(g.state_dict.keys().collect::<Vec<_>>(), ema.state_dict.keys().collect::<Vec<_>>());
    for (k, t) in &g.state_dict {
        let h = &ema.state_dict[k];
        assert_eq!(t.shape, h.shape, "{k}");
        for (a, b) in t.data.iter().zip(&h.data) {
            assert_eq!(half::f16::from_f32(*a).to_f32(), *b, "{k}");
        }
    }
    assert_eq!(kwarg(&ema.init_kwargs, &["synthesis_kwargs", "conv_clamp"]).and_then(|v| v.as_f64()), Some(0.5));
    assert_eq!(kwarg(&ema.init_kwargs, &["synthesis_kwargs", "num_fp16_res"]).and_then(|v| v.as_int()), Some(2));
}

#[test]
fn conditional_snapshot_reads_its_class_embedding() {
    let s = read_snapshot(&fixture("cond.pkl"), &Limits::default()).unwrap();
    let g = s.network("G_ema").unwrap();
    assert_eq!(kwarg(&g.init_kwargs, &["c_dim"]).and_then(|v| v.as_int()), Some(4));
    assert_eq!(g.state_dict["mapping.embed.weight"].shape, [8, 4]);
    assert_eq!(g.state_dict["mapping.fc0.weight"].shape, [8, 16]);
}

#[test]
fn torch_save_zip_archives_read_the_same_tensors() {
    // orig_G_ema_state_dict.pt = torch.save(G_ema.state_dict()) of orig.pkl's G_ema
    let s = read_snapshot(&fixture("orig.pkl"), &Limits::default()).unwrap();
    let g = s.network("G_ema").unwrap();
    let v = limner_pickle::load_file(&fixture("orig_G_ema_state_dict.pt"), &Limits::default()).unwrap();
    let items = v.items();
    assert_eq!(items.len(), g.state_dict.len(), "{:?}", v.keys());
    for (k, t) in items {
        let k = k.as_str().unwrap().to_string();
        let Value::Tensor(t) = &t else { panic!("{k} is not a tensor") };
        let want = &g.state_dict[&k];
        assert_eq!(t.shape, want.shape, "{k}");
        assert_eq!(t.to_f32(), want.data, "{k}");
    }
    assert_eq!(kwarg(&g.init_kwargs, &["synthesis_kwargs", "architecture"]).and_then(|v| v.as_str().map(String::from)).as_deref(), Some("orig"));
}
