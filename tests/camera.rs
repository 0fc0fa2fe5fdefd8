//! The camera model against independent answers: points projected by hand in each
//! convention, round trips over random cameras, and Bevy's own `world_to_viewport`.

use approx::assert_relative_eq;
use bevy::camera::{
    Camera, OrthographicProjection, PerspectiveProjection, Projection, RenderTargetInfo,
    ScalingMode,
};
use bevy::math::{UVec2, Vec2, Vec3};
use bevy::transform::components::{GlobalTransform, Transform};
use bevy_mvcustom::camera::colmap::{parse_cameras, parse_images};
use bevy_mvcustom::camera::conventions::{
    from_opengl_camera_to_world, from_pytorch3d, opencv_camera_matrix, opengl_camera_to_world,
    pytorch3d_project_ndc, to_pytorch3d,
};
use bevy_mvcustom::camera::rays::distance_to_plucker_line;
use bevy_mvcustom::camera::{
    CameraError, Extrinsics, ImageSize, Intrinsics, LinearPath, Orbit, PinholeCamera,
    ProjectionKind, RelativeViewpoint, SceneNormalization, UpAxis, look_at, plucker_map,
};
use glam::Mat3;
use proptest::prelude::*;

fn intrinsics(fx: f32, fy: f32, cx: f32, cy: f32) -> Intrinsics {
    Intrinsics {
        fx,
        fy,
        cx,
        cy,
        kind: ProjectionKind::Perspective,
    }
}

fn size(w: u32, h: u32) -> ImageSize {
    ImageSize::new(w, h).unwrap()
}

/// Camera at the origin looking down world +Z, image +Y = world +Y (OpenCV identity).
fn identity_camera() -> PinholeCamera {
    PinholeCamera::new(
        intrinsics(100.0, 120.0, 50.0, 40.0),
        Extrinsics::IDENTITY,
        size(100, 80),
    )
    .unwrap()
}

#[test]
fn projects_a_known_point_by_hand() {
    let cam = identity_camera();
    let q = cam.project(Vec3::new(1.0, 2.0, 10.0)).unwrap();
    // u = 100·1/10 + 50, v = 120·2/10 + 40.
    assert_relative_eq!(q.pixel.x, 60.0, epsilon = 1e-5);
    assert_relative_eq!(q.pixel.y, 64.0, epsilon = 1e-5);
    assert_relative_eq!(q.depth, 10.0);
    assert!(
        cam.project(Vec3::new(0.0, 0.0, -1.0)).is_none(),
        "behind the camera"
    );
    let p = cam.unproject(Vec2::new(60.0, 64.0), 10.0);
    assert_relative_eq!(p.x, 1.0, epsilon = 1e-5);
    assert_relative_eq!(p.y, 2.0, epsilon = 1e-5);
}

#[test]
fn orthographic_projection_by_hand() {
    let mut k = intrinsics(10.0, 10.0, 32.0, 32.0);
    k.kind = ProjectionKind::Orthographic;
    // Camera at (0, 0, -5) looking down +Z.
    let ext = Extrinsics::from_camera_to_world(Mat3::IDENTITY, Vec3::new(0.0, 0.0, -5.0));
    let cam = PinholeCamera::new(k, ext, size(64, 64)).unwrap();
    let q = cam.project(Vec3::new(1.0, -2.0, 3.0)).unwrap();
    assert_relative_eq!(q.pixel.x, 42.0, epsilon = 1e-5);
    assert_relative_eq!(q.pixel.y, 12.0, epsilon = 1e-5);
    assert_relative_eq!(q.depth, 8.0, epsilon = 1e-5);
    let ray = cam.ray(Vec2::new(42.0, 12.0));
    assert_relative_eq!(ray.direction.z, 1.0, epsilon = 1e-6);
    assert_relative_eq!(ray.origin.x, 1.0, epsilon = 1e-5);
}

