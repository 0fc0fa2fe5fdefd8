//! A subject placed in a small game scene as a view-dependent impostor: views of it are
//! generated, as one consistent shot, from a ring of cameras around its placeholder; in the
//! game, a billboard standing in the placeholder's place turns to the player and shows the
//! generated view whose direction is nearest the player's.
//!
//! ```text
//! cargo run --example place_subject -- [--model DIR] [--subject NAME] [--prompt TEXT]
//!                                      [--views N] [--size PX] [--steps N]
//!                                      [--screenshot FILE]
//! ```
//!
//! The model is the embedded default unless `--model DIR` (or `$MVCUSTOM_MODEL`) names a
//! diffusers-layout folder. `--subject NAME` generates a trained demo subject of
//! `assets/subjects/` (name it in `--prompt` as `{subject}`); without it, the prompt alone
//! says what stands there. Walk around with A / D (or the arrow keys; W / S come closer and
//! step back): the billboard switches views as you go. `--screenshot FILE` walks around by
//! itself and saves the window once the views are generated, then exits.

use std::path::PathBuf;

use bevy::camera::RenderTarget;
use bevy::light::NotShadowCaster;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured, save_to_disk};
use bevy_mvcustom::mvcustom::default_model_dir;
use bevy_mvcustom::plugin::demo_subjects;
use bevy_mvcustom::prelude::*;

/// Where the subject stands, and its height.
const SPOT: Vec3 = Vec3::new(0.0, 0.0, 0.0);
const SUBJECT_HEIGHT: f32 = 1.6;
/// The ring of cameras the views are generated from: radius and height.
const RING_RADIUS: f32 = 3.0;
const RING_HEIGHT: f32 = 1.2;
/// Frames to walk before `--screenshot` saves the window, once the views are there, and
/// the least time since start-up (so the scene's pipelines have compiled, which takes
/// seconds on a software renderer).
const SCREENSHOT_AFTER_FRAMES: u32 = 30;
const SCREENSHOT_AFTER_SECONDS: f32 = 15.0;

/// What the command line asked for.
#[derive(Resource, Clone, Debug)]
struct Options {
    model: Option<PathBuf>,
    subject: Option<(String, String)>,
    prompt: Option<String>,
    views: u32,
    size: u32,
    steps: u32,
    screenshot: Option<PathBuf>,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Options {
            model: std::env::var_os("MVCUSTOM_MODEL").map(PathBuf::from),
            subject: None,
            prompt: None,
            views: 8,
            size: 64,
            steps: 20,
            screenshot: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = |what: &str| {
                value
                    .parse::<u32>()
                    .map_err(|e| format!("{what} `{value}`: {e}"))
            };
            match flag.as_str() {
                "--model" => options.model = Some(PathBuf::from(&value)),
                "--subject" => {
                    let demo = demo_subjects()
                        .into_iter()
                        .find(|demo| demo.name == value)
                        .ok_or_else(|| format!("no demo subject `{value}` in assets/subjects"))?;
                    options.subject = Some((demo.name, demo.asset_path));
                }
                "--prompt" => options.prompt = Some(value.clone()),
                "--views" => options.views = number("--views")?,
                "--size" => options.size = number("--size")?,
                "--steps" => options.steps = number("--steps")?,
                "--screenshot" => options.screenshot = Some(PathBuf::from(&value)),
                other => {
                    return Err(format!(
                        "unknown argument `{other}` (see the example's doc)"
                    ));
                }
            }
        }
        if options.views < 2 {
            return Err("--views must be at least 2".into());
        }
        match &options.model {
            Some(folder) if !folder.is_dir() => {
                return Err(format!("no model folder at {}", folder.display()));
            }
            None if !default_model_dir().join("unet").is_dir() => {
                return Err(format!(
                    "the embedded default model is not at {}; pass a model folder with --model",
                    default_model_dir().display()
                ));
            }
            _ => {}
        }
        Ok(options)
    }

    /// The plugin for the chosen model.
    fn plugin(&self) -> MvCustomPlugin {
        match &self.model {
            Some(folder) => MvCustomPlugin::from_folder(folder),
            None => MvCustomPlugin::embedded(),
        }
        .with_size(self.size, self.size)
        .with_steps(self.steps)
        .with_preview_every(5)
    }
}

