//! The procedural world against independent answers: analytic depths of planes and spheres,
//! masks against projected object centres and geometry, multi-view consistency of the ground
//! truth through the warp, determinism, captions, trajectories and clip folders.

use bevy_mvcustom::camera::{ImageSize, Intrinsics, PinholeCamera, look_at};
use bevy_mvcustom::world::warp::{WarpSettings, colour_error, correspondences, multi_view_error};
use bevy_mvcustom::world::{
    Clip, Colour, DemoSubject, Environment, Finish, Ground, Jitter, MASK_BACKGROUND, MASK_GROUND,
    ObjectKind, ObjectSpec, Path, Pattern, RenderSettings, Scene, SceneSpec, Shape, Split,
    TimeOfDay, TrajectorySampler, TrajectorySpec, WorldError, object_mask_id, render_view,
    render_views,
};
use glam::{Vec2, Vec3};

fn settings() -> RenderSettings {
    RenderSettings {
        supersampling: 1,
        shadows: true,
        specular: true,
        threads: 1,
    }
}

fn object(kind: ObjectKind, position: Vec2, scale: f32) -> ObjectSpec {
    ObjectSpec {
        kind,
        colour: Colour::Red,
        accent: Colour::White,
        pattern: Pattern::Solid,
        finish: Finish::Matte,
        position,
        yaw: 0.0,
        scale,
        shape_seed: 3,
    }
}

/// A scene drawn from the training sampler with its objects replaced.
fn scene_with(objects: Vec<ObjectSpec>, ground: Ground, time: TimeOfDay) -> SceneSpec {
    let mut spec = Split::Train.sampler().sample(1).unwrap();
    spec.objects = objects;
    spec.environment.kind = Environment { ground, time };
    spec
}

/// The radius of a ball object (its one sphere), in world units.
fn ball_radius(o: &ObjectSpec) -> f32 {
    match o.kind.parts(o.shape_seed)[0].shape {
        Shape::Sphere { radius } => radius * o.scale,
        other => panic!("a ball is one sphere, got {other:?}"),
    }
}

fn camera(eye: Vec3, target: Vec3, up: Vec3, size: u32) -> PinholeCamera {
    let k = Intrinsics::from_vertical_fov(50f32.to_radians(), size, size).unwrap();
    look_at(eye, target, up, k, ImageSize::new(size, size).unwrap()).unwrap()
}

#[test]
fn depth_of_the_ground_is_analytic() {
    // Only a far-away ball: the cameras see bare ground.
    let spec = scene_with(
        vec![object(ObjectKind::Ball, Vec2::new(500.0, 500.0), 1.0)],
        Ground::Grass,
        TimeOfDay::Day,
    );
    let scene = Scene::new(&spec).unwrap();
    // Straight down from height 2.5: every pixel at z-depth 2.5.
    let down = camera(
        Vec3::new(0.3, 2.5, -0.2),
        Vec3::new(0.3, 0.0, -0.2),
        Vec3::Z,
        24,
    );
    let view = render_view(&scene, &down, &settings()).unwrap();
    for d in view.depth.data() {
        assert!((d - 2.5).abs() < 1e-4, "{d}");
    }
    assert!(view.mask.pixels().all(|p| p.0[0] == MASK_GROUND));
    // Looking horizontally from height h: a row v below the centre sees the ground at
    // z = h·fy / (v − cy); rows above the horizon see the sky.
    let h = 1.2;
    let level = camera(Vec3::new(0.0, h, 0.0), Vec3::new(0.0, h, -5.0), Vec3::Y, 32);
    let view = render_view(&scene, &level, &settings()).unwrap();
    let k = level.intrinsics();
    for j in 0..32u32 {
        let v = j as f32 + 0.5;
        for i in [0u32, 13, 31] {
            let d = view.depth.get(i, j);
            if v > k.cy {
                let expected = h * k.fy / (v - k.cy);
                let d = d.unwrap();
                assert!(
                    (d - expected).abs() < 1e-4 * expected,
                    "row {j}: {d} vs {expected}"
                );
            } else {
                assert_eq!(d, None, "row {j} is sky");
                assert_eq!(view.mask.get_pixel(i, j).0[0], MASK_BACKGROUND);
            }
        }
    }
}

