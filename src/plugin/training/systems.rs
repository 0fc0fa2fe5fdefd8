//! The observers and systems that move a subject through its training: queue on
//! [`TrainSubject`], start once the subject is loaded, poll steps into the status, finish,
//! fail or cancel.

use bevy::ecs::entity::Entity;
use bevy::log::warn;
use bevy::prelude::{Commands, On, Query, Remove, Res};

use super::files::AssetFolder;
use super::task::{TrainingPolled, TrainingTask};
use super::{
    CancelTraining, MvCustomSubject, TrainSubject, TrainingCancelled, TrainingFailed,
    TrainingFinished, TrainingState, TrainingStatus,
};
use crate::mvcustom::train::TrainEvent;
use crate::plugin::assets::subject::{SubjectAssets, SubjectLookup, handle_name};
use crate::plugin::error::PluginError;
use crate::plugin::model::MvCustomModel;
use crate::plugin::model_config::{ActiveModelConfig, model_readiness};
use crate::plugin::tasks::GenerationWorkers;

/// Queues a training of the entity's subject, replacing (cancelling) one still running.
pub(crate) fn on_train(
    event: On<TrainSubject>,
    mut commands: Commands,
    mut subjects: Query<&mut TrainingStatus, bevy::prelude::With<MvCustomSubject>>,
) {
    let entity = event.entity;
    let Ok(mut status) = subjects.get_mut(entity) else {
        fail(
            &mut commands,
            entity,
            None,
            PluginError::NotASubject { entity },
        );
        return;
    };
    status.clear_losses();
    status.set_state(TrainingState::Queued);
    commands.entity(entity).insert(TrainingTask::queued(
        event.settings.clone(),
        event.regularisation.clone(),
    ));
}

/// Cancels the entity's training on request.
pub(crate) fn on_cancel_training(
    event: On<CancelTraining>,
    mut commands: Commands,
    mut subjects: Query<(&TrainingTask, Option<&mut TrainingStatus>)>,
) {
    if let Ok((_, status)) = subjects.get_mut(event.entity) {
        cancel(&mut commands, event.entity, status.map(|s| s.into_inner()));
    }
}

/// Cancels the training of an entity losing its `MvCustomSubject` (or despawned).
pub(crate) fn on_subject_removed(
    event: On<Remove, MvCustomSubject>,
    mut commands: Commands,
    mut subjects: Query<(&TrainingTask, Option<&mut TrainingStatus>)>,
) {
    if let Ok((_, status)) = subjects.get_mut(event.entity) {
        cancel(&mut commands, event.entity, status.map(|s| s.into_inner()));
    }
}

/// Marks the training cancelled, drops its task (setting its token) and reports it.
fn cancel(commands: &mut Commands, entity: Entity, status: Option<&mut TrainingStatus>) {
    if let Some(status) = status {
        status.set_state(TrainingState::Cancelled);
    }
    commands.entity(entity).try_remove::<TrainingTask>();
    commands.trigger(TrainingCancelled { entity });
}

/// Marks the training failed, drops its task and reports [`TrainingFailed`].
fn fail(
    commands: &mut Commands,
    entity: Entity,
    status: Option<&mut TrainingStatus>,
    error: PluginError,
) {
    let text = error.to_string();
    warn!("MVCustom training of {entity}: {text}");
    if let Some(status) = status {
        status.set_state(TrainingState::Failed(text.clone()));
    }
    if let Ok(mut entity) = commands.get_entity(entity) {
        entity.try_remove::<TrainingTask>();
    }
    commands.trigger(TrainingFailed {
        entity,
        error: text,
    });
}

/// Starts every queued training whose subject has loaded; fails those whose subject cannot.
pub(crate) fn start_trainings(
    mut commands: Commands,
    mut queued: Query<(
        Entity,
        &MvCustomSubject,
        &mut TrainingTask,
        &mut TrainingStatus,
    )>,
    subject_assets: SubjectAssets,
    folder: Option<Res<AssetFolder>>,
    model: Res<MvCustomModel>,
    workers: Res<GenerationWorkers>,
    config: Option<Res<ActiveModelConfig>>,
) {
    for (entity, subject, mut task, mut status) in &mut queued {
        if !task.is_queued() {
            continue;
        }
        match model_readiness(config.as_deref()) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(error) => {
                fail(&mut commands, entity, Some(&mut status), error);
                continue;
            }
        }
        let asset = match subject_assets.lookup(&subject.subject) {
            SubjectLookup::Loaded(asset) => asset,
            SubjectLookup::Loading => continue,
            SubjectLookup::Failed(reason) => {
                let error = PluginError::TrainingSubject {
                    entity,
                    path: handle_name(&subject.subject),
                    reason,
                };
                fail(&mut commands, entity, Some(&mut status), error);
                continue;
            }
            SubjectLookup::Missing => {
                let error = PluginError::TrainingSubject {
                    entity,
                    path: handle_name(&subject.subject),
                    reason: "the asset does not exist (removed?)".into(),
                };
                fail(&mut commands, entity, Some(&mut status), error);
                continue;
            }
        };
        let on_disk = folder
            .as_deref()
            .ok_or(PluginError::NoAssetFolder)
            .and_then(|folder| folder.subject_on_disk(asset));
        match on_disk {
            Ok(on_disk) => task.start(&model, &workers, asset.clone(), on_disk),
            Err(error) => fail(&mut commands, entity, Some(&mut status), error),
        }
    }
}

/// Brings every running training's steps into its status, and reports finished, failed and
/// cancelled runs; a finished run's subject is reloaded with its new weights.
pub(crate) fn poll_trainings(
    mut commands: Commands,
    mut trainings: Query<(Entity, &mut TrainingTask, &mut TrainingStatus)>,
    subject_assets: SubjectAssets,
) {
    for (entity, mut task, mut status) in &mut trainings {
        match task.poll() {
            TrainingPolled::Pending => {}
            TrainingPolled::Progress(events) => {
                for event in events {
                    if let TrainEvent::Step {
                        completed,
                        total,
                        losses,
                    } = event
                    {
                        status.push_loss(losses.total);
                        status.set_state(TrainingState::Running {
                            step: completed,
                            total,
                            loss: losses.total,
                        });
                    }
                }
            }
            TrainingPolled::Finished {
                outcome,
                asset,
                weights,
            } => match outcome {
                Ok(()) => {
                    commands.entity(entity).remove::<TrainingTask>();
                    status.set_state(TrainingState::Done);
                    subject_assets.reload(&asset);
                    commands.trigger(TrainingFinished { entity, weights });
                }
                Err(error) if error.is_cancelled() => {
                    cancel(&mut commands, entity, Some(&mut status));
                }
                Err(error) => fail(&mut commands, entity, Some(&mut status), error),
            },
        }
    }
}