fn main() -> AppExit {
    // CPU generation allocates and frees tensors at a high rate: keep freed memory for reuse.
    bevy_mvcustom::heap::retain_freed_memory();
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("place_subject: {message}");
            return AppExit::from_code(1);
        }
    };
    App::new()
        .add_plugins(DefaultPlugins.set(WindowPlugin {
            primary_window: Some(Window {
                title: "MVCustom: a generated subject in a game scene".into(),
                resolution: (1100, 700).into(),
                ..default()
            }),
            ..default()
        }))
        .add_plugins(options.plugin())
        .insert_resource(ClearColor(Color::srgb(0.6, 0.75, 0.9)))
        .insert_resource(options)
        .add_systems(Startup, (spawn_scene, spawn_impostor))
        .add_systems(
            Update,
            (
                walk,
                (choose_view, face_player).chain(),
                show_status,
                screenshot_when_ready,
            ),
        )
        .add_observer(|failed: On<ShotFailed>| {
            eprintln!("place_subject: generation failed: {}", failed.error)
        })
        .run()
}

/// The player's camera: it circles the spot at `azimuth`, `distance` away.
#[derive(Component)]
struct Player {
    azimuth: f32,
    distance: f32,
}

impl Player {
    fn transform(&self) -> Transform {
        let eye = SPOT
            + Vec3::new(
                self.distance * self.azimuth.sin(),
                1.7,
                self.distance * self.azimuth.cos(),
            );
        Transform::from_translation(eye).looking_at(SPOT + Vec3::Y * 0.9, Vec3::Y)
    }
}

/// The placeholder standing where the subject will be, until its views are generated.
#[derive(Component)]
struct Placeholder;

/// The billboard showing the generated view nearest the player's direction.
#[derive(Component)]
struct Impostor {
    material: Handle<StandardMaterial>,
    /// The ring's cameras and their horizontal directions from the spot.
    views: Vec<(Entity, Vec3)>,
    /// The view shown now.
    shown: Option<Entity>,
}

/// The status line.
#[derive(Component)]
struct StatusText;

/// Ground, a few props, the placeholder, light, the player and the status line.
fn spawn_scene(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    commands.spawn((
        Mesh3d(meshes.add(Plane3d::default().mesh().size(30.0, 30.0))),
        MeshMaterial3d(materials.add(Color::srgb(0.36, 0.5, 0.3))),
    ));
    let trunk = meshes.add(Cylinder::new(0.15, 1.2));
    let crown = meshes.add(Sphere::new(0.7));
    let bark = materials.add(Color::srgb(0.4, 0.28, 0.18));
    let leaves = materials.add(Color::srgb(0.2, 0.45, 0.2));
    for (k, radius) in [
        (0.0f32, 7.0f32),
        (1.3, 8.5),
        (2.4, 6.5),
        (3.7, 9.0),
        (5.0, 7.5),
    ] {
        let at = Vec3::new(radius * k.sin(), 0.0, radius * k.cos());
        commands.spawn((
            Mesh3d(trunk.clone()),
            MeshMaterial3d(bark.clone()),
            Transform::from_translation(at + Vec3::Y * 0.6),
        ));
        commands.spawn((
            Mesh3d(crown.clone()),
            MeshMaterial3d(leaves.clone()),
            Transform::from_translation(at + Vec3::Y * 1.7),
        ));
    }
    commands.spawn((
        Mesh3d(meshes.add(Cuboid::new(4.0, 0.8, 0.3))),
        MeshMaterial3d(materials.add(Color::srgb(0.6, 0.58, 0.55))),
        Transform::from_xyz(-1.0, 0.4, -3.5),
    ));
    commands.spawn((
        Placeholder,
        Mesh3d(meshes.add(Capsule3d::new(0.35, SUBJECT_HEIGHT - 0.7))),
        MeshMaterial3d(materials.add(Color::srgb(0.85, 0.55, 0.3))),
        Transform::from_translation(SPOT + Vec3::Y * SUBJECT_HEIGHT / 2.0),
    ));
    commands.spawn((
        DirectionalLight {
            shadow_maps_enabled: true,
            illuminance: 9000.0,
            ..default()
        },
        Transform::from_xyz(4.0, 8.0, 3.0).looking_at(Vec3::ZERO, Vec3::Y),
    ));
    let player = Player {
        azimuth: 0.4,
        distance: 5.0,
    };
    commands.spawn((Camera3d::default(), player.transform(), player));
    commands.spawn((
        StatusText,
        Text::new("loading the model…"),
        Node {
            position_type: PositionType::Absolute,
            top: px(12),
            left: px(12),
            ..default()
        },
    ));
}

