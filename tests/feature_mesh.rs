//! The anchor feature mesh and its renderers against analytic answers, and the wgpu renderer
//! against the CPU reference.
//!
//! GPU tests need an adapter (CI: Mesa's lavapipe through `WGPU_BACKEND=vulkan`). Without one
//! they fail, unless `MVCUSTOM_SKIP_GPU_TESTS=1` is set, in which case they only run the CPU.

use bevy_mvcustom::camera::{Extrinsics, ImageSize, Intrinsics, PinholeCamera, ProjectionKind};
use bevy_mvcustom::render::{
    AnchorMesh, Backend, DepthMap, FeatureMap, FeatureRenderer, GpuContext, RenderError,
    RenderSettings, ViewFeatures, Visibility,
};
use glam::{Mat3, Vec3};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::f32::consts::TAU;

// ---------------------------------------------------------------------------------------------
// Helpers

/// The renderer of `backend`; for the GPU, `None` only when skipping is explicitly allowed.
fn renderer(backend: Backend, settings: RenderSettings) -> Option<FeatureRenderer> {
    let settings = RenderSettings {
        backend,
        ..settings
    };
    match FeatureRenderer::new(settings) {
        Ok(r) => Some(r),
        Err(e) if backend == Backend::Gpu && skip_gpu() => {
            eprintln!("skipping GPU half of the test (MVCUSTOM_SKIP_GPU_TESTS=1): {e}");
            None
        }
        Err(e) => panic!("cannot create the {backend:?} renderer: {e}"),
    }
}

fn skip_gpu() -> bool {
    std::env::var("MVCUSTOM_SKIP_GPU_TESTS").is_ok_and(|v| v == "1")
}

/// The CPU renderer, then the GPU one when there is one.
fn renderers(settings: RenderSettings) -> Vec<FeatureRenderer> {
    [Backend::Cpu, Backend::Gpu]
        .into_iter()
        .filter_map(|b| renderer(b, settings))
        .collect()
}

/// A perspective camera with a `size × size` image and the given vertical field of view.
fn camera(size: u32, fov: f32, extrinsics: Extrinsics) -> PinholeCamera {
    PinholeCamera::new(
        Intrinsics::from_vertical_fov(fov, size, size).unwrap(),
        extrinsics,
        ImageSize::new(size, size).unwrap(),
    )
    .unwrap()
}

/// A camera at world position `center` with the identity orientation.
fn at(center: Vec3) -> Extrinsics {
    Extrinsics::from_camera_to_world(Mat3::IDENTITY, center)
}

/// A smooth positive depth map: `base` plus a few low-frequency waves.
fn smooth_depth(rng: &mut StdRng, w: u32, h: u32, base: f32, amplitude: f32) -> DepthMap {
    let waves: Vec<[f32; 4]> = (0..3)
        .map(|_| {
            [
                rng.random_range(0.5..2.5),
                rng.random_range(0.5..2.5),
                rng.random_range(0.0..TAU),
                rng.random_range(0.3..1.0),
            ]
        })
        .collect();
    let mut data = Vec::with_capacity((w * h) as usize);
    for j in 0..h {
        for i in 0..w {
            let (x, y) = (i as f32 / w as f32, j as f32 / h as f32);
            let bump: f32 = waves
                .iter()
                .map(|[fx, fy, ph, a]| a * (TAU * (fx * x + fy * y) + ph).sin())
                .sum();
            data.push(base + amplitude * bump / 3.0);
        }
    }
    DepthMap::new(w, h, data).unwrap()
}

fn random_features(rng: &mut StdRng, c: u32, h: u32, w: u32) -> FeatureMap {
    let data = (0..c * h * w)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    FeatureMap::new(c, h, w, data).unwrap()
}

/// Feature `(c, i, j)` of a map whose channels are linear in the grid coordinates.
fn linear_feature(c: u32, i: f32, j: f32) -> f32 {
    (c as f32 + 1.0) * 0.1 * i - 0.05 * j + c as f32
}

