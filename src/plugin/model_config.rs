//! The plugin's model from a configuration asset ([`ModelSource::Config`]): loaded at
//! start-up, applied (the model resource replaced, the shot defaults set) when it loads and
//! again when its file changes. Generations and trainings wait while it loads and fail when
//! it cannot; those already running keep the model they started with.

use bevy::asset::{AssetEvent, AssetServer, Assets, Handle};
use bevy::log::{info, warn};
use bevy::prelude::{Commands, MessageReader, Res, ResMut, Resource};

use super::assets::ModelConfigAsset;
use super::assets::subject::load_error_text;
use super::error::PluginError;
use super::gpu::MvCustomGpu;
use super::model::{MvCustomModel, spawn_model_load};
use super::settings::ModelSource;
use super::training::AssetFolder;

/// Present when the plugin's model comes from a configuration asset: its handle and where
/// it stands.
#[derive(Resource, Debug)]
pub struct ActiveModelConfig {
    handle: Handle<ModelConfigAsset>,
    state: ModelConfigState,
    /// Load the model as soon as a configuration applies.
    eager: bool,
}

/// Where the plugin's model configuration stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelConfigState {
    /// Loading: generations wait.
    Pending,
    /// Applied: the model resource is the configuration's.
    Applied,
    /// The configuration failed to load (the error names the file and field); generations
    /// fail until the file is fixed.
    Failed(String),
}

impl ActiveModelConfig {
    /// The configuration asset.
    pub fn handle(&self) -> &Handle<ModelConfigAsset> {
        &self.handle
    }

    /// Where it stands.
    pub fn state(&self) -> &ModelConfigState {
        &self.state
    }

    /// Whether generations can start (`Ok(true)`), must wait (`Ok(false)`), or fail.
    pub(crate) fn readiness(&self) -> Result<bool, PluginError> {
        match &self.state {
            ModelConfigState::Pending => Ok(false),
            ModelConfigState::Applied => Ok(true),
            ModelConfigState::Failed(reason) => Err(PluginError::ModelConfig {
                path: self
                    .handle
                    .path()
                    .map_or_else(String::new, ToString::to_string),
                reason: reason.clone(),
            }),
        }
    }
}

/// Whether generations and trainings may start now: `Ok(true)` without a configuration.
pub(crate) fn model_readiness(config: Option<&ActiveModelConfig>) -> Result<bool, PluginError> {
    config.map_or(Ok(true), ActiveModelConfig::readiness)
}

/// Starts loading the configuration (start-up system, for [`ModelSource::Config`]).
pub(crate) fn load_model_config(
    mut commands: Commands,
    model: Res<MvCustomModel>,
    server: Option<Res<AssetServer>>,
    eager: Res<EagerModelLoad>,
) {
    let ModelSource::Config(path) = model.source() else {
        return;
    };
    let Some(server) = server else {
        warn!("the model configuration {path} needs AssetPlugin to load");
        return;
    };
    commands.insert_resource(ActiveModelConfig {
        handle: server.load(path.clone()),
        state: ModelConfigState::Pending,
        eager: eager.0,
    });
}

/// Whether the plugin loads its model at start-up (or, with a configuration, as soon as one
/// applies).
#[derive(Resource, Clone, Copy, Debug)]
pub(crate) struct EagerModelLoad(pub bool);

/// Applies the configuration when it loads or changes; records its failure.
pub(crate) fn apply_model_config(
    mut commands: Commands,
    mut events: MessageReader<AssetEvent<ModelConfigAsset>>,
    config: Option<ResMut<ActiveModelConfig>>,
    configs: Res<Assets<ModelConfigAsset>>,
    server: Res<AssetServer>,
    folder: Option<Res<AssetFolder>>,
    gpu: Option<Res<MvCustomGpu>>,
) {
    let Some(mut config) = config else {
        events.clear();
        return;
    };
    let id = config.handle.id();
    let changed = events.read().any(|event| {
        matches!(event, AssetEvent::Added { id: e } | AssetEvent::Modified { id: e } if *e == id)
    });
    if let bevy::asset::LoadState::Failed(error) = server.load_state(&config.handle) {
        let reason = load_error_text(&error);
        if config.state != ModelConfigState::Failed(reason.clone()) {
            warn!("the MVCustom model configuration failed to load: {reason}");
            config.state = ModelConfigState::Failed(reason);
        }
        return;
    }
    let Some(asset) = configs.get(&config.handle).filter(|_| changed) else {
        return;
    };
    let Some(folder) = folder else {
        return;
    };
    let model_folder = asset.folder_on_disk(&folder.0);
    info!(
        "MVCustom model configuration {}: model {}",
        asset.path(),
        model_folder.display()
    );
    let model = MvCustomModel::new(ModelSource::Folder(model_folder), asset.config().compute);
    if let Some(gpu) = gpu {
        model.use_gpu(gpu.0.clone());
    }
    if config.eager {
        spawn_model_load(&mut commands, &model);
    }
    commands.insert_resource(model);
    if let Some(defaults) = &asset.config().defaults {
        commands.insert_resource(defaults.clone());
    }
    config.state = ModelConfigState::Applied;
}
