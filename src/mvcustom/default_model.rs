//! Where the embedded default model and the demo subjects live: the crate's `assets/` folder,
//! trained by the project's own `mvcustom pretrain` commands on the procedural world, so the
//! plugin and the CLI work out of the box on a machine with no downloaded weights.

use std::path::PathBuf;

/// The crate's `assets/` folder (resolved when the crate is compiled).
pub fn assets_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets")
}

/// The diffusers-layout folder of the embedded default model (`assets/default_model`).
pub fn default_model_dir() -> PathBuf {
    assets_dir().join("default_model")
}

/// The folder of the demo subjects shipped with the default model (`assets/subjects`), one
/// sub-folder per subject with its definition, reference images and trained weights.
pub fn demo_subjects_dir() -> PathBuf {
    assets_dir().join("subjects")
}
