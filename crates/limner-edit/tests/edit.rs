//! The generator abstraction, recipes, breeding and unlabelled sliders on the embedded default
//! model (no fetched model needed), and on random-face where it is fetched (under CI=true a
//! missing random-face fails).

use burn::tensor::Device;
use limner_data::imageio::nchw_to_rgb8;
use limner_edit::breed::{breed, seed_recipe, BreedOptions};
use limner_edit::model::{group_rows, open, parse_layers, seed_ws, LayerGroup, Model, WPlus};
use limner_edit::recipe::{self, Recipe, RECIPE_VERSION};
use limner_edit::sliders::{self, Catalogue};
use limner_gan::generate::{generate_seeds, GenerateOptions};

fn default_model() -> Box<dyn Model> {
    open("default", None, &Device::flex()).unwrap()
}

/// random-face when fetched (under CI=true a missing one fails the test).
fn random_face(size: usize) -> Option<Box<dyn Model>> {
    limner_core::testing::fetched(open(limner_photoreal::MODEL_NAME, Some(size), &Device::flex()))
}

/// Seeds rendered through the abstraction are the pixels `limner_gan::generate` makes (so
/// `limner generate` did not change), the groups cover every row in order, and the identity
/// is the embedded file's sha256.
#[test]
fn default_model_through_the_abstraction_matches_plain_generation() {
    let m = default_model();
    let m = m.as_ref();
    let (g, _) = limner_models::load_default(&Device::flex()).unwrap();
    let seeds = [0u64, 1, 2, 3, 40];
    let gen = |batch: usize| nchw_to_rgb8(&generate_seeds(&g, &seeds, &GenerateOptions { psi: 0.7, noise: 1.0, batch }), seeds.len(), m.size(), m.size());
    let got: Vec<Vec<u8>> = m.render(&seed_ws(m, &seeds, 0.7), &seeds, 1.0).iter().map(|i| i.to_rgb8()).collect();
    // faces are made one at a time: exactly limner_gan::generate's pixels at batch 1
    assert_eq!(got, gen(1), "the abstraction renders other pixels than limner_gan::generate");
    // and within a level of its batched ones (the kernels round differently by batch size)
    let worst = got.iter().zip(gen(16)).flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (*x as i32 - y as i32).abs()).collect::<Vec<_>>()).max().unwrap();
    eprintln!("default: largest difference to batch-16 generation: {worst} levels");
    assert!(worst <= 2, "{worst}");
    // the same face alone or among others
    let one = m.render(&seed_ws(m, &[40], 0.7), &[40], 1.0)[0].to_rgb8();
    assert_eq!(one, got[4]);
    assert_eq!(m.id().sha256.len(), 64);
    let groups: Vec<Vec<usize>> = LayerGroup::ALL.iter().map(|&g| group_rows(m, g)).collect();
    eprintln!("default: {} style rows at {:?}; groups {groups:?}", m.num_ws(), m.layer_resolutions());
    assert!(groups.iter().all(|g| !g.is_empty()));
    assert_eq!(groups.concat(), (0..m.num_ws()).collect::<Vec<_>>());
    assert_eq!(parse_layers(m, "coarse").unwrap(), groups[0]);
    assert_eq!(parse_layers(m, "0-2,5").unwrap(), vec![0, 1, 2, 5]);
    assert!(parse_layers(m, "0-99").is_err() && parse_layers(m, "ears").is_err());
    // every row has style weights of w_dim columns
    for r in 0..m.num_ws() {
        let w = m.style_weights(r);
        assert!(!w.is_empty() && w.iter().all(|a| a.len() % m.w_dim() == 0 && !a.is_empty()), "row {r}");
    }
}

fn check_recipe_round_trip(m: &dyn Model, r: &Recipe) {
    let back = Recipe::from_json(&r.to_json()).unwrap();
    assert_eq!(&back, r);
    let a = recipe::render(r, m).unwrap().to_rgb8();
    let b = recipe::render(&back, m).unwrap().to_rgb8();
    assert_eq!(a, b);
}

