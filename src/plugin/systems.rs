//! The systems and observers that move a shot through its generation: queue on
//! [`GenerateShot`], start from the cameras' poses, poll progress and results into statuses
//! and images, cancel on request or when the shot or a camera goes away.

use bevy::asset::{Assets, Handle};
use bevy::camera::{Camera, Projection};
use bevy::core_pipeline::prepass::DepthPrepass;
use bevy::ecs::entity::Entity;
use bevy::image::Image;
use bevy::log::warn;
use bevy::math::UVec2;
use bevy::prelude::{Commands, Has, On, Query, Remove, Res, ResMut, With};
use bevy::transform::components::GlobalTransform;

use super::assets::SubjectAsset;
use super::assets::subject::{SubjectAssets, SubjectLookup, handle_name};
use super::components::{
    GenerationState, MvCustom, MvCustomShot, MvCustomStatus, SUBJECT_PLACEHOLDER, ShotViews,
};
use super::compose::RenderCapture;
use super::depth::{SceneDepthCapture, request_depth};
use super::error::PluginError;
use super::events::{CancelShot, GenerateShot, ShotCancelled, ShotFailed, ShotFinished};
use super::images::{placeholder_image, to_bevy_image};
use super::model::MvCustomModel;
use super::model_config::{ActiveModelConfig, model_readiness};
use super::poses::{CameraParts, build_request};
use super::settings::ShotDefaults;
use super::tasks::{GenerationTask, GenerationWorkers, Outcome, Polled};
use crate::mvcustom::{GenerationEvent, GenerationRequest, Stage};

/// What the start system reads of a camera for its pose.
type CameraData = (
    &'static MvCustom,
    Option<&'static Camera>,
    Option<&'static GlobalTransform>,
    Option<&'static Projection>,
    Has<DepthPrepass>,
);

/// The cameras of a shot, from its [`ShotViews`] (none if it has no cameras).
fn cameras_of(views: Option<&ShotViews>) -> &[Entity] {
    views.map_or(&[], ShotViews::cameras)
}

/// Sets the state of each of `cameras` that still has a status.
fn set_states<'a>(
    cameras: impl IntoIterator<Item = &'a Entity>,
    statuses: &mut Query<&mut MvCustomStatus>,
    state: &GenerationState,
) {
    for &camera in cameras {
        if let Ok(mut status) = statuses.get_mut(camera) {
            status.set_state(state.clone());
        }
    }
}

/// Queues a generation of the shot; a generation of it still running is dropped (which
/// cancels it) and its cameras that left the shot are marked cancelled.
pub(crate) fn on_generate(
    event: On<GenerateShot>,
    mut commands: Commands,
    shots: Query<(Option<&ShotViews>, Option<&GenerationTask>), With<MvCustomShot>>,
    mut statuses: Query<&mut MvCustomStatus>,
) {
    let shot = event.shot;
    let Ok((views, previous)) = shots.get(shot) else {
        fail_shot(
            &mut commands,
            shot,
            &[],
            &mut statuses,
            PluginError::NotAShot { entity: shot },
        );
        return;
    };
    if let Some(previous) = previous {
        set_states(previous.views(), &mut statuses, &GenerationState::Cancelled);
    }
    set_states(cameras_of(views), &mut statuses, &GenerationState::Queued);
    commands.entity(shot).insert(GenerationTask::queued());
}

/// Cancels the shot's generation on request.
pub(crate) fn on_cancel(
    event: On<CancelShot>,
    mut commands: Commands,
    shots: Query<(&GenerationTask, Option<&ShotViews>)>,
    mut statuses: Query<&mut MvCustomStatus>,
) {
    if let Ok((task, views)) = shots.get(event.shot) {
        cancel(&mut commands, event.shot, task, views, &mut statuses);
    }
}

/// Cancels the generation of a shot whose `MvCustomShot` is removed or that is despawned.
pub(crate) fn on_shot_removed(
    event: On<Remove, MvCustomShot>,
    mut commands: Commands,
    shots: Query<(&GenerationTask, Option<&ShotViews>)>,
    mut statuses: Query<&mut MvCustomStatus>,
) {
    if let Ok((task, views)) = shots.get(event.entity) {
        cancel(&mut commands, event.entity, task, views, &mut statuses);
    }
}

