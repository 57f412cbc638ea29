//! Where limner keeps its files. One root, `$LIMNER_HOME`, else `~/.cache/limner`:
//!
//! - `nets/`: pretrained networks converted by `limner models fetch`;
//! - `models/`: generators the user imported or trained and named;
//! - `data/`: what the user made for a built-in model, e.g. `data/<model>/directions.safetensors`
//!   from `limner models directions --model default`.
//!
//! Nothing is ever written beside the program or into its source tree.

use std::path::PathBuf;

/// limner's root folder: `$LIMNER_HOME`, else `$HOME/.cache/limner` (`./.cache/limner` without
/// a home).
pub fn limner_home() -> PathBuf {
    if let Some(h) = std::env::var_os("LIMNER_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/limner")
}

/// Converted pretrained networks (`limner models fetch`).
pub fn nets_dir() -> PathBuf {
    limner_home().join("nets")
}

/// Imported or trained generators, by name (`limner models list`).
pub fn models_dir() -> PathBuf {
    limner_home().join("models")
}

/// The user's own files for a built-in model `name` (e.g. its recomputed directions).
pub fn user_data_dir(name: &str) -> PathBuf {
    limner_home().join("data").join(name)
}