#[test]
fn opencv_matrix_uses_integer_pixel_centres() {
    let k = opencv_camera_matrix(identity_camera().intrinsics());
    assert_relative_eq!(k.z_axis.x, 49.5);
    assert_relative_eq!(k.z_axis.y, 39.5);
    assert_relative_eq!(k.x_axis.x, 100.0);
}

#[test]
fn opengl_camera_to_world_by_hand() {
    // A camera at (0, 0, 5) looking at the origin with +Y up is, in OpenGL terms, a pure
    // translation: right = +X, up = +Y, back = +Z.
    let cam = look_at(
        Vec3::new(0.0, 0.0, 5.0),
        Vec3::ZERO,
        Vec3::Y,
        intrinsics(100.0, 100.0, 50.0, 50.0),
        size(100, 100),
    )
    .unwrap();
    let c2w = opengl_camera_to_world(&cam);
    assert!(
        c2w.abs_diff_eq(glam::Mat4::from_translation(Vec3::new(0.0, 0.0, 5.0)), 1e-6),
        "{c2w:?}"
    );
    // World +X appears right of centre, world +Y above centre.
    let q = cam.project(Vec3::new(1.0, 1.0, 0.0)).unwrap();
    assert_relative_eq!(q.pixel.x, 70.0, epsilon = 1e-4);
    assert_relative_eq!(q.pixel.y, 30.0, epsilon = 1e-4);
}

#[test]
fn pytorch3d_ndc_by_hand() {
    // Non-square image: s = min(200, 100)/2 = 50 pixels per NDC unit, +X left, +Y up.
    let cam = PinholeCamera::new(
        intrinsics(100.0, 100.0, 110.0, 45.0),
        Extrinsics::IDENTITY,
        size(200, 100),
    )
    .unwrap();
    let p3d = to_pytorch3d(&cam);
    assert_relative_eq!(p3d.focal_length.x, 2.0);
    assert_relative_eq!(p3d.principal_point.x, (100.0 - 110.0) / 50.0);
    assert_relative_eq!(p3d.principal_point.y, (50.0 - 45.0) / 50.0);
    let point = Vec3::new(0.5, -0.25, 2.0);
    let pixel = cam.project(point).unwrap().pixel; // (135, 32.5)
    let ndc = pytorch3d_project_ndc(&p3d, point).unwrap();
    assert_relative_eq!(ndc.x, (100.0 - pixel.x) / 50.0, epsilon = 1e-5);
    assert_relative_eq!(ndc.y, (50.0 - pixel.y) / 50.0, epsilon = 1e-5);
    assert_relative_eq!(ndc.x, -0.7, epsilon = 1e-5);
    assert_relative_eq!(ndc.y, 0.35, epsilon = 1e-5);
}

#[test]
fn plucker_map_uses_exact_pixel_centres() {
    let eye = Vec3::new(0.3, -1.0, 4.0);
    let cam = look_at(
        eye,
        Vec3::ZERO,
        Vec3::Y,
        intrinsics(64.0, 64.0, 32.0, 32.0),
        size(64, 64),
    )
    .unwrap();
    let map = plucker_map(&cam, 8, 8, None).unwrap();
    for (i, j) in [(0, 0), (7, 0), (3, 5), (7, 7)] {
        let rays = map.at(i, j);
        // The 8×8 cell (i, j) covers pixels [8i, 8i+8): its centre is 8i + 4.
        let centre = Vec2::new(8.0 * i as f32 + 4.0, 8.0 * j as f32 + 4.0);
        let on_ray = cam.unproject(centre, 2.5);
        assert!(distance_to_plucker_line(&rays, eye) < 1e-5);
        assert!(distance_to_plucker_line(&rays, on_ray) < 1e-5);
        let d = Vec3::new(rays[3], rays[4], rays[5]);
        assert_relative_eq!(d.length(), 1.0, epsilon = 1e-6);
        assert!(d.dot(on_ray - eye) > 0.0, "direction points into the scene");
    }
}

