//! Customization training of a subject (method.md, "Pose-conditioned transformer block"):
//! only the pose-block parameters and the subject token's embedding row are trained, with
//! AdamW, on [`customization_loss`]. Each step draws one target view and up to four other
//! views as references; with probability `reference_dropout` the references are replaced by
//! the all-zero image's features and a regularisation image of the class becomes the target
//! (whole-image mask, class prompt); with probability `prompt_dropout` the prompt is empty.
//! Timesteps are biased to high noise. Checkpoints (weights + optimiser state) are written
//! atomically and a run resumes from its checkpoint exactly; the run is cancellable.
//!
//! Randomness is drawn from a generator seeded with `seed + step`, so a resumed run repeats
//! the draws the uninterrupted run would have made.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use image::imageops::FilterType;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use super::components::DiffusionComponents;
use super::customization::{CustomizationExample, LossWeights, customization_loss};
use super::error::{MvError, Result};
use super::subject::Subject;
use super::subject_weights::SubjectWeights;
use crate::camera::{PinholeCamera, SceneNormalization};
use crate::diffusion::CancelToken;
use crate::diffusion::scheduler::NoiseSchedule;
use crate::model::clip::TokenOverride;
use crate::model::pose::{Jitter, PoseBlocks, PoseConfig, ReferenceCache, ReferenceFeatures};
use crate::train::{AdamW, AdamWConfig, TimestepSampling, load_tensors, save_tensors_atomic};

/// Settings of a customization run (defaults from method.md).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TrainSettings {
    /// Optimisation steps in total (a resumed run continues up to this count).
    pub steps: usize,
    /// AdamW hyper-parameters (lr 1e-4).
    pub optimiser: AdamWConfig,
    /// Most references per step besides the target.
    pub references_per_step: usize,
    /// Probability of dropping the references for a regularisation step.
    pub reference_dropout: f64,
    /// Probability of an empty prompt.
    pub prompt_dropout: f64,
    /// Square training resolution in pixels (images are resized to it).
    pub resolution: u32,
    /// Seed of every random draw.
    pub seed: u64,
    /// Write a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
    /// Pose-block placement and sampling.
    pub pose: PoseConfig,
    /// Weights of the field terms.
    pub losses: LossWeights,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            steps: 1600,
            optimiser: AdamWConfig::default(),
            references_per_step: 4,
            reference_dropout: 0.25,
            prompt_dropout: 0.1,
            resolution: 512,
            seed: 0,
            checkpoint_every: 100,
            pose: PoseConfig::default(),
            losses: LossWeights::default(),
        }
    }
}

/// Progress of a run.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainEvent {
    /// A step finished.
    Step {
        /// Steps done so far.
        completed: usize,
        /// Steps in total.
        total: usize,
        /// The step's loss terms.
        losses: StepLosses,
    },
    /// A checkpoint was written.
    Checkpoint {
        /// Steps it contains.
        step: usize,
        /// Where.
        path: PathBuf,
    },
}

/// The loss terms of one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepLosses {
    /// Weighted total.
    pub total: f32,
    /// Masked ε-MSE.
    pub denoising: f32,
    /// Opacity MSE.
    pub opacity: f32,
    /// Background |α|.
    pub background: f32,
    /// Masked colour MSE.
    pub rgb: f32,
    /// Whether the references were dropped (regularisation step).
    pub regularisation: bool,
}

/// The checkpoint of a subject whose weights go to `weights_path`.
pub fn checkpoint_path(weights_path: &Path) -> PathBuf {
    weights_path.with_extension("checkpoint.safetensors")
}

/// One training image at the training resolution.
struct View {
    /// Diffusion-scale latents `[1, C, (1,) h, w]`.
    latents: Tensor,
    /// `[3, H, W]` in [0, 1].
    image: Tensor,
    /// `[H, W]`, 1 = subject.
    mask: Tensor,
}

/// An RGBA image's colour as a `[3, H, W]` tensor in [0, 1] (alpha dropped).
pub(crate) fn pixels(image: &image::RgbaImage, device: &Device) -> Result<Tensor> {
    let (w, h) = image.dimensions();
    let rgb: Vec<f32> = image
        .pixels()
        .flat_map(|p| [p.0[0], p.0[1], p.0[2]])
        .map(|v| v as f32 / 255.0)
        .collect();
    Ok(Tensor::from_vec(rgb, (h as usize, w as usize, 3), device)?.permute((2, 0, 1))?)
}

