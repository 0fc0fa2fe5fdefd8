//! The events that drive generations (`GenerateShot`, `CancelShot`), the events that report
//! their end (`ShotFinished`, `ShotFailed`, `ShotCancelled`), and a `Commands` shorthand.
//!
//! All are [`EntityEvent`]s targeting the shot entity: observe them globally
//! (`app.add_observer(|e: On<ShotFinished>| ..)`) or on one shot (`commands.entity(shot)
//! .observe(..)`).

use bevy::asset::Handle;
use bevy::ecs::entity::Entity;
use bevy::ecs::system::EntityCommands;
use bevy::image::Image;
use bevy::prelude::EntityEvent;

use super::training::{CancelTraining, TrainSubject};
use crate::mvcustom::StageTiming;
use crate::mvcustom::train::TrainSettings;

/// Generates the views of this shot (an entity with `MvCustomShot`) from its cameras' poses
/// at the start of the generation (this frame's `PostUpdate`). A generation of the same
/// shot still running is cancelled and replaced.
#[derive(EntityEvent, Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenerateShot {
    /// The shot.
    #[event_target]
    pub shot: Entity,
}

/// Cancels this shot's generation, if one is queued or running.
#[derive(EntityEvent, Clone, Copy, Debug, PartialEq, Eq)]
pub struct CancelShot {
    /// The shot.
    #[event_target]
    pub shot: Entity,
}

/// A shot's generation finished: every view's image holds its result.
#[derive(EntityEvent, Clone, Debug)]
pub struct ShotFinished {
    /// The shot.
    #[event_target]
    pub shot: Entity,
    /// Its cameras, in the shot's order.
    pub views: Vec<Entity>,
    /// Their images, in the same order.
    pub images: Vec<Handle<Image>>,
    /// How long each stage took.
    pub timings: Vec<StageTiming>,
}

/// A shot's generation failed (or could not start); the app keeps running.
#[derive(EntityEvent, Clone, Debug)]
pub struct ShotFailed {
    /// The shot.
    #[event_target]
    pub shot: Entity,
    /// The error's text, also shown in its cameras' status.
    pub error: String,
}

/// A shot's generation was cancelled: on request, or because the shot or one of its cameras
/// was despawned (or lost its `MvCustomShot` / `MvCustom`). A generation replaced by a new
/// [`GenerateShot`] sends no event: the new one takes over its cameras.
#[derive(EntityEvent, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShotCancelled {
    /// The shot (possibly despawned by now).
    #[event_target]
    pub shot: Entity,
}

/// Shorthands on a shot's or a subject's [`EntityCommands`]:
/// `commands.entity(shot).generate_views()`, `commands.entity(subject).train_subject(settings)`.
pub trait MvCustomCommandsExt {
    /// Triggers [`GenerateShot`] for this shot.
    fn generate_views(&mut self) -> &mut Self;
    /// Triggers [`CancelShot`] for this shot.
    fn cancel_generation(&mut self) -> &mut Self;
    /// Triggers [`TrainSubject`] for this subject entity (one with
    /// [`MvCustomSubject`](super::MvCustomSubject)), without regularisation images.
    fn train_subject(&mut self, settings: TrainSettings) -> &mut Self;
    /// Triggers [`CancelTraining`] for this subject entity.
    fn cancel_training(&mut self) -> &mut Self;
}

impl MvCustomCommandsExt for EntityCommands<'_> {
    fn generate_views(&mut self) -> &mut Self {
        self.trigger(|shot| GenerateShot { shot })
    }

    fn cancel_generation(&mut self) -> &mut Self {
        self.trigger(|shot| CancelShot { shot })
    }

    fn train_subject(&mut self, settings: TrainSettings) -> &mut Self {
        self.trigger(move |entity| TrainSubject::new(entity, settings))
    }

    fn cancel_training(&mut self) -> &mut Self {
        self.trigger(|entity| CancelTraining { entity })
    }
}
