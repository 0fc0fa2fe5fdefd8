//! The Bevy plugin: cameras drive the poses, generated views appear as `Image` textures.
//!
//! Add [`MvCustomPlugin`], spawn a shot entity with [`MvCustomShot`] and cameras with
//! [`MvCustom`] pointing at it, then trigger [`GenerateShot`] (or call
//! [`MvCustomCommandsExt::generate_views`]). Each camera's [`MvCustomStatus`] follows the
//! generation (queued → running step i of n → done / failed / cancelled) and holds the
//! handle of its generated view; [`ShotFinished`], [`ShotFailed`] and [`ShotCancelled`]
//! report the end.
//!
//! Subjects are assets: load a subject definition (`*.subject.ron`, see [`assets`]) with the
//! `AssetServer` and give its handle to [`MvCustomShot::subject`]; it loads with its
//! reference images and trained weights, and hot-reloads when its files change. Train one
//! from the app with [`TrainSubject`] on an entity holding [`MvCustomSubject`] (see
//! [`training`]).
//!
//! Inference runs in `AsyncComputeTaskPool` tasks polled each frame, so the frame loop never
//! waits on the model; the model is loaded once, on the first generation's task (or at
//! start-up when asked), and shared. This is the only layer, with
//! [`camera::bevy`](crate::camera::bevy), that imports Bevy.
//!
//! In an app that renders, a shot whose anchor camera has a `DepthPrepass` hands that
//! camera's rendered depth to DFR ([`depth`]), a shot with [`MvCustomShot::compose`] keeps
//! its cameras' renders around the subject's placeholder and generates only the subject
//! ([`compose`]), and [`MvCustomGpu`] shares the app's GPU with the feature renderer. The egui control panel is a separate plugin, `ui::MvCustomUiPlugin`
//! (feature `ui`), so that headless apps do without egui.

pub mod assets;
pub mod components;
pub mod compose;
pub mod depth;
pub mod error;
pub mod events;
pub mod gpu;
pub mod images;
pub mod model;
pub mod model_config;
pub mod poses;
pub mod settings;
mod systems;
pub mod tasks;
pub mod training;
#[cfg(feature = "ui")]
pub mod ui;

use std::path::PathBuf;
use std::sync::Arc;

use bevy::app::{App, Plugin, PostUpdate, PreStartup, PreUpdate, Startup};
use bevy::asset::{AssetApp, Assets};
use bevy::camera::CameraUpdateSystems;
use bevy::camera::visibility::VisibilitySystems;
use bevy::image::Image;
use bevy::log::error;
use bevy::math::UVec2;
use bevy::prelude::{IntoScheduleConfigs, SystemSet};
use bevy::transform::TransformSystems;

pub use assets::{DemoSubject, SUBJECT_EXTENSION, SubjectAsset, SubjectLoader, demo_subjects};
pub use components::{
    GenerationState, MvCustom, MvCustomShot, MvCustomStatus, SUBJECT_PLACEHOLDER, ShotViews,
};
pub use compose::BackgroundCaptures;
pub use depth::{DepthConversion, SceneDepthRequest};
pub use error::PluginError;
pub use events::{
    CancelShot, GenerateShot, MvCustomCommandsExt, ShotCancelled, ShotFailed, ShotFinished,
};
pub use gpu::{MvCustomGpu, gpu_context};
pub use images::{placeholder_image, save_png, to_bevy_image, to_rgba_image};
pub use model::{ModelLoadFailed, MvCustomModel, ViewGenerator};
pub use model_config::{ActiveModelConfig, ModelConfigState};
pub use poses::view_camera;
pub use settings::{Compute, ComputeDevice, ModelSource, Precision, ShotDefaults};
pub use tasks::{GenerationTask, GenerationWorkers};
pub use training::{
    AssetFolder, CancelTraining, MvCustomSubject, TrainSubject, TrainingCancelled, TrainingFailed,
    TrainingFinished, TrainingState, TrainingStatus, TrainingTask,
};

