//! Anchor feature mesh renderer: rasterise and resolve times for a 64×64 mesh into 16 target
//! views at 64×64, with C = 320 and C = 1280 feature channels, on the GPU (whatever adapter
//! `GpuContext::headless` finds; in CI Mesa's lavapipe) and on the CPU reference path.
//!
//! `cargo bench --bench feature_mesh`; medians are in `target/criterion/*/new/estimates.json`.

use std::hint::black_box;

use bevy_mvcustom::camera::{Extrinsics, ImageSize, Intrinsics, PinholeCamera};
use bevy_mvcustom::render::{Backend, DepthMap, FeatureMap, FeatureRenderer, RenderSettings};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use glam::{Mat3, Vec3};

const GRID: u32 = 64;
const VIEWS: usize = 16;

/// A 512² anchor camera at the origin and 16 targets orbiting the scene centre (depth 4)
/// by up to ±30°.
fn cameras() -> (PinholeCamera, Vec<PinholeCamera>) {
    let size = ImageSize::new(512, 512).expect("non-zero size");
    let k = Intrinsics::from_vertical_fov(0.9, 512, 512).expect("valid field of view");
    let camera = |e| PinholeCamera::new(k, e, size).expect("valid camera");
    let anchor = camera(Extrinsics::IDENTITY);
    let pivot = Vec3::new(0.0, 0.0, 4.0);
    let targets = (0..VIEWS)
        .map(|v| {
            let angle = (v as f32 / (VIEWS - 1) as f32 - 0.5) * 60f32.to_radians();
            let rot = Mat3::from_rotation_y(angle);
            camera(Extrinsics::from_camera_to_world(rot, pivot - rot * pivot))
        })
        .collect();
    (anchor, targets)
}

/// A smooth bumpy surface around depth 4.
fn depth() -> DepthMap {
    let data = (0..GRID * GRID)
        .map(|p| {
            let (x, y) = (
                (p % GRID) as f32 / GRID as f32,
                (p / GRID) as f32 / GRID as f32,
            );
            4.0 + 0.4 * (6.0 * x).sin() * (4.0 * y).cos()
        })
        .collect();
    DepthMap::new(GRID, GRID, data).expect("positive finite depth")
}

fn features(channels: u32) -> FeatureMap {
    let n = (channels * GRID * GRID) as usize;
    let data = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    FeatureMap::new(channels, GRID, GRID, data).expect("finite features")
}

fn bench(c: &mut Criterion) {
    let (anchor, targets) = cameras();
    let depth = depth();
    for backend in [Backend::Gpu, Backend::Cpu] {
        let settings = RenderSettings {
            backend,
            ..RenderSettings::default()
        };
        let renderer = match FeatureRenderer::new(settings) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("skipping {backend:?}: {e}");
                continue;
            }
        };
        eprintln!("{backend:?}: {}", renderer.describe());
        let mesh = renderer.build_mesh(&depth, &anchor).expect("mesh");
        let mut group = c.benchmark_group("feature_mesh");
        group.sample_size(10);
        group.bench_function(BenchmarkId::new("rasterize", format!("{backend:?}")), |b| {
            b.iter(|| {
                renderer
                    .rasterize(black_box(&mesh), &targets, GRID, GRID)
                    .expect("rasterise")
            })
        });
        let mut raster = renderer
            .rasterize(&mesh, &targets, GRID, GRID)
            .expect("rasterise");
        for channels in [320u32, 1280] {
            let f = features(channels);
            group.bench_with_input(
                BenchmarkId::new(format!("resolve/{backend:?}"), channels),
                &f,
                |b, f| b.iter(|| raster.resolve(black_box(f)).expect("resolve")),
            );
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
