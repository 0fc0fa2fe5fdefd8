//! Generations in flight: each runs in an `AsyncComputeTaskPool` task, streams its progress
//! back over a channel, turns a panic into an error, and is cancelled when its
//! [`GenerationTask`] component is dropped.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};

use bevy::ecs::entity::Entity;
use bevy::platform::cell::SyncCell;
use bevy::prelude::{Component, Resource};
use bevy::tasks::{AsyncComputeTaskPool, Task, futures::check_ready};

use super::assets::SubjectAsset;
use super::compose::{PendingRenders, SceneRenders};
use super::depth::PendingDepth;
use super::error::PluginError;
use super::model::MvCustomModel;
use crate::diffusion::CancelToken;
use crate::mvcustom::{GeneratedViews, GenerationEvent, GenerationRequest};
use crate::render::DepthMap;

/// What a finished generation task returns.
pub(crate) type Outcome = Result<GeneratedViews, PluginError>;

/// Present on a shot entity while a generation of it is queued or running; the plugin owns
/// it. Removing it (the plugin does on [`CancelShot`](super::CancelShot)), replacing it (a new
/// [`GenerateShot`](super::GenerateShot)) or despawning the shot cancels the generation: the
/// task is dropped and its cancel token set, so the worker stops at its next step.
#[derive(Component)]
pub struct GenerationTask {
    state: TaskState,
}

enum TaskState {
    /// Waiting for the start system to read the poses.
    Queued,
    /// Poses read; waiting for the anchor camera's rendered depth and/or the views'
    /// renders.
    AwaitingScene(Box<AwaitingScene>),
    /// Computing.
    Running(RunningGeneration),
}

/// A request whose poses are read, waiting for what it needs of the rendered scene (each
/// `None` once resolved, or when not needed) to start.
struct AwaitingScene {
    request: GenerationRequest,
    subject: Option<SubjectAsset>,
    views: Vec<Entity>,
    depth: Option<PendingDepth>,
    renders: Option<PendingRenders>,
}

/// A spawned generation: its task, progress channel, cancel token and the cameras it
/// generates, in request order.
pub(crate) struct RunningGeneration {
    task: Option<Task<Outcome>>,
    progress: SyncCell<Receiver<GenerationEvent>>,
    cancel: CancelToken,
    views: Vec<Entity>,
    total_steps: usize,
}

impl Drop for RunningGeneration {
    fn drop(&mut self) {
        // Dropping the task only stops it between polls; the worker is inside one long poll,
        // so it is the token that makes it return.
        self.cancel.cancel();
    }
}

/// What polling a running generation found this frame.
pub(crate) enum Polled {
    /// Progress events, in order.
    Progress(Vec<GenerationEvent>),
    /// The result (after every progress event was delivered).
    Finished(Outcome),
    /// Nothing new.
    Pending,
}

impl GenerationTask {
    /// A generation waiting to start.
    pub(crate) fn queued() -> Self {
        Self {
            state: TaskState::Queued,
        }
    }

    /// Whether the generation still waits for its poses.
    pub(crate) fn is_queued(&self) -> bool {
        matches!(self.state, TaskState::Queued)
    }

    /// The cameras of a generation whose poses were read, in request order (none while
    /// queued).
    pub(crate) fn views(&self) -> &[Entity] {
        match &self.state {
            TaskState::Queued => &[],
            TaskState::AwaitingScene(awaiting) => &awaiting.views,
            TaskState::Running(running) => &running.views,
        }
    }

    /// Denoising steps of a generation whose poses were read (0 while queued).
    pub(crate) fn total_steps(&self) -> usize {
        match &self.state {
            TaskState::Queued => 0,
            TaskState::AwaitingScene(awaiting) => awaiting.request.steps,
            TaskState::Running(running) => running.total_steps,
        }
    }

    /// Holds `request` for `views` until the anchor depth `depth` and the cameras' renders
    /// `renders` wait for have arrived (see [`start_when_ready`](Self::start_when_ready)).
    pub(crate) fn await_scene(
        &mut self,
        request: GenerationRequest,
        subject: Option<SubjectAsset>,
        views: Vec<Entity>,
        depth: Option<PendingDepth>,
        renders: Option<PendingRenders>,
    ) {
        self.state = TaskState::AwaitingScene(Box::new(AwaitingScene {
            request,
            subject,
            views,
            depth,
            renders,
        }));
    }

    /// The anchor depth a generation waits for, if it still waits for one.
    pub(crate) fn pending_depth_mut(&mut self) -> Option<&mut PendingDepth> {
        match &mut self.state {
            TaskState::AwaitingScene(awaiting) => awaiting.depth.as_mut(),
            _ => None,
        }
    }

    /// The renders a generation waits for, if it still waits for them.
    pub(crate) fn pending_renders_mut(&mut self) -> Option<&mut PendingRenders> {
        match &mut self.state {
            TaskState::AwaitingScene(awaiting) => awaiting.renders.as_mut(),
            _ => None,
        }
    }

    /// The anchor depth arrived (`None`: it did not come: the pipeline falls back to
    /// estimating it, or to no DFR).
    pub(crate) fn resolve_depth(&mut self, depth: Option<DepthMap>) {
        if let TaskState::AwaitingScene(awaiting) = &mut self.state {
            awaiting.request.anchor_depth = depth;
            awaiting.depth = None;
        }
    }