/// The shot, its ring of cameras (they only give poses: they render nothing), the hidden
/// billboard, and the request to generate.
fn spawn_impostor(
    mut commands: Commands,
    options: Res<Options>,
    asset_server: Res<AssetServer>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    let (default_prompt, subject) = match &options.subject {
        Some((_, path)) => (
            "a photo of {subject} standing on grass",
            Some(asset_server.load(path.clone())),
        ),
        None => ("a teddy bear standing on grass", None),
    };
    let mut shot = MvCustomShot::new(options.prompt.as_deref().unwrap_or(default_prompt))
        .with_negative_prompt("blurry, low quality");
    shot.subject = subject;
    let shot = commands.spawn((shot, Name::new("impostor"))).id();
    let target = SPOT + Vec3::Y * SUBJECT_HEIGHT / 2.0;
    let views = (0..options.views)
        .map(|k| {
            let azimuth = k as f32 / options.views as f32 * std::f32::consts::TAU;
            let direction = Vec3::new(azimuth.sin(), 0.0, azimuth.cos());
            let eye = SPOT + direction * RING_RADIUS + Vec3::Y * RING_HEIGHT;
            let camera = commands
                .spawn((
                    Camera3d::default(),
                    Camera {
                        is_active: false,
                        ..default()
                    },
                    // Not the window: the player's camera draws there.
                    RenderTarget::None {
                        size: UVec2::splat(options.size),
                    },
                    Transform::from_translation(eye).looking_at(target, Vec3::Y),
                    MvCustom::new(shot).with_order(k as i32),
                ))
                .id();
            (camera, direction)
        })
        .collect();
    let material = materials.add(StandardMaterial {
        unlit: true,
        cull_mode: None,
        ..default()
    });
    commands.spawn((
        Impostor {
            material: material.clone(),
            views,
            shown: None,
        },
        Mesh3d(meshes.add(Rectangle::new(SUBJECT_HEIGHT, SUBJECT_HEIGHT))),
        MeshMaterial3d(material),
        Transform::from_translation(target),
        Visibility::Hidden,
        NotShadowCaster,
    ));
    commands.entity(shot).generate_views();
}

/// A / D (or ←/→) walk around the spot, W / S (or ↑/↓) come closer and step back;
/// `--screenshot` walks by itself.
fn walk(
    keys: Res<ButtonInput<KeyCode>>,
    time: Res<Time>,
    options: Res<Options>,
    mut player: Single<(&mut Player, &mut Transform)>,
) {
    let (player, transform) = &mut *player;
    let pressed = |a, b| keys.any_pressed([a, b]);
    let mut turn = 0.0;
    if pressed(KeyCode::KeyA, KeyCode::ArrowLeft) {
        turn -= 1.0;
    }
    if pressed(KeyCode::KeyD, KeyCode::ArrowRight) {
        turn += 1.0;
    }
    if options.screenshot.is_some() {
        turn = 1.0;
    }
    player.azimuth += turn * 0.8 * time.delta_secs();
    if pressed(KeyCode::KeyW, KeyCode::ArrowUp) {
        player.distance -= 2.0 * time.delta_secs();
    }
    if pressed(KeyCode::KeyS, KeyCode::ArrowDown) {
        player.distance += 2.0 * time.delta_secs();
    }
    player.distance = player.distance.clamp(2.0, 12.0);
    **transform = player.transform();
}

