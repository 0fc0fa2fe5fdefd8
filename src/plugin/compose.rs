//! The scene's own renders in a generation. A shot with [`MvCustomShot::compose`] set keeps
//! each camera's render outside the subject entity's projected bounds and generates only the
//! subject's region (see [`compose`](crate::mvcustom::compose)); one with
//! [`MvCustomShot::restyle`] set starts each view from its camera's render (see
//! [`InitViews`]). Both may be set.
//!
//! When such a generation starts, the subject entity's bounding boxes (its own and its
//! descendants' `Aabb`s, in world space) are projected through each view's camera, and each
//! camera's render target is captured with a Bevy screenshot of that very frame. The
//! generation starts once every view's render has arrived (cropped to the camera's
//! viewport, resampled to the shot's size); it fails when the app does not render, or a
//! camera's render does not arrive within [`MAX_CAPTURE_WAIT_FRAMES`].

use bevy::app::App;
use bevy::camera::primitives::Aabb;
use bevy::camera::{Camera, RenderTarget};
use bevy::ecs::entity::Entity;
use bevy::ecs::system::SystemParam;
use bevy::math::{URect, Vec3};
use bevy::prelude::{Children, Commands, On, Query, Res, ResMut, Resource};
use bevy::render::RenderApp;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::transform::components::GlobalTransform;

use super::components::{MvCustomShot, MvCustomStatus};
use super::error::PluginError;
use super::model::MvCustomModel;
use super::systems::fail_shot;
use super::tasks::{GenerationTask, GenerationWorkers};
use crate::mvcustom::compose::{
    CompositionInput, CompositionSettings, SubjectBounds, subject_bounds,
};
use crate::mvcustom::{GenerationRequest, InitViews};

/// Frames a generation waits for its cameras' renders before it fails.
pub const MAX_CAPTURE_WAIT_FRAMES: u32 = 60;

/// Present in the main world when the app renders (and can take screenshots): the renders
/// captured so far, and the next capture id.
#[derive(Resource, Default)]
pub struct BackgroundCaptures {
    next_id: u64,
    arrived: Vec<CapturedBackground>,
}

/// One camera's render as captured: its capture id, view index, and pixels (or why not).
struct CapturedBackground {
    id: u64,
    view: usize,
    pixels: Result<image::RgbaImage, String>,
}

/// A generation waiting for its views' renders.
#[derive(Debug)]
pub(crate) struct PendingRenders {
    /// The capture id.
    id: u64,
    /// The views' cameras, in request order.
    cameras: Vec<Entity>,
    /// The views' renders as they arrive.
    renders: Vec<Option<image::RgbaImage>>,
    /// With composition: the subject's bounds in each view and the shot's settings.
    composition: Option<(Vec<Option<SubjectBounds>>, CompositionSettings)>,
    /// With restyling: the strength.
    restyle: Option<f32>,
    /// The request's size, the renders' after resampling.
    size: (u32, u32),
    /// Frames waited so far.
    frames: u32,
}

/// What the renders of a generation give its request.
pub(crate) struct SceneRenders {
    /// The backgrounds to compose into.
    pub composition: Option<CompositionInput>,
    /// The views to restyle.
    pub init_views: Option<InitViews>,
}

/// What [`PendingRenders::receive`] found.
pub(crate) enum Received {
    /// Still waiting.
    Waiting,
    /// Every render arrived.
    Ready(SceneRenders),
    /// A capture failed or did not arrive in time.
    Failed(PluginError),
}

