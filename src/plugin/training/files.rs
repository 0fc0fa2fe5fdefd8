//! Where training writes: the file-system folder behind the default asset source, so a
//! subject loaded as an asset can have its weights written beside its definition.

use std::path::{Path, PathBuf};

use bevy::app::App;
use bevy::asset::AssetPlugin;
use bevy::asset::io::file::FileAssetReader;
use bevy::prelude::Resource;

use crate::mvcustom::Subject;
use crate::plugin::assets::SubjectAsset;
use crate::plugin::error::PluginError;

/// The file-system folder of the default asset source: `AssetPlugin::file_path` resolved
/// the way Bevy's file reader resolves it (against `BEVY_ASSET_ROOT`, else the crate's
/// manifest folder when run by cargo, else the executable's folder). Training writes subject
/// weights under it. Inserted by the plugin; replace it if the app reads its default source
/// from elsewhere.
#[derive(Resource, Clone, Debug, PartialEq, Eq)]
pub struct AssetFolder(pub PathBuf);

impl AssetFolder {
    /// The folder of the app's `AssetPlugin` (its default `assets` when it has none).
    pub(crate) fn of_app(app: &App) -> Self {
        let file_path = app
            .get_added_plugins::<AssetPlugin>()
            .first()
            .map_or_else(|| AssetPlugin::default().file_path, |p| p.file_path.clone());
        Self(FileAssetReader::get_base_path().join(file_path))
    }

    /// `asset`'s subject with every path on the file system (the asset's are relative to
    /// the asset source). Only subjects of the default source live in this folder.
    pub(crate) fn subject_on_disk(&self, asset: &SubjectAsset) -> Result<Subject, PluginError> {
        if asset.path().source().as_str().is_some() {
            return Err(PluginError::SubjectSource {
                path: asset.path().to_string(),
            });
        }
        let on_disk = |path: &Path| self.0.join(path);
        let mut subject = Subject::clone(asset.subject());
        subject.path = on_disk(&subject.path);
        subject.weights_path = on_disk(&subject.weights_path);
        for reference in &mut subject.references {
            reference.path = on_disk(&reference.path);
        }
        Ok(subject)
    }
}
