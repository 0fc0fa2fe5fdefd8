//! The embedded default model (`assets/default_model`) and the demo subjects shipped with it:
//! within the size budget, loadable, trained (each network does measurably better on the
//! procedural world than an untrained one could), able to generate a subject's views, and to
//! restyle views it is given (video-to-video) while keeping them.

use bevy_mvcustom::camera::{ImageSize, Intrinsics, PinholeCamera, look_at};
use bevy_mvcustom::diffusion::CancelToken;
use bevy_mvcustom::diffusion::scheduler::NoiseSchedule;
use bevy_mvcustom::model::ComputeSettings;
use bevy_mvcustom::mvcustom::{
    GenerationEvent, GenerationRequest, InitViews, MvPipeline, Techniques, default_model_dir,
    demo_subjects_dir,
};
use bevy_mvcustom::pretrain::denoiser::clip_latents;
use bevy_mvcustom::train::{DenoisingBatch, denoising_loss};
use bevy_mvcustom::world::{
    Clip, ClipDataset, ClipSource, DatasetConfig, RenderSettings, Split, TrajectorySampler,
};
use candle_core::{Device, Tensor};
use glam::Vec3;

/// The budget for everything the default model ships.
const BUDGET_BYTES: u64 = 50 * 1024 * 1024;

fn folder_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            if p.is_dir() {
                folder_bytes(&p)
            } else {
                p.metadata().unwrap().len()
            }
        })
        .sum()
}

fn pipeline() -> MvPipeline {
    MvPipeline::load(&default_model_dir(), &ComputeSettings::default()).unwrap()
}

/// Held-out clips of the evaluation split: four 64×64 views each.
fn eval_clips(batch_size: usize) -> ClipDataset {
    let config = DatasetConfig {
        split: Split::Eval,
        batch_size,
        trajectories: TrajectorySampler {
            views: 4,
            ..Default::default()
        },
        ..Default::default()
    };
    ClipDataset::new(config, ClipSource::Render).unwrap()
}

#[test]
fn the_default_model_fits_its_size_budget() {
    let bytes = folder_bytes(&default_model_dir());
    assert!(bytes < BUDGET_BYTES, "{bytes} bytes");
}

#[test]
fn the_trained_autoencoder_reconstructs_held_out_views() {
    let pipeline = pipeline();
    let vae = &pipeline.components().vae;
    let batch = eval_clips(2).image_batch(0).unwrap();
    let latents = vae.encode(&batch.images).unwrap().mode().clone();
    let reconstruction = vae.decode(&latents).unwrap();
    let l1 = (reconstruction - &batch.images)
        .unwrap()
        .abs()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    // Colours span [-1, 1]; returning the mean grey would err by about 0.4 on these scenes.
    assert!(l1 < 0.2, "mean absolute reconstruction error {l1}");
}

#[test]
fn the_trained_denoiser_predicts_its_target_better_than_chance_on_held_out_clips() {
    let pipeline = pipeline();
    let components = pipeline.components();
    let batch = eval_clips(2).batch(0).unwrap();
    let latents = clip_latents(&components.vae, &batch.frames).unwrap();
    let ids: Vec<u32> = batch
        .captions
        .iter()
        .flat_map(|c| components.tokenizer.encode_padded(c))
        .collect();
    let ids = Tensor::from_vec(ids, (2, components.tokenizer.max_length()), &Device::Cpu).unwrap();
    let conditioning = components
        .text_encoder
        .forward(&ids)
        .unwrap()
        .last_hidden_state;
    let noise = Tensor::randn(0f32, 1.0, latents.dims(), &Device::Cpu).unwrap();
    let schedule = NoiseSchedule::new(components.scheduler.common());
    let prediction = components.scheduler.common().prediction_type;
    let loss = denoising_loss(
        &components.unet,
        &schedule,
        prediction,
        &DenoisingBatch {
            latents: &latents,
            conditioning: &conditioning,
            timesteps: &[300, 700],
            noise: &noise,
            mask: None,
        },
        None,
    )
    .unwrap()
    .to_scalar::<f32>()
    .unwrap();
    // Predicting zero scores about 1 (the target — ε, or v = √ᾱ·ε − √(1−ᾱ)·x₀ — has about unit
    // variance for unit-scale latents); an untrained network about that or worse.
    assert!(loss < 0.8, "{prediction:?}-prediction MSE {loss}");
}

