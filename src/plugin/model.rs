//! The one model every generation shares: what generates views ([`ViewGenerator`]), and the
//! resource that loads it once, lazily on a task-pool thread, then hands out `Arc`s.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bevy::log::{error, info, warn};
use bevy::prelude::{Commands, Event, Res, ResMut, Resource};
use bevy::tasks::{AsyncComputeTaskPool, Task, futures::check_ready};

use super::assets::SubjectAsset;
use super::error::PluginError;
use super::settings::{Compute, ModelSource};
use super::tasks::catch_panics;
use crate::diffusion::CancelToken;
use crate::mvcustom::train::{TrainEvent, TrainSettings, train_subject};
use crate::mvcustom::{
    GeneratedViews, GenerationEvent, GenerationRequest, MvError, MvPipeline, Result, Subject,
    SubjectWeights, SubjectWeightsInfo,
};
use crate::render::{FeatureRenderer, GpuContext, RenderSettings};

/// Something that generates consistent views for a request, and trains subjects:
/// [`MvPipeline`] in an app, or anything else the app plugs in with
/// [`ModelSource::Generator`]. Called on a task-pool thread; it may take long, should check
/// `cancel` between steps and report progress through `events`.
pub trait ViewGenerator: Send + Sync + 'static {
    /// Generates one view per camera of `request`, in request order, of `subject` when the
    /// shot has one (loaded, with its trained weights).
    fn generate(
        &self,
        request: &GenerationRequest,
        subject: Option<&SubjectAsset>,
        events: &mut dyn FnMut(GenerationEvent),
        cancel: &CancelToken,
    ) -> Result<GeneratedViews>;

    /// Trains `subject` (its `weights_path` is where the weights go, beside their
    /// checkpoint, from which a run resumes) with `regularisation` images of its class
    /// (possibly none), reporting each step through `events`. A generator that cannot train
    /// (the default) fails with the reason.
    fn train_subject(
        &self,
        subject: &Subject,
        settings: &TrainSettings,
        regularisation: &[image::RgbaImage],
        events: &mut dyn FnMut(TrainEvent),
        cancel: &CancelToken,
    ) -> Result<()> {
        let _ = (subject, settings, regularisation, events, cancel);
        Err(MvError::request(
            "generator",
            "this generator does not train subjects",
        ))
    }
}

impl ViewGenerator for MvPipeline {
    fn generate(
        &self,
        request: &GenerationRequest,
        subject: Option<&SubjectAsset>,
        events: &mut dyn FnMut(GenerationEvent),
        cancel: &CancelToken,
    ) -> Result<GeneratedViews> {
        let Some(asset) = subject else {
            return MvPipeline::generate(self, request, events, cancel);
        };
        let weights = asset.weights().ok_or_else(|| {
            MvError::request(
                "subject",
                format!("{} has no trained weights: train it first", asset.path()),
            )
        })?;
        let weights_path = &asset.subject().weights_path;
        let info = SubjectWeightsInfo::from_metadata(&weights.metadata, weights_path)?;
        let unet = &self.components().unet;
        let token_dim = self.components().text_encoder.config().hidden_size;
        let weights =
            SubjectWeights::from_tensors(&weights.tensors, weights_path, unet, &info, token_dim)?;
        let loaded = self.prepare_subject(Subject::clone(asset.subject()), &weights)?;
        Ok(self
            .generate_with(request, Some(&loaded), events, cancel)?
            .views)
    }

    fn train_subject(
        &self,
        subject: &Subject,
        settings: &TrainSettings,
        regularisation: &[image::RgbaImage],
        events: &mut dyn FnMut(TrainEvent),
        cancel: &CancelToken,
    ) -> Result<()> {
        train_subject(
            self.components(),
            subject,
            regularisation,
            settings,
            events,
            cancel,
        )
        .map(drop)
    }
}

/// The plugin's model: its source and compute settings, and the loaded generator once a
/// generation (or the start-up load) has loaded it. Cloning shares the same model.
#[derive(Resource, Clone)]
pub struct MvCustomModel {
    inner: Arc<ModelSlot>,
}

struct ModelSlot {
    source: ModelSource,
    compute: Compute,
    /// The pipeline loaded from [`ModelSource::Folder`]; the lock is held while loading so
    /// that concurrent generations wait for one load instead of each loading.
    loaded: Mutex<Option<Arc<dyn ViewGenerator>>>,
    /// The app's GPU, for the loaded pipeline's feature renderer (set at start-up in an app
    /// that renders).
    gpu: OnceLock<GpuContext>,
}