/// Resizes, encodes and packs an image and its mask.
fn prepare_view(
    components: &DiffusionComponents,
    image: &image::RgbaImage,
    mask: Option<&image::GrayImage>,
    size: u32,
) -> Result<View> {
    let device = &components.settings.device;
    let resized = image::imageops::resize(image, size, size, FilterType::Triangle);
    let image = pixels(&resized, device)?;
    let mask = match mask {
        Some(mask) => {
            let m = image::imageops::resize(mask, size, size, FilterType::Nearest);
            let values: Vec<f32> = m.pixels().map(|p| f32::from(p.0[0] >= 128)).collect();
            Tensor::from_vec(values, (size as usize, size as usize), device)?
        }
        None => Tensor::ones((size as usize, size as usize), DType::F32, device)?,
    };
    let input = ((&image * 2.0)? - 1.0)?
        .unsqueeze(0)?
        .to_dtype(components.settings.dtype)?;
    let mut latents = components
        .vae
        .encode_scaled::<StdRng>(&input, None)?
        .to_dtype(DType::F32)?;
    if components.unet.has_motion_modules() {
        latents = latents.unsqueeze(2)?;
    }
    Ok(View {
        latents,
        image,
        mask,
    })
}

/// Unit Gaussian noise shaped like `like`, from `rng`.
fn noise_like(like: &Tensor, rng: &mut StdRng) -> Result<Tensor> {
    let values: Vec<f32> = (0..like.elem_count())
        .map(|_| StandardNormal.sample(rng))
        .collect();
    Ok(Tensor::from_vec(values, like.dims(), like.device())?)
}

/// What a run needs besides the weights: prepared views, normalised cameras, the prompts'
/// token ids and the cached reference features.
struct Run<'a> {
    components: &'a DiffusionComponents,
    views: Vec<View>,
    regularisation: Vec<View>,
    cameras: Vec<PinholeCamera>,
    token: u32,
    subject_ids: Tensor,
    class_ids: Tensor,
    empty_ids: Tensor,
    cache: ReferenceCache,
}

impl Run<'_> {
    /// The last hidden state of `ids` with the subject token's row `row`.
    fn encode(&self, ids: &Tensor, row: &Tensor) -> Result<Tensor> {
        let encoder = &self.components.text_encoder;
        let embeds = encoder.embed_tokens(
            ids,
            &[TokenOverride {
                id: self.token,
                embedding: row.clone(),
            }],
        )?;
        Ok(encoder.forward_embeds(&embeds, ids)?.last_hidden_state)
    }
}