#[test]
fn every_demo_subject_loads_with_its_trained_weights_and_generates() {
    let pipeline = pipeline();
    let mut names = Vec::new();
    for folder in std::fs::read_dir(demo_subjects_dir()).unwrap() {
        let folder = folder.unwrap().path();
        let name = folder.file_name().unwrap().to_string_lossy().into_owned();
        let definition = folder.join(format!("{name}.subject.ron"));
        let subject = pipeline.load_subject(&definition).unwrap();
        names.push(name);
        let size = ImageSize::new(64, 64).unwrap();
        let intrinsics = Intrinsics::from_vertical_fov(0.7, 64, 64).unwrap();
        let cameras: Vec<PinholeCamera> = [0.0f32, 0.6]
            .iter()
            .map(|angle| {
                let eye = Vec3::new(3.0 * angle.sin(), 1.2, 3.0 * angle.cos());
                let target = Vec3::new(0.0, 0.4, 0.0);
                look_at(eye, target, Vec3::Y, intrinsics, size).unwrap()
            })
            .collect();
        let request = GenerationRequest {
            prompt: format!("a {} on grass", subject.subject().token),
            negative_prompt: String::new(),
            cameras,
            width: 64,
            height: 64,
            steps: 2,
            guidance_scale: 3.0,
            seed: 0,
            techniques: Techniques {
                pose_blocks: true,
                ..Techniques::none()
            },
            anchor_depth: None,
            preview_every: None,
            composition: None,
            init_views: None,
        };
        let generation = pipeline
            .generate_with(&request, Some(&subject), &mut |_| {}, &CancelToken::new())
            .unwrap();
        assert_eq!(generation.views.images.len(), 2);
        for image in &generation.views.images {
            assert_eq!(image.dimensions(), (64, 64));
        }
    }
    names.sort();
    assert_eq!(names, ["patterned_vase", "toy_robot"]);
}

/// Mean absolute colour difference of two equally sized images, in [0, 1].
fn mean_abs_difference(a: &image::RgbaImage, b: &image::RgbaImage) -> f64 {
    let total: f64 = a
        .pixels()
        .zip(b.pixels())
        .flat_map(|(p, q)| (0..3).map(move |c| (f64::from(p[c]) - f64::from(q[c])).abs()))
        .sum();
    total / (255.0 * 3.0 * f64::from(a.width() * a.height()))
}

#[test]
fn video_to_video_runs_the_last_steps_and_stays_near_its_views() {
    let pipeline = pipeline();
    let trajectories = TrajectorySampler {
        views: 4,
        ..Default::default()
    };
    let seed = Split::Eval.seed(3).unwrap();
    let clip = Clip::sample(
        seed,
        &Split::Eval.sampler(),
        &trajectories,
        &RenderSettings::default(),
    )
    .unwrap();
    let renders: Vec<image::RgbaImage> = clip
        .frames
        .iter()
        .map(|frame| image::DynamicImage::ImageRgb8(frame.rgb.clone()).to_rgba8())
        .collect();
    let generate = |init_views: Option<InitViews>| {
        let request = GenerationRequest {
            prompt: clip.caption.clone(),
            negative_prompt: String::new(),
            cameras: clip.cameras.clone(),
            width: 64,
            height: 64,
            steps: 20,
            guidance_scale: 4.0,
            seed: 0,
            techniques: Techniques {
                dense_attention: true,
                ..Techniques::none()
            },
            anchor_depth: None,
            preview_every: None,
            composition: None,
            init_views,
        };
        let mut steps = 0;
        let generation = pipeline
            .generate(
                &request,
                &mut |event| {
                    if let GenerationEvent::Step { .. } = event {
                        steps += 1;
                    }
                },
                &CancelToken::new(),
            )
            .unwrap();
        let error = generation
            .images
            .iter()
            .zip(&renders)
            .map(|(view, render)| mean_abs_difference(view, render))
            .sum::<f64>()
            / renders.len() as f64;
        (steps, error)
    };
    let (noise_steps, from_noise) = generate(None);
    let (restyle_steps, restyled) = generate(Some(InitViews {
        images: renders.clone(),
        strength: 0.35,
    }));
    // ⌊20 · 0.35⌋ = 7 of the 20 steps run.
    assert_eq!((noise_steps, restyle_steps), (20, 7));
    // Generated from noise, the views have nothing to do with these renders; restyled, they
    // keep them (the autoencoder's own round trip is about 0.05).
    assert!(
        restyled < 0.5 * from_noise && restyled < 0.1,
        "mean colour error to the renders: restyled {restyled:.4}, from noise {from_noise:.4}"
    );
}