/// Cancels the running generation a camera belongs to when the camera loses its `MvCustom`
/// or is despawned. A queued generation goes on without it (its poses are not read yet).
pub(crate) fn on_view_removed(
    event: On<Remove, MvCustom>,
    mut commands: Commands,
    views: Query<&MvCustom>,
    shots: Query<(&GenerationTask, Option<&ShotViews>)>,
    mut statuses: Query<&mut MvCustomStatus>,
) {
    let camera = event.entity;
    if let Ok(mut status) = statuses.get_mut(camera)
        && status.state().is_busy()
    {
        status.set_state(GenerationState::Cancelled);
    }
    let Ok(view) = views.get(camera) else { return };
    if let Ok((task, shot_views)) = shots.get(view.shot)
        && task.views().contains(&camera)
    {
        cancel(&mut commands, view.shot, task, shot_views, &mut statuses);
    }
}

/// Marks the generation's cameras cancelled, drops the task (setting its cancel token) and
/// reports [`ShotCancelled`].
fn cancel(
    commands: &mut Commands,
    shot: Entity,
    task: &GenerationTask,
    views: Option<&ShotViews>,
    statuses: &mut Query<&mut MvCustomStatus>,
) {
    for &camera in task.views().iter().chain(cameras_of(views)) {
        if let Ok(mut status) = statuses.get_mut(camera)
            && status.state().is_busy()
        {
            status.set_state(GenerationState::Cancelled);
        }
    }
    commands.entity(shot).try_remove::<GenerationTask>();
    commands.trigger(ShotCancelled { shot });
}

/// Marks `cameras` failed, drops the shot's task and reports [`ShotFailed`].
pub(crate) fn fail_shot(
    commands: &mut Commands,
    shot: Entity,
    cameras: &[Entity],
    statuses: &mut Query<&mut MvCustomStatus>,
    error: PluginError,
) {
    let text = error.to_string();
    warn!("MVCustom shot {shot}: {text}");
    set_states(cameras, statuses, &GenerationState::Failed(text.clone()));
    if let Ok(mut entity) = commands.get_entity(shot) {
        entity.try_remove::<GenerationTask>();
    }
    commands.trigger(ShotFailed { shot, error: text });
}

/// Gives the camera's status an image of `size` to receive previews and the result: its
/// existing image when it has that size (it keeps showing the last result until then),
/// otherwise a transparent placeholder under the same handle.
fn ensure_image(status: &mut MvCustomStatus, images: &mut Assets<Image>, size: UVec2) {
    match status.image() {
        Some(handle) if images.get(handle).is_some_and(|image| image.size() == size) => {}
        Some(handle) => {
            if let Err(e) = images.insert(handle.id(), placeholder_image(size)) {
                warn!("cannot reset a generated view's image: {e}");
            }
        }
        None => {
            let handle = images.add(placeholder_image(size));
            status.set_image(handle);
        }
    }
}

/// Where a shot's subject stands when its generation is to start.
enum ShotSubject {
    /// Ready: none, or loaded with its weights.
    Ready(Option<SubjectAsset>),
    /// Still loading (or reloading): the generation waits, queued.
    Loading,
    /// Unusable: the generation fails with this error.
    Failed(PluginError),
}

/// The state of `shot`'s subject `handle`.
fn shot_subject(
    shot: Entity,
    handle: Option<&Handle<SubjectAsset>>,
    subjects: &SubjectAssets,
) -> ShotSubject {
    let Some(handle) = handle else {
        return ShotSubject::Ready(None);
    };
    match subjects.lookup(handle) {
        SubjectLookup::Loaded(subject) if subject.weights().is_some() => {
            ShotSubject::Ready(Some(subject.clone()))
        }
        SubjectLookup::Loaded(subject) => ShotSubject::Failed(PluginError::UntrainedSubject {
            shot,
            path: subject.path().to_string(),
            weights: subject.subject().weights_path.display().to_string(),
        }),
        SubjectLookup::Loading => ShotSubject::Loading,
        SubjectLookup::Failed(reason) => ShotSubject::Failed(PluginError::SubjectLoad {
            shot,
            path: handle_name(handle),
            reason,
        }),
        SubjectLookup::Missing => ShotSubject::Failed(PluginError::SubjectMissing { shot }),
    }
}