#[test]
fn recipes_round_trip_and_bad_recipes_are_clear_errors() {
    let m = default_model();
    let m = m.as_ref();
    let r = seed_recipe(m, 12, 0.7, 1.0);
    // a seed with no edits is one run
    assert_eq!(r.ws.as_ref().unwrap().len(), 1);
    check_recipe_round_trip(m, &r);
    // the seed recipe renders the seed's face
    let want = m.render(&seed_ws(m, &[12], 0.7), &[12], 1.0)[0].to_rgb8();
    assert_eq!(recipe::render(&r, m).unwrap().to_rgb8(), want);

    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    let bad = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = json.clone();
        f(&mut v);
        Recipe::from_json(&v.to_string()).and_then(|r| recipe::render(&r, m).map(|_| ())).unwrap_err().to_string()
    };
    let e = bad(&|v| v["limner_recipe"] = serde_json::json!(RECIPE_VERSION + 1));
    assert!(e.contains("version 2 is not supported"), "{e}");
    let e = bad(&|v| {
        v.as_object_mut().unwrap().remove("limner_recipe");
    });
    assert!(e.contains("not a limner recipe"), "{e}");
    let e = bad(&|v| v["w_shape"] = serde_json::json!([m.num_ws(), 256]));
    assert!(e.contains("w_dim is 256"), "{e}");
    let e = format!("{:#}", Recipe::from_json("{\"limner_recipe\": 1, \"size\": ").unwrap_err());
    assert!(e.contains("not JSON"), "{e}");
    // NaN in a w
    let nan = recipe::encode_ws(&WPlus::broadcast(&vec![f32::NAN; m.w_dim()], m.num_ws()));
    let e = bad(&|v| v["ws"] = serde_json::to_value(&nan).unwrap());
    assert!(e.contains("NaN"), "{e}");
    // rows for another model's shape
    let e = bad(&|v| {
        v["w_shape"] = serde_json::json!([23, 512]);
        v["ws"][0]["rows"] = serde_json::json!([0, 22]);
    });
    assert!(e.contains(&format!("takes {}×512", m.num_ws())) || e.contains("23×512"), "{e}");
    // other weights
    let e = bad(&|v| v["model"]["sha256"] = serde_json::json!("0".repeat(64)));
    assert!(e.contains("sha256") && e.contains("000000000000"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    // a model that is not here: named, with how to get it
    let mut v = json.clone();
    v["model"]["name"] = serde_json::json!("no-such-model-anywhere");
    let p = dir.path().join("missing.json");
    std::fs::write(&p, v.to_string()).unwrap();
    let e = format!("{:#}", recipe::open_model(&Recipe::load(&p).unwrap(), &Device::flex()).err().unwrap());
    assert!(e.contains("no-such-model-anywhere") && e.contains("not here"), "{e}");
    let mut v = json.clone();
    v["model"]["name"] = serde_json::json!("random-face");
    v["size"] = serde_json::json!(256);
    std::fs::write(&p, v.to_string()).unwrap();
    if let Err(e) = recipe::open_model(&Recipe::load(&p).unwrap(), &Device::flex()) {
        let e = format!("{e:#}");
        assert!(e.contains("random-face"), "{e}");
    }
    // a 10 GB file (sparse) is refused before reading
    let huge = dir.path().join("huge.json");
    std::fs::File::create(&huge).unwrap().set_len(10 << 30).unwrap();
    let e = format!("{:#}", Recipe::load(&huge).unwrap_err());
    assert!(e.contains("recipes are at most 16 MB"), "{e}");
}

/// Genes coarse=1, middle=0, fine=0 without mutation: the child's coarse rows are the first
/// parent's exactly, the others the second's; litters are reproducible; mutation seeds differ.
#[test]
fn breeding_mixes_by_layer_group_and_is_reproducible() {
    let m = default_model();
    let m = m.as_ref();
    let (p1, p2) = (seed_recipe(m, 12, 0.7, 1.0), seed_recipe(m, 40, 0.7, 1.0));
    let opts = |mutation: f32, seed: u64| BreedOptions { genes: "coarse=1,middle=0,fine=0".into(), mutation, seed, children: 3 };
    let litter = breed(m, &[p1.clone(), p2.clone()], &opts(0.0, 0)).unwrap();
    let (w1, w2) = (p1.ws().unwrap(), p2.ws().unwrap());
    let coarse = group_rows(m, LayerGroup::Coarse);
    for (child, r) in &litter {
        for row in 0..m.num_ws() {
            let want = if coarse.contains(&row) { w1.row(row) } else { w2.row(row) };
            assert_eq!(child.row(row), want, "row {row}");
        }
        // the recipe names its parents (with their ws) and renders the child
        match &r.origin {
            recipe::Origin::Breed { parents, .. } => {
                assert_eq!(parents.len(), 2);
                assert_eq!(parents[0].ws().unwrap(), w1);
            }
            o => panic!("origin {o:?}"),
        }
        check_recipe_round_trip(m, r);
    }
    // the mixed face differs from both parents
    let imgs = m.render(&[litter[0].0.clone(), w1.clone(), w2.clone()], &[12, 12, 12], 1.0);
    assert_ne!(imgs[0].data, imgs[1].data);
    assert_ne!(imgs[0].data, imgs[2].data);
    // same parents and seed: identical; other mutation seeds: different
    let a = breed(m, &[p1.clone(), p2.clone()], &opts(0.3, 5)).unwrap();
    let b = breed(m, &[p1.clone(), p2.clone()], &opts(0.3, 5)).unwrap();
    let c = breed(m, &[p1.clone(), p2.clone()], &opts(0.3, 6)).unwrap();
    assert_eq!(a.iter().map(|x| &x.0).collect::<Vec<_>>(), b.iter().map(|x| &x.0).collect::<Vec<_>>());
    assert_ne!(a[0].0, c[0].0);
    assert_ne!(a[0].0, a[1].0, "children of one litter differ by their mutation");
    // a child of a child: lineage is kept without the grandparents' ws
    let grand = breed(m, &[a[0].1.clone(), p2.clone()], &opts(0.0, 0)).unwrap();
    match &grand[0].1.origin {
        recipe::Origin::Breed { parents, .. } => match &parents[0].origin {
            recipe::Origin::Breed { parents: gp, .. } => assert!(gp.iter().all(|g| g.ws.is_none())),
            o => panic!("{o:?}"),
        },
        o => panic!("{o:?}"),
    }
    // bad input
    assert!(breed(m, &[p1.clone()], &opts(0.0, 0)).is_err());
    assert!(breed(m, &[p1.clone(), p2.clone()], &opts(f32::NAN, 0)).is_err());
}

fn mean_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).sum::<f64>() / a.len() as f64
}

