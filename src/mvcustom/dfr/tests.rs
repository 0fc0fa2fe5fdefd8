use candle_core::{DType, Device, Tensor};
use glam::Vec3;

use super::*;
use crate::camera::{Extrinsics, ImageSize, Intrinsics, PinholeCamera};
use crate::diffusion::NoiseGenerator;
use crate::model::hook::{HookKind, UNetPath};
use crate::render::{Backend, DepthMap, FeatureRenderer, RenderSettings};

fn renderer(backend: Backend) -> FeatureRenderer {
    FeatureRenderer::new(RenderSettings {
        backend,
        ..RenderSettings::default()
    })
    .unwrap_or_else(|e| panic!("no {backend:?} renderer: {e}"))
}

fn cpu_renderer() -> FeatureRenderer {
    renderer(Backend::Cpu)
}

/// The CPU renderer and a GPU one (software rasterisers included, as the renderer's own
/// tests), unless `MVCUSTOM_SKIP_GPU_TESTS=1`.
fn renderers() -> Vec<FeatureRenderer> {
    let skip_gpu = std::env::var("MVCUSTOM_SKIP_GPU_TESTS").is_ok_and(|v| v == "1");
    let mut all = vec![cpu_renderer()];
    if !skip_gpu {
        all.push(renderer(Backend::Gpu));
    }
    all
}

/// A 64×48 camera at `center` looking down +Z (identity orientation).
fn camera_at(center: Vec3) -> PinholeCamera {
    PinholeCamera::new(
        Intrinsics::from_vertical_fov(0.9, 64, 48).unwrap(),
        Extrinsics::from_camera_to_world(glam::Mat3::IDENTITY, center),
        ImageSize::new(64, 48).unwrap(),
    )
    .unwrap()
}

fn site(name: &str, level: usize) -> HookSite {
    HookSite {
        name: name.into(),
        kind: HookKind::SpatialBlock,
        path: UNetPath::Up,
        level,
    }
}

fn point(name: &str, frames: usize) -> HookPoint<'_> {
    HookPoint {
        name,
        kind: HookKind::SpatialBlock,
        frames,
    }
}

fn step(index: usize, num_steps: usize) -> StepInfo {
    StepInfo {
        index,
        num_steps,
        timestep: 0.0,
    }
}

