//! From a shot and its Bevy cameras to a [`GenerationRequest`]: the views in the shot's
//! order, each camera's pose and projection at this moment, the shot's settings over the
//! plugin's defaults.

use bevy::camera::{Camera, Projection};
use bevy::ecs::entity::Entity;
use bevy::math::UVec2;
use bevy::transform::components::GlobalTransform;

use super::components::{MvCustom, MvCustomShot};
use super::error::PluginError;
use super::settings::ShotDefaults;
use crate::camera::PinholeCamera;
use crate::camera::bevy::from_bevy;
use crate::mvcustom::GenerationRequest;

/// What the request builder needs to know of one camera entity.
pub struct CameraParts<'a> {
    /// The camera entity.
    pub entity: Entity,
    /// Its place in the shot.
    pub view: &'a MvCustom,
    /// Its render settings, whose computed viewport size (when Bevy has computed it) the
    /// projection is evaluated over.
    pub camera: Option<&'a Camera>,
    /// Its world pose.
    pub transform: Option<&'a GlobalTransform>,
    /// Its projection.
    pub projection: Option<&'a Projection>,
}

/// The camera Bevy renders `transform` / `projection` with, over `camera`'s viewport size
/// when known (else `fallback_size`), resampled to `output_size`: the pose and intrinsics
/// of the view generated for it.
pub fn view_camera(
    transform: &GlobalTransform,
    projection: &Projection,
    camera: Option<&Camera>,
    fallback_size: UVec2,
    output_size: UVec2,
) -> crate::camera::Result<PinholeCamera> {
    let target = camera
        .and_then(Camera::physical_viewport_size)
        .unwrap_or(fallback_size);
    let pinhole = from_bevy(transform, projection, target)?;
    if target == output_size {
        Ok(pinhole)
    } else {
        pinhole.resized(output_size.x, output_size.y)
    }
}

/// The request for generating `shot` (entity `shot_entity`) from `cameras`, with the cameras
/// sorted into the shot's order (returned alongside, as the views' entities).
pub fn build_request(
    shot_entity: Entity,
    shot: &MvCustomShot,
    mut cameras: Vec<CameraParts<'_>>,
    defaults: &ShotDefaults,
) -> Result<(GenerationRequest, Vec<Entity>), PluginError> {
    if cameras.is_empty() {
        return Err(PluginError::NoViews { shot: shot_entity });
    }
    cameras.sort_by_key(|parts| (parts.view.order, parts.entity));
    let size = shot.size.unwrap_or(defaults.size);
    let missing = |camera: Entity, component| PluginError::MissingComponent {
        shot: shot_entity,
        camera,
        component,
    };
    let pinholes = cameras
        .iter()
        .map(|parts| {
            let transform = parts
                .transform
                .ok_or_else(|| missing(parts.entity, "GlobalTransform"))?;
            let projection = parts
                .projection
                .ok_or_else(|| missing(parts.entity, "Projection"))?;
            view_camera(transform, projection, parts.camera, size, size).map_err(|source| {
                PluginError::Camera {
                    camera: parts.entity,
                    source,
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let views: Vec<Entity> = cameras.iter().map(|parts| parts.entity).collect();
    let mut techniques = shot.techniques.clone();
    if let Some(anchor) = shot.anchor {
        let index =
            views
                .iter()
                .position(|&view| view == anchor)
                .ok_or(PluginError::AnchorNotInShot {
                    shot: shot_entity,
                    anchor,
                })?;
        if let Some(dfr) = techniques.dfr.as_mut() {
            dfr.anchor_view = Some(index);
        }
    }
    let request = GenerationRequest {
        prompt: shot.prompt.clone(),
        negative_prompt: shot.negative_prompt.clone(),
        cameras: pinholes,
        width: size.x,
        height: size.y,
        steps: shot.steps.unwrap_or(defaults.steps) as usize,
        guidance_scale: f64::from(shot.guidance.unwrap_or(defaults.guidance)),
        seed: shot.seed,
        techniques,
        anchor_depth: None,
        preview_every: shot
            .preview_every
            .or(defaults.preview_every)
            .map(|steps| steps as usize),
        composition: None,
        init_views: None,
    };
    Ok((request, views))
}