/// SeFa and GANSpace directions are orthonormal; the top SeFa direction of each group changes
/// the image more than random directions of the same norm (pixel distance here; the perceptual
/// one in the CLI test where InceptionV3 is fetched).
#[test]
fn unlabelled_sliders_are_orthonormal_and_sefa_beats_random_directions() {
    let m = default_model();
    let m = m.as_ref();
    let cat = Catalogue::new(sliders::named_directions("default", None).unwrap());
    let t0 = std::time::Instant::now();
    for g in LayerGroup::ALL {
        let set = cat.sefa(m, g).unwrap();
        assert_eq!(set.vectors.len(), sliders::SHIPPED_SEFA);
        let (cos, norm) = set.orthonormality_error();
        assert!(cos < 1e-4 && norm < 1e-4, "{g:?}: cos {cos}, norm {norm}");
        assert!(set.meta.eigenvalues.windows(2).all(|w| w[0] >= w[1]));
        assert!(set.sigmas.iter().all(|s| *s > 0.0 && s.is_finite()));
    }
    eprintln!("SeFa for 3 groups of the default model (with {} sampled w's for the units) in {:.2} s", sliders::SEFA_SAMPLES, t0.elapsed().as_secs_f64());
    // GANSpace on fewer samples (the command samples 10,000)
    let samples = sliders::sample_ws(m, 2000);
    let gs = sliders::ganspace(m, &(0..m.num_ws()).collect::<Vec<_>>(), "all", 8, &samples).unwrap();
    let (cos, norm) = gs.orthonormality_error();
    assert!(cos < 1e-4 && norm < 1e-4, "ganspace: cos {cos}, norm {norm}");
    // variance along each component matches its eigenvalue
    for (s, e) in gs.sigmas.iter().zip(&gs.meta.eigenvalues) {
        assert!(((s * s) / e - 1.0).abs() < 1e-2, "sigma² {} vs eigenvalue {e}", s * s);
    }
    // round trip through the file format
    assert_eq!(sliders::SliderSet::from_bytes(&gs.to_bytes().unwrap()).unwrap(), gs);

    // top SeFa vs random of the same norm, 8 seeds, moved by 3 units of the SeFa slider
    let seeds: Vec<u64> = (100..108).collect();
    let base = seed_ws(m, &seeds, 0.7);
    let img0 = m.render(&base, &seeds, 1.0);
    let sefa = cat.slider(m, "sefa:all:0", None).unwrap();
    let d = 3.0 * sefa.sigma;
    let render_moved = |v: &[f32]| {
        let moved: Vec<WPlus> = base
            .iter()
            .map(|w| {
                let mut w = w.clone();
                for r in 0..w.rows {
                    w.row_mut(r).iter_mut().zip(v).for_each(|(x, y)| *x += d * y);
                }
                w
            })
            .collect();
        let imgs = m.render(&moved, &seeds, 1.0);
        imgs.iter().zip(&img0).map(|(a, b)| mean_abs_diff(&a.data, &b.data)).sum::<f64>() / seeds.len() as f64
    };
    let top = render_moved(&sefa.vector);
    let mut state = 99u64;
    let mut randoms = vec![];
    for _ in 0..4 {
        let mut v: Vec<f32> = (0..m.w_dim())
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 11) as f64 / (1u64 << 53) as f64) as f32 - 0.5
            })
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        randoms.push(render_moved(&v));
    }
    let rand_max = randoms.iter().cloned().fold(0.0, f64::max);
    eprintln!("mean |Δpixel| (0..255) moving 3 SeFa units ({d:.2} in w): top SeFa {top:.2}, random directions {randoms:.2?} (margin ×{:.2})", top / rand_max);
    assert!(top > 1.2 * rand_max, "top SeFa {top} vs random {rand_max}");
}

