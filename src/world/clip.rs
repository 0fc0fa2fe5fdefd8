//! Multi-view clips: one scene seen along one trajectory, with every view's ground truth.

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::error::{Result, invalid};
use super::render::{RenderSettings, View, render_views};
use super::scene::Scene;
use super::spec::{SceneSampler, SceneSpec};
use super::trajectory::{TrajectorySampler, TrajectorySpec};
use crate::camera::PinholeCamera;

/// Mixed into a clip's seed to draw its trajectory independently of its scene.
const TRAJECTORY_SALT: u64 = 0x7261_6a65_6374_6f72;

/// Trajectories drawn per clip before giving up on finding an unobstructed one.
const TRAJECTORY_ATTEMPTS: usize = 16;

/// Whether every camera has a clear view of the main object.
fn unobstructed(scene: &Scene, cameras: &[PinholeCamera]) -> bool {
    cameras.iter().all(|camera| scene.sees_main_object(camera))
}

/// A scene rendered from every camera of a trajectory.
#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    /// The scene, exactly.
    pub spec: SceneSpec,
    /// The trajectory, exactly.
    pub trajectory: TrajectorySpec,
    /// One camera per frame (exact poses and intrinsics).
    pub cameras: Vec<PinholeCamera>,
    /// One view per camera: colour, depth, instance mask.
    pub frames: Vec<View>,
    /// The scene's caption.
    pub caption: String,
}

impl Clip {
    /// Renders `spec` along `trajectory`, aimed at the scene's main object.
    pub fn render(
        spec: SceneSpec,
        trajectory: TrajectorySpec,
        settings: &RenderSettings,
    ) -> Result<Self> {
        let scene = Scene::new(&spec)?;
        let cameras = trajectory.cameras(scene.focus())?;
        ClipPlan {
            spec,
            scene,
            trajectory,
            cameras,
        }
        .render(settings)
    }

    /// The clip of `seed`: its scene drawn by `scenes`, its trajectory by `trajectories`
    /// (from a seed derived from the same one, so the clip depends on `seed` alone). Drawn
    /// trajectories whose cameras stand inside an object or see the main object hidden
    /// behind another are redrawn; an error says when none of 16 is clear.
    pub fn sample(
        seed: u64,
        scenes: &SceneSampler,
        trajectories: &TrajectorySampler,
        settings: &RenderSettings,
    ) -> Result<Self> {
        ClipPlan::sample(seed, scenes, trajectories)?.render(settings)
    }
}

/// Everything [`Clip::sample`] draws before rendering: the scene and its cameras. Lets a
/// caller render only some of the views (one per clip for image batches) or check a stored
/// clip against what its seed should give.
#[derive(Clone, Debug)]
pub struct ClipPlan {
    /// The scene's spec.
    pub spec: SceneSpec,
    /// The compiled scene.
    pub scene: Scene,
    /// The trajectory.
    pub trajectory: TrajectorySpec,
    /// One camera per view.
    pub cameras: Vec<PinholeCamera>,
}

impl ClipPlan {
    /// The scene and cameras of the clip of `seed` (see [`Clip::sample`]).
    pub fn sample(
        seed: u64,
        scenes: &SceneSampler,
        trajectories: &TrajectorySampler,
    ) -> Result<Self> {
        let spec = scenes.sample(seed)?;
        let scene = Scene::new(&spec)?;
        let mut rng = StdRng::seed_from_u64(seed ^ TRAJECTORY_SALT);
        for _ in 0..TRAJECTORY_ATTEMPTS {
            let trajectory = trajectories.sample(&mut rng)?;
            let cameras = trajectory.cameras(scene.focus())?;
            if unobstructed(&scene, &cameras) {
                return Ok(Self {
                    spec,
                    scene,
                    trajectory,
                    cameras,
                });
            }
        }
        Err(invalid(
            "clip seed",
            seed,
            "no drawn trajectory sees the main object unobstructed",
        ))
    }

    /// Renders every view into the clip.
    pub fn render(self, settings: &RenderSettings) -> Result<Clip> {
        let frames = render_views(&self.scene, &self.cameras, settings)?;
        Ok(Clip {
            caption: self.spec.caption(),
            spec: self.spec,
            trajectory: self.trajectory,
            cameras: self.cameras,
            frames,
        })
    }
}
