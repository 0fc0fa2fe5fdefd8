//! Scene-aware depth: when a shot's anchor camera renders the scene with a depth prepass
//! (`DepthPrepass` on the camera), its generation waits for that camera's depth of the very
//! frame its poses were read in and hands it to DFR as
//! [`GenerationRequest::anchor_depth`], so DFR lifts the scene's exact geometry instead of
//! estimating it (or, with no depth estimator, being skipped).
//!
//! The main world asks with a [`SceneDepthRequest`] on the camera; the render world copies
//! the camera's prepass depth after its prepass and reads it back asynchronously (see
//! `capture`); [`DepthConversion`] turns Bevy's reverse-Z NDC depth into z-depth. The frame
//! loop never waits: a generation stays queued until the depth arrives, or starts without it
//! after [`MAX_DEPTH_WAIT_FRAMES`].
//!
//! The depth is what the camera rendered: on an app's first frames, before its pipelines have
//! compiled, a camera renders nothing and its depth is all background.

mod capture;
mod convert;

use std::sync::mpsc::{Receiver, channel};

use bevy::app::App;
use bevy::camera::{Camera, Projection};
use bevy::core_pipeline::CorePipelinePlugin;
use bevy::ecs::entity::Entity;
use bevy::log::warn;
use bevy::math::UVec2;
use bevy::platform::cell::SyncCell;
use bevy::prelude::{Commands, Component, Query, Res, ResMut, Resource};
use bevy::render::RenderApp;

pub use convert::{DepthConversion, DepthConversionError};

use super::model::MvCustomModel;
use super::tasks::{GenerationTask, GenerationWorkers};
use crate::mvcustom::GenerationRequest;
use crate::render::DepthMap;

/// Frames a generation waits for its anchor camera's depth before it starts without it (the
/// camera may not render: inactive, or its target not ready).
pub const MAX_DEPTH_WAIT_FRAMES: u32 = 60;

/// On a camera while the plugin waits for its rendered depth (the plugin inserts and removes
/// it). The render world copies the depth of every camera carrying one, each frame.
#[derive(Component, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SceneDepthRequest {
    id: u64,
}

impl SceneDepthRequest {
    /// Which request this is (matches the capture to the generation waiting for it).
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// One camera's depth buffer as read back: row-major NDC depth of its whole render target,
/// or the read-back's error.
pub(crate) struct CapturedDepth {
    id: u64,
    width: u32,
    height: u32,
    ndc: Result<Vec<f32>, String>,
}

/// Present in the main world when the app renders 3D (a render app with the core pipeline):
/// where captured depth arrives, and the next request id.
#[derive(Resource)]
pub struct SceneDepthCapture {
    receiver: SyncCell<Receiver<CapturedDepth>>,
    next_id: u64,
}

/// A generation waiting for its anchor camera's depth.
#[derive(Debug)]
pub(crate) struct PendingDepth {
    /// The request's id.
    id: u64,
    /// The anchor camera.
    camera: Entity,
    /// How to convert what arrives.
    conversion: DepthConversion,
    /// Frames waited so far.
    frames: u32,
}

/// Sets scene depth up when the app renders 3D; without a render app (a headless app) every
/// generation goes without scene depth (the pipeline's fallback: its depth estimator, or
/// no DFR).
pub(crate) fn setup(app: &mut App) {
    if app.get_sub_app(RenderApp).is_none() || !app.is_plugin_added::<CorePipelinePlugin>() {
        return;
    }
    let (sender, receiver) = channel();
    capture::add_render_systems(app, sender);
    app.insert_resource(SceneDepthCapture {
        receiver: SyncCell::new(receiver),
        next_id: 0,
    });
}

/// The anchor view of `request` when DFR is on: the shot's anchor, else the middle view.
fn anchor_view(request: &GenerationRequest) -> Option<usize> {
    let dfr = request.techniques.dfr.as_ref()?;
    Some(dfr.anchor_view.unwrap_or(request.cameras.len() / 2))
}

/// Asks for the anchor camera's depth when the request uses DFR and the anchor renders with
/// a depth prepass; pins the request's anchor view to that camera (the depth belongs to
/// it). `anchor_camera` gives a camera's render settings and projection when it renders
/// with a depth prepass. `None`: start at once without scene depth.
pub(crate) fn request_depth<'a>(
    commands: &mut Commands,
    capture: Option<&mut SceneDepthCapture>,
    request: &mut GenerationRequest,
    views: &[Entity],
    anchor_camera: impl Fn(Entity) -> Option<(&'a Camera, &'a Projection)>,
) -> Option<PendingDepth> {
    let capture = capture?;
    let index = anchor_view(request)?;
    let camera = *views.get(index)?;
    let (render, projection) = anchor_camera(camera)?;
    if !render.is_active {
        return None;
    }
    let output = UVec2::new(request.width, request.height);
    let conversion = match DepthConversion::new(render, projection, output) {
        Ok(conversion) => conversion,
        Err(e) => {
            warn!("scene depth of camera {camera} unavailable ({e}); DFR goes without it");
            return None;
        }
    };
    if let Some(dfr) = request.techniques.dfr.as_mut() {
        dfr.anchor_view = Some(index);
    }
    let id = capture.next_id;
    capture.next_id += 1;
    commands.entity(camera).insert(SceneDepthRequest { id });
    Some(PendingDepth {
        id,
        camera,
        conversion,
        frames: 0,
    })
}

/// Starts the generations whose anchor depth arrived (or that waited too long), and takes the
/// requests nobody waits for any more off their cameras.
pub(crate) fn receive_scene_depth(
    mut commands: Commands,
    capture: Option<ResMut<SceneDepthCapture>>,
    mut shots: Query<&mut GenerationTask>,
    requests: Query<(Entity, &SceneDepthRequest)>,
    model: Res<MvCustomModel>,
    workers: Res<GenerationWorkers>,
) {
    let Some(mut capture) = capture else { return };
    let arrived: Vec<CapturedDepth> = capture.receiver.get().try_iter().collect();
    let mut waiting = Vec::new();
    for mut task in &mut shots {
        let Some(pending) = task.pending_depth_mut() else {
            continue;
        };
        let depth = match arrived.iter().find(|captured| captured.id == pending.id) {
            Some(captured) => convert(pending, captured),
            None if pending.frames < MAX_DEPTH_WAIT_FRAMES => {
                pending.frames += 1;
                waiting.push(pending.id);
                continue;
            }
            None => {
                warn!(
                    "camera {} rendered no depth within {MAX_DEPTH_WAIT_FRAMES} frames; DFR \
                     goes without it",
                    pending.camera
                );
                None
            }
        };
        task.resolve_depth(depth);
        task.start_when_ready(&model, &workers);
    }
    for (camera, request) in &requests {
        if !waiting.contains(&request.id) {
            commands.entity(camera).try_remove::<SceneDepthRequest>();
        }
    }
}

/// The depth map of a capture, or `None` (with a warning) when it cannot be used.
fn convert(pending: &PendingDepth, captured: &CapturedDepth) -> Option<DepthMap> {
    let result = captured
        .ndc
        .as_ref()
        .map_err(|e| format!("read-back failed: {e}"))
        .and_then(|ndc| {
            pending
                .conversion
                .depth_map(ndc, captured.width, captured.height)
                .map_err(|e| e.to_string())
        });
    result
        .inspect_err(|e| {
            warn!(
                "scene depth of camera {} unusable ({e}); DFR goes without it",
                pending.camera
            )
        })
        .ok()
}
