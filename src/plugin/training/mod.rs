//! Training subjects from the app: put [`MvCustomSubject`] (a subject asset's handle) on an
//! entity, trigger [`TrainSubject`] on it (or call
//! [`MvCustomCommandsExt::train_subject`](super::MvCustomCommandsExt::train_subject)), and
//! follow its [`TrainingStatus`]: queued → running step i of n with the latest loss (and the
//! loss history, for a plot) → done / failed / cancelled.
//!
//! Training runs [`train_subject`](crate::mvcustom::train::train_subject) on the plugin's
//! shared model in an `AsyncComputeTaskPool` task; the frame loop never waits on it. It
//! writes the subject's weights beside its definition in the asset folder (resuming from the
//! checkpoint there, if a previous run left one), then reloads the subject asset, so shots
//! using it pick the new weights up. [`CancelTraining`], a new [`TrainSubject`], removing
//! `MvCustomSubject` or despawning the entity cancel a run; a panic inside it becomes
//! [`TrainingFailed`].

mod files;
mod systems;
mod task;

use std::path::PathBuf;
use std::sync::Arc;

use bevy::asset::Handle;
use bevy::ecs::entity::Entity;
use bevy::prelude::{Component, EntityEvent, ReflectComponent, ReflectDefault};
use bevy::reflect::Reflect;

use super::assets::SubjectAsset;
use crate::mvcustom::train::TrainSettings;

pub use files::AssetFolder;
pub(crate) use systems::{
    on_cancel_training, on_subject_removed, on_train, poll_trainings, start_trainings,
};
pub use task::TrainingTask;

/// A subject the app can train (and pick in the control panel): the handle of its
/// definition asset. The plugin keeps its [`TrainingStatus`].
#[derive(Component, Reflect, Clone, Debug, PartialEq)]
#[require(TrainingStatus)]
#[reflect(Component, Debug, PartialEq)]
pub struct MvCustomSubject {
    /// The subject definition (`*.subject.ron`).
    pub subject: Handle<SubjectAsset>,
}

impl MvCustomSubject {
    /// The subject of this definition asset.
    pub fn new(subject: Handle<SubjectAsset>) -> Self {
        Self { subject }
    }
}

/// Where a subject's training stands.
#[derive(Clone, Debug, Default, PartialEq, Reflect)]
#[reflect(Default, Debug, PartialEq)]
pub enum TrainingState {
    /// Never trained in this app.
    #[default]
    Idle,
    /// Asked for; waiting for the subject to load (and, the first time, the model).
    Queued,
    /// Training.
    Running {
        /// Optimisation steps done (a resumed run starts at its checkpoint's step).
        step: usize,
        /// Steps of the run.
        total: usize,
        /// Weighted total loss of the latest step.
        loss: f32,
    },
    /// Finished: the weights are written and the subject reloads with them.
    Done,
    /// Failed, with the error's text.
    Failed(String),
    /// Cancelled before it finished.
    Cancelled,
}

impl TrainingState {
    /// Fraction of the steps done, in [0, 1]; `None` unless running or done.
    pub fn progress(&self) -> Option<f32> {
        match self {
            TrainingState::Running { step, total, .. } if *total > 0 => {
                Some(*step as f32 / *total as f32)
            }
            TrainingState::Running { .. } => Some(0.0),
            TrainingState::Done => Some(1.0),
            _ => None,
        }
    }

    /// Whether a run is queued or running.
    pub fn is_busy(&self) -> bool {
        matches!(self, TrainingState::Queued | TrainingState::Running { .. })
    }
}

/// A subject's training status and the loss of every step of its latest run, maintained by
/// the plugin (read it, do not write it). Added automatically with [`MvCustomSubject`].
#[derive(Component, Reflect, Clone, Debug, Default, PartialEq)]
#[reflect(Component, Default, Debug, PartialEq)]
pub struct TrainingStatus {
    state: TrainingState,
    losses: Vec<f32>,
}

impl TrainingStatus {
    /// Where the training stands.
    pub fn state(&self) -> &TrainingState {
        &self.state
    }

    /// The weighted total loss of each step of the latest run, in step order (from the
    /// resumed step on, for a resumed run).
    pub fn losses(&self) -> &[f32] {
        &self.losses
    }

    /// Sets the state (plugin only).
    pub(crate) fn set_state(&mut self, state: TrainingState) {
        self.state = state;
    }

    /// Starts a new run's history (plugin only).
    pub(crate) fn clear_losses(&mut self) {
        self.losses.clear();
    }

    /// Records a step's loss (plugin only).
    pub(crate) fn push_loss(&mut self, loss: f32) {
        self.losses.push(loss);
    }
}

/// Trains the subject of this entity (one with [`MvCustomSubject`]). A run of it still going
/// is cancelled and replaced.
#[derive(EntityEvent, Clone, Debug)]
pub struct TrainSubject {
    /// The subject entity.
    #[event_target]
    pub entity: Entity,
    /// The run's settings (steps, learning rate, resolution, pose-block placement…).
    pub settings: TrainSettings,
    /// Regularisation images of the subject's class (may be empty: reference drop-out is
    /// then skipped).
    pub regularisation: Arc<[image::RgbaImage]>,
}

impl TrainSubject {
    /// Trains `entity`'s subject with `settings`, without regularisation images.
    pub fn new(entity: Entity, settings: TrainSettings) -> Self {
        Self {
            entity,
            settings,
            regularisation: Arc::new([]),
        }
    }
}

/// Cancels this subject's training, if one is queued or running.
#[derive(EntityEvent, Clone, Copy, Debug, PartialEq, Eq)]
pub struct CancelTraining {
    /// The subject entity.
    #[event_target]
    pub entity: Entity,
}

/// A subject's training finished; its weights are written and its asset reloads.
#[derive(EntityEvent, Clone, Debug, PartialEq)]
pub struct TrainingFinished {
    /// The subject entity.
    #[event_target]
    pub entity: Entity,
    /// The weights file written (on the file system).
    pub weights: PathBuf,
}

/// A subject's training failed (or could not start); the app keeps running.
#[derive(EntityEvent, Clone, Debug, PartialEq)]
pub struct TrainingFailed {
    /// The subject entity.
    #[event_target]
    pub entity: Entity,
    /// The error's text, also in its status.
    pub error: String,
}

/// A subject's training was cancelled: on request, or because the entity was despawned or
/// lost its [`MvCustomSubject`]. A run replaced by a new [`TrainSubject`] sends none.
#[derive(EntityEvent, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainingCancelled {
    /// The subject entity (possibly despawned by now).
    #[event_target]
    pub entity: Entity,
}