/// The view of `views` (cameras with their horizontal directions from the spot) whose
/// direction is nearest `towards` (the player's direction from the spot).
fn nearest_view(views: &[(Entity, Vec3)], towards: Vec3) -> Option<Entity> {
    let towards = towards.with_y(0.0).normalize_or_zero();
    views
        .iter()
        .max_by(|a, b| a.1.dot(towards).total_cmp(&b.1.dot(towards)))
        .map(|&(camera, _)| camera)
}

/// Shows the nearest view's image on the billboard once the views exist (previews while
/// generating, then the results), hiding the placeholder.
fn choose_view(
    player: Single<&Transform, With<Player>>,
    mut impostor: Single<(&mut Impostor, &mut Visibility)>,
    mut placeholder: Single<&mut Visibility, (With<Placeholder>, Without<Impostor>)>,
    statuses: Query<&MvCustomStatus>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    let (impostor, visibility) = &mut *impostor;
    let Some(view) = nearest_view(&impostor.views, player.translation - SPOT) else {
        return;
    };
    let Some(image) = statuses
        .get(view)
        .ok()
        .filter(|status| status.state().progress().is_some_and(|p| p > 0.0))
        .and_then(|status| status.image().cloned())
    else {
        return;
    };
    **visibility = Visibility::Visible;
    **placeholder = Visibility::Hidden;
    let changed = impostor.shown != Some(view);
    // Touched every frame while generating: previews rewrite the image in place.
    let generating = statuses.get(view).is_ok_and(|s| s.state().is_busy());
    if (changed || generating)
        && let Some(mut material) = materials.get_mut(&impostor.material)
    {
        material.base_color_texture = Some(image);
    }
    impostor.shown = Some(view);
}

/// Turns the billboard about the vertical to face the player.
fn face_player(
    player: Single<&Transform, With<Player>>,
    mut impostor: Single<&mut Transform, (With<Impostor>, Without<Player>)>,
) {
    let to_player = (player.translation - impostor.translation).with_y(0.0);
    if to_player.length_squared() > 0.0 {
        impostor.rotation = Quat::from_rotation_y(to_player.x.atan2(to_player.z));
    }
}

/// The status line: the generation's progress, then which view is shown.
fn show_status(
    impostor: Single<&Impostor>,
    statuses: Query<&MvCustomStatus>,
    mut text: Single<&mut Text, With<StatusText>>,
) {
    let first = impostor
        .views
        .first()
        .and_then(|(camera, _)| statuses.get(*camera).ok());
    let line = match first.map(MvCustomStatus::state) {
        Some(GenerationState::Running { step, total, .. }) => {
            format!(
                "generating {} views: step {step}/{total}",
                impostor.views.len()
            )
        }
        Some(GenerationState::Failed(error)) => format!("generation failed: {error}"),
        Some(GenerationState::Done) => {
            let k = impostor
                .shown
                .and_then(|shown| impostor.views.iter().position(|(c, _)| *c == shown))
                .map_or(0, |k| k + 1);
            format!(
                "view {k} of {} (A / D to walk around, W / S to come closer)",
                impostor.views.len()
            )
        }
        _ => "waiting for the model and subject…".into(),
    };
    if text.0 != line {
        text.0 = line;
    }
}

/// `--screenshot`: saves the window a little after every view is done, then exits.
fn screenshot_when_ready(
    mut commands: Commands,
    options: Res<Options>,
    impostor: Single<&Impostor>,
    statuses: Query<&MvCustomStatus>,
    time: Res<Time>,
    mut frames: Local<u32>,
) {
    let Some(path) = options.screenshot.clone() else {
        return;
    };
    if time.elapsed_secs() < SCREENSHOT_AFTER_SECONDS {
        return;
    }
    let done = impostor.views.iter().all(|(camera, _)| {
        statuses
            .get(*camera)
            .is_ok_and(|status| *status.state() == GenerationState::Done)
    });
    if !done {
        return;
    }
    *frames += 1;
    if *frames == SCREENSHOT_AFTER_FRAMES {
        commands
            .spawn(Screenshot::primary_window())
            .observe(save_to_disk(path.clone()))
            .observe(
                move |_: On<ScreenshotCaptured>, mut exit: MessageWriter<AppExit>| {
                    println!("place_subject: saved {}", path.display());
                    exit.write(AppExit::Success);
                },
            );
    }
}