#[test]
fn depth_of_a_sphere_is_analytic() {
    let ball = object(ObjectKind::Ball, Vec2::new(0.4, -0.3), 1.1);
    let r = ball_radius(&ball);
    let centre = Vec3::new(0.4, r, -0.3);
    let scene = Scene::new(&scene_with(vec![ball], Ground::Snow, TimeOfDay::Day)).unwrap();
    let cam = camera(Vec3::new(2.0, 1.5, 2.5), centre, Vec3::Y, 40);
    let view = render_view(&scene, &cam, &settings()).unwrap();
    // Independent answer in the camera frame: the ray through (u, v) is s·(x̂, ŷ, 1) with
    // x̂ = (u − cx)/fx, ŷ = (v − cy)/fy; its z-depth is the smallest root s of
    // |s·d − C|² = r².
    let c = cam.extrinsics().world_to_camera(centre);
    let k = cam.intrinsics();
    let mut sphere_pixels = 0;
    for j in 0..40u32 {
        for i in 0..40u32 {
            let d = Vec3::new(
                (i as f32 + 0.5 - k.cx) / k.fx,
                (j as f32 + 0.5 - k.cy) / k.fy,
                1.0,
            );
            let (a, b, cc) = (d.dot(d), -2.0 * d.dot(c), c.dot(c) - r * r);
            let disc = b * b - 4.0 * a * cc;
            let id = view.mask.get_pixel(i, j).0[0];
            if disc > 1e-3 {
                let s = (-b - disc.sqrt()) / (2.0 * a);
                assert_eq!(
                    id,
                    object_mask_id(0),
                    "pixel ({i}, {j}) should see the ball"
                );
                let z = view.depth.get(i, j).unwrap();
                assert!((z - s).abs() < 1e-4 * s, "pixel ({i}, {j}): {z} vs {s}");
                sphere_pixels += 1;
            } else if disc < -1e-3 {
                assert_ne!(
                    id,
                    object_mask_id(0),
                    "pixel ({i}, {j}) should miss the ball"
                );
            }
        }
    }
    assert!(sphere_pixels > 100, "{sphere_pixels}");
}

#[test]
fn object_centres_project_into_their_own_masks() {
    let ball = object(ObjectKind::Ball, Vec2::ZERO, 1.0);
    let block = object(ObjectKind::Block, Vec2::new(1.1, 0.4), 0.6);
    let spec = scene_with(vec![ball, block], Ground::Sand, TimeOfDay::Sunset);
    let scene = Scene::new(&spec).unwrap();
    let block_height = match block.kind.parts(block.shape_seed)[0].shape {
        Shape::Cuboid { half_extents } => half_extents.y * block.scale,
        other => panic!("a block is one box, got {other:?}"),
    };
    let centres = [
        Vec3::new(0.0, ball_radius(&ball), 0.0),
        Vec3::new(1.1, block_height, 0.4),
    ];
    let trajectory = TrajectorySpec {
        path: Path::Orbit {
            elevation: 1.0,
            start_azimuth: 0.0,
            arc: std::f32::consts::TAU,
        },
        views: 6,
        width: 48,
        height: 48,
        fov_y: 0.9,
        framing: 3.5,
        jitter: Jitter::default(),
        jitter_seed: 0,
    };
    let cameras = trajectory.cameras(scene.focus()).unwrap();
    let views = render_views(&scene, &cameras, &settings()).unwrap();
    for (cam, view) in cameras.iter().zip(&views) {
        for (index, centre) in centres.iter().enumerate() {
            let p = cam.project(*centre).unwrap().pixel;
            let id = view.mask.get_pixel(p.x as u32, p.y as u32).0[0];
            assert_eq!(id, object_mask_id(index), "object {index} at {p:?}");
        }
    }
}