/// Trains `subject` on `components` (regularisation images of its class optional: without
/// them reference drop-out is skipped), writing checkpoints beside the subject's weights and
/// the final weights to `subject.weights_path`. Resumes from an existing checkpoint.
pub fn train_subject(
    components: &DiffusionComponents,
    subject: &Subject,
    regularisation: &[image::RgbaImage],
    settings: &TrainSettings,
    events: &mut dyn FnMut(TrainEvent),
    cancel: &CancelToken,
) -> Result<SubjectWeights> {
    let device = components.settings.device.clone();
    let size = settings.resolution;
    components.latent_size(size, size)?;
    let mut tokenizer = components.tokenizer.clone();
    let token = tokenizer.add_token(&subject.token)?;
    let ids = |text: &str| -> Result<Tensor> {
        let ids = tokenizer.encode_padded(text);
        Ok(Tensor::new(ids.as_slice(), &device)?.unsqueeze(0)?)
    };
    let subject_ids = ids(&format!(
        "a photo of {} {}",
        subject.token, subject.class_word
    ))?;
    let class_ids = ids(&format!("a photo of a {}", subject.class_word))?;
    let empty_ids = ids("")?;

    // Cameras at the training resolution, in the normalised scene.
    let resized = subject
        .references
        .iter()
        .map(|r| r.camera.resized(size, size))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let normalisation = SceneNormalization::fit(&resized)?;
    let cameras = resized
        .iter()
        .map(|c| normalisation.apply_camera(c))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let views = subject
        .references
        .iter()
        .map(|r| prepare_view(components, &r.image, Some(&r.mask), size))
        .collect::<Result<Vec<_>>>()?;
    let regularisation = regularisation
        .iter()
        .map(|image| prepare_view(components, image, None, size))
        .collect::<Result<Vec<_>>>()?;

    // Weights and optimiser: fresh, or from the checkpoint.
    let unet = &components.unet;
    let token_dim = components.text_encoder.config().hidden_size;
    let checkpoint = checkpoint_path(&subject.weights_path);
    let (weights, state) = if checkpoint.is_file() {
        let mut tensors = load_tensors(&checkpoint, &device)?;
        let state: HashMap<String, Tensor> = tensors
            .iter()
            .filter(|(n, _)| n.starts_with("adamw."))
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        tensors.retain(|n, _| !n.starts_with("adamw."));
        let weights =
            SubjectWeights::from_tensors(&tensors, &checkpoint, unet, &settings.pose, token_dim)?;
        (weights, Some(state))
    } else {
        let class_id = tokenizer
            .content_ids(&subject.class_word)
            .first()
            .copied()
            .ok_or_else(|| MvError::request("class_word", "encodes to no token"))?;
        let init = components
            .text_encoder
            .token_embedding()
            .get(class_id as usize)?;
        let weights = SubjectWeights::fresh(unet, &settings.pose, &init, settings.seed, &device)?;
        (weights, None)
    };
    let mut optimiser = AdamW::new(weights.trainable()?, settings.optimiser)?;
    if let Some(state) = &state {
        optimiser.load_state(state).map_err(|e| {
            crate::model::ModelError::from_weights(e, std::slice::from_ref(&checkpoint))
        })?;
    }
    let blocks = weights.trainable_pose_blocks(unet)?;

    // Reference features of the references and of the all-zero image, computed once.
    let mut run = Run {
        components,
        views,
        regularisation,
        cameras,
        token,
        subject_ids,
        class_ids,
        empty_ids,
        cache: ReferenceCache {
            references: ReferenceFeatures::default(),
            empty: ReferenceFeatures::default(),
        },
    };
    run.cache = reference_cache(&run, &blocks, &weights)?;

    let schedule = NoiseSchedule::new(components.scheduler.common());
    let prediction = components.scheduler.common().prediction_type;
    let train_steps = schedule.alphas_cumprod().len();
    let save = |step: usize, optimiser: &AdamW, events: &mut dyn FnMut(TrainEvent)| -> Result<()> {
        let mut tensors = weights.tensors()?;
        tensors.extend(optimiser.state()?);
        save_tensors_atomic(&checkpoint, &tensors)?;
        events(TrainEvent::Checkpoint {
            step,
            path: checkpoint.clone(),
        });
        Ok(())
    };
    let start = optimiser.step_count() as usize;
    for step in start..settings.steps {
        if cancel.is_cancelled() {
            return Err(MvError::Cancelled);
        }
        let mut rng = StdRng::seed_from_u64(settings.seed.wrapping_add(step as u64));
        let n = run.views.len();
        let target = rng.random_range(0..n);
        let mut others: Vec<usize> = (0..n).filter(|&i| i != target).collect();
        others.shuffle(&mut rng);
        others.truncate(settings.references_per_step.max(1));
        if others.is_empty() {
            others.push(target);
        }
        let dropped =
            !run.regularisation.is_empty() && rng.random::<f64>() < settings.reference_dropout;
        let prompt_dropped = rng.random::<f64>() < settings.prompt_dropout;
        let (view, references, ids) = if dropped {
            let k = rng.random_range(0..run.regularisation.len());
            (
                &run.regularisation[k],
                run.cache.empty.repeated(others.len())?,
                &run.class_ids,
            )
        } else {
            (
                &run.views[target],
                run.cache.references.select(&others)?,
                &run.subject_ids,
            )
        };
        let ids = if prompt_dropped { &run.empty_ids } else { ids };
        let conditioning = run.encode(ids, &weights.token_embedding()?)?;
        let reference_cameras: Vec<PinholeCamera> =
            others.iter().map(|&i| run.cameras[i]).collect();
        let timestep = TimestepSampling::HighNoise.sample(&mut rng, train_steps);
        let noise = noise_like(&view.latents, &mut rng)?;
        let example = CustomizationExample {
            latents: &view.latents,
            image: &view.image,
            mask: &view.mask,
            camera: run.cameras[target],
            references: &references,
            reference_cameras: &reference_cameras,
            conditioning: &conditioning,
            timestep,
            noise: &noise,
        };
        let loss = customization_loss(
            unet,
            &blocks,
            &schedule,
            prediction,
            &settings.losses,
            &example,
            &mut Jitter::Random(&mut rng),
        )?;
        optimiser.backward_step(&loss.total)?;
        let value = |t: &Tensor| -> Result<f32> { Ok(t.to_dtype(DType::F32)?.to_scalar()?) };
        events(TrainEvent::Step {
            completed: step + 1,
            total: settings.steps,
            losses: StepLosses {
                total: value(&loss.total)?,
                denoising: value(&loss.denoising)?,
                opacity: value(&loss.opacity)?,
                background: value(&loss.background)?,
                rgb: value(&loss.rgb)?,
                regularisation: dropped,
            },
        });
        let due = settings.checkpoint_every > 0 && (step + 1) % settings.checkpoint_every == 0;
        if due && step + 1 < settings.steps {
            save(step + 1, &optimiser, events)?;
        }
    }
    save(settings.steps.max(start), &optimiser, events)?;
    weights.save(&subject.weights_path)?;
    Ok(weights)
}