#[test]
fn relative_viewpoint_by_hand() {
    let k = intrinsics(10.0, 10.0, 5.0, 5.0);
    let a = look_at(
        Vec3::new(0.0, 0.0, 2.0),
        Vec3::ZERO,
        Vec3::Y,
        k,
        size(10, 10),
    )
    .unwrap();
    let b = look_at(
        Vec3::new(0.0, 3.0, 0.0),
        Vec3::ZERO,
        Vec3::Z,
        k,
        size(10, 10),
    )
    .unwrap();
    // Z up: a is at the pole (polar 0), b on the equator at azimuth 90°, radius 3.
    let v = RelativeViewpoint::between(&a, &b, UpAxis::Z);
    assert_relative_eq!(v.delta_polar, std::f32::consts::FRAC_PI_2, epsilon = 1e-6);
    assert_relative_eq!(v.delta_radius, 1.0, epsilon = 1e-6);
    // Y up: a is on the equator at azimuth 0 (+Z), b at the pole.
    let v = RelativeViewpoint::between(&a, &b, UpAxis::Y);
    assert_relative_eq!(v.delta_polar, -std::f32::consts::FRAC_PI_2, epsilon = 1e-6);
    let c = look_at(
        Vec3::new(2.0, 0.0, 0.0),
        Vec3::ZERO,
        Vec3::Y,
        k,
        size(10, 10),
    )
    .unwrap();
    let v = RelativeViewpoint::between(&a, &c, UpAxis::Y);
    assert_relative_eq!(v.sin_delta_azimuth, 1.0, epsilon = 1e-6);
    assert_relative_eq!(v.cos_delta_azimuth, 0.0, epsilon = 1e-6);
    assert_relative_eq!(v.delta_polar, 0.0, epsilon = 1e-6);
}

#[test]
fn normalisation_centres_an_orbit_and_inverts() {
    let target = Vec3::new(1.0, 2.0, 3.0);
    let orbit = Orbit {
        views: 6,
        elevation: 0.4,
        radius: 5.0,
        start_azimuth: 0.2,
        target,
        up: Vec3::Y,
    };
    let cams = orbit
        .cameras(intrinsics(50.0, 50.0, 32.0, 32.0), size(64, 64))
        .unwrap();
    let n = SceneNormalization::fit(&cams).unwrap();
    assert!((n.center - target).length() < 1e-4, "{:?}", n.center);
    assert_relative_eq!(n.scale, 0.2, epsilon = 1e-5);
    for cam in &cams {
        let moved = n.apply_camera(cam).unwrap();
        assert_relative_eq!(moved.center().length(), 1.0, epsilon = 1e-5);
        let back = n.invert_camera(&moved).unwrap();
        assert!((back.center() - cam.center()).length() < 1e-4);
        // The normalised camera sees the normalised point where the original sees the point.
        let p = target + Vec3::new(0.3, -0.2, 0.1);
        let a = cam.project(p).unwrap();
        let b = moved.project(n.apply_point(p)).unwrap();
        assert!((a.pixel - b.pixel).length() < 1e-3);
        assert_relative_eq!(n.apply_distance(a.depth), b.depth, epsilon = 1e-4);
    }
    assert!(matches!(
        SceneNormalization::fit(&cams[..1]),
        Err(CameraError::DegenerateCameraSet { .. })
    ));
    let path = LinearPath {
        views: 4,
        start: Vec3::ZERO,
        end: Vec3::X,
        forward: Vec3::NEG_Z,
        up: Vec3::Y,
    };
    let parallel = path
        .cameras(intrinsics(50.0, 50.0, 32.0, 32.0), size(64, 64))
        .unwrap();
    assert!(matches!(
        SceneNormalization::fit(&parallel),
        Err(CameraError::DegenerateCameraSet { .. })
    ));
}

