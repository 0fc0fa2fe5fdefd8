//! The plugin in an app that really renders (no window: cameras draw into `Image` targets),
//! on Vulkan — Mesa's software lavapipe in CI. A scene of known geometry (a ground plane and
//! a unit cube) seen by cameras with a depth prepass: the depth a generation hands to DFR
//! must equal the scene's depth at pixel centres, computed here by intersecting each pixel's
//! ray (from the request's own camera) with the analytic geometry; and the feature renderer
//! must run on the app's own device. A shot composed around the cube receives the camera's
//! own render as its background and the cube's box projected by Bevy's own matrices; a
//! restyled shot receives that render as the view it starts from.

use std::sync::{Arc, Mutex};

use approx::assert_relative_eq;
use bevy::app::PluginsState;
use bevy::asset::RenderAssetUsages;
use bevy::camera::RenderTarget;
use bevy::core_pipeline::prepass::DepthPrepass;
use bevy::math::{UVec2, Vec2, Vec3};
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::render::pipelined_rendering::PipelinedRenderingPlugin;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat, TextureUsages};
use bevy::render::settings::{Backends, WgpuSettings};
use bevy::window::ExitCondition;
use bevy::winit::WinitPlugin;
use bevy_mvcustom::camera::PinholeCamera;
use bevy_mvcustom::diffusion::CancelToken;
use bevy_mvcustom::mvcustom::{GeneratedViews, GenerationEvent, GenerationRequest};
use bevy_mvcustom::plugin::{MvCustomGpu, ViewGenerator};
use bevy_mvcustom::prelude::*;
use bevy_mvcustom::render::{Backend, FeatureRenderer, RenderSettings};

/// Render target size of the cameras (and size of the generated views).
const SIZE: UVec2 = UVec2::new(64, 48);
/// Frames rendered before generating, so that pipelines have compiled and the scene is drawn.
const WARM_UP_FRAMES: usize = 8;
/// Frames allowed for the generations to receive their depth and run.
const MAX_FRAMES: usize = 200;

/// The cube's half extent and centre.
const CUBE_HALF: f32 = 0.5;
const CUBE_CENTRE: Vec3 = Vec3::new(0.0, 0.5, 0.0);

/// Records every request and returns flat views.
#[derive(Default)]
struct Recorder {
    requests: Mutex<Vec<GenerationRequest>>,
}

impl ViewGenerator for Recorder {
    fn generate(
        &self,
        request: &GenerationRequest,
        _subject: Option<&SubjectAsset>,
        _events: &mut dyn FnMut(GenerationEvent),
        _cancel: &CancelToken,
    ) -> bevy_mvcustom::mvcustom::Result<GeneratedViews> {
        self.requests.lock().unwrap().push(request.clone());
        let view = image::RgbaImage::from_pixel(
            request.width,
            request.height,
            image::Rgba([90, 90, 90, 255]),
        );
        Ok(GeneratedViews {
            images: vec![view; request.cameras.len()],
            timings: vec![],
            anchor_depth: request.anchor_depth.clone(),
            notices: Vec::new(),
        })
    }
}

/// `DefaultPlugins` on Vulkan without a window or winit, rendering on the main thread.
fn rendering_app(recorder: Arc<Recorder>) -> App {
    rendering_app_with(recorder, |_| {})
}

/// [`rendering_app`] with more plugins, added by `extra` before the app is finished.
fn rendering_app_with(recorder: Arc<Recorder>, extra: impl FnOnce(&mut App)) -> App {
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: None,
                exit_condition: ExitCondition::DontExit,
                ..default()
            })
            .set(RenderPlugin {
                render_creation: WgpuSettings {
                    backends: Some(Backends::VULKAN),
                    ..default()
                }
                .into(),
                synchronous_pipeline_compilation: true,
                ..default()
            })
            .disable::<WinitPlugin>()
            .disable::<PipelinedRenderingPlugin>(),
    )
    .add_plugins(MvCustomPlugin::from_generator(recorder).with_size(SIZE.x, SIZE.y));
    extra(&mut app);
    // What `App::run` does before its first update: wait for the renderer, finish plugins.
    while app.plugins_state() == PluginsState::Adding {
        bevy::tasks::tick_global_task_pools_on_main_thread();
    }
    app.finish();
    app.cleanup();
    app
}

