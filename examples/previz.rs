//! Previsualisation: an orbit rig of cameras around a placeholder in a small scene. Press
//! Generate in the panel: the views appear in the panel's gallery and on billboards standing
//! where the rig's cameras are.
//!
//! ```text
//! cargo run --example previz -- [--model DIR] [--views N] [--size PX] [--steps N]
//!                               [--prompt TEXT] [--subject NAME] [--compose]
//!                               [--restyle STRENGTH | --from-noise] [--generate]
//!                               [--screenshot FILE]
//! ```
//!
//! The model is the embedded default (`assets/default_model`, trained on the procedural
//! world; it runs on a CPU), unless `--model DIR` (or a bare folder argument, or
//! `$MVCUSTOM_MODEL`) names a diffusers-layout folder, such as a real SD-1.5 + AnimateDiff
//! model. The demo subjects of `assets/subjects/` are listed in the panel's subject picker
//! (train them there); `--subject NAME` starts the shot with one (name it in the prompt by
//! its token). `--compose` composes the views into the rig cameras' own renders around the
//! placeholder instead of generating whole views. Every view starts from its rig camera's
//! render and regenerates a fraction of the denoising, 0.4 unless `--restyle STRENGTH` sets
//! it (video-to-video: the prompt restyles the blocked-out scene, which keeps its layout and
//! so its consistency from camera to camera); `--from-noise` generates from noise instead, as
//! a model trained enough to invent consistent objects does. `--generate` starts a generation
//! once the scene is drawn; `--screenshot FILE` (implies `--generate`) saves the window to
//! FILE when the views are done, then exits.
//!
//! Controls: drag with the left or right mouse button to orbit, scroll to zoom, F1 toggles
//! the panel. Each rig camera renders the scene into a small image (shown on its billboard
//! until the first generation) with a depth prepass, so DFR gets the scene's own depth from
//! the anchor camera.

use std::path::PathBuf;
use std::time::Duration;

use bevy::camera::RenderTarget;
use bevy::camera::visibility::RenderLayers;
use bevy::core_pipeline::prepass::DepthPrepass;
use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll, MouseScrollUnit};
use bevy::prelude::*;
use bevy::render::render_resource::TextureFormat;
use bevy::render::view::screenshot::{Screenshot, save_to_disk};
use bevy::winit::{UpdateMode, WinitSettings};
use bevy_egui::input::EguiWantsInput;
use bevy_egui::{EguiGlobalSettings, PrimaryEguiContext};
use bevy_mvcustom::mvcustom::{default_model_dir, demo_subjects_dir};
use bevy_mvcustom::plugin::ui::{MvCustomUiPlugin, MvCustomUiState};
use bevy_mvcustom::plugin::{MvCustomSubject, demo_subjects};
use bevy_mvcustom::prelude::*;

/// Where the rig looks: the middle of the placeholder.
const TARGET: Vec3 = Vec3::new(0.0, 0.7, 0.0);
/// The rig's radius and height.
const RIG_RADIUS: f32 = 3.2;
const RIG_HEIGHT: f32 = 1.6;
/// Side of each rig camera's scene render, in pixels.
const RIG_RENDER: u32 = 128;
/// Side of a billboard, in world units.
const BILLBOARD: f32 = 1.2;
/// Layer of the billboards: seen by the main camera, not by the rig.
const BILLBOARD_LAYER: usize = 1;
/// Longest time between two frames without input.
const REDRAW_EVERY: Duration = Duration::from_millis(100);
/// Frames to render before `--generate` starts: the scene's pipelines compile first (on
/// Mesa's software Vulkan the rig cameras draw nothing for the first second or two, and a
/// generation started then would restyle empty renders).
const GENERATE_AFTER_FRAMES: u32 = 40;