/// The references' and the all-zero image's features at every pose block, with the class
/// prompt (`a photo of a <class word>`): the features then do not depend on the token row
/// being learned, so a resumed run sees the same features as the uninterrupted one.
fn reference_cache(
    run: &Run<'_>,
    blocks: &PoseBlocks,
    weights: &SubjectWeights,
) -> Result<ReferenceCache> {
    let unet = &run.components.unet;
    let prompt = run
        .encode(&run.class_ids, &weights.token_embedding()?)?
        .detach();
    let flat = |v: &View| -> Result<Tensor> {
        Ok(if v.latents.rank() == 5 {
            v.latents.squeeze(2)?
        } else {
            v.latents.clone()
        })
    };
    let latents = Tensor::cat(&run.views.iter().map(flat).collect::<Result<Vec<_>>>()?, 0)?;
    let zero_image = image::RgbaImage::from_pixel(
        run.views[0].image.dim(2)? as u32,
        run.views[0].image.dim(1)? as u32,
        image::Rgba([0, 0, 0, 255]),
    );
    let size = zero_image.width();
    let zero = prepare_view(run.components, &zero_image, None, size)?;
    Ok(ReferenceCache {
        references: ReferenceFeatures::compute(unet, blocks, &latents, &prompt)?,
        empty: ReferenceFeatures::compute(unet, blocks, &flat(&zero)?, &prompt)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{ImageSize, Intrinsics, look_at};
    use crate::model::{ComputeSettings, WeightVariant};
    use glam::Vec3;

    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A subject of three synthetic 64² views with masks and inline cameras, in its own folder.
    fn subject(tag: &str) -> (Scratch, Subject) {
        let dir = std::env::temp_dir().join(format!("mvcustom-train-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut entries = Vec::new();
        for (i, angle) in [-0.6f32, 0.0, 0.6].into_iter().enumerate() {
            let image = image::RgbaImage::from_fn(64, 64, |x, y| {
                let inside = (16..48).contains(&x) && (12..52).contains(&y);
                if inside {
                    image::Rgba([200, (x * 4) as u8, (y * 3 + 40 * i as u32) as u8, 255])
                } else {
                    image::Rgba([20, 30, 40, 255])
                }
            });
            let mask = image::GrayImage::from_fn(64, 64, |x, y| {
                let inside = (16..48).contains(&x) && (12..52).contains(&y);
                image::Luma([if inside { 255 } else { 0 }])
            });
            image.save(dir.join(format!("v{i}.png"))).unwrap();
            mask.save(dir.join(format!("m{i}.png"))).unwrap();
            let k = Intrinsics::from_vertical_fov(0.8, 64, 64).unwrap();
            let eye = Vec3::new(2.0 * angle.sin(), 0.4, 2.0 * angle.cos());
            let camera =
                look_at(eye, Vec3::ZERO, Vec3::Y, k, ImageSize::new(64, 64).unwrap()).unwrap();
            entries.push(format!(
                "(image: \"v{i}.png\", mask: Some(\"m{i}.png\"), camera: Some({}))",
                ron::ser::to_string(&camera).unwrap()
            ));
        }
        let text = format!(
            "(token: \"<toy>\", class_word: \"toy\", references: [{}])",
            entries.join(", ")
        );
        let path = dir.join("toy.ron");
        std::fs::write(&path, text).unwrap();
        let subject = Subject::load(&path).unwrap();
        (Scratch(dir), subject)
    }

    fn components() -> DiffusionComponents {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/parity/animatediff_pipeline_tiny");
        DiffusionComponents::load(&root, WeightVariant::Full, &ComputeSettings::default()).unwrap()
    }

    fn settings(steps: usize) -> TrainSettings {
        TrainSettings {
            steps,
            optimiser: AdamWConfig {
                lr: 1e-3,
                ..Default::default()
            },
            references_per_step: 2,
            reference_dropout: 0.5,
            prompt_dropout: 0.25,
            resolution: 16,
            seed: 9,
            checkpoint_every: 2,
            pose: PoseConfig {
                levels: vec![0, 1],
                sampling: crate::model::pose::SamplingConfig {
                    samples: 8,
                    ..Default::default()
                },
            },
            losses: LossWeights::default(),
        }
    }

    #[test]
    fn training_reports_checkpoints_resumes_exactly_and_cancels() {
        let c = components();
        let regularisation = [image::RgbaImage::from_pixel(
            48,
            48,
            image::Rgba([90, 120, 60, 255]),
        )];
        let probe = Tensor::randn(0f32, 1.0, (1, 4, 2, 8, 8), &Device::Cpu).unwrap();
        let prompt = c.encode_prompt("a toy").unwrap();
        let t = Tensor::new(&[400f32], &Device::Cpu).unwrap();
        let unet_before = c.unet.forward(&probe, &t, &prompt, None).unwrap();

        // Uninterrupted: 4 steps.
        let (_a, straight) = subject("straight");
        let mut seen = Vec::new();
        let trained = train_subject(
            &c,
            &straight,
            &regularisation,
            &settings(4),
            &mut |e| seen.push(e),
            &CancelToken::new(),
        )
        .unwrap();
        let steps: Vec<usize> = seen
            .iter()
            .filter_map(|e| match e {
                TrainEvent::Step {
                    completed,
                    total,
                    losses,
                } => {
                    assert_eq!(*total, 4);
                    assert!(losses.total.is_finite() && losses.total > 0.0, "{losses:?}");
                    Some(*completed)
                }
                TrainEvent::Checkpoint { .. } => None,
            })
            .collect();
        assert_eq!(steps, [1, 2, 3, 4]);
        let checkpoints = seen
            .iter()
            .filter(|e| matches!(e, TrainEvent::Checkpoint { .. }))
            .count();
        assert_eq!(checkpoints, 2);
        assert!(straight.weights_path.is_file());

        // Interrupted after 2 steps, then resumed to 4: the same weights.
        let (_b, resumed) = subject("resumed");
        let run = |steps| {
            train_subject(
                &c,
                &resumed,
                &regularisation,
                &settings(steps),
                &mut |_| {},
                &CancelToken::new(),
            )
            .unwrap()
        };
        run(2);
        let mut later = Vec::new();
        let finished = train_subject(
            &c,
            &resumed,
            &regularisation,
            &settings(4),
            &mut |e| later.push(e),
            &CancelToken::new(),
        )
        .unwrap();
        assert!(matches!(
            later.first(),
            Some(TrainEvent::Step { completed: 3, .. })
        ));
        let (a, b) = (trained.tensors().unwrap(), finished.tensors().unwrap());
        for (name, t) in &a {
            let diff = (t - &b[name]).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{name}");
        }
        // Loaded back from the subject's weights file.
        let loaded = SubjectWeights::load(
            &resumed.weights_path,
            &c.unet,
            &settings(4).pose,
            c.text_encoder.config().hidden_size,
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(loaded.tensors().unwrap().len(), a.len());

        // Cancelled before the first step.
        let (_c, cancelled) = subject("cancelled");
        let token = CancelToken::new();
        token.cancel();
        let err = train_subject(
            &c,
            &cancelled,
            &regularisation,
            &settings(2),
            &mut |_| {},
            &token,
        )
        .unwrap_err();
        assert!(err.is_cancelled(), "{err}");

        // The frozen networks are untouched.
        let unet_after = c.unet.forward(&probe, &t, &prompt, None).unwrap();
        let diff = (unet_before - unet_after)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    }
}