/// random-face through the abstraction: the same pixels as `limner_photoreal::generate_seeds`,
/// its own layer groups, SeFa sliders, and a bred child's recipe renders the child.
#[test]
fn random_face_through_the_abstraction() {
    let Some(m) = random_face(64) else { return };
    let m = m.as_ref();
    let seeds = [3u64, 11];
    let rf = limner_photoreal::MobileStyleGan::load(&limner_models::fetch::net_path("random-face").unwrap(), &Device::flex()).unwrap();
    let want = limner_photoreal::generate_seeds(&rf, &seeds, 0.7, 1.0, 64).unwrap();
    let got: Vec<Vec<u8>> = m.render(&seed_ws(m, &seeds, 0.7), &seeds, 1.0).iter().map(|i| i.to_rgb8()).collect();
    assert_eq!(got, want);
    assert_eq!(m.num_ws(), 23);
    let groups: Vec<Vec<usize>> = LayerGroup::ALL.iter().map(|&g| group_rows(m, g)).collect();
    eprintln!("random-face: style rows at {:?}; groups {groups:?}", m.layer_resolutions());
    assert!(groups.iter().all(|g| !g.is_empty()));
    // the tensor path (differentiable, batched) agrees with the host path to within rounding
    let ws = seed_ws(m, &seeds, 0.7);
    let data: Vec<f32> = ws.iter().flat_map(|w| w.data.clone()).collect();
    let t = limner_core::tensor_from(data, [2, 23, 512], &m.device());
    let img = limner_core::to_vec(&m.synthesize(t, &seeds, 1.0));
    let host = m.render(&ws, &seeds, 1.0);
    let tensor_rgb = nchw_to_rgb8(&img, 2, 64, 64);
    let worst = tensor_rgb.iter().zip(&host).flat_map(|(a, b)| a.iter().zip(b.to_rgb8()).map(|(x, y)| (*x as i32 - y as i32).abs())).max().unwrap();
    assert!(worst <= 1, "tensor path differs from the host path by {worst} levels");
    let cat = Catalogue::new(None);
    let t0 = std::time::Instant::now();
    let set = cat.sefa(m, LayerGroup::Coarse).unwrap();
    eprintln!("random-face SeFa (coarse) in {:.2} s", t0.elapsed().as_secs_f64());
    let (cos, _) = set.orthonormality_error();
    assert!(cos < 1e-4);
    let (p1, p2) = (seed_recipe(m, 3, 0.7, 1.0), seed_recipe(m, 11, 0.7, 1.0));
    let litter = breed(m, &[p1, p2], &BreedOptions { genes: "coarse=1,middle=0,fine=0".into(), mutation: 0.1, seed: 1, children: 1 }).unwrap();
    check_recipe_round_trip(m, &litter[0].1);
}
