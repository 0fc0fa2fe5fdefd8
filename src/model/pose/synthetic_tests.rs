//! FeatureNeRF learns a synthetic scene: a textured square in the plane z = 0 of the
//! normalised scene, seen by known cameras on the unit sphere. Images (colour and mask) are
//! computed analytically per feature-grid cell; the reference "features" are a fixed random
//! projection of the reference colours. A few hundred CPU steps of AdamW on the opacity and
//! colour losses of random target views (azimuths drawn each step) must lower both and render
//! a held-out view closer to its ground truth.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use glam::Vec3;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::field::{FeatureNerf, TextConditioning};
use super::geometry::{Jitter, ReferenceGrid, SamplingConfig, sample_geometry};
use crate::camera::{ImageSize, Intrinsics, PinholeCamera, look_at};
use crate::train::{AdamW, AdamWConfig, initialise_for_training, named_vars};

/// Feature-grid side of every view.
const GRID: usize = 10;
/// Feature width.
const CHANNELS: usize = 8;
/// Half the side of the textured square.
const HALF: f32 = 0.45;

/// The field alone, without a prompt.
struct NoText;
impl TextConditioning for NoText {
    fn attend(&self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        tokens.zeros_like()
    }
}

/// A camera on the unit sphere at azimuth `angle`, looking at the origin.
fn camera(angle: f32) -> PinholeCamera {
    let k = Intrinsics::from_vertical_fov(0.9, 40, 40).unwrap();
    let eye = Vec3::new(angle.sin(), 0.3, angle.cos()).normalize();
    look_at(eye, Vec3::ZERO, Vec3::Y, k, ImageSize::new(40, 40).unwrap()).unwrap()
}

/// The square's colour at `(x, y)`.
fn texture(x: f32, y: f32) -> [f32; 3] {
    [
        0.5 + 0.4 * (5.0 * x).sin(),
        0.5 + 0.4 * (4.0 * y).cos(),
        if (x > 0.0) ^ (y > 0.0) { 0.9 } else { 0.1 },
    ]
}

/// Colour `[cells, 3]` and mask `[cells]` of `camera`'s grid cells (ray through each centre).
fn ground_truth(camera: &PinholeCamera) -> (Vec<f32>, Vec<f32>) {
    let mut rgb = Vec::with_capacity(GRID * GRID * 3);
    let mut mask = Vec::with_capacity(GRID * GRID);
    for j in 0..GRID as u32 {
        for i in 0..GRID as u32 {
            let ray = camera.ray(camera.grid_cell_center(i, j, GRID as u32, GRID as u32));
            let t = -ray.origin.z / ray.direction.z;
            let p = ray.origin + ray.direction * t;
            let hit = t > 0.0 && p.x.abs() <= HALF && p.y.abs() <= HALF;
            rgb.extend(if hit { texture(p.x, p.y) } else { [0.0; 3] });
            mask.push(if hit { 1.0 } else { 0.0 });
        }
    }
    (rgb, mask)
}

struct View {
    camera: PinholeCamera,
    rgb: Tensor,
    mask: Tensor,
}

fn view(angle: f32) -> View {
    let camera = camera(angle);
    let (rgb, mask) = ground_truth(&camera);
    View {
        camera,
        rgb: Tensor::from_vec(rgb, (GRID * GRID, 3), &Device::Cpu).unwrap(),
        mask: Tensor::from_vec(mask, GRID * GRID, &Device::Cpu).unwrap(),
    }
}

/// Opacity and colour mean squared errors of the field's render of `target`.
fn losses(
    field: &FeatureNerf,
    features: &Tensor,
    grid: &ReferenceGrid<'_>,
    target: &View,
    jitter: &mut Jitter<'_>,
) -> (Tensor, Tensor) {
    let rays = GRID * GRID;
    let g = sample_geometry(
        field.sampling(),
        &target.camera,
        GRID as u32,
        GRID as u32,
        0,
        rays,
        grid,
        jitter,
    );
    let out = field.render(features, &g, &NoText).unwrap();
    let opacity = (out.opacity - &target.mask)
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap();
    let rgb = (out.rgb - &target.rgb)
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap();
    (opacity, rgb)
}