/// What the command line asked for.
#[derive(Resource, Clone, Debug)]
struct Options {
    /// A model folder; `None`: the embedded default.
    model: Option<PathBuf>,
    views: u32,
    size: u32,
    steps: u32,
    prompt: String,
    subject: Option<String>,
    compose: bool,
    /// The fraction of the denoising restyled views regenerate; `None`: from noise.
    restyle: Option<f32>,
    generate: bool,
    screenshot: Option<PathBuf>,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Options {
            model: std::env::var_os("MVCUSTOM_MODEL").map(PathBuf::from),
            views: 4,
            size: 64,
            steps: 20,
            prompt: "a red cube on snow".into(),
            subject: None,
            compose: false,
            restyle: Some(MvCustomShot::DEFAULT_RESTYLE),
            generate: false,
            screenshot: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
            let number = |flag: &str, text: String| {
                text.parse::<u32>()
                    .map_err(|e| format!("{flag} `{text}`: {e}"))
            };
            match arg.as_str() {
                "--views" => options.views = number("--views", value("--views")?)?,
                "--size" => options.size = number("--size", value("--size")?)?,
                "--steps" => options.steps = number("--steps", value("--steps")?)?,
                "--prompt" => options.prompt = value("--prompt")?,
                "--model" => options.model = Some(PathBuf::from(value("--model")?)),
                "--subject" => options.subject = Some(value("--subject")?),
                "--compose" => options.compose = true,
                "--restyle" => {
                    let text = value("--restyle")?;
                    let strength = text
                        .parse::<f32>()
                        .map_err(|e| format!("--restyle `{text}`: {e}"))?;
                    if !(strength > 0.0 && strength <= 1.0) {
                        return Err(format!("--restyle {strength} is outside (0, 1]"));
                    }
                    options.restyle = Some(strength);
                }
                "--from-noise" => options.restyle = None,
                "--generate" => options.generate = true,
                "--screenshot" => {
                    options.screenshot = Some(PathBuf::from(value("--screenshot")?));
                    options.generate = true;
                }
                flag if flag.starts_with("--") => {
                    return Err(format!("unknown option `{flag}` (see the example's doc)"));
                }
                folder => options.model = Some(PathBuf::from(folder)),
            }
        }
        if options.views == 0 {
            return Err("--views must be at least 1".into());
        }
        if options.size == 0 || !options.size.is_multiple_of(8) {
            return Err(format!(
                "--size {} must be a positive multiple of 8",
                options.size
            ));
        }
        match &options.model {
            Some(folder) if !folder.is_dir() => {
                return Err(format!("no model folder at {}", folder.display()));
            }
            None if !default_model_dir().join("unet").is_dir() => {
                return Err(format!(
                    "the embedded default model is not at {} (it is trained by the project's \
                     `mvcustom pretrain`); pass a model folder with --model, e.g. the tiny test \
                     model ../shared/fixtures/parity/animatediff_pipeline_tiny",
                    default_model_dir().display()
                ));
            }
            _ => {}
        }
        if let Some(name) = &options.subject
            && !demo_subjects().iter().any(|subject| &subject.name == name)
        {
            return Err(format!(
                "no demo subject `{name}` in {} (there are: {})",
                demo_subjects_dir().display(),
                demo_subjects()
                    .iter()
                    .map(|subject| subject.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(options)
    }

    /// The plugin for the chosen model.
    fn plugin(&self) -> MvCustomPlugin {
        match &self.model {
            Some(folder) => MvCustomPlugin::from_folder(folder),
            None => MvCustomPlugin::embedded(),
        }
    }
}

fn main() -> AppExit {
    // CPU generation allocates and frees tensors at a high rate: keep freed memory for reuse.
    bevy_mvcustom::heap::retain_freed_memory();
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => return fail(&message),
    };
    if let Err(message) = check_display() {
        return fail(&message);
    }
    println!(
        "previz: {} views of \"{}\" with the model at {}",
        options.views,
        options.prompt,
        options
            .model
            .clone()
            .unwrap_or_else(default_model_dir)
            .display()
    );
    let mut app = App::new();
    app.add_plugins(DefaultPlugins.set(WindowPlugin {
        primary_window: Some(Window {
            title: "MVCustom previz".into(),
            resolution: (1280, 800).into(),
            ..default()
        }),
        ..default()
    }))
    .add_plugins((
        options
            .plugin()
            .with_size(options.size, options.size)
            .with_steps(options.steps)
            .load_on_startup(true),
        MvCustomUiPlugin,
    ))
    // Redraw on input, else ten times a second: a previz tool leaves the CPU to the model.
    .insert_resource(WinitSettings {
        focused_mode: UpdateMode::reactive(REDRAW_EVERY),
        unfocused_mode: UpdateMode::reactive(REDRAW_EVERY),
    })
    // The panel goes on the main camera, not on whichever camera is spawned first.
    .insert_resource(EguiGlobalSettings {
        auto_create_primary_context: false,
        ..default()
    })
    .insert_resource(ClearColor(Color::srgb(0.55, 0.68, 0.82)))
    .insert_resource(options)
    .add_systems(Startup, (spawn_scene, spawn_rig).chain())
    .add_systems(
        Update,
        (
            orbit_main_camera,
            toggle_panel,
            show_views_on_billboards,
            generate_when_asked,
        ),
    )
    .add_observer(report_finished)
    .add_observer(report_failure);
    app.run()
}

/// Prints `message` and gives the failing exit code.
fn fail(message: &str) -> AppExit {
    eprintln!("previz: {message}");
    AppExit::from_code(1)
}

/// A window needs a display: say so plainly instead of letting the windowing backend panic.
fn check_display() -> Result<(), String> {
    if cfg!(target_os = "linux")
        && std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
    {
        return Err(
            "no display (neither DISPLAY nor WAYLAND_DISPLAY is set). This example \
             opens a window; run it on a desktop, or under a virtual display: \
             `xvfb-run -a cargo run --example previz`. For generation without a window, see \
             `cargo run --example headless`."
                .into(),
        );
    }
    Ok(())
}

/// The main camera's orbit: angles around [`TARGET`] and distance.
#[derive(Component)]
struct Orbit {
    yaw: f32,
    pitch: f32,
    distance: f32,
}

impl Orbit {
    fn transform(&self) -> Transform {
        let rotation = Quat::from_euler(EulerRot::YXZ, self.yaw, self.pitch, 0.0);
        let eye = TARGET + rotation * Vec3::new(0.0, 0.0, self.distance);
        Transform::from_translation(eye).looking_at(TARGET, Vec3::Y)
    }
}

/// The entity standing for the subject (its children are the body and head meshes).
#[derive(Component)]
struct Placeholder;

/// A billboard standing where a rig camera is, showing that camera's view.
#[derive(Component)]
struct Billboard {
    camera: Entity,
    material: Handle<StandardMaterial>,
}

/// The main camera, the ground, the placeholder subject and the lights.
fn spawn_scene(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    let orbit = Orbit {
        yaw: 0.3,
        pitch: -0.42,
        distance: 9.0,
    };
    commands.spawn((
        Camera3d::default(),
        orbit.transform(),
        orbit,
        RenderLayers::from_layers(&[0, BILLBOARD_LAYER]),
        PrimaryEguiContext,
        Name::new("main camera"),
    ));
    commands.spawn((
        Mesh3d(meshes.add(Plane3d::default().mesh().size(14.0, 14.0))),
        MeshMaterial3d(materials.add(Color::srgb(0.35, 0.55, 0.3))),
    ));
    // The placeholder: a body and a head, where the generated subject will stand.
    let placeholder = materials.add(Color::srgb(0.85, 0.55, 0.3));
    commands.spawn((
        Placeholder,
        Transform::default(),
        Visibility::default(),
        Name::new("placeholder"),
        children![
            (
                Mesh3d(meshes.add(Capsule3d::new(0.35, 0.6))),
                MeshMaterial3d(placeholder.clone()),
                Transform::from_xyz(0.0, 0.65, 0.0),
            ),
            (
                Mesh3d(meshes.add(Sphere::new(0.28))),
                MeshMaterial3d(placeholder),
                Transform::from_xyz(0.0, 1.45, 0.0),
            ),
        ],
    ));
    commands.spawn((
        DirectionalLight {
            shadow_maps_enabled: true,
            illuminance: 8000.0,
            ..default()
        },
        Transform::from_xyz(4.0, 8.0, 3.0).looking_at(Vec3::ZERO, Vec3::Y),
    ));
    commands.insert_resource(GlobalAmbientLight {
        brightness: 400.0,
        ..default()
    });
}

/// The demo subjects (listed in the panel's picker), the shot (with `--subject`'s subject,
/// composed around the placeholder with `--compose`), its orbit rig of cameras (each
/// rendering the scene into a small image, with a depth prepass for scene-aware DFR) and a
/// billboard per camera.
fn spawn_rig(
    mut commands: Commands,
    options: Res<Options>,
    asset_server: Res<AssetServer>,
    placeholder: Single<Entity, With<Placeholder>>,
    mut images: ResMut<Assets<Image>>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    let mut shot = MvCustomShot::new(options.prompt.clone());
    for demo in demo_subjects() {
        let subject: Handle<SubjectAsset> = asset_server.load(demo.asset_path);
        if options.subject.as_ref() == Some(&demo.name) {
            shot = shot.with_subject(subject.clone());
        }
        commands.spawn((MvCustomSubject::new(subject), Name::new(demo.name)));
    }
    if options.compose {
        shot = shot.composed_around(*placeholder);
    }
    if let Some(strength) = options.restyle {
        shot = shot.restyled(strength);
    }
    let shot = commands.spawn((shot, Name::new("previz"))).id();
    let quad = meshes.add(Rectangle::new(BILLBOARD, BILLBOARD));
    for i in 0..options.views {
        let azimuth = i as f32 / options.views as f32 * std::f32::consts::TAU;
        let eye = Vec3::new(
            RIG_RADIUS * azimuth.sin(),
            RIG_HEIGHT,
            RIG_RADIUS * azimuth.cos(),
        );
        let pose = Transform::from_translation(eye).looking_at(TARGET, Vec3::Y);
        let render = images.add(Image::new_target_texture(
            RIG_RENDER,
            RIG_RENDER,
            TextureFormat::Rgba8UnormSrgb,
            None,
        ));
        let camera = commands
            .spawn((
                Camera3d::default(),
                Camera {
                    // Render the rig's images before the main view that shows them.
                    order: -1 - i as isize,
                    ..default()
                },
                RenderTarget::Image(render.clone().into()),
                pose,
                DepthPrepass,
                Msaa::Off,
                MvCustom::new(shot).with_order(i as i32),
                Name::new(format!("rig {i}")),
            ))
            .id();
        // Just behind the camera (out of its sight), facing away from the subject: seen from
        // outside the rig, it shows what the camera sees.
        let material = materials.add(StandardMaterial {
            base_color_texture: Some(render),
            unlit: true,
            cull_mode: None,
            ..default()
        });
        commands.spawn((
            Mesh3d(quad.clone()),
            MeshMaterial3d(material.clone()),
            pose.with_translation(eye + pose.back() * 0.05),
            RenderLayers::layer(BILLBOARD_LAYER),
            Billboard { camera, material },
        ));
    }
}

/// Orbits the main camera with a mouse drag, zooms with the wheel (unless the pointer is on
/// the panel).
fn orbit_main_camera(
    buttons: Res<ButtonInput<MouseButton>>,
    motion: Res<AccumulatedMouseMotion>,
    scroll: Res<AccumulatedMouseScroll>,
    egui_input: Res<EguiWantsInput>,
    mut camera: Single<(&mut Orbit, &mut Transform)>,
) {
    if egui_input.wants_any_pointer_input() {
        return;
    }
    let (orbit, transform) = &mut *camera;
    if buttons.any_pressed([MouseButton::Left, MouseButton::Right]) {
        orbit.yaw -= motion.delta.x * 0.005;
        orbit.pitch = (orbit.pitch - motion.delta.y * 0.005).clamp(-1.5, 0.2);
    }
    let lines = match scroll.unit {
        MouseScrollUnit::Line => scroll.delta.y,
        MouseScrollUnit::Pixel => scroll.delta.y / 40.0,
    };
    orbit.distance = (orbit.distance * (1.0 - 0.1 * lines)).clamp(2.0, 30.0);
    **transform = orbit.transform();
}

/// F1 shows or hides the panel.
fn toggle_panel(keys: Res<ButtonInput<KeyCode>>, mut panel: ResMut<MvCustomUiState>) {
    if keys.just_pressed(KeyCode::F1) {
        panel.open = !panel.open;
    }
}

/// Puts each camera's generated view on its billboard once its first generation is done
/// (until then the billboard shows the camera's scene render).
fn show_views_on_billboards(
    billboards: Query<&Billboard>,
    statuses: Query<&MvCustomStatus, Changed<MvCustomStatus>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    for billboard in &billboards {
        let Ok(status) = statuses.get(billboard.camera) else {
            continue;
        };
        let Some(image) = status.image() else {
            continue;
        };
        let shown = materials
            .get(&billboard.material)
            .and_then(|material| material.base_color_texture.as_ref());
        if *status.state() != GenerationState::Done && shown != Some(image) {
            continue;
        }
        // Also when it already shows the view: the image is rewritten in place by every
        // generation, and touching the material makes it pick the new pixels up.
        if let Some(mut material) = materials.get_mut(&billboard.material) {
            material.base_color_texture = Some(image.clone());
        }
    }
}

/// `--generate`: starts the shot once the scene has been drawn a few times.
fn generate_when_asked(
    mut commands: Commands,
    options: Res<Options>,
    shot: Single<Entity, With<MvCustomShot>>,
    mut frames: Local<u32>,
) {
    *frames += 1;
    if options.generate && *frames == GENERATE_AFTER_FRAMES {
        commands.entity(*shot).generate_views();
    }
}

/// Reports a finished generation; with `--screenshot`, saves the window and exits.
fn report_finished(finished: On<ShotFinished>, options: Res<Options>, mut commands: Commands) {
    println!("previz: generated {} views", finished.views.len());
    for timing in &finished.timings {
        println!("  {}: {:.2} s", timing.stage, timing.seconds);
    }
    if let Some(path) = options.screenshot.clone() {
        commands
            .spawn(Screenshot::primary_window())
            .observe(save_to_disk(path.clone()))
            .observe(
                move |_: On<bevy::render::view::screenshot::ScreenshotCaptured>,
                      mut exit: MessageWriter<AppExit>| {
                    println!("previz: saved {}", path.display());
                    exit.write(AppExit::Success);
                },
            );
    }
}

/// Reports a failed generation (the app keeps running; the panel shows the error).
fn report_failure(failed: On<ShotFailed>) {
    eprintln!("previz: generation failed: {}", failed.error);
}
