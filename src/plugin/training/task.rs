//! Trainings in flight: each runs in an `AsyncComputeTaskPool` task, streams its steps back
//! over a channel, turns a panic into an error, and is cancelled when its [`TrainingTask`]
//! component is dropped.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};

use bevy::platform::cell::SyncCell;
use bevy::prelude::Component;
use bevy::tasks::{AsyncComputeTaskPool, Task, futures::check_ready};

use crate::diffusion::CancelToken;
use crate::mvcustom::Subject;
use crate::mvcustom::train::{TrainEvent, TrainSettings};
use crate::plugin::assets::SubjectAsset;
use crate::plugin::error::PluginError;
use crate::plugin::model::MvCustomModel;
use crate::plugin::tasks::{GenerationWorkers, catch_panics};

/// Present on a subject entity while a training of it is queued or running; the plugin owns
/// it. Removing or replacing it, or despawning the entity, cancels the run: its cancel token
/// is set, so the worker stops before its next step.
#[derive(Component)]
pub struct TrainingTask {
    state: TrainingTaskState,
}

enum TrainingTaskState {
    /// Waiting for the subject asset.
    Queued {
        settings: TrainSettings,
        regularisation: Arc<[image::RgbaImage]>,
    },
    /// Training.
    Running(RunningTraining),
}

/// A spawned training: its task, step channel, cancel token, and the subject asset it
/// trains (reloaded when it finishes).
struct RunningTraining {
    task: Option<Task<Result<(), PluginError>>>,
    progress: SyncCell<Receiver<TrainEvent>>,
    cancel: CancelToken,
    asset: SubjectAsset,
    weights: PathBuf,
}

impl Drop for RunningTraining {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// What polling a training found this frame.
pub(crate) enum TrainingPolled {
    /// Step events, in order.
    Progress(Vec<TrainEvent>),
    /// The outcome (after every event was delivered), with the subject it trained and the
    /// weights file written.
    Finished {
        outcome: Result<(), PluginError>,
        asset: SubjectAsset,
        weights: PathBuf,
    },
    /// Nothing new.
    Pending,
}

impl TrainingTask {
    /// A training waiting for its subject.
    pub(crate) fn queued(settings: TrainSettings, regularisation: Arc<[image::RgbaImage]>) -> Self {
        Self {
            state: TrainingTaskState::Queued {
                settings,
                regularisation,
            },
        }
    }

    /// Whether the training still waits for its subject.
    pub(crate) fn is_queued(&self) -> bool {
        matches!(self.state, TrainingTaskState::Queued { .. })
    }

    /// Starts training `subject` (its paths on the file system) of `asset` on the async
    /// compute pool. Does nothing unless queued.
    pub(crate) fn start(
        &mut self,
        model: &MvCustomModel,
        workers: &GenerationWorkers,
        asset: SubjectAsset,
        subject: Subject,
    ) {
        let TrainingTaskState::Queued {
            settings,
            regularisation,
        } = &self.state
        else {
            return;
        };
        let (settings, regularisation) = (settings.clone(), Arc::clone(regularisation));
        let (sender, receiver) = channel();
        let cancel = CancelToken::new();
        let token = cancel.clone();
        let model = model.clone();
        let weights = subject.weights_path.clone();
        let busy = workers.enter();
        let task = AsyncComputeTaskPool::get().spawn(async move {
            let _busy = busy;
            catch_panics("training", || {
                let generator = model.get_or_load()?;
                let mut events = |event| {
                    // The receiver is gone only once the training was dropped (cancelled).
                    let _ = sender.send(event);
                };
                Ok(generator.train_subject(
                    &subject,
                    &settings,
                    &regularisation,
                    &mut events,
                    &token,
                )?)
            })
        });
        self.state = TrainingTaskState::Running(RunningTraining {
            task: Some(task),
            progress: SyncCell::new(receiver),
            cancel,
            asset,
            weights,
        });
    }

    /// Collects what arrived since the last frame; steps first, the outcome on a frame that
    /// received none (so every step is seen).
    pub(crate) fn poll(&mut self) -> TrainingPolled {
        let TrainingTaskState::Running(running) = &mut self.state else {
            return TrainingPolled::Pending;
        };
        let events: Vec<TrainEvent> = running.progress.get().try_iter().collect();
        if !events.is_empty() {
            return TrainingPolled::Progress(events);
        }
        let Some(task) = running.task.as_mut() else {
            return TrainingPolled::Pending;
        };
        match check_ready(task) {
            Some(outcome) => {
                running.task = None;
                TrainingPolled::Finished {
                    outcome,
                    asset: running.asset.clone(),
                    weights: running.weights.clone(),
                }
            }
            None => TrainingPolled::Pending,
        }
    }
}