#[test]
fn masks_and_depths_agree_with_the_geometry() {
    // Every pixel labelled with an object unprojects (with its depth) into that object's
    // bounding sphere; every ground pixel onto the plane y = 0.
    let trajectories = TrajectorySampler {
        width: 32,
        height: 32,
        views: 3,
        ..Default::default()
    };
    for index in 0..6 {
        let clip =
            Clip::sample(index, &Split::Train.sampler(), &trajectories, &settings()).unwrap();
        let scene = Scene::new(&clip.spec).unwrap();
        for (cam, view) in clip.cameras.iter().zip(&clip.frames) {
            for (i, j, id) in view.mask.enumerate_pixels().map(|(i, j, p)| (i, j, p.0[0])) {
                let depth = view.depth.get(i, j);
                if id == MASK_BACKGROUND {
                    assert_eq!(depth, None);
                    continue;
                }
                let x = cam.unproject(Vec2::new(i as f32 + 0.5, j as f32 + 0.5), depth.unwrap());
                if id == MASK_GROUND {
                    assert!(x.y.abs() < 1e-3 * (1.0 + x.length()), "ground point {x}");
                } else {
                    let (c, r) = scene.object_bounds(id as usize - 2).unwrap();
                    assert!(
                        x.distance(c) <= r * 1.001 + 1e-4,
                        "clip {index}: object {id}"
                    );
                }
            }
        }
    }
}

fn lambertian() -> RenderSettings {
    RenderSettings {
        specular: false,
        ..settings()
    }
}

#[test]
fn ground_truth_is_multi_view_consistent() {
    // Matte scenes without highlights: a surface point has one colour in every view, so
    // warping view s into view t with the true depth and poses reproduces view t on the
    // co-visible pixels, up to resampling of the textures.
    let trajectories = TrajectorySampler {
        width: 96,
        height: 96,
        views: 4,
        arcs: vec![std::f32::consts::FRAC_PI_2],
        dolly_probability: 0.0,
        ..Default::default()
    };
    let warp = WarpSettings::default();
    for seed in [3u64, 17, 40] {
        let mut clip =
            Clip::sample(seed, &Split::Train.sampler(), &trajectories, &lambertian()).unwrap();
        for o in &mut clip.spec.objects {
            o.finish = Finish::Matte;
        }
        let clip = Clip::render(clip.spec, clip.trajectory, &lambertian()).unwrap();
        let depths: Vec<_> = clip.frames.iter().map(|f| f.depth.clone()).collect();
        let images: Vec<_> = clip.frames.iter().map(|f| f.rgb.clone()).collect();
        for (s, t) in [(0usize, 1usize), (1, 2), (2, 1)] {
            let c = correspondences(
                &clip.cameras[s],
                &depths[s],
                &clip.cameras[t],
                &depths[t],
                &warp,
            )
            .unwrap();
            assert!(
                c.overlap() > 0.4,
                "seed {seed} {s}->{t}: overlap {}",
                c.overlap()
            );
            assert!(
                c.mean_depth_residual() < 2e-3,
                "seed {seed}: depth residual {}",
                c.mean_depth_residual()
            );
            let e = colour_error(&images[s], &images[t], &c).unwrap();
            assert!(
                e.mean_abs < 0.04,
                "seed {seed} {s}->{t}: colour error {e:?}"
            );
        }
        let consistent = multi_view_error(&clip.cameras, &depths, &images, &warp).unwrap();
        // Control: the same images with the poses of the wrong views disagree far more.
        let mut wrong = clip.cameras.clone();
        wrong.reverse();
        let mut wrong_depths = depths.clone();
        wrong_depths.reverse();
        let shuffled = multi_view_error(&wrong, &wrong_depths, &images, &warp).unwrap();
        assert!(
            shuffled.mean_abs > 2.0 * consistent.mean_abs,
            "seed {seed}: consistent {consistent:?} vs shuffled {shuffled:?}"
        );
    }
}