    /// The renders arrived.
    pub(crate) fn resolve_renders(&mut self, renders: SceneRenders) {
        if let TaskState::AwaitingScene(awaiting) = &mut self.state {
            awaiting.request.composition = renders.composition;
            awaiting.request.init_views = renders.init_views;
            awaiting.renders = None;
        }
    }

    /// Starts a generation that waited for the scene once nothing is pending any more. Does
    /// nothing in any other state.
    pub(crate) fn start_when_ready(&mut self, model: &MvCustomModel, workers: &GenerationWorkers) {
        let ready = matches!(&self.state, TaskState::AwaitingScene(awaiting)
            if awaiting.depth.is_none() && awaiting.renders.is_none());
        if !ready {
            return;
        }
        if let TaskState::AwaitingScene(awaiting) =
            std::mem::replace(&mut self.state, TaskState::Queued)
        {
            let AwaitingScene {
                request,
                subject,
                views,
                ..
            } = *awaiting;
            self.start(model, workers, request, subject, views);
        }
    }

    /// Starts generating `request` (of `subject`) for `views` on the async compute pool.
    pub(crate) fn start(
        &mut self,
        model: &MvCustomModel,
        workers: &GenerationWorkers,
        request: GenerationRequest,
        subject: Option<SubjectAsset>,
        views: Vec<Entity>,
    ) {
        let (sender, receiver) = channel();
        let cancel = CancelToken::new();
        let token = cancel.clone();
        let model = model.clone();
        let total_steps = request.steps;
        let busy = workers.enter();
        let task = AsyncComputeTaskPool::get().spawn(async move {
            let _busy = busy;
            catch_panics("generation", || {
                let generator = model.get_or_load()?;
                let mut events = |event| {
                    // The receiver is gone only once the generation was dropped (cancelled).
                    let _ = sender.send(event);
                };
                Ok(generator.generate(&request, subject.as_ref(), &mut events, &token)?)
            })
        });
        self.state = TaskState::Running(RunningGeneration {
            task: Some(task),
            progress: SyncCell::new(receiver),
            cancel,
            views,
            total_steps,
        });
    }

    /// Collects what arrived since the last frame. Progress comes first: a result is only
    /// reported on a frame that received no progress, so every progress state is visible for
    /// at least one frame.
    pub(crate) fn poll(&mut self) -> Polled {
        let TaskState::Running(running) = &mut self.state else {
            return Polled::Pending;
        };
        let mut events = Vec::new();
        // Empty or disconnected (the worker finished): either way, nothing more for now.
        while let Ok(event) = running.progress.get().try_recv() {
            events.push(event);
        }
        if !events.is_empty() {
            return Polled::Progress(events);
        }
        let Some(task) = running.task.as_mut() else {
            return Polled::Pending;
        };
        match check_ready(task) {
            Some(outcome) => {
                running.task = None;
                Polled::Finished(outcome)
            }
            None => Polled::Pending,
        }
    }
}

/// How many workers (generations and subject trainings) are computing right now, cancelled
/// ones included until they reach their next cancellation check. Lets an app (or a test) see
/// that a cancelled run really let go of its thread.
#[derive(Resource, Clone, Default)]
pub struct GenerationWorkers {
    busy: Arc<AtomicUsize>,
}

impl GenerationWorkers {
    /// Workers computing (or queued on the task pool) now.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::Acquire)
    }

    /// Counts one worker until the returned guard drops.
    pub(crate) fn enter(&self) -> WorkerGuard {
        self.busy.fetch_add(1, Ordering::AcqRel);
        WorkerGuard(Arc::clone(&self.busy))
    }
}

/// Counts a worker while alive.
pub(crate) struct WorkerGuard(Arc<AtomicUsize>);

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs `f` (the `task` named in errors), turning a panic into [`PluginError::Panicked`]
/// with the panic's message.
pub(crate) fn catch_panics<T>(
    task: &'static str,
    f: impl FnOnce() -> Result<T, PluginError>,
) -> Result<T, PluginError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(PluginError::Panicked {
            task,
            message: panic_message(payload.as_ref()),
        })
    })
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_panics_reports_the_message() {
        let literal = catch_panics::<()>("generation", || panic!("boom"));
        assert!(
            matches!(&literal, Err(PluginError::Panicked { message, .. }) if message == "boom")
        );
        assert_eq!(
            literal.unwrap_err().to_string(),
            "generation panicked: boom"
        );
        let formatted = catch_panics::<()>("training", || panic!("step {} of {}", 3, 7));
        assert!(
            matches!(formatted, Err(PluginError::Panicked { message, task: "training" }) if message == "step 3 of 7")
        );
        assert!(matches!(catch_panics("generation", || Ok(5)), Ok(5)));
    }

    #[test]
    fn workers_count_until_the_guard_drops() {
        let workers = GenerationWorkers::default();
        let a = workers.enter();
        let b = workers.enter();
        assert_eq!(workers.busy(), 2);
        drop(a);
        assert_eq!(workers.busy(), 1);
        drop(b);
        assert_eq!(workers.busy(), 0);
    }
}