#[test]
fn rigs_aim_at_their_target() {
    let k = intrinsics(50.0, 50.0, 32.0, 32.0);
    let target = Vec3::new(0.0, 1.0, 0.0);
    let orbit = Orbit {
        views: 8,
        elevation: 0.3,
        radius: 4.0,
        start_azimuth: 0.0,
        target,
        up: Vec3::Y,
    };
    let cams = orbit.cameras(k, size(64, 64)).unwrap();
    assert_eq!(cams.len(), 8);
    for cam in &cams {
        assert_relative_eq!((cam.center() - target).length(), 4.0, epsilon = 1e-5);
        let q = cam.project(target).unwrap();
        assert!((q.pixel - Vec2::new(32.0, 32.0)).length() < 1e-3);
        // Elevation 0.3 above the target: the camera is higher than it.
        assert_relative_eq!(
            cam.center().y - target.y,
            4.0 * 0.3f32.sin(),
            epsilon = 1e-5
        );
        // World up projects upwards in the image.
        let up = cam.project(target + Vec3::Y * 0.1).unwrap();
        assert!(up.pixel.y < 32.0);
    }
    assert_relative_eq!(cams[0].center().z, 4.0 * 0.3f32.cos(), epsilon = 1e-5);
    let path = LinearPath {
        views: 3,
        start: Vec3::new(-1.0, 0.0, 5.0),
        end: Vec3::new(1.0, 0.0, 5.0),
        forward: Vec3::NEG_Z,
        up: Vec3::Y,
    };
    let cams = path.cameras(k, size(64, 64)).unwrap();
    assert!((cams[1].center() - Vec3::new(0.0, 0.0, 5.0)).length() < 1e-6);
    // A point at depth 5 shifts by f·Δx/z = 50·1/5 = 10 pixels between neighbours.
    let p = Vec3::ZERO;
    let shift = cams[0].project(p).unwrap().pixel.x - cams[1].project(p).unwrap().pixel.x;
    assert_relative_eq!(shift, 10.0, epsilon = 1e-4);
}

#[test]
fn bad_input_is_a_typed_error() {
    let k = intrinsics(50.0, 50.0, 32.0, 32.0);
    assert!(matches!(
        look_at(Vec3::ONE, Vec3::ONE, Vec3::Y, k, size(8, 8)),
        Err(CameraError::DegenerateLookAt { .. })
    ));
    assert!(matches!(
        look_at(Vec3::Z, Vec3::ZERO, Vec3::Z, k, size(8, 8)),
        Err(CameraError::DegenerateLookAt { .. })
    ));
    assert!(matches!(
        look_at(
            Vec3::new(f32::NAN, 0.0, 0.0),
            Vec3::ZERO,
            Vec3::Y,
            k,
            size(8, 8)
        ),
        Err(CameraError::NotFinite { .. })
    ));
    assert!(matches!(
        Intrinsics::from_vertical_fov(0.0, 64, 64),
        Err(CameraError::NotPositive { field: "fov_y", .. })
    ));
    assert!(matches!(
        ImageSize::new(0, 4),
        Err(CameraError::NotPositive { field: "width", .. })
    ));
    let bad_k = intrinsics(-1.0, 50.0, 32.0, 32.0);
    assert!(matches!(
        PinholeCamera::new(bad_k, Extrinsics::IDENTITY, size(8, 8)),
        Err(CameraError::NotPositive { field: "fx", .. })
    ));
    let skewed = Extrinsics {
        rotation: Mat3::from_diagonal(Vec3::new(2.0, 1.0, 1.0)),
        translation: Vec3::ZERO,
    };
    assert!(matches!(
        PinholeCamera::new(k, skewed, size(8, 8)),
        Err(CameraError::NotARotation { .. })
    ));
    let cam = identity_camera();
    assert!(matches!(
        cam.unproject_depth_map(&[1.0; 3], 2, 2),
        Err(CameraError::SizeMismatch { .. })
    ));
    assert!(matches!(
        cam.unproject_depth_map(&[1.0, 1.0, 0.0, 1.0], 2, 2),
        Err(CameraError::NotPositive { field: "depth", .. })
    ));
    assert!(matches!(
        cam.unproject_depth_map(&[1.0, f32::INFINITY, 1.0, 1.0], 2, 2),
        Err(CameraError::NotFinite { .. })
    ));
}