/// The plugin's system sets, in the order they run within a frame. Order your systems
/// around them: read fresh statuses and images after [`Poll`](Self::Poll); set up cameras and
/// trigger generations before [`Start`](Self::Start).
#[derive(SystemSet, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MvCustomSystems {
    /// `PreUpdate`: progress, previews and results of running generations reach the cameras'
    /// statuses and images; `ShotFinished` / `ShotFailed` / `ShotCancelled` are triggered.
    /// Training steps reach the subjects' `TrainingStatus` likewise.
    Poll,
    /// `PostUpdate`, after transform propagation and camera updates: generations queued this
    /// frame read their cameras' poses and start; queued trainings whose subject has loaded
    /// start.
    Start,
}

/// Multi-view customized generation for Bevy cameras. Needs `AssetPlugin` (for the
/// generated images) and the task pools (`TaskPoolPlugin`, in `DefaultPlugins` and
/// `MinimalPlugins`).
///
/// ```no_run
/// use bevy::prelude::*;
/// use bevy_mvcustom::prelude::*;
///
/// App::new()
///     .add_plugins(DefaultPlugins)
///     .add_plugins(MvCustomPlugin::from_folder("models/my-model").with_steps(20))
///     .run();
/// ```
#[derive(Clone, Debug)]
pub struct MvCustomPlugin {
    model: ModelSource,
    compute: Compute,
    defaults: ShotDefaults,
    load_on_startup: bool,
}

/// Native view side of the embedded default model, pixels.
const EMBEDDED_SIZE: u32 = 64;
/// Denoising steps the embedded default model is used with by default.
const EMBEDDED_STEPS: u32 = 20;

impl Default for MvCustomPlugin {
    /// The embedded default model ([`MvCustomPlugin::embedded`]).
    fn default() -> Self {
        Self::embedded()
    }
}

impl MvCustomPlugin {
    /// A plugin loading its model from this diffusers-layout folder, on the CPU in f32, the
    /// first time a generation needs it.
    pub fn from_folder(model_dir: impl Into<PathBuf>) -> Self {
        Self::from_source(ModelSource::Folder(model_dir.into()))
    }

    /// A plugin generating with the embedded default model (the tiny model trained on the
    /// procedural world and shipped in the crate's `assets/default_model`), on the CPU in f32.
    /// Its defaults suit that model: 64×64 views (its native size), 20 steps.
    pub fn embedded() -> Self {
        Self::from_folder(crate::mvcustom::default_model_dir())
            .with_size(EMBEDDED_SIZE, EMBEDDED_SIZE)
            .with_steps(EMBEDDED_STEPS)
    }

    /// A plugin whose model, compute settings and defaults come from a model configuration
    /// asset (`*.model.ron`, see [`ModelConfigAsset`]) at this asset path; editing the file
    /// switches them (for generations started afterwards).
    pub fn from_config(asset_path: impl Into<String>) -> Self {
        Self::from_source(ModelSource::Config(asset_path.into()))
    }

    /// A plugin generating with a model the app built itself.
    pub fn from_generator(generator: Arc<dyn ViewGenerator>) -> Self {
        Self::from_source(ModelSource::Generator(generator))
    }

    /// A plugin with this model source and every other setting at its default.
    pub fn from_source(model: ModelSource) -> Self {
        Self {
            model,
            compute: Compute::default(),
            defaults: ShotDefaults::default(),
            load_on_startup: false,
        }
    }

    /// Runs the model on this device.
    pub fn with_device(mut self, device: ComputeDevice) -> Self {
        self.compute.device = device;
        self
    }