impl PendingRenders {
    /// Takes this generation's captures out of `captures`; counts a frame waited.
    pub(crate) fn receive(&mut self, shot: Entity, captures: &mut BackgroundCaptures) -> Received {
        let mut failure = None;
        captures.arrived.retain_mut(|captured| {
            if captured.id != self.id {
                return true;
            }
            let pixels = std::mem::replace(&mut captured.pixels, Err(String::new()));
            match pixels {
                Ok(pixels) => {
                    let (width, height) = self.size;
                    let resized = if pixels.dimensions() == (width, height) {
                        pixels
                    } else {
                        image::imageops::resize(
                            &pixels,
                            width,
                            height,
                            image::imageops::FilterType::Triangle,
                        )
                    };
                    if let Some(slot) = self.renders.get_mut(captured.view) {
                        *slot = Some(resized);
                    }
                }
                Err(reason) => {
                    failure = Some(PluginError::Capture {
                        shot,
                        camera: self.cameras.get(captured.view).copied(),
                        reason,
                    });
                }
            }
            false
        });
        if let Some(failure) = failure {
            return Received::Failed(failure);
        }
        if self.renders.iter().all(Option::is_some) {
            let renders: Vec<image::RgbaImage> = self.renders.drain(..).flatten().collect();
            return Received::Ready(SceneRenders {
                init_views: self.restyle.map(|strength| InitViews {
                    images: renders.clone(),
                    strength: f64::from(strength),
                }),
                composition: self
                    .composition
                    .take()
                    .map(|(bounds, settings)| CompositionInput {
                        backgrounds: renders,
                        bounds,
                        settings,
                    }),
            });
        }
        self.frames += 1;
        if self.frames > MAX_CAPTURE_WAIT_FRAMES {
            let missing = self
                .renders
                .iter()
                .position(Option::is_none)
                .and_then(|view| self.cameras.get(view).copied());
            return Received::Failed(PluginError::Capture {
                shot,
                camera: missing,
                reason: format!(
                    "its render did not arrive within {MAX_CAPTURE_WAIT_FRAMES} frames"
                ),
            });
        }
        Received::Waiting
    }
}

/// Starts the generations whose renders have all arrived, fails those whose capture failed
/// or timed out, and drops captures nobody waits for any more.
pub(crate) fn receive_renders(
    mut commands: Commands,
    captures: Option<ResMut<BackgroundCaptures>>,
    mut shots: Query<(Entity, &mut GenerationTask)>,
    mut statuses: Query<&mut MvCustomStatus>,
    model: Res<MvCustomModel>,
    workers: Res<GenerationWorkers>,
) {
    let Some(mut captures) = captures else { return };
    for (shot, mut task) in &mut shots {
        let Some(pending) = task.pending_renders_mut() else {
            continue;
        };
        match pending.receive(shot, &mut captures) {
            Received::Waiting => {}
            Received::Ready(renders) => {
                task.resolve_renders(renders);
                task.start_when_ready(&model, &workers);
            }
            Received::Failed(error) => {
                let views = task.views().to_vec();
                fail_shot(&mut commands, shot, &views, &mut statuses, error);
            }
        }
    }
    // Every waiting generation took its own: the rest belong to cancelled ones.
    captures.arrived.clear();
}

/// Sets render capture up when the app renders; without a render app, composed and
/// restyled shots fail with the reason.
pub(crate) fn setup(app: &mut App) {
    if app.get_sub_app(RenderApp).is_some()
        && app
            .world()
            .contains_resource::<bevy::render::view::screenshot::CapturedScreenshots>()
    {
        app.init_resource::<BackgroundCaptures>();
    }
}

/// What starting a composed or restyled generation reads of the scene.
#[derive(SystemParam)]
pub(crate) struct RenderCapture<'w, 's> {
    boxes: Query<'w, 's, (&'static Aabb, &'static GlobalTransform)>,
    children: Query<'w, 's, &'static Children>,
    cameras: Query<'w, 's, (&'static Camera, &'static RenderTarget)>,
    captures: Option<ResMut<'w, BackgroundCaptures>>,
}

impl RenderCapture<'_, '_> {
    /// The world-space corners of the bounding boxes of `subject` and its descendants.
    fn corners(&self, subject: Entity) -> Vec<Vec3> {
        std::iter::once(subject)
            .chain(self.children.iter_descendants(subject))
            .filter_map(|entity| self.boxes.get(entity).ok())
            .flat_map(|(aabb, transform)| {
                let (centre, half) = (Vec3::from(aabb.center), Vec3::from(aabb.half_extents));
                (0..8).map(move |k| {
                    let sign = |bit: u32| if k & bit == 0 { -1.0 } else { 1.0 };
                    let local = centre + half * Vec3::new(sign(1), sign(2), sign(4));
                    transform.transform_point(local)
                })
            })
            .collect()
    }