const CAMERAS_TXT: &str = "# Camera list with one line of data per camera:
#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]
1 PINHOLE 640 480 500 510 320 240
2 SIMPLE_PINHOLE 320 240 300 160 120
3 OPENCV 640 480 500 500 319.5 239.5 0.1 -0.05 0.001 0.002
";

const IMAGES_TXT: &str = "# Image list with two lines of data per image:
1 1 0 0 0 0 0 4 1 front.png
100.0 200.0 -1

2 0.7071068 0 0.7071068 0 0 0 4 3 side view.png
10 20 3 30 40 -1
";

#[test]
fn colmap_text_model_imports() {
    let cameras = parse_cameras(CAMERAS_TXT, "cameras.txt").unwrap();
    assert_eq!(cameras.len(), 3);
    assert_relative_eq!(cameras[&2].intrinsics.fy, 300.0);
    assert_eq!(cameras[&3].distortion.unwrap().radial, [0.1, -0.05]);
    let views = parse_images(IMAGES_TXT, "images.txt", &cameras).unwrap();
    assert_eq!(views.len(), 2);
    assert_eq!(views[1].name, "side view.png");
    // View 1: identity rotation, t = (0, 0, 4): the centre is at z = −4 and the origin
    // projects to the principal point.
    assert!((views[0].camera.center() - Vec3::new(0.0, 0.0, -4.0)).length() < 1e-6);
    let q = views[0].camera.project(Vec3::ZERO).unwrap();
    assert!((q.pixel - Vec2::new(320.0, 240.0)).length() < 1e-4);
    // View 2: rotated 90° about +Y with the same t: the origin is still 4 units ahead.
    assert_relative_eq!(
        views[1].camera.project(Vec3::ZERO).unwrap().depth,
        4.0,
        epsilon = 1e-5
    );
    assert_relative_eq!(views[1].camera.center().length(), 4.0, epsilon = 1e-5);
}

#[test]
fn malformed_colmap_lines_name_their_line() {
    let err =
        parse_cameras("# header\n1 PINHOLE 640 480 500 510 320\n", "cameras.txt").unwrap_err();
    assert!(matches!(err, CameraError::Colmap { line: 2, .. }), "{err}");
    let err = parse_cameras("1 FISHEYE 640 480 1 2 3 4\n", "cameras.txt").unwrap_err();
    assert!(matches!(err, CameraError::Colmap { line: 1, .. }));
    let cameras = parse_cameras(CAMERAS_TXT, "cameras.txt").unwrap();
    let err = parse_images("1 1 0 0 0 0 0 x 1 a.png\n\n", "images.txt", &cameras).unwrap_err();
    assert!(
        err.to_string().contains("images.txt:1") && err.to_string().contains("TZ"),
        "{err}"
    );
    let err = parse_images("# c\n1 1 0 0 0 0 0 4 9 a.png\n\n", "images.txt", &cameras).unwrap_err();
    assert!(matches!(err, CameraError::Colmap { line: 2, .. }));
    let err = parse_images("1 0 0 0 0 0 0 4 1 a.png\n", "images.txt", &cameras).unwrap_err();
    assert!(err.to_string().contains("quaternion"));
}

/// A Bevy camera with its computed values set as Bevy's camera system sets them.
fn bevy_camera(projection: &Projection, target: UVec2) -> Camera {
    let mut camera = Camera::default();
    let mut projection = projection.clone();
    projection.update(target.x as f32, target.y as f32);
    camera.computed.target_info = Some(RenderTargetInfo {
        physical_size: target,
        scale_factor: 1.0,
    });
    camera.computed.clip_from_view = projection.get_clip_from_view();
    camera
}

fn assert_matches_bevy(
    transform: Transform,
    projection: Projection,
    target: UVec2,
    points: &[Vec3],
) {
    let global = GlobalTransform::from(transform);
    let ours = bevy_mvcustom::camera::bevy::from_bevy(&global, &projection, target).unwrap();
    let camera = bevy_camera(&projection, target);
    for &p in points {
        let theirs = camera.world_to_viewport(&global, p).unwrap();
        let mine = ours.project(p).unwrap().pixel;
        assert!(
            (mine - theirs).length() < 2e-3 * (1.0 + theirs.length() / 100.0),
            "{p}: ours {mine}, bevy {theirs}"
        );
    }
    // And back: the camera placed by `to_transform` is the same camera.
    let back = bevy_mvcustom::camera::bevy::to_transform(&ours);
    assert!(back.translation.abs_diff_eq(transform.translation, 1e-5));
    assert!(back.rotation.dot(transform.rotation).abs() > 1.0 - 1e-5);
}

