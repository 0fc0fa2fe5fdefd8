//! The plugin's RON assets: subject definitions ([`SubjectAsset`], `*.subject.ron`) with
//! their images and trained weights, and model configurations ([`ModelConfigAsset`],
//! `*.model.ron`). They hot-reload like any Bevy asset when the app watches for changes
//! (`AssetPlugin { watch_for_changes_override: Some(true), .. }`).

pub mod model_config;
pub mod subject;

use std::path::Path;

use bevy::app::App;
use bevy::asset::AssetApp;
use bevy::asset::io::Reader;

use crate::ron_file::{self, RonFileError};

pub use model_config::{
    MODEL_CONFIG_EXTENSION, ModelConfig, ModelConfigAsset, ModelConfigError, ModelConfigLoader,
};
pub use subject::{DemoSubject, SUBJECT_EXTENSION, SubjectAsset, SubjectLoader, demo_subjects};

/// Registers the asset types and their loaders.
pub(crate) fn register(app: &mut App) {
    app.init_asset::<SubjectAsset>()
        .register_asset_loader(SubjectLoader)
        .init_asset::<ModelConfigAsset>()
        .register_asset_loader(ModelConfigLoader);
}

/// The whole of an asset reader's file as UTF-8 text; `path` names the file in errors.
async fn read_text(reader: &mut dyn Reader, path: &Path) -> Result<String, RonFileError> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| RonFileError::read(path, e))?;
    ron_file::utf8(bytes, path)
}
