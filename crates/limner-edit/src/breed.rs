//! Crossbreeding (Artbreeder's breed, StyleGAN's style mixing): a child's `w+` mixes its
//! parents' per-layer `w`s by layer group — coarse (4–8 px: pose, face shape), middle (16–32 px:
//! features, hair), fine (64 px and up: colour, texture), following each model's own layers
//! ([`crate::model::Model::layer_resolutions`]) — plus a seeded random step in `w` (mutation),
//! so a litter is reproducible.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::model::{map_each, seed_ws, LayerGroup, Model, WPlus};
use crate::recipe::{check_model, NoiseSpec, Origin, Recipe};

/// One parent as the command line names it: a seed (`12`, `seed:12`) or a recipe file.
#[derive(Clone, Debug, PartialEq)]
pub enum ParentSpec {
    Seed(u64),
    Recipe(std::path::PathBuf),
}

impl ParentSpec {
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        let seed = s.strip_prefix("seed:").unwrap_or(s);
        if let Ok(v) = seed.parse::<u64>() {
            return Ok(ParentSpec::Seed(v));
        }
        ensure!(!s.starts_with("seed:"), "parent `{s}`: `{seed}` is not a seed number");
        let p = Path::new(s);
        ensure!(p.is_file(), "parent `{s}` is neither a seed (12, seed:12) nor a recipe file that exists");
        Ok(ParentSpec::Recipe(p.to_path_buf()))
    }

    /// The parent's recipe on `m` (a seed at `psi` with noise `noise`).
    pub fn recipe(&self, m: &dyn Model, psi: f32, noise: f32) -> Result<Recipe> {
        match self {
            ParentSpec::Seed(s) => Ok(seed_recipe(m, *s, psi, noise)),
            ParentSpec::Recipe(p) => {
                let r = Recipe::load(p)?;
                check_model(&r, m).with_context(|| format!("parent {}", p.display()))?;
                Ok(r)
            }
        }
    }
}

/// The recipe of a plain seed.
pub fn seed_recipe(m: &dyn Model, seed: u64, psi: f32, noise: f32) -> Recipe {
    let ws = seed_ws(m, &[seed], psi).pop().expect("one");
    Recipe::new(m, &ws, NoiseSpec { seed, scale: noise }, Origin::Seed { seed, psi }, vec![])
}

/// Each group's weights over `n` parents (summing to 1), from `coarse=0.7,middle=0.3,fine=0.5`:
/// one number is the first parent's weight (the others share the rest equally), `a/b/c` gives
/// one weight per parent (normalised). Groups not named get equal weights.
pub fn parse_genes(s: &str, n: usize) -> Result<[Vec<f32>; 3]> {
    ensure!(n >= 1, "no parents");
    let equal = vec![1.0 / n as f32; n];
    let mut out = [equal.clone(), equal.clone(), equal];
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (g, v) = part.split_once('=').with_context(|| format!("--genes `{part}`: write GROUP=WEIGHT, e.g. coarse=0.7"))?;
        let g = LayerGroup::parse(g)?;
        let vals: Vec<f32> = v.split('/').map(|x| x.trim().parse::<f32>().with_context(|| format!("--genes `{part}`: `{x}` is not a number"))).collect::<Result<_>>()?;
        ensure!(vals.iter().all(|x| x.is_finite() && *x >= 0.0), "--genes `{part}`: weights are numbers ≥ 0");
        let w = if vals.len() == 1 {
            ensure!(vals[0] <= 1.0, "--genes `{part}`: the first parent's weight is between 0 and 1");
            if n == 1 {
                vec![1.0]
            } else {
                let rest = (1.0 - vals[0]) / (n - 1) as f32;
                std::iter::once(vals[0]).chain(std::iter::repeat_n(rest, n - 1)).collect()
            }
        } else {
            ensure!(vals.len() == n, "--genes `{part}`: {} weights for {n} parents", vals.len());
            let sum: f32 = vals.iter().sum();
            ensure!(sum > 0.0, "--genes `{part}`: the weights sum to 0");
            vals.iter().map(|x| x / sum).collect()
        };
        out[LayerGroup::ALL.iter().position(|&x| x == g).expect("a group")] = w;
    }
    Ok(out)
}

/// How to breed a litter.
#[derive(Clone, Debug)]
pub struct BreedOptions {
    /// as [`parse_genes`] reads it
    pub genes: String,
    /// size of the random step in `w`, in units of `map(z) − w_avg` for a random `z` (0 = none)
    pub mutation: f32,
    /// the litter's seed (mutation draws)
    pub seed: u64,
    pub children: usize,
}