/// `request` (with its views) with [`SUBJECT_PLACEHOLDER`] in its prompts replaced by the
/// token of the shot's `subject`; without a subject, a prompt holding the placeholder fails.
fn name_subject(
    shot: Entity,
    (mut request, views): (GenerationRequest, Vec<Entity>),
    subject: Option<&SubjectAsset>,
) -> Result<(GenerationRequest, Vec<Entity>), PluginError> {
    let prompts = [&mut request.prompt, &mut request.negative_prompt];
    match subject {
        Some(subject) => {
            for prompt in prompts {
                *prompt = prompt.replace(SUBJECT_PLACEHOLDER, &subject.subject().token);
            }
        }
        None if prompts.iter().any(|p| p.contains(SUBJECT_PLACEHOLDER)) => {
            return Err(PluginError::PlaceholderWithoutSubject { shot });
        }
        None => {}
    }
    Ok((request, views))
}

/// Starts every queued generation from its cameras' poses now (after transform propagation,
/// camera updates and bounds, so poses and boxes are this frame's). A generation whose
/// subject or model configuration is still loading stays queued; one that needs the scene's depth or backgrounds
/// asks for them and waits.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start_generations(
    mut commands: Commands,
    mut shots: Query<(
        Entity,
        &MvCustomShot,
        Option<&ShotViews>,
        &mut GenerationTask,
    )>,
    cameras: Query<CameraData>,
    mut statuses: Query<&mut MvCustomStatus>,
    mut images: ResMut<Assets<Image>>,
    defaults: Res<ShotDefaults>,
    model: Res<MvCustomModel>,
    workers: Res<GenerationWorkers>,
    mut depth_capture: Option<ResMut<SceneDepthCapture>>,
    subject_assets: SubjectAssets,
    mut scene: RenderCapture,
    config: Option<Res<ActiveModelConfig>>,
) {
    for (shot, settings, views, mut task) in &mut shots {
        if !task.is_queued() {
            continue;
        }
        match model_readiness(config.as_deref()) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(error) => {
                fail_shot(&mut commands, shot, cameras_of(views), &mut statuses, error);
                continue;
            }
        }
        let subject = match shot_subject(shot, settings.subject.as_ref(), &subject_assets) {
            ShotSubject::Ready(subject) => subject,
            ShotSubject::Loading => continue,
            ShotSubject::Failed(error) => {
                fail_shot(&mut commands, shot, cameras_of(views), &mut statuses, error);
                continue;
            }
        };
        let parts = cameras_of(views)
            .iter()
            .filter_map(|&entity| {
                let (view, camera, transform, projection, _) = cameras.get(entity).ok()?;
                Some(CameraParts {
                    entity,
                    view,
                    camera,
                    transform,
                    projection,
                })
            })
            .collect();
        let built = build_request(shot, settings, parts, &defaults)
            .and_then(|built| name_subject(shot, built, subject.as_ref()));
        match built {
            Ok((mut request, ordered)) => {
                let size = UVec2::new(request.width, request.height);
                for &camera in &ordered {
                    if let Ok(mut status) = statuses.get_mut(camera) {
                        ensure_image(&mut status, &mut images, size);
                    }
                }
                let renders = match scene.request(&mut commands, shot, settings, &request, &ordered)
                {
                    Ok(renders) => renders,
                    Err(error) => {
                        fail_shot(&mut commands, shot, &ordered, &mut statuses, error);
                        continue;
                    }
                };
                let scene_depth = request_depth(
                    &mut commands,
                    depth_capture.as_deref_mut(),
                    &mut request,
                    &ordered,
                    |camera| match cameras.get(camera) {
                        Ok((_, Some(render), _, Some(projection), true)) => {
                            Some((render, projection))
                        }
                        _ => None,
                    },
                );
                if scene_depth.is_none() && renders.is_none() {
                    task.start(&model, &workers, request, subject, ordered);
                    continue;
                }
                if scene_depth.is_some() {
                    let waiting = GenerationState::Running {
                        stage: Stage::AnchorDepth,
                        step: 0,
                        total: request.steps,
                    };
                    set_states(&ordered, &mut statuses, &waiting);
                }
                task.await_scene(request, subject, ordered, scene_depth, renders);
            }
            Err(error) => fail_shot(&mut commands, shot, cameras_of(views), &mut statuses, error),
        }
    }
}