fn random(shape: &[usize], seed: u64) -> Tensor {
    NoiseGenerator::from_seed(seed)
        .randn(shape, &Device::Cpu)
        .unwrap()
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Geometry of 4 views at the latent grid 12×16 (level 0) and 6×8 (level 1), anchor view 1,
/// from a flat depth of 3 at 40×30 (a resolution of its own).
fn geometry(cameras: &[PinholeCamera]) -> AnchorGeometry {
    geometry_with(&cpu_renderer(), cameras)
}

fn geometry_with(renderer: &FeatureRenderer, cameras: &[PinholeCamera]) -> AnchorGeometry {
    let depth = DepthMap::new(40, 30, vec![3.0; 40 * 30]).unwrap();
    AnchorGeometry::build(
        renderer,
        &depth,
        cameras,
        1,
        80.0,
        &[(12, 16), (6, 8), (12, 16)],
        &Device::Cpu,
    )
    .unwrap()
}

#[test]
fn identity_cameras_and_flat_depth_return_the_anchor_features() {
    for renderer in renderers() {
        identity_returns_the_anchor(&renderer);
    }
}

fn identity_returns_the_anchor(renderer: &FeatureRenderer) {
    let backend = renderer.describe();
    let cameras = vec![camera_at(Vec3::ZERO); 4];
    let geometry = geometry_with(renderer, &cameras);
    for grid in [(12, 16), (6, 8)] {
        let visibility = geometry.grid(grid).unwrap().visibility();
        assert_eq!(visibility.dims(), &[4, 1, grid.0, grid.1]);
        let seen: Vec<f32> = visibility.sum((1, 2, 3)).unwrap().to_vec1().unwrap();
        let full = (grid.0 * grid.1) as f32;
        assert_eq!(
            seen,
            [full, 0.0, full, full],
            "full visibility but in the anchor"
        );
    }
    let l0 = site("up_blocks.1.attentions.0.transformer_blocks.0", 0);
    let l1 = site("up_blocks.0.attentions.0.transformer_blocks.0", 1);
    let mut hook = DfrHook::new(geometry, &[&l0, &l1], (12, 16), 0.5).unwrap();
    hook.begin_step(&step(0, 4));
    for (site, (h, w)) in [(&l0, (12, 16)), (&l1, (6, 8))] {
        // Guidance batch [uncond; text]: two halves of 4 views, each with its own anchor.
        let features = random(&[8, 5, h, w], 7);
        let out = hook
            .on_features(&point(&site.name, 4), &features)
            .unwrap()
            .expect("an active, selected layer is replaced");
        assert_eq!(out.dims(), features.dims());
        for half in 0..2 {
            let anchor = features.get(half * 4 + 1).unwrap();
            for view in 0..4 {
                let got = out.get(half * 4 + view).unwrap();
                let err = max_abs(&(got - &anchor).unwrap());
                assert!(
                    err < 1e-5,
                    "{backend}: half {half} view {view} at {h}×{w}: {err}"
                );
            }
        }
    }
    assert!(hook.resolve_time() > Duration::ZERO);
}

#[test]
fn a_sideways_camera_sees_the_anchor_shifted_by_its_disparity() {
    // Flat depth z = 3; a camera moved right by Δ sees anchor column i + 1 at its column i when
    // fx·Δ / z is one cell of the 12×16 grid.
    let anchor = camera_at(Vec3::ZERO);
    let fx_grid = anchor.resized(16, 12).unwrap().intrinsics().fx;
    let shift = 3.0 / fx_grid;
    let cameras = vec![anchor, camera_at(Vec3::new(shift, 0.0, 0.0))];
    let depth = DepthMap::new(16, 12, vec![3.0; 16 * 12]).unwrap();
    let features = random(&[3, 12, 16], 3);
    for renderer in renderers() {
        let backend = renderer.describe();
        let mut geometry = AnchorGeometry::build(
            &renderer,
            &depth,
            &cameras,
            0,
            80.0,
            &[(12, 16)],
            &Device::Cpu,
        )
        .unwrap();
        let rendered = geometry.render((12, 16), &features).unwrap();
        assert_eq!(rendered.dims(), &[2, 3, 12, 16]);
        assert_eq!(
            max_abs(&rendered.get(0).unwrap()),
            0.0,
            "anchor slot is zero"
        );
        let view = rendered.get(1).unwrap().narrow(2, 0, 15).unwrap();
        let expected = features.narrow(2, 1, 15).unwrap();
        let err = max_abs(&(view - expected).unwrap());
        assert!(err < 1e-4, "{backend}: shifted features differ by {err}");
        let mask = geometry
            .grid((12, 16))
            .unwrap()
            .visibility()
            .get(1)
            .unwrap();
        let seen: f32 = mask
            .narrow(2, 0, 15)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(seen, 12.0 * 15.0, "{backend}");
    }
}

#[test]
fn acts_only_during_the_first_fraction_of_steps_and_at_chosen_layers() {
    // Views see the anchor only partly: a camera moved sideways and one turned around.
    let behind = PinholeCamera::new(
        Intrinsics::from_vertical_fov(0.9, 64, 48).unwrap(),
        Extrinsics::from_camera_to_world(
            glam::Mat3::from_rotation_y(std::f32::consts::PI),
            Vec3::ZERO,
        ),
        ImageSize::new(64, 48).unwrap(),
    )
    .unwrap();
    let cameras = vec![
        camera_at(Vec3::new(-0.3, 0.0, 0.0)),
        camera_at(Vec3::ZERO),
        camera_at(Vec3::new(0.3, 0.0, 0.0)),
        behind,
    ];
    let chosen = site("up_blocks.1.attentions.2.transformer_blocks.0", 0);
    let mut hook = DfrHook::new(geometry(&cameras), &[&chosen], (12, 16), 0.6).unwrap();
    let other = "up_blocks.1.attentions.1.transformer_blocks.0";
    let features = random(&[4, 6, 12, 16], 1);
    let mut replaced = Vec::new();
    for index in 0..5 {
        hook.begin_step(&step(index, 5));
        for name in [chosen.name.as_str(), other] {
            let p = point(name, 4);
            let out = hook.on_features(&p, &features).unwrap();
            assert_eq!(out.is_some(), hook.wants(&p));
            if let Some(out) = out {
                replaced.push((index, name));
                // Views are replaced only where visible: the view behind sees nothing, the
                // anchor is kept.
                for keep in [1, 3] {
                    let diff = (out.get(keep).unwrap() - features.get(keep).unwrap()).unwrap();
                    assert_eq!(max_abs(&diff), 0.0, "view {keep} must be untouched");
                }
                for changed in [0, 2] {
                    let diff =
                        (out.get(changed).unwrap() - features.get(changed).unwrap()).unwrap();
                    assert!(
                        max_abs(&diff) > 0.1,
                        "view {changed} must be replaced in part"
                    );
                }
            }
        }
    }
    // progress 0, 0.2, 0.4 < 0.6 ≤ 0.6, 0.8.
    let name = chosen.name.as_str();
    assert_eq!(replaced, [(0, name), (1, name), (2, name)]);
}

#[test]
fn layers_without_geometry_and_mismatched_features_are_errors() {
    let cameras = vec![camera_at(Vec3::ZERO); 4];
    let missing = site("mid_block.attentions.0.transformer_blocks.0", 2);
    assert!(matches!(
        DfrHook::new(geometry(&cameras), &[&missing], (12, 16), 1.0),
        Err(crate::mvcustom::MvError::InvalidRequest {
            field: "techniques.dfr.layers",
            ..
        })
    ));
    let chosen = site("up_blocks.1.attentions.0.transformer_blocks.0", 0);
    let mut hook = DfrHook::new(geometry(&cameras), &[&chosen], (12, 16), 1.0).unwrap();
    hook.begin_step(&step(0, 1));
    let bad_frames = Tensor::zeros((6, 2, 12, 16), DType::F32, &Device::Cpu).unwrap();
    let err = hook
        .on_features(&point(&chosen.name, 3), &bad_frames)
        .unwrap_err();
    assert!(err.to_string().contains(&chosen.name), "{err}");
    let bad_grid = Tensor::zeros((4, 2, 6, 8), DType::F32, &Device::Cpu).unwrap();
    assert!(
        hook.on_features(&point(&chosen.name, 4), &bad_grid)
            .is_err()
    );
    let one = [camera_at(Vec3::ZERO)];
    let depth = DepthMap::new(4, 4, vec![1.0; 16]).unwrap();
    assert!(
        AnchorGeometry::build(
            &cpu_renderer(),
            &depth,
            &one,
            0,
            80.0,
            &[(4, 4)],
            &Device::Cpu
        )
        .is_err()
    );
}