    /// Starts capturing the renders of a generation of `shot` (composing around
    /// `settings.compose`, restyling by `settings.restyle`) whose request is `request` for
    /// the cameras `views`; `None` when the shot needs no render.
    pub(crate) fn request(
        &mut self,
        commands: &mut Commands,
        shot: Entity,
        settings: &MvCustomShot,
        request: &GenerationRequest,
        views: &[Entity],
    ) -> Result<Option<PendingRenders>, PluginError> {
        if settings.compose.is_none() && settings.restyle.is_none() {
            return Ok(None);
        }
        let composition = match settings.compose {
            Some(subject) => {
                let corners = self.corners(subject);
                if corners.is_empty() {
                    return Err(PluginError::ComposeSubject { shot, subject });
                }
                let bounds = request
                    .cameras
                    .iter()
                    .map(|camera| subject_bounds(&corners, camera))
                    .collect();
                Some((bounds, settings.composition))
            }
            None => None,
        };
        let mut targets = Vec::with_capacity(views.len());
        for &camera in views {
            let (render, target) = self.cameras.get(camera).map_err(|_| PluginError::Capture {
                shot,
                camera: Some(camera),
                reason: "it has no `Camera` and `RenderTarget` to capture".into(),
            })?;
            if matches!(target, RenderTarget::None { .. }) {
                return Err(PluginError::Capture {
                    shot,
                    camera: Some(camera),
                    reason: "it renders to no colour target (`RenderTarget::None`)".into(),
                });
            }
            targets.push((target.clone(), render.physical_viewport_rect()));
        }
        let captures = self
            .captures
            .as_deref_mut()
            .ok_or(PluginError::NoRenderer { shot })?;
        let id = captures.next_id;
        captures.next_id += 1;
        for (view, (target, viewport)) in targets.into_iter().enumerate() {
            commands.spawn(Screenshot(target)).observe(
                move |captured: On<ScreenshotCaptured>,
                      mut captures: ResMut<BackgroundCaptures>| {
                    captures.arrived.push(CapturedBackground {
                        id,
                        view,
                        pixels: crop(&captured.image, viewport),
                    });
                },
            );
        }
        Ok(Some(PendingRenders {
            id,
            cameras: views.to_vec(),
            renders: vec![None; views.len()],
            composition,
            restyle: settings.restyle,
            size: (request.width, request.height),
            frames: 0,
        }))
    }
}

/// The RGBA pixels of a captured render target, cropped to the camera's viewport (when it
/// has one smaller than the target).
fn crop(image: &bevy::image::Image, viewport: Option<URect>) -> Result<image::RgbaImage, String> {
    let pixels = image
        .clone()
        .try_into_dynamic()
        .map_err(|e| format!("its render cannot be read: {e}"))?
        .to_rgba8();
    let Some(rect) = viewport else {
        return Ok(pixels);
    };
    let (width, height) = pixels.dimensions();
    let x0 = rect.min.x.min(width);
    let y0 = rect.min.y.min(height);
    let x1 = rect.max.x.clamp(x0, width);
    let y1 = rect.max.y.clamp(y0, height);
    if x1 == x0 || y1 == y0 {
        return Err(format!(
            "its viewport {rect:?} lies outside its {width}×{height} target"
        ));
    }
    if (x0, y0, x1, y1) == (0, 0, width, height) {
        return Ok(pixels);
    }
    Ok(image::imageops::crop_imm(&pixels, x0, y0, x1 - x0, y1 - y0).to_image())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bevy::math::UVec2;

    #[test]
    fn captures_are_cropped_to_the_viewport() {
        let pixels =
            image::RgbaImage::from_fn(8, 6, |x, y| image::Rgba([x as u8, y as u8, 0, 255]));
        let image = crate::plugin::images::to_bevy_image(&pixels);
        assert_eq!(crop(&image, None).unwrap(), pixels);
        let cropped = crop(
            &image,
            Some(URect::from_corners(UVec2::new(2, 1), UVec2::new(6, 4))),
        )
        .unwrap();
        assert_eq!(cropped.dimensions(), (4, 3));
        assert_eq!(cropped.get_pixel(0, 0).0, [2, 1, 0, 255]);
        assert_eq!(cropped.get_pixel(3, 2).0, [5, 3, 0, 255]);
        let outside = crop(
            &image,
            Some(URect::from_corners(UVec2::new(9, 7), UVec2::new(12, 9))),
        );
        assert!(outside.unwrap_err().contains("outside its 8×6 target"));
    }
}