/// Brings every running generation's progress and result into its cameras' statuses and
/// images, and reports finished, failed and cancelled generations.
pub(crate) fn poll_generations(
    mut commands: Commands,
    mut shots: Query<(Entity, &mut GenerationTask)>,
    mut statuses: Query<&mut MvCustomStatus>,
    mut images: ResMut<Assets<Image>>,
) {
    for (shot, mut task) in &mut shots {
        match task.poll() {
            Polled::Pending => {}
            Polled::Progress(events) => {
                for event in events {
                    apply_progress(&task, event, &mut statuses, &mut images);
                }
            }
            Polled::Finished(outcome) => {
                let views = task.views().to_vec();
                commands.entity(shot).remove::<GenerationTask>();
                finish(
                    &mut commands,
                    shot,
                    &views,
                    outcome,
                    &mut statuses,
                    &mut images,
                );
            }
        }
    }
}

/// One progress event into the statuses (and, for previews, the images) of the task's views.
fn apply_progress(
    task: &GenerationTask,
    event: GenerationEvent,
    statuses: &mut Query<&mut MvCustomStatus>,
    images: &mut Assets<Image>,
) {
    match event {
        GenerationEvent::StageStarted(stage) => {
            for &camera in task.views() {
                if let Ok(mut status) = statuses.get_mut(camera) {
                    let step = match status.state() {
                        GenerationState::Running { step, .. } => *step,
                        _ => 0,
                    };
                    status.set_state(GenerationState::Running {
                        stage,
                        step,
                        total: task.total_steps(),
                    });
                }
            }
        }
        GenerationEvent::Step { completed, total } => {
            for &camera in task.views() {
                if let Ok(mut status) = statuses.get_mut(camera) {
                    let stage = match status.state() {
                        GenerationState::Running { stage, .. } => *stage,
                        _ => Stage::Denoising,
                    };
                    status.set_state(GenerationState::Running {
                        stage,
                        step: completed,
                        total,
                    });
                }
            }
        }
        GenerationEvent::Preview {
            images: previews, ..
        } => {
            store_images(task.views(), &previews, statuses, images);
        }
        GenerationEvent::Notice(notice) => bevy::log::warn!("bevy_mvcustom: {notice}"),
    }
}

/// Writes `views[i]`'s image `pixels[i]` into its status's image asset; returns the handles.
fn store_images(
    views: &[Entity],
    pixels: &[image::RgbaImage],
    statuses: &mut Query<&mut MvCustomStatus>,
    images: &mut Assets<Image>,
) -> Vec<bevy::asset::Handle<Image>> {
    let mut handles = Vec::with_capacity(views.len());
    for (&camera, view) in views.iter().zip(pixels) {
        let Ok(mut status) = statuses.get_mut(camera) else {
            continue;
        };
        let image = to_bevy_image(view);
        match status.image() {
            Some(handle) => {
                if let Err(e) = images.insert(handle.id(), image) {
                    warn!("cannot store the view of camera {camera}: {e}");
                }
            }
            None => status.set_image(images.add(image)),
        }
        handles.extend(status.image().cloned());
    }
    handles
}

/// Applies a finished generation's outcome to its views and reports it.
fn finish(
    commands: &mut Commands,
    shot: Entity,
    views: &[Entity],
    outcome: Outcome,
    statuses: &mut Query<&mut MvCustomStatus>,
    images: &mut Assets<Image>,
) {
    let generated = match outcome {
        Ok(generated) if generated.images.len() == views.len() => generated,
        Ok(generated) => {
            let error = PluginError::ViewCount {
                expected: views.len(),
                got: generated.images.len(),
            };
            return fail_shot(commands, shot, views, statuses, error);
        }
        Err(error) if error.is_cancelled() => {
            set_states(views, statuses, &GenerationState::Cancelled);
            commands.trigger(ShotCancelled { shot });
            return;
        }
        Err(error) => return fail_shot(commands, shot, views, statuses, error),
    };
    let handles = store_images(views, &generated.images, statuses, images);
    set_states(views, statuses, &GenerationState::Done);
    commands.trigger(ShotFinished {
        shot,
        views: views.to_vec(),
        images: handles,
        timings: generated.timings,
    });
}