#[test]
fn bevy_perspective_matches_world_to_viewport() {
    let points = [
        Vec3::ZERO,
        Vec3::new(0.5, 0.2, -0.3),
        Vec3::new(-1.0, 0.7, 0.4),
    ];
    for (eye, fov, target) in [
        (Vec3::new(0.0, 0.0, 5.0), 0.8, UVec2::new(640, 480)),
        (Vec3::new(3.0, 2.0, 4.0), 1.2, UVec2::new(320, 512)),
        (Vec3::new(-4.0, 1.0, -2.0), 0.5, UVec2::new(256, 256)),
    ] {
        let transform = Transform::from_translation(eye).looking_at(Vec3::ZERO, Vec3::Y);
        let projection = Projection::Perspective(PerspectiveProjection {
            fov,
            ..Default::default()
        });
        assert_matches_bevy(transform, projection, target, &points);
    }
}

#[test]
fn bevy_orthographic_matches_world_to_viewport() {
    let points = [
        Vec3::ZERO,
        Vec3::new(0.5, 0.2, -0.3),
        Vec3::new(-1.0, 0.7, 0.4),
    ];
    for (mode, scale, origin) in [
        (
            ScalingMode::FixedVertical {
                viewport_height: 4.0,
            },
            1.0,
            Vec2::new(0.5, 0.5),
        ),
        (
            ScalingMode::AutoMin {
                min_width: 3.0,
                min_height: 2.0,
            },
            1.5,
            Vec2::new(0.5, 0.5),
        ),
        (ScalingMode::WindowSize, 0.01, Vec2::new(0.0, 0.0)),
    ] {
        let mut ortho = OrthographicProjection::default_3d();
        ortho.scaling_mode = mode;
        ortho.scale = scale;
        ortho.viewport_origin = origin;
        let transform = Transform::from_xyz(2.0, 3.0, 6.0).looking_at(Vec3::ZERO, Vec3::Y);
        assert_matches_bevy(
            transform,
            Projection::Orthographic(ortho),
            UVec2::new(400, 300),
            &points,
        );
    }
}

#[test]
fn bevy_bad_cameras_are_typed_errors() {
    use bevy_mvcustom::camera::bevy::from_bevy;
    let projection = Projection::Perspective(PerspectiveProjection::default());
    let target = UVec2::new(64, 64);
    let nan = GlobalTransform::from(Transform::from_xyz(f32::NAN, 0.0, 0.0));
    assert!(matches!(
        from_bevy(&nan, &projection, target),
        Err(CameraError::NotFinite { .. })
    ));
    let zero_scale = GlobalTransform::from(Transform::from_scale(Vec3::ZERO));
    assert!(matches!(
        from_bevy(&zero_scale, &projection, target),
        Err(CameraError::ScaledTransform { .. })
    ));
    let zero_fov = Projection::Perspective(PerspectiveProjection {
        fov: 0.0,
        ..Default::default()
    });
    assert!(matches!(
        from_bevy(&GlobalTransform::IDENTITY, &zero_fov, target),
        Err(CameraError::NotPositive { field: "fov", .. })
    ));
    assert!(matches!(
        from_bevy(&GlobalTransform::IDENTITY, &projection, UVec2::new(0, 10)),
        Err(CameraError::NotPositive { .. })
    ));
}

fn arb_vec3(range: f32) -> impl Strategy<Value = Vec3> {
    (-range..range, -range..range, -range..range).prop_map(|(x, y, z)| Vec3::new(x, y, z))
}

