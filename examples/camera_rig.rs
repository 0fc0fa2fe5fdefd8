//! Bevy cameras → the camera model the diffusion pipeline consumes.
//!
//! Spawns an orbit of Bevy cameras around a target in a headless app, lets Bevy propagate their
//! transforms, converts each one with `camera::bevy::from_bevy` at the generation size, and
//! prints the result as RON (the camera-list format the CLI reads) together with each view's
//! Zero-1-to-3 viewpoint relative to the first camera.
//!
//! Run: `cargo run --example camera_rig`

use bevy::prelude::*;
use bevy_mvcustom::camera::bevy::from_bevy;
use bevy_mvcustom::camera::{PinholeCamera, RelativeViewpoint, UpAxis};

/// Marks the cameras of the rig, in order.
#[derive(Component)]
struct RigView(usize);

const VIEWS: usize = 8;
const GENERATION_SIZE: UVec2 = UVec2::new(512, 512);

fn main() -> AppExit {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, TransformPlugin))
        .add_systems(Startup, spawn_orbit)
        .add_systems(PostUpdate, report.after(TransformSystems::Propagate));
    app.update();
    AppExit::Success
}

fn spawn_orbit(mut commands: Commands) {
    let target = Vec3::new(0.0, 0.5, 0.0);
    for k in 0..VIEWS {
        let azimuth = std::f32::consts::TAU * k as f32 / VIEWS as f32;
        let eye = target + Vec3::new(azimuth.sin(), 0.35, azimuth.cos()) * 3.0;
        commands.spawn((
            RigView(k),
            Transform::from_translation(eye).looking_at(target, Vec3::Y),
            Projection::Perspective(PerspectiveProjection {
                fov: 40f32.to_radians(),
                ..default()
            }),
        ));
    }
}

fn report(views: Query<(&RigView, &GlobalTransform, &Projection)>) {
    let mut cameras: Vec<(usize, PinholeCamera)> = Vec::new();
    for (view, transform, projection) in &views {
        match from_bevy(transform, projection, GENERATION_SIZE) {
            Ok(camera) => cameras.push((view.0, camera)),
            Err(error) => eprintln!("view {}: {error}", view.0),
        }
    }
    cameras.sort_by_key(|(k, _)| *k);
    let Some((_, first)) = cameras.first().copied() else {
        return;
    };
    for (k, camera) in &cameras {
        let relative = RelativeViewpoint::between(&first, camera, UpAxis::Y);
        match ron::ser::to_string(camera) {
            Ok(text) => println!("view {k}: {text}"),
            Err(error) => eprintln!("view {k}: cannot serialise: {error}"),
        }
        println!("  relative viewpoint to view 0: {:?}", relative.to_array());
    }
}