    /// Runs the model in this precision.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.compute.precision = precision;
        self
    }

    /// Uses these defaults for the settings shots leave unset.
    pub fn with_defaults(mut self, defaults: ShotDefaults) -> Self {
        self.defaults = defaults;
        self
    }

    /// Default denoising steps.
    pub fn with_steps(mut self, steps: u32) -> Self {
        self.defaults.steps = steps;
        self
    }

    /// Default guidance scale.
    pub fn with_guidance(mut self, guidance: f32) -> Self {
        self.defaults.guidance = guidance;
        self
    }

    /// Default size of generated views.
    pub fn with_size(mut self, width: u32, height: u32) -> Self {
        self.defaults.size = UVec2::new(width, height);
        self
    }

    /// Default preview interval, in steps.
    pub fn with_preview_every(mut self, steps: u32) -> Self {
        self.defaults.preview_every = Some(steps);
        self
    }

    /// Loads the model on a task-pool thread at start-up instead of on the first
    /// generation; a failure triggers [`ModelLoadFailed`].
    pub fn load_on_startup(mut self, eager: bool) -> Self {
        self.load_on_startup = eager;
        self
    }
}

impl Plugin for MvCustomPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(self.defaults.clone())
            .insert_resource(MvCustomModel::new(self.model.clone(), self.compute))
            .insert_resource(model_config::EagerModelLoad(self.load_on_startup))
            .init_resource::<GenerationWorkers>()
            .register_type::<MvCustomShot>()
            .register_type::<MvCustom>()
            .register_type::<ShotViews>()
            .register_type::<MvCustomStatus>()
            .register_type::<GenerationState>()
            .register_type::<ShotDefaults>()
            .register_type::<Compute>()
            .register_type::<MvCustomSubject>()
            .register_type::<TrainingStatus>()
            .register_type::<TrainingState>()
            .configure_sets(PreUpdate, MvCustomSystems::Poll)
            .configure_sets(
                PostUpdate,
                MvCustomSystems::Start
                    .after(TransformSystems::Propagate)
                    .after(CameraUpdateSystems)
                    .after(VisibilitySystems::CalculateBounds),
            )
            .add_systems(
                PreUpdate,
                (
                    model::poll_model_load,
                    (
                        depth::receive_scene_depth,
                        compose::receive_renders,
                        systems::poll_generations,
                    )
                        .chain(),
                    training::poll_trainings,
                )
                    .in_set(MvCustomSystems::Poll),
            )
            .add_systems(
                PostUpdate,
                (systems::start_generations, training::start_trainings)
                    .in_set(MvCustomSystems::Start),
            )
            .add_observer(systems::on_generate)
            .add_observer(systems::on_cancel)
            .add_observer(systems::on_shot_removed)
            .add_observer(systems::on_view_removed)
            .add_observer(training::on_train)
            .add_observer(training::on_cancel_training)
            .add_observer(training::on_subject_removed)
            .add_systems(PreStartup, gpu::share_render_device)
            .add_systems(Startup, model_config::load_model_config);
        if self.load_on_startup {
            app.add_systems(Startup, model::start_model_load);
        }
    }

    fn finish(&self, app: &mut App) {
        depth::setup(app);
        compose::setup(app);
        if !app.world().contains_resource::<bevy::asset::AssetServer>() {
            error!(
                "MvCustomPlugin needs AssetPlugin (part of DefaultPlugins; add it after \
                 MinimalPlugins in a headless app) to store generated views and load subjects"
            );
            return;
        }
        assets::register(app);
        app.add_systems(
            PreUpdate,
            model_config::apply_model_config
                .in_set(MvCustomSystems::Poll)
                .before(model::poll_model_load),
        );
        let folder = AssetFolder::of_app(app);
        if !app.world().contains_resource::<AssetFolder>() {
            app.insert_resource(folder);
        }
        // `ImagePlugin` (in `DefaultPlugins`) registers the image assets; a headless app with
        // only `AssetPlugin` gets them here.
        if !app.world().contains_resource::<Assets<Image>>() {
            app.init_asset::<Image>();
        }
    }
}