#[test]
fn same_seed_same_bytes_different_seeds_differ() {
    let trajectories = TrajectorySampler {
        width: 32,
        height: 32,
        views: 3,
        ..Default::default()
    };
    let sampler = Split::Train.sampler();
    let a = Clip::sample(21, &sampler, &trajectories, &RenderSettings::default()).unwrap();
    let b = Clip::sample(21, &sampler, &trajectories, &RenderSettings::default()).unwrap();
    assert_eq!(a, b);
    for (x, y) in a.frames.iter().zip(&b.frames) {
        assert_eq!(x.rgb.as_raw(), y.rgb.as_raw());
        assert_eq!(x.depth.data(), y.depth.data());
    }
    let c = Clip::sample(22, &sampler, &trajectories, &RenderSettings::default()).unwrap();
    assert_ne!(a.spec, c.spec);
    assert_ne!(a.frames[0].rgb.as_raw(), c.frames[0].rgb.as_raw());
    // Parallel rendering is the same as serial.
    let scene = Scene::new(&a.spec).unwrap();
    let parallel = RenderSettings {
        threads: 2,
        ..RenderSettings::default()
    };
    assert_eq!(
        render_views(&scene, &a.cameras, &parallel).unwrap(),
        a.frames
    );
}

#[test]
fn captions_name_object_and_environment_and_cameras_look_at_it() {
    let trajectories = TrajectorySampler {
        width: 16,
        height: 16,
        views: 4,
        dolly_probability: 0.0,
        jitter: Jitter::default(),
        ..Default::default()
    };
    let mut grounds_seen = Vec::new();
    for index in 0..24 {
        let seed = Split::Eval.seed(index).unwrap();
        let clip = Clip::sample(seed, &Split::Eval.sampler(), &trajectories, &settings()).unwrap();
        let main = clip.spec.objects[0];
        let env = clip.spec.environment.kind;
        assert!(clip.caption.contains(main.kind.noun()), "{}", clip.caption);
        assert!(
            clip.caption.contains(main.colour.name()),
            "{}",
            clip.caption
        );
        assert!(
            clip.caption.contains(env.ground.phrase()),
            "{}",
            clip.caption
        );
        if let Some(time) = env.time.phrase() {
            assert!(clip.caption.ends_with(time), "{}", clip.caption);
        }
        grounds_seen.push(env.ground);
        let (focus, _) = Scene::new(&clip.spec).unwrap().focus();
        for cam in &clip.cameras {
            let p = cam.project(focus).unwrap().pixel;
            assert!(
                (p - Vec2::splat(8.0)).length() < 1e-3,
                "clip {index}: focus at {p:?}"
            );
        }
        // The main object is what the middle of the image shows (or its surroundings, for
        // hollow objects such as tables): at least some pixels carry its id.
        assert!(
            clip.frames
                .iter()
                .all(|f| f.mask.pixels().any(|p| p.0[0] == object_mask_id(0))),
            "clip {index}"
        );
    }
    for ground in Ground::ALL {
        assert!(grounds_seen.contains(&ground), "{ground:?}");
    }
}

#[test]
fn demo_subjects_render_with_their_own_identity() {
    let trajectories = TrajectorySampler {
        width: 24,
        height: 24,
        views: 2,
        ..Default::default()
    };
    for subject in DemoSubject::ALL {
        let sampler = Split::Eval.subject_sampler(subject);
        let clip = Clip::sample(
            Split::Eval.seed(5).unwrap(),
            &sampler,
            &trajectories,
            &settings(),
        )
        .unwrap();
        assert_eq!(clip.spec.objects[0], subject.object());
        assert!(
            clip.caption.starts_with(&subject.object().noun_phrase()),
            "{}",
            clip.caption
        );
    }
}

