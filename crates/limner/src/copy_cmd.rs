//! CLI glue for the copy check on exports: opening the guard with notes printed, and the
//! override flag's wording. The check itself is `limner_audit::guard`.

use std::path::Path;

use anyhow::Result;
pub use limner_audit::guard::{labelled, CopyGuard};

/// How a refused command is told to override.
pub const OVERRIDE: &str = "pass --allow-near-copy to write them anyway";
/// For commands without the flag (breed, project): render the recipe with the flag instead.
pub const OVERRIDE_VIA_RENDER: &str = "this command has no override: write the recipe's image with `limner render RECIPE --allow-near-copy`";

/// The guard for `model` (see [`CopyGuard::open`]); a skipped check is a printed note.
pub fn open(model: &str, explicit: Option<&Path>, allow: bool) -> Result<Option<CopyGuard>> {
    CopyGuard::open(model, explicit, allow, &mut |n| eprintln!("note: {n}"))
}

/// [`limner_audit::guard::save_checked`] for a command without the flag.
pub fn save_checked(guard: Option<&CopyGuard>, png: &Path, img: &limner_faces::Image, r: &limner_edit::recipe::Recipe) -> Result<()> {
    limner_audit::guard::save_checked(guard, png, img, r, OVERRIDE_VIA_RENDER)
}
