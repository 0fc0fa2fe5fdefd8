//! Model configurations as Bevy assets: a RON file (`*.model.ron`) naming the model folder,
//! the device and precision it runs in, and the generation defaults shots fall back to. An
//! app started with [`MvCustomPlugin::from_config`](crate::plugin::MvCustomPlugin::from_config)
//! uses the model it names, and switches model and defaults when the file is edited.
//!
//! ```ron
//! (
//!     folder: "default_model",
//!     compute: (device: Cpu, precision: F32),
//!     defaults: Some((steps: 25, guidance: 7.5, size: (64, 64), preview_every: None)),
//! )
//! ```

use std::path::{Path, PathBuf};

use bevy::asset::io::Reader;
use bevy::asset::{Asset, AssetLoader, AssetPath, LoadContext};
use bevy::reflect::TypePath;
use serde::{Deserialize, Serialize};

use super::read_text;
use crate::plugin::settings::{Compute, ShotDefaults};
use crate::ron_file::{self, RonFileError};

/// The file extension the [`ModelConfigLoader`] claims.
pub const MODEL_CONFIG_EXTENSION: &str = "model.ron";

/// Why a model configuration could not be loaded: it could not be read, parsed or used (the
/// error of every RON file the crate reads).
pub type ModelConfigError = RonFileError;

/// A model configuration as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The diffusers-layout model folder: relative to the configuration's folder in the
    /// asset source, or absolute on the file system.
    pub folder: PathBuf,
    /// Device and precision.
    #[serde(default)]
    pub compute: Compute,
    /// The generation defaults shots fall back to (`None`: the plugin's).
    #[serde(default)]
    pub defaults: Option<ShotDefaults>,
}

impl ModelConfig {
    /// Parses a configuration's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ModelConfigError> {
        let config: Self = ron_file::parse(text, path)?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ModelConfigError> {
        let invalid = |field: &str, reason: String| ModelConfigError::invalid(path, field, reason);
        if self.folder.as_os_str().is_empty() {
            return Err(invalid("folder", "must name the model folder".into()));
        }
        let Some(defaults) = &self.defaults else {
            return Ok(());
        };
        if defaults.steps == 0 {
            return Err(invalid("defaults.steps", "must be at least 1".into()));
        }
        if !defaults.guidance.is_finite() {
            return Err(invalid(
                "defaults.guidance",
                format!("must be finite, got {}", defaults.guidance),
            ));
        }
        let size = defaults.size;
        if size.x == 0 || size.y == 0 || size.x % 8 != 0 || size.y % 8 != 0 {
            return Err(invalid(
                "defaults.size",
                format!("must be positive multiples of 8, got {}×{}", size.x, size.y),
            ));
        }
        Ok(())
    }
}

/// A model configuration loaded from its file.
#[derive(Asset, TypePath, Clone, Debug, PartialEq)]
pub struct ModelConfigAsset {
    path: AssetPath<'static>,
    config: ModelConfig,
}

impl ModelConfigAsset {
    /// The configuration's asset path.
    pub fn path(&self) -> &AssetPath<'static> {
        &self.path
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The model folder on the file system, for a configuration in the asset source whose
    /// root folder is `asset_folder`.
    pub fn folder_on_disk(&self, asset_folder: &Path) -> PathBuf {
        if self.config.folder.is_absolute() {
            return self.config.folder.clone();
        }
        let parent = self.path.path().parent().unwrap_or(Path::new(""));
        asset_folder.join(parent).join(&self.config.folder)
    }
}

/// Loads [`ModelConfigAsset`]s from `*.model.ron` files (registered by the plugin).
#[derive(TypePath, Clone, Copy, Debug, Default)]
pub struct ModelConfigLoader;

impl AssetLoader for ModelConfigLoader {
    type Asset = ModelConfigAsset;
    type Settings = ();
    type Error = ModelConfigError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &(),
        load_context: &mut LoadContext<'_>,
    ) -> Result<ModelConfigAsset, ModelConfigError> {
        let path = load_context.path().clone_owned();
        let text = read_text(reader, path.path()).await?;
        let config = ModelConfig::parse(&text, path.path())?;
        Ok(ModelConfigAsset { path, config })
    }

    fn extensions(&self) -> &[&str] {
        &[MODEL_CONFIG_EXTENSION]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::settings::{ComputeDevice, Precision};
    use bevy::math::UVec2;

    #[test]
    fn the_documented_example_parses() {
        let text = r#"(
            folder: "default_model",
            compute: (device: Cpu, precision: F32),
            defaults: Some((steps: 25, guidance: 7.5, size: (64, 64), preview_every: None)),
        )"#;
        let config = ModelConfig::parse(text, Path::new("m.model.ron")).unwrap();
        assert_eq!(config.folder, Path::new("default_model"));
        assert_eq!(config.compute.device, ComputeDevice::Cpu);
        assert_eq!(config.compute.precision, Precision::F32);
        let defaults = config.defaults.unwrap();
        assert_eq!((defaults.steps, defaults.size), (25, UVec2::new(64, 64)));
        // Only the folder is required.
        let minimal = ModelConfig::parse(r#"(folder: "/models/sd15")"#, Path::new("m")).unwrap();
        assert_eq!(minimal.compute, Compute::default());
        assert_eq!(minimal.defaults, None);
    }

    #[test]
    fn bad_configurations_name_the_file_and_field() {
        let path = Path::new("models/m.model.ron");
        let parse = |text: &str| ModelConfig::parse(text, path).unwrap_err().to_string();
        let err = parse("(folder: \"a\",\n compute: (device: Tpu))");
        assert!(err.starts_with("models/m.model.ron:2:"), "{err}");
        let err = parse("(folder: \"a\", colour: 3)");
        assert!(err.contains("colour"), "{err}");
        let err = parse(
            "(folder: \"a\", defaults: Some((steps: 4, guidance: 7.5, size: (60, 64), \
             preview_every: None)))",
        );
        assert_eq!(
            err,
            "models/m.model.ron: `defaults.size` must be positive multiples of 8, got 60×64"
        );
        let err = parse("(folder: \"\")");
        assert!(err.contains("`folder`"), "{err}");
    }

    #[test]
    fn the_folder_is_relative_to_the_configuration() {
        let asset = |folder: &str| ModelConfigAsset {
            path: AssetPath::from("models/m.model.ron"),
            config: ModelConfig {
                folder: PathBuf::from(folder),
                compute: Compute::default(),
                defaults: None,
            },
        };
        let root = Path::new("/game/assets");
        assert_eq!(
            asset("tiny").folder_on_disk(root),
            Path::new("/game/assets/models/tiny")
        );
        assert_eq!(
            asset("/opt/sd15").folder_on_disk(root),
            Path::new("/opt/sd15")
        );
    }
}