fn arb_camera() -> impl Strategy<Value = PinholeCamera> {
    (
        arb_vec3(5.0),
        arb_vec3(0.5),
        20.0f32..200.0,
        0.7f32..1.4,
        16u32..256,
        16u32..256,
        any::<bool>(),
    )
        .prop_filter_map(
            "degenerate look-at",
            |(eye, target, f, aspect, w, h, ortho)| {
                let k = Intrinsics {
                    fx: f * aspect,
                    fy: f,
                    cx: w as f32 * 0.45,
                    cy: h as f32 * 0.55,
                    kind: if ortho {
                        ProjectionKind::Orthographic
                    } else {
                        ProjectionKind::Perspective
                    },
                };
                (eye.length() > 1.0)
                    .then(|| look_at(eye, target, Vec3::Y, k, ImageSize::new(w, h).ok()?).ok())
                    .flatten()
            },
        )
}

proptest! {
    #[test]
    fn unproject_then_project_is_identity(cam in arb_camera(), u in 0.0f32..1.0, v in 0.0f32..1.0, depth in 0.5f32..20.0) {
        let s = cam.size();
        let pixel = Vec2::new(u * s.width as f32, v * s.height as f32);
        let q = cam.project(cam.unproject(pixel, depth)).unwrap();
        prop_assert!((q.pixel - pixel).length() < 2e-3 * (1.0 + depth));
        prop_assert!((q.depth - depth).abs() < 1e-4 * (1.0 + depth));
    }

    #[test]
    fn opengl_round_trip(cam in arb_camera()) {
        let back = from_opengl_camera_to_world(opengl_camera_to_world(&cam), *cam.intrinsics(), cam.size()).unwrap();
        prop_assert!((back.center() - cam.center()).length() < 1e-4);
        prop_assert!(back.extrinsics().rotation.abs_diff_eq(cam.extrinsics().rotation, 1e-5));
    }

    #[test]
    fn pytorch3d_round_trip_and_projection(cam in arb_camera(), p in arb_vec3(1.0)) {
        prop_assume!(cam.kind() == ProjectionKind::Perspective);
        let p3d = to_pytorch3d(&cam);
        let back = from_pytorch3d(&p3d, cam.size()).unwrap();
        prop_assert!(back.extrinsics().rotation.abs_diff_eq(cam.extrinsics().rotation, 1e-5));
        prop_assert!((back.intrinsics().cx - cam.intrinsics().cx).abs() < 1e-3);
        if let (Some(q), Some(ndc)) = (cam.project(p), pytorch3d_project_ndc(&p3d, p)) {
            let s = 0.5 * cam.size().width.min(cam.size().height) as f32;
            let expected = Vec2::new((0.5 * cam.size().width as f32 - q.pixel.x) / s, (0.5 * cam.size().height as f32 - q.pixel.y) / s);
            prop_assert!((ndc - expected).length() < 1e-3 * (1.0 + expected.length()));
        }
    }

    #[test]
    fn bevy_transform_round_trip(cam in arb_camera()) {
        let t = bevy_mvcustom::camera::bevy::to_transform(&cam);
        let ext = bevy_mvcustom::camera::bevy::extrinsics_from_transform(&GlobalTransform::from(t)).unwrap();
        prop_assert!(ext.rotation.abs_diff_eq(cam.extrinsics().rotation, 1e-4));
        prop_assert!((ext.center() - cam.center()).length() < 1e-4);
    }

    #[test]
    fn depth_map_unprojection_round_trips(cam in arb_camera(), depth in proptest::collection::vec(0.5f32..10.0, 12)) {
        let points = cam.unproject_depth_map(&depth, 4, 3).unwrap();
        for (index, p) in points.iter().enumerate() {
            let (i, j) = ((index % 4) as f32, (index / 4) as f32);
            let q = cam.project_to_grid(*p, 4, 3).unwrap();
            prop_assert!((q.pixel - Vec2::new(i + 0.5, j + 0.5)).length() < 1e-3);
            prop_assert!((q.depth - depth[index]).abs() < 1e-3);
        }
    }
}