fn linear_features(c: u32, h: u32, w: u32) -> FeatureMap {
    let mut data = Vec::new();
    for ch in 0..c {
        for j in 0..h {
            for i in 0..w {
                data.push(linear_feature(ch, i as f32, j as f32));
            }
        }
    }
    FeatureMap::new(c, h, w, data).unwrap()
}

/// Renders `features` of the mesh lifted from `depth` into `targets`.
fn render(
    r: &FeatureRenderer,
    depth: &DepthMap,
    anchor: &PinholeCamera,
    targets: &[PinholeCamera],
    (w, h): (u32, u32),
    features: &FeatureMap,
) -> (Visibility, ViewFeatures) {
    let mesh = r.build_mesh(depth, anchor).unwrap();
    let mut raster = r.rasterize(&mesh, targets, w, h).unwrap();
    let rendered = raster.resolve(features).unwrap();
    (raster.visibility().clone(), rendered)
}

// ---------------------------------------------------------------------------------------------
// (a) identity

/// Seen from the anchor camera itself, every mesh vertex lands on its own pixel centre, so the
/// rendered features are the input features. Pixel centres on the mesh's right and bottom
/// boundary (last column, last row) fall on right/bottom edges, which the top-left fill rule
/// leaves uncovered; every other pixel is visible.
#[test]
fn identity_camera_reproduces_features_where_visible() {
    let mut rng = StdRng::seed_from_u64(1);
    let (w, h, c) = (24u32, 20u32, 6u32);
    let anchor = PinholeCamera::new(
        Intrinsics {
            fx: 210.0,
            fy: 190.0,
            cx: 93.0,
            cy: 81.0,
            kind: ProjectionKind::Perspective,
        },
        Extrinsics::from_camera_to_world(Mat3::from_rotation_y(0.4), Vec3::new(0.3, -0.2, 1.0)),
        ImageSize::new(192, 160).unwrap(),
    )
    .unwrap();
    let depth = smooth_depth(&mut rng, w, h, 4.0, 0.6);
    let features = random_features(&mut rng, c, h, w);
    for r in renderers(RenderSettings::default()) {
        let (vis, out) = render(&r, &depth, &anchor, &[anchor], (w, h), &features);
        let mask = vis.mask();
        let rendered_depth = vis.depth();
        for j in 0..h as usize {
            for i in 0..w as usize {
                let p = j * w as usize + i;
                let interior = i + 1 < w as usize && j + 1 < h as usize;
                assert_eq!(
                    mask.data()[p],
                    interior as u8 as f32,
                    "{}: pixel ({i}, {j})",
                    r.describe()
                );
                if !interior {
                    continue;
                }
                let d = depth.data()[p];
                assert!(
                    (rendered_depth.data()[p] - d).abs() <= 1e-5 * d,
                    "depth at ({i}, {j})"
                );
                for ch in 0..c as usize {
                    let n = (w * h) as usize;
                    let (got, want) = (out.data()[ch * n + p], features.data()[ch * n + p]);
                    assert!(
                        (got - want).abs() <= 1e-5,
                        "{}: c{ch} ({i}, {j}): {got} vs {want}",
                        r.describe()
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (b) plane shift

/// A fronto-parallel plane at depth Z seen from a camera moved sideways by b shifts by
/// f·b/Z pixels. With features linear in the grid coordinates, the rendered feature at target
/// pixel (p, q) is exactly the input feature at (p + shift, q).
#[test]
fn fronto_parallel_plane_shifts_by_the_analytic_disparity() {
    let (size, grid, c) = (128u32, 32u32, 3u32);
    let z = 5.0f32;
    let anchor = camera(size, 0.9, Extrinsics::IDENTITY);
    let f_grid = anchor.intrinsics().fx * grid as f32 / size as f32;
    let shift = 2.25f32; // pixels of the output grid
    let baseline = shift * z / f_grid;
    let target = camera(size, 0.9, at(Vec3::new(baseline, 0.0, 0.0)));
    let depth = DepthMap::new(grid, grid, vec![z; (grid * grid) as usize]).unwrap();
    let features = linear_features(c, grid, grid);
    for r in renderers(RenderSettings::default()) {
        let (vis, out) = render(&r, &depth, &anchor, &[target], (grid, grid), &features);
        let n = (grid * grid) as usize;
        let mut visible = 0;
        for q in 0..grid {
            for p in 0..grid {
                let src = p as f32 + shift; // source grid coordinate (vertex units)
                // Rows: top mesh edge included, bottom excluded (top-left rule); columns: the
                // shifted span [0, grid − 1] never touches a pixel centre.
                let expect_visible = q + 1 < grid && src <= (grid - 1) as f32;
                let idx = (q * grid + p) as usize;
                let m = vis.mask().data()[idx];
                assert_eq!(
                    m,
                    expect_visible as u8 as f32,
                    "{}: pixel ({p}, {q})",
                    r.describe()
                );
                if !expect_visible {
                    continue;
                }
                visible += 1;
                assert!((vis.depth().data()[idx] - z).abs() < 1e-4);
                for ch in 0..c {
                    let want = linear_feature(ch, src, q as f32);
                    let got = out.data()[ch as usize * n + idx];
                    assert!(
                        (got - want).abs() < 2e-4,
                        "{}: c{ch} ({p}, {q}): {got} vs {want}",
                        r.describe()
                    );
                }
            }
        }
        // Columns p with p + 2.25 ≤ 31 (p ≤ 28), rows 0..=30.
        assert_eq!(visible, 29 * 31);
    }
}

// ---------------------------------------------------------------------------------------------
// (c) disocclusion band

/// A box at depth Zf in front of a plane at Zb (anchor at the origin), seen from a camera moved
/// right by b: the box shifts left by df = f·b/Zf, the plane by db = f·b/Zb. The triangles
/// between box and plane are dropped (depth discontinuity), so on each box row the plane is
/// uncovered between the box's right edge (last box vertex, u = i1 + ½ − df) and the first plane
/// vertex (u = i1 + 3/2 − db): a band of analytic width 1 + df − db. On the left the box
/// overlaps the plane (df − db > 1) and wins the depth test.
#[test]
fn box_in_front_of_plane_leaves_the_analytic_disocclusion_band() {
    let (size, grid) = (160u32, 40u32);
    let (zb, zf) = (8.0f32, 4.0f32);
    let (i0, i1, j0, j1) = (14u32, 25u32, 12u32, 27u32); // box vertex columns / rows, inclusive
    let anchor = camera(size, 0.8, Extrinsics::IDENTITY);
    let f_grid = anchor.intrinsics().fx * grid as f32 / size as f32;
    let df = 4.4f32;
    let baseline = df * zf / f_grid;
    let db = f_grid * baseline / zb; // 2.2
    let target = camera(size, 0.8, at(Vec3::new(baseline, 0.0, 0.0)));
    let mut d = vec![zb; (grid * grid) as usize];
    for j in j0..=j1 {
        for i in i0..=i1 {
            d[(j * grid + i) as usize] = zf;
        }
    }
    let depth = DepthMap::new(grid, grid, d).unwrap();
    let features = linear_features(1, grid, grid);
    // Continuous spans covered along a box row, in target pixel coordinates.
    let plane_left = (0.5 - db, i0 as f32 - 0.5 - db);
    let box_span = (i0 as f32 + 0.5 - df, i1 as f32 + 0.5 - df);
    let plane_right = (i1 as f32 + 1.5 - db, grid as f32 - 0.5 - db);
    let band = (box_span.1, plane_right.0);
    assert!((band.1 - band.0 - (1.0 + df - db)).abs() < 1e-4);
    let inside = |u: f32, (a, b): (f32, f32)| a < u && u < b;
    let band_pixels = (0..grid).filter(|&p| inside(p as f32 + 0.5, band)).count();
    assert_eq!(band_pixels, 3); // centres in (i1 − 3.9, i1 − 0.7)
    for r in renderers(RenderSettings::default()) {
        let (vis, _) = render(&r, &depth, &anchor, &[target], (grid, grid), &features);
        let (mask, rdepth) = (vis.mask(), vis.depth());
        for q in j0 + 1..j1 - 1 {
            let mut band_seen = 0;
            for p in 0..grid {
                let u = p as f32 + 0.5;
                let idx = (q * grid + p) as usize;
                let on_box = inside(u, box_span);
                let on_plane = inside(u, plane_left) || inside(u, plane_right);
                let m = mask.data()[idx];
                assert_eq!(
                    m,
                    (on_box || on_plane) as u8 as f32,
                    "{}: ({p}, {q})",
                    r.describe()
                );
                if on_box {
                    assert!(
                        (rdepth.data()[idx] - zf).abs() < 1e-4,
                        "box depth at ({p}, {q})"
                    );
                } else if on_plane {
                    assert!(
                        (rdepth.data()[idx] - zb).abs() < 1e-4,
                        "plane depth at ({p}, {q})"
                    );
                }
                band_seen += inside(u, band) as usize;
                if inside(u, band) {
                    assert_eq!(vis.disocclusion().data()[idx], 1.0);
                }
            }
            assert_eq!(band_seen, band_pixels);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (d) GPU against CPU

/// A camera near the anchor, looking roughly at the scene, perspective or orthographic.
fn random_target(rng: &mut StdRng, size: u32, orthographic: bool) -> PinholeCamera {
    let rot = Mat3::from_euler(
        glam::EulerRot::YXZ,
        rng.random_range(-0.3..0.3),
        rng.random_range(-0.2..0.2),
        rng.random_range(-0.1..0.1),
    );
    let center = Vec3::new(
        rng.random_range(-0.8..0.8),
        rng.random_range(-0.5..0.5),
        rng.random_range(-0.5..0.5),
    );
    let mut k = Intrinsics::from_vertical_fov(rng.random_range(0.6..1.1), size, size).unwrap();
    if orthographic {
        k.kind = ProjectionKind::Orthographic;
        k.fx = size as f32 / 4.0;
        k.fy = k.fx;
    }
    PinholeCamera::new(
        k,
        Extrinsics::from_camera_to_world(rot, center),
        ImageSize::new(size, size).unwrap(),
    )
    .unwrap()
}

/// Masks of the two backends agree (IoU ≥ 0.99); where both pick the same triangle, features
/// and depth agree to float noise; everywhere both see the mesh, features agree closely.
#[test]
fn gpu_matches_cpu_reference_on_random_scenes() {
    let Some(gpu) = renderer(Backend::Gpu, RenderSettings::default()) else {
        return;
    };
    let cpu = renderer(Backend::Cpu, RenderSettings::default()).unwrap();
    for seed in 0..3u64 {
        let mut rng = StdRng::seed_from_u64(100 + seed);
        let (w, h, c) = (32u32, 28u32, 8u32);
        let (out_w, out_h) = (40u32, 36u32);
        let anchor = camera(256, rng.random_range(0.7..1.0), Extrinsics::IDENTITY);
        let depth = smooth_depth(&mut rng, w, h, 4.0, 1.2);
        let targets: Vec<_> = (0..6)
            .map(|k| random_target(&mut rng, 256, k == 5))
            .collect();
        let features = random_features(&mut rng, c, h, w);
        let (vc, fc) = render(&cpu, &depth, &anchor, &targets, (out_w, out_h), &features);
        let (vg, fg) = render(&gpu, &depth, &anchor, &targets, (out_w, out_h), &features);
        let (mut both, mut either, mut same_tri) = (0usize, 0usize, 0usize);
        let mut worst_same = 0.0f32;
        let mut worst_any = 0.0f32;
        let n = (out_w * out_h) as usize;
        for (idx, (a, b)) in vc.fragments().iter().zip(vg.fragments()).enumerate() {
            let (sa, sb) = (a.triangle != 0, b.triangle != 0);
            either += (sa || sb) as usize;
            if !(sa && sb) {
                continue;
            }
            both += 1;
            let (k, p) = (idx / n, idx % n);
            let feature_error = (0..c as usize)
                .map(|ch| {
                    let o = (k * c as usize + ch) * n + p;
                    (fc.data()[o] - fg.data()[o]).abs()
                })
                .fold(0.0, f32::max);
            worst_any = worst_any.max(feature_error);
            if a.triangle == b.triangle {
                same_tri += 1;
                worst_same = worst_same.max(feature_error);
                assert!(
                    (a.depth - b.depth).abs() <= 1e-4 * a.depth,
                    "depth {a:?} vs {b:?}"
                );
            }
        }
        let iou = both as f64 / either as f64;
        eprintln!(
            "seed {seed}: IoU {iou:.5} ({both}/{either}), same triangle {same_tri}, \
             max feature error same-triangle {worst_same:.2e}, any {worst_any:.2e}"
        );
        assert!(either > n, "scene barely visible: {either} pixels");
        assert!(iou >= 0.99, "seed {seed}: mask IoU {iou}");
        assert!(
            same_tri as f64 >= 0.99 * both as f64,
            "seed {seed}: {same_tri}/{both} same triangle"
        );
        assert!(
            worst_same <= 5e-5,
            "seed {seed}: feature error {worst_same}"
        );
    }
}

/// C = 1280 works, in several resolve chunks, and the same rasterisation serves features of
/// other channel counts afterwards.
#[test]
fn wide_features_resolve_in_chunks_and_rasterisation_is_reused() {
    let settings = RenderSettings {
        resolve_chunk_bytes: Some(300 * 16 * 16 * 4), // 300 planes per dispatch
        ..RenderSettings::default()
    };
    let mut rng = StdRng::seed_from_u64(7);
    let (g, anchor) = (16u32, camera(64, 0.9, Extrinsics::IDENTITY));
    let depth = smooth_depth(&mut rng, g, g, 3.0, 0.5);
    let targets = [
        camera(64, 0.9, at(Vec3::new(0.2, 0.0, 0.0))),
        camera(64, 0.9, at(Vec3::new(-0.1, 0.1, 0.2))),
    ];
    let mut results = Vec::new();
    for r in renderers(settings) {
        let mesh = r.build_mesh(&depth, &anchor).unwrap();
        let mut raster = r.rasterize(&mesh, &targets, g, g).unwrap();
        let outs: Vec<ViewFeatures> = [1280u32, 4, 320]
            .into_iter()
            .map(|c| {
                raster
                    .resolve(&random_features(
                        &mut StdRng::seed_from_u64(c as u64),
                        c,
                        g,
                        g,
                    ))
                    .unwrap()
            })
            .collect();
        assert_eq!(outs[0].data().len(), 2 * 1280 * 16 * 16);
        results.push((raster.visibility().clone(), outs));
    }
    // The CPU and GPU results on the same triangles agree.
    if let [(vc, oc), (vg, og)] = &results[..] {
        for (a, b) in oc.iter().zip(og) {
            let n = (g * g) as usize;
            let c = a.channels() as usize;
            for (idx, (fa, fb)) in vc.fragments().iter().zip(vg.fragments()).enumerate() {
                if fa.triangle == 0 || fa.triangle != fb.triangle {
                    continue;
                }
                let (k, p) = (idx / n, idx % n);
                for ch in 0..c {
                    let o = (k * c + ch) * n + p;
                    assert!(
                        (a.data()[o] - b.data()[o]).abs() <= 1e-4,
                        "c {c}, channel {ch}"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Masks at latent size

#[test]
fn masks_downsample_by_area_average() {
    let r = renderer(Backend::Cpu, RenderSettings::default()).unwrap();
    let depth = DepthMap::new(16, 16, vec![3.0; 256]).unwrap();
    let anchor = camera(64, 0.9, Extrinsics::IDENTITY);
    let mesh = r.build_mesh(&depth, &anchor).unwrap();
    let raster = r.rasterize(&mesh, &[anchor], 16, 16).unwrap();
    // Visible: all but the last row and column (see the identity test).
    let small = raster.visibility().mask().area_resize(4, 4).unwrap();
    for (idx, &v) in small.data().iter().enumerate() {
        let (i, j) = (idx % 4, idx / 4);
        let want = match (i == 3, j == 3) {
            (false, false) => 1.0,
            (true, true) => 9.0 / 16.0,
            _ => 12.0 / 16.0,
        };
        assert!((v - want).abs() < 1e-6, "({i}, {j}): {v}");
    }
    let holes = raster
        .visibility()
        .disocclusion()
        .area_resize(4, 4)
        .unwrap();
    assert!(
        holes
            .data()
            .iter()
            .zip(small.data())
            .all(|(a, b)| (a + b - 1.0).abs() < 1e-6)
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn bad_depth_is_a_typed_error() {
    for (value, bad_positive) in [
        (f32::NAN, false),
        (f32::INFINITY, false),
        (0.0, true),
        (-2.0, true),
    ] {
        let mut d = vec![1.0f32; 12];
        d[7] = value;
        match DepthMap::new(4, 3, d) {
            Err(RenderError::NotFinite {
                field: "depth",
                index: 7,
                ..
            }) if !bad_positive => {}
            Err(RenderError::NotPositive {
                field: "depth",
                index: 7,
                ..
            }) if bad_positive => {}
            other => panic!("depth {value}: {other:?}"),
        }
    }
    assert!(matches!(
        DepthMap::new(4, 3, vec![1.0; 11]),
        Err(RenderError::SizeMismatch {
            field: "depth",
            expected: 12,
            found: 11,
            ..
        })
    ));
    assert!(matches!(
        DepthMap::new(0, 3, vec![]),
        Err(RenderError::Empty { .. })
    ));
}

#[test]
fn bad_features_are_typed_errors() {
    assert!(matches!(
        FeatureMap::new(0, 4, 4, vec![]),
        Err(RenderError::Empty { .. })
    ));
    assert!(matches!(
        FeatureMap::new(2, 4, 4, vec![0.0; 31]),
        Err(RenderError::SizeMismatch {
            field: "features",
            ..
        })
    ));
    let r = renderer(Backend::Cpu, RenderSettings::default()).unwrap();
    let anchor = camera(64, 0.9, Extrinsics::IDENTITY);
    let mesh = r
        .build_mesh(&DepthMap::new(8, 8, vec![2.0; 64]).unwrap(), &anchor)
        .unwrap();
    let mut raster = r.rasterize(&mesh, &[anchor], 8, 8).unwrap();
    let wrong_grid = FeatureMap::new(3, 8, 7, vec![0.0; 3 * 56]).unwrap();
    assert!(matches!(
        raster.resolve(&wrong_grid),
        Err(RenderError::GridMismatch {
            expected: (8, 8),
            found: (8, 7),
            ..
        })
    ));
}

#[test]
fn bad_views_and_settings_are_typed_errors() {
    let anchor = camera(64, 0.9, Extrinsics::IDENTITY);
    let depth = DepthMap::new(8, 8, vec![2.0; 64]).unwrap();
    let mesh = AnchorMesh::build(&depth, &anchor, 80.0).unwrap();
    let r = renderer(Backend::Cpu, RenderSettings::default()).unwrap();
    assert!(matches!(
        r.rasterize(&mesh, &[], 8, 8),
        Err(RenderError::Empty { .. })
    ));
    assert!(matches!(
        r.rasterize(&mesh, &[anchor], 0, 8),
        Err(RenderError::Empty { .. })
    ));
    // A focal length that overflows when scaled to a finer output grid.
    let mut k = *anchor.intrinsics();
    k.fx = f32::MAX;
    let huge = PinholeCamera::new(k, Extrinsics::IDENTITY, anchor.size()).unwrap();
    assert!(matches!(
        r.rasterize(&mesh, &[anchor, huge], 128, 128),
        Err(RenderError::Camera(_))
    ));
    // A focal length whose projection of the mesh overflows f32.
    k.fx = f32::MAX / 4.0;
    let far_off = PinholeCamera::new(k, at(Vec3::new(-1.0e4, 0.0, 0.0)), anchor.size()).unwrap();
    assert!(matches!(
        r.rasterize(&mesh, &[anchor, far_off], 8, 8),
        Err(RenderError::DegenerateView { view: 1, .. })
    ));
    // Degenerate cameras cannot be built at all.
    k.fx = 0.0;
    assert!(PinholeCamera::new(k, Extrinsics::IDENTITY, anchor.size()).is_err());
    for settings in [
        RenderSettings {
            near_plane: 0.0,
            ..Default::default()
        },
        RenderSettings {
            max_surface_angle_deg: 90.0,
            ..Default::default()
        },
        RenderSettings {
            resolve_chunk_bytes: Some(0),
            ..Default::default()
        },
    ] {
        let settings = RenderSettings {
            backend: Backend::Cpu,
            ..settings
        };
        assert!(matches!(
            FeatureRenderer::new(settings),
            Err(RenderError::InvalidSetting { .. })
        ));
    }
}

/// A camera facing away sees nothing (not an error); a mesh behind the near plane is skipped.
#[test]
fn geometry_behind_the_camera_is_not_drawn() {
    let anchor = camera(64, 0.9, Extrinsics::IDENTITY);
    let depth = DepthMap::new(8, 8, vec![2.0; 64]).unwrap();
    let away = camera(
        64,
        0.9,
        Extrinsics::from_camera_to_world(Mat3::from_rotation_y(std::f32::consts::PI), Vec3::ZERO),
    );
    for r in renderers(RenderSettings::default()) {
        let mesh = r.build_mesh(&depth, &anchor).unwrap();
        let raster = r.rasterize(&mesh, &[away], 8, 8).unwrap();
        assert!(
            raster.visibility().mask().data().iter().all(|&m| m == 0.0),
            "{}",
            r.describe()
        );
    }
}

/// `Auto` uses a hardware adapter when there is one and the CPU path otherwise (no adapter, or
/// only a software rasteriser); an app's device is used as given unless the setting says CPU.
#[test]
fn auto_prefers_hardware_gpus_and_falls_back_to_the_cpu() {
    let auto = renderer(Backend::Auto, RenderSettings::default()).unwrap();
    let headless = GpuContext::headless();
    let hardware = headless.as_ref().is_ok_and(|ctx| !ctx.is_software());
    assert_eq!(auto.uses_gpu(), hardware, "{}", auto.describe());
    let Ok(ctx) = headless else {
        assert!(
            skip_gpu(),
            "no GPU adapter for the context half of the test"
        );
        return;
    };
    let with = |backend| {
        let settings = RenderSettings {
            backend,
            ..RenderSettings::default()
        };
        FeatureRenderer::with_context(settings, ctx.clone())
            .unwrap()
            .uses_gpu()
    };
    assert!(with(Backend::Gpu));
    assert!(!with(Backend::Cpu));
    assert_eq!(with(Backend::Auto), hardware);
}