#[test]
fn clip_folders_round_trip_and_are_written_once() {
    let trajectories = TrajectorySampler {
        width: 20,
        height: 12,
        views: 3,
        ..Default::default()
    };
    let clip = Clip::sample(9, &Split::Train.sampler(), &trajectories, &settings()).unwrap();
    let root = std::env::temp_dir().join(format!("mvcustom-world-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("clip_9");
    clip.write(&dir).unwrap();
    let read = Clip::read(&dir).unwrap();
    assert_eq!(read, clip);
    // Depth is raw little-endian f32, row-major.
    let bytes = std::fs::read(dir.join("depth_001.f32")).unwrap();
    let first = f32::from_le_bytes(bytes[0..4].try_into().unwrap());
    assert_eq!(first, clip.frames[1].depth.data()[0]);
    // A second write refuses to replace it and leaves no temporary folder behind.
    assert!(matches!(
        clip.write(&dir),
        Err(WorldError::AlreadyExists { .. })
    ));
    let entries: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("clip_9")]);
    // A truncated depth file is reported by name.
    std::fs::write(dir.join("depth_002.f32"), [0u8; 10]).unwrap();
    let err = Clip::read(&dir).unwrap_err().to_string();
    assert!(err.contains("depth_002.f32"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn sampled_clips_always_show_their_main_object() {
    // Trajectories are redrawn until no camera stands inside an object or sees the main
    // object's centre hidden: in every frame most of the main object's silhouette (rendered
    // alone with the same camera) stays visible.
    let trajectories = TrajectorySampler {
        width: 24,
        height: 24,
        views: 4,
        ..Default::default()
    };
    let count = |frame: &bevy_mvcustom::world::View| {
        frame
            .mask
            .pixels()
            .filter(|p| p.0[0] == object_mask_id(0))
            .count()
    };
    for index in 0..80 {
        let clip =
            Clip::sample(index, &Split::Train.sampler(), &trajectories, &settings()).unwrap();
        let mut alone = clip.spec.clone();
        alone.objects.truncate(1);
        let alone = render_views(&Scene::new(&alone).unwrap(), &clip.cameras, &settings()).unwrap();
        for (k, (frame, full)) in clip.frames.iter().zip(&alone).enumerate() {
            let (visible, silhouette) = (count(frame), count(full));
            assert!(
                2 * visible >= silhouette && visible > 0,
                "clip {index} view {k}: {visible} of {silhouette} pixels of the main object visible"
            );
        }
    }
}

#[test]
fn a_view_blocked_by_another_object_is_recognised() {
    let ball = object(ObjectKind::Ball, Vec2::ZERO, 1.0);
    let r = ball_radius(&ball);
    let target = Vec3::new(0.0, r, 0.0);
    let clear = Scene::new(&scene_with(vec![ball], Ground::Grass, TimeOfDay::Day)).unwrap();
    let wall = object(ObjectKind::Block, Vec2::new(0.0, 1.5), 1.0);
    let blocked = Scene::new(&scene_with(vec![ball, wall], Ground::Grass, TimeOfDay::Day)).unwrap();
    let front = camera(Vec3::new(0.0, r, 4.0), target, Vec3::Y, 16);
    let side = camera(Vec3::new(4.0, r, 0.0), target, Vec3::Y, 16);
    assert!(clear.sees_main_object(&front));
    assert!(
        !blocked.sees_main_object(&front),
        "the block stands between"
    );
    assert!(blocked.sees_main_object(&side));
    let inside = camera(Vec3::new(0.0, r, 1.5), target, Vec3::Y, 16);
    assert!(
        !blocked.sees_main_object(&inside),
        "camera inside the block"
    );
}