fn scalar(t: &Tensor) -> f32 {
    t.to_scalar::<f32>().unwrap()
}

#[test]
fn feature_nerf_learns_a_textured_plane() {
    let device = Device::Cpu;
    let references: Vec<View> = [-0.8f32, -0.25, 0.3, 0.8].into_iter().map(view).collect();
    let held_out = view(0.55);
    let cameras: Vec<PinholeCamera> = references.iter().map(|v| v.camera).collect();
    let grid = ReferenceGrid {
        cameras: &cameras,
        width: GRID as u32,
        height: GRID as u32,
    };
    // Reference features: a fixed random projection of the colours, [views, cells, C].
    let mut rng = StdRng::seed_from_u64(4);
    let values: Vec<f32> = (0..3 * CHANNELS)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let projection = Tensor::from_vec(values, (3, CHANNELS), &device).unwrap();
    let colours = Tensor::stack(
        &references.iter().map(|v| v.rgb.clone()).collect::<Vec<_>>(),
        0,
    )
    .unwrap();
    let features = colours.broadcast_matmul(&projection).unwrap();

    let sampling = SamplingConfig {
        samples: 16,
        point_frequencies: 4,
        ray_frequencies: 2,
        ..Default::default()
    };
    let varmap = VarMap::new();
    let field = FeatureNerf::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &device),
        CHANNELS,
        sampling,
    )
    .unwrap();
    initialise_for_training(&varmap, 11).unwrap();
    {
        let data = varmap.data().lock().unwrap();
        let decoder = &data["decoder.weight"];
        decoder
            .set(&decoder.as_tensor().zeros_like().unwrap())
            .unwrap();
    }
    let evaluate = |field: &FeatureNerf| {
        let (o, c) = losses(field, &features, &grid, &held_out, &mut Jitter::None);
        (scalar(&o), scalar(&c))
    };
    let (opacity_before, rgb_before) = evaluate(&field);

    let mut optimiser = AdamW::new(
        named_vars(&varmap).unwrap(),
        AdamWConfig {
            lr: 1e-2,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let mut history = Vec::new();
    let steps = 240;
    for _ in 0..steps {
        let target = view(rng.random_range(-0.9f32..0.9));
        let (opacity, rgb) = losses(
            &field,
            &features,
            &grid,
            &target,
            &mut Jitter::Random(&mut rng),
        );
        history.push((scalar(&opacity), scalar(&rgb)));
        let loss = (opacity + rgb).unwrap();
        optimiser.backward_step(&loss).unwrap();
    }
    // Mean training losses over the first and the last 20 steps.
    let mean = |range: std::ops::Range<usize>| {
        let n = range.len() as f32;
        history[range]
            .iter()
            .fold((0.0, 0.0), |(o, c), (a, b)| (o + a / n, c + b / n))
    };
    let (first, last) = (mean(0..20), mean(steps - 20..steps));
    let (opacity_after, rgb_after) = evaluate(&field);
    eprintln!(
        "training (opacity, rgb) {first:.4?} → {last:.4?}; held-out opacity {opacity_before:.4} → {opacity_after:.4}, rgb {rgb_before:.4} → {rgb_after:.4}"
    );
    assert!(
        last.0 < 0.5 * first.0,
        "training opacity loss {first:?} → {last:?}"
    );
    assert!(
        last.1 < 0.5 * first.1,
        "training colour loss {first:?} → {last:?}"
    );
    assert!(
        opacity_after < 0.5 * opacity_before,
        "held-out opacity error {opacity_before} → {opacity_after}"
    );
    assert!(
        rgb_after < 0.5 * rgb_before,
        "held-out colour error {rgb_before} → {rgb_after}"
    );
}