impl MvCustomModel {
    /// A model not loaded yet (or, for [`ModelSource::Generator`], ready).
    pub fn new(source: ModelSource, compute: Compute) -> Self {
        Self {
            inner: Arc::new(ModelSlot {
                source,
                compute,
                loaded: Mutex::new(None),
                gpu: OnceLock::new(),
            }),
        }
    }

    /// Where the model comes from.
    pub fn source(&self) -> &ModelSource {
        &self.inner.source
    }

    /// Device and precision it runs with.
    pub fn compute(&self) -> Compute {
        self.inner.compute
    }

    /// Has a pipeline loaded from a folder render DFR's features on `gpu` (the app's device)
    /// rather than on a device of its own. Only the first call counts, and only before the
    /// load.
    pub fn use_gpu(&self, gpu: GpuContext) {
        // A second context (a second call) is ignored: the first is the app's device.
        let _ = self.inner.gpu.set(gpu);
    }

    /// Whether the model is loaded. Does not wait for a load in progress (it reports `false`
    /// then).
    pub fn is_loaded(&self) -> bool {
        if let ModelSource::Generator(_) = self.inner.source {
            return true;
        }
        match self.inner.loaded.try_lock() {
            Ok(slot) => slot.is_some(),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner().is_some(),
            Err(std::sync::TryLockError::WouldBlock) => false,
        }
    }

    /// The loaded model, loading it first if nothing has yet. Blocks while loading (or while
    /// another thread loads), so call it from a task, never from a system. A failed load is
    /// not remembered: the next call tries again (the folder may have been fixed).
    pub fn get_or_load(&self) -> std::result::Result<Arc<dyn ViewGenerator>, PluginError> {
        let path = match &self.inner.source {
            ModelSource::Generator(generator) => return Ok(Arc::clone(generator)),
            ModelSource::Folder(path) => path,
            ModelSource::Config(path) => {
                return Err(PluginError::ModelConfigPending { path: path.clone() });
            }
        };
        // A panic while loading poisons the lock with the slot still empty: nothing to repair.
        let mut slot = self
            .inner
            .loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(generator) = slot.as_ref() {
            return Ok(Arc::clone(generator));
        }
        let settings = self.inner.compute.compute_settings()?;
        info!("loading the MVCustom model from {}", path.display());
        let mut pipeline = MvPipeline::load(path, &settings)?;
        if let Some(gpu) = self.inner.gpu.get() {
            // `Auto` keeps the CPU reference on a software adapter, where it is faster.
            match FeatureRenderer::with_context(RenderSettings::default(), gpu.clone()) {
                Ok(renderer) => pipeline = pipeline.with_renderer(renderer),
                Err(e) => {
                    warn!("feature renderer on the app's GPU unavailable ({e}); using its own")
                }
            }
        }
        let generator: Arc<dyn ViewGenerator> = Arc::new(pipeline);
        *slot = Some(Arc::clone(&generator));
        Ok(generator)
    }
}

/// The model failed to load at start-up
/// ([`MvCustomPlugin::load_on_startup`](super::MvCustomPlugin::load_on_startup)).
/// Generations will try to load it again.
#[derive(Event, Clone, Debug)]
pub struct ModelLoadFailed {
    /// The error's text.
    pub error: String,
}

/// The start-up load in flight.
#[derive(Resource)]
pub(crate) struct ModelLoadTask(Task<std::result::Result<(), PluginError>>);

/// Starts loading the model on a task-pool thread (start-up system, when asked for; a model
/// from a configuration loads once the configuration applies).
pub(crate) fn start_model_load(mut commands: Commands, model: Res<MvCustomModel>) {
    if !matches!(model.source(), ModelSource::Config(_)) {
        spawn_model_load(&mut commands, &model);
    }
}

/// Loads `model` on a task-pool thread; [`poll_model_load`] reports a failure.
pub(crate) fn spawn_model_load(commands: &mut Commands, model: &MvCustomModel) {
    let model = model.clone();
    let task = AsyncComputeTaskPool::get()
        .spawn(async move { catch_panics("model load", || model.get_or_load().map(drop)) });
    commands.insert_resource(ModelLoadTask(task));
}

/// Reports the start-up load's failure, if any, once it finishes.
pub(crate) fn poll_model_load(mut commands: Commands, task: Option<ResMut<ModelLoadTask>>) {
    let Some(mut task) = task else { return };
    let Some(result) = check_ready(&mut task.0) else {
        return;
    };
    commands.remove_resource::<ModelLoadTask>();
    if let Err(e) = result {
        error!("the MVCustom model failed to load: {e}");
        commands.trigger(ModelLoadFailed {
            error: e.to_string(),
        });
    }
}