/// A litter: each child's `w+` and recipe (naming its parents). Children of the same parents,
/// genes, mutation and seed are identical; child `k`'s mutation is drawn from `(seed, k)`.
pub fn breed(m: &dyn Model, parents: &[Recipe], o: &BreedOptions) -> Result<Vec<(WPlus, Recipe)>> {
    ensure!(parents.len() >= 2, "breeding needs at least two parents (got {})", parents.len());
    ensure!(parents.len() <= 16, "at most 16 parents");
    ensure!(o.children >= 1 && o.children <= 1024, "--children {}: between 1 and 1024", o.children);
    ensure!(o.mutation.is_finite() && (0.0..=4.0).contains(&o.mutation), "--mutation {}: between 0 and 4", o.mutation);
    let genes = parse_genes(&o.genes, parents.len())?;
    let pws: Vec<WPlus> = parents.iter().map(|p| {
        check_model(p, m)?;
        p.ws()
    }).collect::<Result<_>>()?;
    let res = m.layer_resolutions();
    let weights: Vec<Vec<f32>> = res.iter().map(|&r| genes[LayerGroup::ALL.iter().position(|&g| g == LayerGroup::of_resolution(r)).expect("group")].clone()).collect();
    let mut base = WPlus { rows: m.num_ws(), dim: m.w_dim(), data: vec![0.0; m.num_ws() * m.w_dim()] };
    for (r, wr) in weights.iter().enumerate() {
        // a weight of exactly 1 copies the parent's row bit for bit
        if let Some(p) = wr.iter().position(|&x| x == 1.0) {
            base.row_mut(r).copy_from_slice(pws[p].row(r));
            continue;
        }
        let row = base.row_mut(r);
        for (pw, &x) in pws.iter().zip(wr) {
            row.iter_mut().zip(pw.row(r)).for_each(|(o, v)| *o += x * v);
        }
    }
    // mutation steps: map(z) − w_avg for z drawn from (seed, child)
    let steps: Vec<Vec<f32>> = if o.mutation > 0.0 {
        let zs: Vec<Vec<f32>> = (0..o.children)
            .map(|k| {
                let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
                rng.set_stream(1000 + k as u64);
                limner_core::randn_host(&mut rng, m.z_dim())
            })
            .collect();
        let avg = m.w_avg();
        map_each(m, &zs).into_iter().map(|w| w.iter().zip(&avg).map(|(x, a)| o.mutation * (x - a)).collect()).collect()
    } else {
        vec![vec![0.0; m.w_dim()]; o.children]
    };
    let lineage: Vec<Recipe> = parents.iter().map(Recipe::as_parent).collect();
    let noise = parents[0].noise;
    Ok(steps
        .into_iter()
        .enumerate()
        .map(|(k, step)| {
            let mut ws = base.clone();
            if o.mutation > 0.0 {
                for r in 0..ws.rows {
                    ws.row_mut(r).iter_mut().zip(&step).for_each(|(x, s)| *x += s);
                }
            }
            let origin = Origin::Breed { parents: lineage.clone(), weights: weights.clone(), genes: o.genes.clone(), mutation: o.mutation, seed: o.seed, child: k };
            let r = Recipe::new(m, &ws, noise, origin, vec![]);
            (ws, r)
        })
        .collect())
}

/// Refuses `--genes` naming a group the model lacks rows in (a 4-px model has no fine layers).
pub fn check_groups(m: &dyn Model) -> Result<()> {
    for g in LayerGroup::ALL {
        if crate::model::group_rows(m, g).is_empty() {
            bail!("model `{}` has no {} layers", m.id().name, g.name());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genes_parse_per_group_and_per_parent() {
        let g = parse_genes("coarse=0.7,middle=0.3", 2).unwrap();
        assert_eq!(g[0], vec![0.7, 0.3]);
        assert!((g[1][0] - 0.3).abs() < 1e-6 && (g[1][1] - 0.7).abs() < 1e-6);
        assert_eq!(g[2], vec![0.5, 0.5]);
        let g = parse_genes("fine=2/1/1", 3).unwrap();
        assert_eq!(g[2], vec![0.5, 0.25, 0.25]);
        assert!(parse_genes("ears=0.5", 2).unwrap_err().to_string().contains("not a layer group"));
        assert!(parse_genes("coarse=1.5", 2).is_err());
        assert!(parse_genes("coarse=0.5/0.5", 3).unwrap_err().to_string().contains("2 weights for 3 parents"));
        assert!(parse_genes("coarse=nan", 2).is_err());
        assert_eq!(ParentSpec::parse("seed:40").unwrap(), ParentSpec::Seed(40));
        assert_eq!(ParentSpec::parse("12").unwrap(), ParentSpec::Seed(12));
        assert!(ParentSpec::parse("nope.json").unwrap_err().to_string().contains("neither a seed"));
    }
}