/// An image a camera can render into.
fn render_target() -> Image {
    let mut image = Image::new_fill(
        Extent3d {
            width: SIZE.x,
            height: SIZE.y,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        &[0, 0, 0, 255],
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::default(),
    );
    image.texture_descriptor.usage |= TextureUsages::RENDER_ATTACHMENT;
    image
}

/// The ground (a 40 × 40 plane at y = 0), the cube (returned), a light.
fn spawn_scene(world: &mut World) -> Entity {
    let ground = world
        .resource_mut::<Assets<Mesh>>()
        .add(Plane3d::default().mesh().size(40.0, 40.0));
    let cube = world
        .resource_mut::<Assets<Mesh>>()
        .add(Cuboid::from_length(2.0 * CUBE_HALF));
    let material = world
        .resource_mut::<Assets<StandardMaterial>>()
        .add(StandardMaterial::default());
    world.spawn((Mesh3d(ground), MeshMaterial3d(material.clone())));
    let cube = world
        .spawn((
            Mesh3d(cube),
            MeshMaterial3d(material),
            Transform::from_translation(CUBE_CENTRE),
        ))
        .id();
    world.spawn((
        DirectionalLight::default(),
        Transform::from_xyz(3.0, 8.0, 5.0).looking_at(Vec3::ZERO, Vec3::Y),
    ));
    cube
}

/// A shot with one camera at `eye` looking at the cube, rendering with a depth prepass.
fn spawn_shot(world: &mut World, eye: Vec3, msaa: Msaa, prompt: &str) -> Entity {
    let target = world.resource_mut::<Assets<Image>>().add(render_target());
    let shot = world.spawn(MvCustomShot::new(prompt)).id();
    world.spawn((
        Camera3d::default(),
        RenderTarget::Image(target.into()),
        Transform::from_translation(eye).looking_at(CUBE_CENTRE, Vec3::Y),
        DepthPrepass,
        msaa,
        MvCustom::new(shot),
    ));
    shot
}

/// Where the ray first meets the scene: its distance along the ray and which surface.
fn hit(origin: Vec3, direction: Vec3) -> Option<(f32, Surface)> {
    let mut best: Option<(f32, Surface)> = None;
    let mut consider = |t: f32, surface| {
        if t > 1e-4 && best.is_none_or(|(b, _)| t < b) {
            best = Some((t, surface));
        }
    };
    // The ground plane y = 0 (within its 40 × 40 extent).
    if direction.y.abs() > 1e-9 {
        let t = -origin.y / direction.y;
        let p = origin + t * direction;
        if p.x.abs() <= 20.0 && p.z.abs() <= 20.0 {
            consider(t, Surface::Ground);
        }
    }
    // The cube (slab method).
    let (lo, hi) = (CUBE_CENTRE - CUBE_HALF, CUBE_CENTRE + CUBE_HALF);
    let (mut t_near, mut t_far) = (f32::NEG_INFINITY, f32::INFINITY);
    for axis in 0..3 {
        let (o, d) = (origin[axis], direction[axis]);
        if d.abs() < 1e-9 {
            if o < lo[axis] || o > hi[axis] {
                return best;
            }
            continue;
        }
        let (a, b) = ((lo[axis] - o) / d, (hi[axis] - o) / d);
        t_near = t_near.max(a.min(b));
        t_far = t_far.min(a.max(b));
    }
    if t_near <= t_far {
        consider(t_near, Surface::Cube);
    }
    best
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Surface {
    Ground,
    Cube,
}

/// The scene's z-depth and surface at continuous pixel `pixel` of `camera`.
fn scene_depth(camera: &PinholeCamera, pixel: Vec2) -> Option<(f32, Surface)> {
    let ray = camera.ray(pixel);
    let (t, surface) = hit(ray.origin, ray.direction)?;
    let point = ray.origin + t * ray.direction;
    Some(((point - camera.center()).dot(camera.forward()), surface))
}

/// How a rendered depth must match the scene at a pixel.
#[derive(Clone, Copy, Debug)]
enum Match {
    /// The scene's depth at the pixel centre, within this relative error.
    Centre(f32),
    /// A depth the scene takes somewhere within the pixel (between its corners' depths, the
    /// surfaces being planar): a multisampled buffer's sample 0 is not at the centre.
    WithinPixel,
}

/// Compares a row-major `SIZE` depth buffer with the analytic scene at every pixel whose
/// 3 × 3 neighbourhood sees a single surface (away from silhouettes, where rasterisation and
/// sampling legitimately differ), skipping pixels where `depth` is 0 when `skip_empty`;
/// returns how many ground and cube pixels were checked.
fn check_depth(
    camera: &PinholeCamera,
    depth: &[f32],
    mode: Match,
    skip_empty: bool,
) -> (usize, usize) {
    let (w, h) = (SIZE.x, SIZE.y);
    assert_eq!(depth.len(), (w * h) as usize);
    let at = |x: f32, y: f32| scene_depth(camera, Vec2::new(x, y));
    let mut counts = (0, 0);
    for j in 1..h - 1 {
        for i in 1..w - 1 {
            let (x, y) = (i as f32 + 0.5, j as f32 + 0.5);
            let Some((expected, surface)) = at(x, y) else {
                continue;
            };
            let uniform = (-1..=1)
                .flat_map(|dj| (-1..=1).map(move |di| (di as f32, dj as f32)))
                .all(|(di, dj)| at(x + di, y + dj).is_some_and(|(_, s)| s == surface));
            let got = depth[(j * w + i) as usize];
            if !uniform || (skip_empty && got == 0.0) {
                continue;
            }
            match mode {
                Match::Centre(max_relative) => {
                    assert_relative_eq!(got, expected, max_relative = max_relative)
                }
                Match::WithinPixel => {
                    let corners = [(-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5)]
                        .map(|(dx, dy)| at(x + dx, y + dy).map_or(expected, |(d, _)| d));
                    let lo = corners.iter().copied().fold(f32::INFINITY, f32::min);
                    let hi = corners.iter().copied().fold(0.0, f32::max);
                    assert!(
                        got >= lo * (1.0 - 1e-3) && got <= hi * (1.0 + 1e-3),
                        "pixel ({i}, {j}): {got} outside [{lo}, {hi}]"
                    );
                }
            }
            match surface {
                Surface::Ground => counts.0 += 1,
                Surface::Cube => counts.1 += 1,
            }
        }
    }
    counts
}

#[test]
fn dfr_receives_the_depth_the_scene_renders() {
    let recorder = Arc::new(Recorder::default());
    let mut app = rendering_app(Arc::clone(&recorder));
    spawn_scene(app.world_mut());
    let exact = spawn_shot(
        app.world_mut(),
        Vec3::new(1.5, 2.5, 4.0),
        Msaa::Off,
        "exact",
    );
    let multisampled = spawn_shot(
        app.world_mut(),
        Vec3::new(-3.0, 1.8, 2.5),
        Msaa::Sample4,
        "multisampled",
    );
    for _ in 0..WARM_UP_FRAMES {
        app.update();
    }
    app.world_mut().trigger(GenerateShot { shot: exact });
    app.world_mut().trigger(GenerateShot { shot: multisampled });
    let mut frames = 0;
    while recorder.requests.lock().unwrap().len() < 2 {
        assert!(frames < MAX_FRAMES, "the generations did not start");
        app.update();
        frames += 1;
    }

    let requests = recorder.requests.lock().unwrap().clone();
    for request in &requests {
        let camera = &request.cameras[0];
        let depth = request
            .anchor_depth
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no scene depth reached DFR", request.prompt));
        assert_eq!(
            request.techniques.dfr.as_ref().and_then(|d| d.anchor_view),
            Some(0),
            "the depth's camera is the anchor"
        );
        let mode = if request.prompt == "exact" {
            Match::Centre(1e-3)
        } else {
            Match::WithinPixel
        };
        let (ground, cube) = check_depth(camera, depth.data(), mode, false);
        assert!(
            ground > 100 && cube > 30,
            "{}: too few pixels checked (ground {ground}, cube {cube})",
            request.prompt
        );
        // Where no geometry is drawn (the sky above the horizon), the projection's far
        // distance, behind everything.
        assert!(depth.data().iter().all(|&d| d > 0.0 && d <= 1000.0));
    }

    // The generations ran to the end with that depth; the cameras lost their requests.
    for _ in 0..20 {
        app.update();
    }
    let world = app.world_mut();
    let mut statuses = world.query::<&MvCustomStatus>();
    assert!(
        statuses
            .iter(world)
            .all(|status| *status.state() == GenerationState::Done)
    );
    let mut requests_left = world.query::<&bevy_mvcustom::plugin::SceneDepthRequest>();
    assert_eq!(requests_left.iter(world).count(), 0);
}

#[test]
fn without_a_depth_prepass_the_request_has_no_scene_depth() {
    let recorder = Arc::new(Recorder::default());
    let mut app = rendering_app(Arc::clone(&recorder));
    spawn_scene(app.world_mut());
    let shot = spawn_shot(
        app.world_mut(),
        Vec3::new(1.5, 2.5, 4.0),
        Msaa::Off,
        "plain",
    );
    let mut cameras = app.world_mut().query_filtered::<Entity, With<Camera3d>>();
    let camera = cameras.single(app.world()).unwrap();
    app.world_mut().entity_mut(camera).remove::<DepthPrepass>();
    for _ in 0..WARM_UP_FRAMES {
        app.update();
    }
    app.world_mut().trigger(GenerateShot { shot });
    // No depth to wait for: the generation starts on the frame it is asked for.
    app.update();
    let mut frames = 0;
    while recorder.requests.lock().unwrap().is_empty() {
        assert!(frames < 20, "the generation did not start");
        app.update();
        frames += 1;
    }
    assert!(recorder.requests.lock().unwrap()[0].anchor_depth.is_none());
}

#[test]
fn a_camera_that_renders_no_depth_does_not_hold_the_generation() {
    let recorder = Arc::new(Recorder::default());
    let mut app = rendering_app(Arc::clone(&recorder));
    spawn_scene(app.world_mut());
    // A 2D camera with a depth prepass: it has a pose and a target, but no 3D prepass runs
    // for it, so its depth never arrives.
    let target = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(render_target());
    let shot = app.world_mut().spawn(MvCustomShot::new("2d")).id();
    app.world_mut().spawn((
        Camera2d,
        RenderTarget::Image(target.into()),
        DepthPrepass,
        MvCustom::new(shot),
    ));
    for _ in 0..WARM_UP_FRAMES {
        app.update();
    }
    app.world_mut().trigger(GenerateShot { shot });
    let mut frames = 0;
    while recorder.requests.lock().unwrap().is_empty() {
        frames += 1;
        assert!(
            frames <= bevy_mvcustom::plugin::depth::MAX_DEPTH_WAIT_FRAMES as usize + 2,
            "the generation waited past the limit"
        );
        app.update();
    }
    assert!(
        frames > 10,
        "the generation waited for the depth a while ({frames} frames)"
    );
    assert!(recorder.requests.lock().unwrap()[0].anchor_depth.is_none());
}

#[test]
fn the_feature_renderer_runs_on_the_apps_device() {
    let recorder = Arc::new(Recorder::default());
    let mut app = rendering_app(Arc::clone(&recorder));
    spawn_scene(app.world_mut());
    let shot = spawn_shot(app.world_mut(), Vec3::new(1.5, 2.5, 4.0), Msaa::Off, "mesh");
    let request = first_request(&mut app, &recorder, shot);
    let depth = request.anchor_depth.expect("scene depth");
    let anchor = &request.cameras[0];

    let gpu = app.world().resource::<MvCustomGpu>().clone();
    let settings = |backend| RenderSettings {
        backend,
        ..RenderSettings::default()
    };
    let on_app_device = gpu.feature_renderer(settings(Backend::Gpu)).unwrap();
    assert!(on_app_device.uses_gpu());
    let reference = FeatureRenderer::new(settings(Backend::Cpu)).unwrap();
    // The scene's depth lifted into the anchor mesh and rendered back into the anchor view
    // and a second view: the app's device agrees with the CPU reference rasteriser.
    let other = PinholeCamera::new(
        *anchor.intrinsics(),
        bevy_mvcustom::camera::bevy::extrinsics_from_transform(&GlobalTransform::from(
            Transform::from_xyz(2.5, 2.0, 3.0).looking_at(CUBE_CENTRE, Vec3::Y),
        ))
        .unwrap(),
        anchor.size(),
    )
    .unwrap();
    let targets = [*anchor, other];
    let render = |renderer: &FeatureRenderer| {
        let mesh = renderer.build_mesh(&depth, anchor).unwrap();
        let raster = renderer.rasterize(&mesh, &targets, SIZE.x, SIZE.y).unwrap();
        raster.visibility().depth().into_data()
    };
    let gpu_depth = render(&on_app_device);
    let cpu_depth = render(&reference);
    assert_eq!(gpu_depth.len(), cpu_depth.len());
    let disagreeing = gpu_depth
        .iter()
        .zip(&cpu_depth)
        .filter(|(g, c)| (*g - *c).abs() > 1e-3 * c.abs().max(1.0))
        .count();
    assert_eq!(disagreeing, 0, "GPU and CPU visibility depth differ");
    // Rendered back into its own view, the mesh reproduces the scene depth where it is drawn.
    let own_view = &gpu_depth[..(SIZE.x * SIZE.y) as usize];
    let (ground, cube) = check_depth(anchor, own_view, Match::Centre(2e-3), true);
    assert!(ground > 100 && cube > 30, "ground {ground}, cube {cube}");
}

/// Where Bevy's own matrices put a world point, in pixels of a `size` image (y down).
fn bevy_pixel(transform: &GlobalTransform, projection: &Projection, point: Vec3) -> Vec2 {
    let mut projection = projection.clone();
    projection.update(SIZE.x as f32, SIZE.y as f32);
    let clip =
        projection.get_clip_from_view() * transform.to_matrix().inverse() * point.extend(1.0);
    let ndc = clip.truncate() / clip.w;
    Vec2::new(
        (ndc.x + 1.0) * 0.5 * SIZE.x as f32,
        (1.0 - ndc.y) * 0.5 * SIZE.y as f32,
    )
}

/// Renders the warm-up frames, generates `shot` and returns the first request the generator
/// received (within [`MAX_FRAMES`]).
fn first_request(app: &mut App, recorder: &Recorder, shot: Entity) -> GenerationRequest {
    for _ in 0..WARM_UP_FRAMES {
        app.update();
    }
    app.world_mut().trigger(GenerateShot { shot });
    let mut frames = 0;
    while recorder.requests.lock().unwrap().is_empty() {
        assert!(frames < MAX_FRAMES, "the generation did not start");
        app.update();
        frames += 1;
    }
    recorder.requests.lock().unwrap()[0].clone()
}

/// [`first_request`] with tonemapping off on the app's one 3-D camera (so pure colours reach
/// its render unchanged); returns that camera too.
fn first_request_untonemapped(
    app: &mut App,
    recorder: &Recorder,
    shot: Entity,
) -> (Entity, GenerationRequest) {
    let mut cameras = app.world_mut().query_filtered::<Entity, With<Camera3d>>();
    let camera = cameras.single(app.world()).unwrap();
    app.world_mut()
        .entity_mut(camera)
        .insert(bevy::core_pipeline::tonemapping::Tonemapping::None);
    (camera, first_request(app, recorder, shot))
}

#[test]
fn a_composed_shot_keeps_the_cameras_render_around_the_subjects_box() {
    let recorder = Arc::new(Recorder::default());
    let mut app = rendering_app(Arc::clone(&recorder));
    // A pure colour behind everything, passed through untouched (no tonemapping).
    const SKY: [u8; 3] = [255, 0, 0];
    app.insert_resource(ClearColor(Color::srgb_u8(SKY[0], SKY[1], SKY[2])));
    let cube = spawn_scene(app.world_mut());
    let shot = spawn_shot(
        app.world_mut(),
        Vec3::new(1.5, 2.5, 4.0),
        Msaa::Off,
        "composed",
    );
    let settings = bevy_mvcustom::mvcustom::compose::CompositionSettings {
        dilation: 3.0,
        blend_band: 5.0,
    };
    {
        let mut shot = app.world_mut().get_mut::<MvCustomShot>(shot).unwrap();
        shot.compose = Some(cube);
        shot.composition = settings;
    }
    let (camera, request) = first_request_untonemapped(&mut app, &recorder, shot);
    let composition = request.composition.expect("the request composes");
    assert_eq!(composition.settings, settings);
    assert!(
        request.anchor_depth.is_some(),
        "depth and background both came"
    );

    // The box: the cube's corners projected by Bevy's own matrices.
    let world = app.world();
    let transform = world.get::<GlobalTransform>(camera).unwrap();
    let projection = world.get::<Projection>(camera).unwrap();
    let corners: Vec<Vec2> = (0..8)
        .map(|k| {
            let sign = |bit: u32| if k & bit == 0 { -CUBE_HALF } else { CUBE_HALF };
            bevy_pixel(
                transform,
                projection,
                CUBE_CENTRE + Vec3::new(sign(1), sign(2), sign(4)),
            )
        })
        .collect();
    let min = corners.iter().fold(Vec2::splat(f32::MAX), |m, p| m.min(*p));
    let max = corners.iter().fold(Vec2::splat(f32::MIN), |m, p| m.max(*p));
    let bounds = composition.bounds[0].expect("the cube is in view");
    for (got, want) in [
        (bounds.min_x, min.x),
        (bounds.min_y, min.y),
        (bounds.max_x, max.x),
        (bounds.max_y, max.y),
    ] {
        assert_relative_eq!(got, want, epsilon = 1e-2);
    }

    // The background is the camera's render: the sky where nothing is drawn, the cube at
    // the box's centre.
    let background = &composition.backgrounds[0];
    assert_eq!(background.dimensions(), (SIZE.x, SIZE.y));
    let colour = |x: u32, y: u32| {
        let p = background.get_pixel(x, y).0;
        [p[0], p[1], p[2]]
    };
    let sky = colour(0, 0);
    assert!(
        sky.iter().zip(SKY).all(|(a, b)| a.abs_diff(b) <= 1),
        "sky pixel {sky:?}"
    );
    let centre = (min + max) / 2.0;
    let cube_colour = colour(centre.x as u32, centre.y as u32);
    assert!(
        cube_colour.iter().zip(SKY).any(|(a, b)| a.abs_diff(b) > 16),
        "the cube is drawn at the box's centre ({cube_colour:?})"
    );
    for _ in 0..5 {
        app.update();
    }
    let status = app.world().get::<MvCustomStatus>(camera).unwrap();
    assert_eq!(status.state(), &GenerationState::Done);
}

#[test]
fn a_restyled_shot_starts_from_the_cameras_render() {
    let recorder = Arc::new(Recorder::default());
    let mut app = rendering_app(Arc::clone(&recorder));
    const SKY: [u8; 3] = [0, 0, 255];
    app.insert_resource(ClearColor(Color::srgb_u8(SKY[0], SKY[1], SKY[2])));
    spawn_scene(app.world_mut());
    let shot = spawn_shot(
        app.world_mut(),
        Vec3::new(1.5, 2.5, 4.0),
        Msaa::Off,
        "restyled",
    );
    app.world_mut()
        .get_mut::<MvCustomShot>(shot)
        .unwrap()
        .restyle = Some(0.4);
    let (_, request) = first_request_untonemapped(&mut app, &recorder, shot);
    assert!(
        request.composition.is_none(),
        "restyling alone composes nothing"
    );
    let init = request
        .init_views
        .expect("the request starts from the render");
    assert!((init.strength - 0.4).abs() < 1e-6, "{}", init.strength);
    assert_eq!(init.images.len(), 1);
    let view = &init.images[0];
    assert_eq!(view.dimensions(), (SIZE.x, SIZE.y));
    // The camera's render: the sky in the top-left corner, the cube (not sky) in the middle
    // (the camera looks at it).
    let sky = view.get_pixel(0, 0).0;
    assert!(
        sky.iter().zip(SKY).all(|(a, b)| a.abs_diff(b) <= 1),
        "sky pixel {sky:?}"
    );
    let centre = view.get_pixel(SIZE.x / 2, SIZE.y / 2).0;
    assert!(
        centre.iter().zip(SKY).any(|(a, b)| a.abs_diff(b) > 16),
        "the scene is drawn in the middle ({centre:?})"
    );
}

#[cfg(feature = "ui")]
#[test]
fn the_panel_runs_and_shows_the_generated_views() {
    use bevy_egui::EguiUserTextures;
    use bevy_mvcustom::plugin::ui::{MvCustomUiPlugin, MvCustomUiState};

    let recorder = Arc::new(Recorder::default());
    let mut app = rendering_app_with(Arc::clone(&recorder), |app| {
        app.add_plugins(MvCustomUiPlugin);
    });
    spawn_scene(app.world_mut());
    // The first camera spawned carries egui's primary context: the panel draws into its image.
    let shot = spawn_shot(
        app.world_mut(),
        Vec3::new(1.5, 2.5, 4.0),
        Msaa::Off,
        "panel",
    );
    for _ in 0..WARM_UP_FRAMES {
        app.update();
    }
    assert_eq!(
        app.world().resource::<MvCustomUiState>().selected,
        Some(shot),
        "the panel shows the only shot"
    );
    app.world_mut().trigger(GenerateShot { shot });
    let mut frames = 0;
    loop {
        app.update();
        frames += 1;
        let world = app.world_mut();
        let mut statuses = world.query::<&MvCustomStatus>();
        if statuses.single(world).unwrap().state() == &GenerationState::Done {
            break;
        }
        assert!(frames < MAX_FRAMES, "the generation did not finish");
    }
    app.update();
    let world = app.world_mut();
    let mut statuses = world.query::<&MvCustomStatus>();
    let image = statuses.single(world).unwrap().image().unwrap().id();
    assert!(
        world
            .resource::<EguiUserTextures>()
            .image_id(image)
            .is_some(),
        "the generated view is in the gallery"
    );
}
