//! Background by composition (CustomNet's control, training-free): each view keeps the
//! camera's own render outside the subject's region. At every step the background latents are
//! re-noised to the level the sampler is at and pasted over the kept region, so the model only
//! generates the subject's region and blends it into the scene through a soft band.
//!
//! A request asks for it with [`GenerationRequest::composition`](super::GenerationRequest):
//! a [`CompositionInput`] holding each view's background and the subject's
//! [`SubjectBounds`] in it (see [`subject_bounds`] for bounds from a 3-D box).

use candle_core::{DType, Tensor};
use glam::Vec3;
use serde::{Deserialize, Serialize};

use super::components::DiffusionComponents;
use super::error::MvError;
use super::view_latents::encode_views;
use crate::camera::PinholeCamera;
use crate::diffusion::{HookContext, NoiseGenerator, Result, SamplingHook};

/// Where the subject sits in one view: its projected bounds in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubjectBounds {
    /// Left edge, continuous pixel coordinates.
    pub min_x: f32,
    /// Top edge.
    pub min_y: f32,
    /// Right edge.
    pub max_x: f32,
    /// Bottom edge.
    pub max_y: f32,
}

/// How the generated region grows around the subject's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompositionSettings {
    /// Pixels added on every side of the bounds (fully generated).
    pub dilation: f32,
    /// Width in pixels of the band beyond that, where background and generation blend.
    pub blend_band: f32,
}

impl Default for CompositionSettings {
    fn default() -> Self {
        Self {
            dilation: 8.0,
            blend_band: 16.0,
        }
    }
}

impl SubjectBounds {
    /// The whole of a `width × height` image.
    pub fn whole(width: u32, height: u32) -> Self {
        Self {
            min_x: 0.0,
            min_y: 0.0,
            max_x: width as f32,
            max_y: height as f32,
        }
    }
}

/// Where the subject whose 3-D extent has these world-space `corners` (e.g. the 8 corners of
/// its bounding box) appears in `camera`'s image: the bounds of their projections. `None`
/// when every corner lies behind the camera (the subject is not in the view); the whole
/// image when only some do (the subject reaches behind the camera, so its projection is
/// unbounded).
pub fn subject_bounds(corners: &[Vec3], camera: &PinholeCamera) -> Option<SubjectBounds> {
    let projected: Vec<Option<glam::Vec2>> = corners
        .iter()
        .map(|&corner| camera.project(corner).map(|p| p.pixel))
        .collect();
    if projected.iter().all(Option::is_none) {
        return None;
    }
    if projected.iter().any(Option::is_none) {
        let size = camera.size();
        return Some(SubjectBounds::whole(size.width, size.height));
    }
    let pixels = projected.into_iter().flatten();
    let (min, max) = pixels.fold(
        (
            glam::Vec2::splat(f32::INFINITY),
            glam::Vec2::splat(f32::NEG_INFINITY),
        ),
        |(min, max), p| (min.min(p), max.max(p)),
    );
    Some(SubjectBounds {
        min_x: min.x,
        min_y: min.y,
        max_x: max.x,
        max_y: max.y,
    })
}

/// What a composed generation keeps of each view: its background and where its subject is.
#[derive(Clone, Debug, PartialEq)]
pub struct CompositionInput {
    /// One background per view, in request order (the scene as that view's camera renders
    /// it); resampled to the request's size when it has another.
    pub backgrounds: Vec<image::RgbaImage>,
    /// Per view, the subject's bounds in pixels of the request's size; `None`: the subject
    /// is not in the view, whose background is then kept whole.
    pub bounds: Vec<Option<SubjectBounds>>,
    /// How the generated region grows around the bounds.
    pub settings: CompositionSettings,
}

impl CompositionInput {
    /// The sampling hook composing a request of `views` views of `width × height` pixels on
    /// the latent grid `latent` `(h, w)`: the backgrounds encoded by `components`' VAE and
    /// their keep masks; the re-noising is seeded with `seed`.
    pub fn hook(
        &self,
        components: &DiffusionComponents,
        views: usize,
        (width, height): (u32, u32),
        latent: (usize, usize),
        seed: u64,
    ) -> std::result::Result<CompositionHook, MvError> {
        for (field, count) in [
            ("composition.backgrounds", self.backgrounds.len()),
            ("composition.bounds", self.bounds.len()),
        ] {
            if count != views {
                return Err(MvError::request(
                    field,
                    format!("has {count} entries for {views} views"),
                ));
            }
        }
        for (field, value) in [
            ("composition.settings.dilation", self.settings.dilation),
            ("composition.settings.blend_band", self.settings.blend_band),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(MvError::request(
                    field,
                    format!("must be finite and ≥ 0, got {value}"),
                ));
            }
        }
        let device = &components.settings.device;
        let (h, w) = latent;
        let background = encode_views(components, &self.backgrounds, (width, height))?;
        let mut keep = Vec::with_capacity(views * h * w);
        for bounds in &self.bounds {
            match bounds {
                Some(bounds) => keep.extend(keep_mask(
                    bounds,
                    &self.settings,
                    width,
                    height,
                    w as u32,
                    h as u32,
                )),
                None => keep.extend(std::iter::repeat_n(1.0, h * w)),
            }
        }
        let keep = Tensor::from_vec(keep, (1, 1, views, h, w), device)?;
        Ok(CompositionHook::new(background, keep, seed))
    }
}

/// The keep-background weight of every cell of a `grid_width × grid_height` grid over a
/// `width × height` image: 0 inside the dilated bounds, 1 beyond the blending band, linear in
/// between (by distance from the dilated box, measured at cell centres in image pixels).
pub fn keep_mask(
    bounds: &SubjectBounds,
    settings: &CompositionSettings,
    width: u32,
    height: u32,
    grid_width: u32,
    grid_height: u32,
) -> Vec<f32> {
    let (sx, sy) = (
        width as f32 / grid_width as f32,
        height as f32 / grid_height as f32,
    );
    let d = settings.dilation.max(0.0);
    let (x0, y0, x1, y1) = (
        bounds.min_x - d,
        bounds.min_y - d,
        bounds.max_x + d,
        bounds.max_y + d,
    );
    let band = settings.blend_band.max(0.0);
    let mut mask = Vec::with_capacity((grid_width * grid_height) as usize);
    for j in 0..grid_height {
        for i in 0..grid_width {
            let (x, y) = ((i as f32 + 0.5) * sx, (j as f32 + 0.5) * sy);
            let dx = (x0 - x).max(x - x1).max(0.0);
            let dy = (y0 - y).max(y - y1).max(0.0);
            let distance = (dx * dx + dy * dy).sqrt();
            mask.push(if band > 0.0 {
                (distance / band).min(1.0)
            } else if distance > 0.0 {
                1.0
            } else {
                0.0
            });
        }
    }
    mask
}

/// The sampling hook that pastes the re-noised background over the kept region after every
/// step; after the last step the clean background itself is pasted.
pub struct CompositionHook {
    background: Tensor,
    keep: Tensor,
    noise: NoiseGenerator,
}

impl CompositionHook {
    /// `background`: the views' clean latents `[1, C, F, h, w]` (diffusion scale);
    /// `keep`: weights `[1, 1, F, h, w]` in [0, 1] (1 keeps the background); `seed` seeds the
    /// re-noising.
    pub fn new(background: Tensor, keep: Tensor, seed: u64) -> Self {
        Self {
            background,
            keep,
            noise: NoiseGenerator::from_seed(seed),
        }
    }
}

impl SamplingHook for CompositionHook {
    fn after_step(
        &mut self,
        ctx: &HookContext<'_>,
        _pred_original: &Tensor,
        latents: &mut Tensor,
    ) -> Result<()> {
        let timesteps = ctx.scheduler.timesteps();
        let background = match timesteps.get(ctx.step.index + 1) {
            Some(&next) => {
                let noise = self
                    .noise
                    .randn(self.background.dims(), self.background.device())?;
                ctx.scheduler.add_noise(&self.background, &noise, next)?
            }
            None => self.background.clone(),
        };
        let keep = self
            .keep
            .to_dtype(DType::F32)?
            .broadcast_as(latents.shape())?;
        let background = background.to_dtype(latents.dtype())?;
        let keep = keep.to_dtype(latents.dtype())?;
        let generated = (latents.clone() * (1.0 - &keep)?)?;
        *latents = (generated + (background * keep)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::{
        AnyScheduler, DdimConfig, DdimScheduler, Sampler, SamplingRequest, StepInfo,
    };
    use crate::model::test_support::max_abs_diff;
    use candle_core::Device;

    #[test]
    fn keep_mask_is_zero_inside_one_outside_and_ramps_in_the_band() {
        let bounds = SubjectBounds {
            min_x: 16.0,
            min_y: 16.0,
            max_x: 32.0,
            max_y: 32.0,
        };
        let settings = CompositionSettings {
            dilation: 4.0,
            blend_band: 8.0,
        };
        let m = keep_mask(&bounds, &settings, 64, 64, 64, 64);
        let at = |x: usize, y: usize| m[y * 64 + x];
        assert_eq!(at(24, 24), 0.0); // inside
        assert_eq!(at(13, 24), 0.0); // inside the dilation (x = 13.5 ≥ 12)
        assert!((at(7, 24) - 0.5625).abs() < 1e-6); // x = 7.5: 4.5 px beyond → 4.5/8
        assert_eq!(at(1, 24), 1.0); // beyond the band
    }

    /// Predicts zero noise: the sampler drifts towards its own x̂₀.
    fn zero(latents: &Tensor, _step: &StepInfo, _cond: &Tensor) -> Result<Tensor> {
        Ok(latents.zeros_like()?)
    }

    fn run(keep: f32) -> (Tensor, Tensor, Tensor) {
        let device = Device::Cpu;
        let background = Tensor::randn(0f32, 1.0, (1, 4, 2, 4, 4), &device).unwrap();
        let keep_mask = Tensor::full(keep, (1, 1, 2, 4, 4), &device).unwrap();
        let mut hook = CompositionHook::new(background.clone(), keep_mask, 9);
        let request = SamplingRequest {
            prompt_embeds: Tensor::zeros((1, 3, 2), DType::F32, &device).unwrap(),
            negative_prompt_embeds: None,
            guidance_scale: 1.0,
            num_inference_steps: 5,
            initial_noise: Tensor::randn(0f32, 1.0, (1, 4, 2, 4, 4), &device).unwrap(),
            init: None,
        };
        let mut scheduler = AnyScheduler::Ddim(DdimScheduler::new(DdimConfig::default()));
        let with = Sampler::new()
            .with_hook(&mut hook)
            .run(&mut scheduler, &mut zero, &request)
            .unwrap();
        let without = Sampler::new()
            .run(&mut scheduler, &mut zero, &request)
            .unwrap();
        (background, with, without)
    }

    #[test]
    fn a_fully_kept_view_ends_as_its_background() {
        let (background, with, _) = run(1.0);
        assert!(max_abs_diff(&background, &with) < 1e-6);
    }

    #[test]
    fn a_fully_generated_view_is_untouched() {
        let (_, with, without) = run(0.0);
        assert_eq!(max_abs_diff(&with, &without), 0.0);
    }

    #[test]
    fn bounds_cover_the_projected_corners_or_say_where_the_box_is_not() {
        use crate::camera::{ImageSize, Intrinsics, look_at};
        let camera = look_at(
            Vec3::new(0.0, 0.0, 5.0),
            Vec3::ZERO,
            Vec3::Y,
            Intrinsics::from_vertical_fov(0.8, 64, 48).unwrap(),
            ImageSize::new(64, 48).unwrap(),
        )
        .unwrap();
        let cube = |centre: Vec3, half: f32| -> Vec<Vec3> {
            (0..8)
                .map(|k| {
                    let corner = Vec3::new(
                        if k & 1 == 0 { -half } else { half },
                        if k & 2 == 0 { -half } else { half },
                        if k & 4 == 0 { -half } else { half },
                    );
                    centre + corner
                })
                .collect()
        };
        // Analytic: the near face (z = 0.5, 4.5 from the eye) spans ±0.5 / 4.5 · f.
        let f = camera.intrinsics().fy;
        let b = subject_bounds(&cube(Vec3::ZERO, 0.5), &camera).unwrap();
        let half = 0.5 / 4.5 * f;
        for (got, want) in [
            (b.min_x, 32.0 - half),
            (b.max_x, 32.0 + half),
            (b.min_y, 24.0 - half),
            (b.max_y, 24.0 + half),
        ] {
            assert!((got - want).abs() < 1e-3, "{got} vs {want}");
        }
        // Behind the camera: not in the view; straddling it: the whole image.
        assert_eq!(
            subject_bounds(&cube(Vec3::new(0.0, 0.0, 8.0), 0.5), &camera),
            None
        );
        assert_eq!(
            subject_bounds(&cube(Vec3::new(0.0, 0.0, 5.0), 1.0), &camera),
            Some(SubjectBounds::whole(64, 48))
        );
    }

    /// The tiny diffusers model of the parity fixtures.
    fn tiny_pipeline() -> crate::mvcustom::MvPipeline {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/parity/animatediff_pipeline_tiny");
        crate::mvcustom::MvPipeline::load(&dir, &crate::model::ComputeSettings::default()).unwrap()
    }

    const SIZE: u32 = 64;

    /// Two structured backgrounds: a diagonal gradient and a checkerboard.
    fn backgrounds() -> Vec<image::RgbaImage> {
        vec![
            image::RgbaImage::from_fn(SIZE, SIZE, |x, y| {
                image::Rgba([(x * 4) as u8, (y * 4) as u8, 128, 255])
            }),
            image::RgbaImage::from_fn(SIZE, SIZE, |x, y| {
                let v = if (x / 8 + y / 8) % 2 == 0 { 220 } else { 40 };
                image::Rgba([v, 255 - v, 90, 255])
            }),
        ]
    }

    /// The subject's box in both views, and a narrow growth around it.
    fn layout() -> (SubjectBounds, CompositionSettings) {
        let bounds = SubjectBounds {
            min_x: 26.0,
            min_y: 24.0,
            max_x: 38.0,
            max_y: 40.0,
        };
        let settings = CompositionSettings {
            dilation: 2.0,
            blend_band: 4.0,
        };
        (bounds, settings)
    }

    /// Diffusion-scale VAE latents `[1, C, 1, h, w]` of `image`, computed here, apart from
    /// the hook.
    fn encode(components: &DiffusionComponents, image: &image::RgbaImage) -> Tensor {
        let device = &components.settings.device;
        let input = ((crate::mvcustom::reference_views::pixels(image, device).unwrap() * 2.0)
            .unwrap()
            - 1.0)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        components
            .vae
            .encode_scaled::<rand::rngs::StdRng>(&input, None)
            .unwrap()
            .unsqueeze(2)
            .unwrap()
    }

    #[test]
    fn composed_latents_keep_the_background_outside_the_subject_exactly() {
        use crate::mvcustom::text_to_video::{VideoRequest, sample_latents};
        let pipeline = tiny_pipeline();
        let components = pipeline.components();
        let (bounds, settings) = layout();
        let backgrounds = backgrounds();
        let (h, w) = components.latent_size(SIZE, SIZE).unwrap();
        let input = CompositionInput {
            backgrounds: backgrounds.clone(),
            bounds: vec![Some(bounds); 2],
            settings,
        };
        let mut hook = input.hook(components, 2, (SIZE, SIZE), (h, w), 5).unwrap();
        let device = &components.settings.device;
        let request = VideoRequest {
            prompt: "a teddy bear in a room".into(),
            negative_prompt: String::new(),
            guidance_scale: 5.0,
            steps: 4,
            initial_noise: Tensor::randn(0f32, 1.0, (1, 4, 2, h, w), device).unwrap(),
        };
        let sampler = crate::diffusion::Sampler::new().with_hook(&mut hook);
        let latents = sample_latents(components, &components.unet, &request, sampler, None)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        // The keep weights from the mask alone, in latent cells.
        let keep = keep_mask(&bounds, &settings, SIZE, SIZE, w as u32, h as u32);
        let (mut generated, mut cells) = (0.0f32, 0usize);
        for (view, background) in backgrounds.iter().enumerate() {
            let expected = encode(components, background)
                .squeeze(2)
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec3::<f32>()
                .unwrap();
            let got = latents
                .narrow(2, view, 1)
                .unwrap()
                .squeeze(2)
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec3::<f32>()
                .unwrap();
            for c in 0..4 {
                for y in 0..h {
                    for x in 0..w {
                        let (got, expected) = (got[c][y][x], expected[c][y][x]);
                        match keep[y * w + x] {
                            1.0 => assert!(
                                (got - expected).abs() <= 1e-5 * (1.0 + expected.abs()),
                                "view {view} kept cell ({x}, {y}): {got} vs {expected}"
                            ),
                            0.0 => {
                                generated += (got - expected).abs();
                                cells += 1;
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        assert!(cells > 0);
        let generated = generated / cells as f32;
        assert!(
            generated > 0.1,
            "the subject's region kept the background too ({generated})"
        );
    }

    #[test]
    fn a_view_whose_subject_is_out_of_sight_comes_back_as_its_background() {
        use crate::camera::{ImageSize, Intrinsics, look_at};
        use crate::mvcustom::{GenerationRequest, Techniques};
        let pipeline = tiny_pipeline();
        let components = pipeline.components();
        let cameras: Vec<PinholeCamera> = [-0.2f32, 0.2]
            .iter()
            .map(|&azimuth| {
                let eye = 4.0 * Vec3::new(azimuth.sin(), 0.0, azimuth.cos());
                let k = Intrinsics::from_vertical_fov(0.8, SIZE, SIZE).unwrap();
                look_at(
                    eye,
                    Vec3::ZERO,
                    Vec3::Y,
                    k,
                    ImageSize::new(SIZE, SIZE).unwrap(),
                )
                .unwrap()
            })
            .collect();
        let (bounds, settings) = layout();
        let backgrounds = backgrounds();
        let request = |composition: Option<CompositionInput>| GenerationRequest {
            prompt: "a teddy bear in a room".into(),
            negative_prompt: String::new(),
            cameras: cameras.clone(),
            width: SIZE,
            height: SIZE,
            steps: 3,
            guidance_scale: 5.0,
            seed: 11,
            techniques: Techniques::none(),
            anchor_depth: None,
            preview_every: None,
            composition,
            init_views: None,
        };
        let generate = |request: &GenerationRequest| {
            pipeline
                .generate(request, &mut |_| {}, &crate::diffusion::CancelToken::new())
                .unwrap()
                .images
        };
        // View 0 does not see the subject: it is all background; view 1 generates its box.
        let composed = generate(&request(Some(CompositionInput {
            backgrounds: backgrounds.clone(),
            bounds: vec![None, Some(bounds)],
            settings,
        })));
        let free = generate(&request(None));
        let round_trip = |view: usize| {
            let frames = components
                .decode_frames(&encode(components, &backgrounds[view]))
                .unwrap();
            super::super::pipeline::frames_to_images(&frames)
                .unwrap()
                .remove(0)
        };
        let largest_difference = |a: &image::RgbaImage, b: &image::RgbaImage| {
            a.pixels()
                .zip(b.pixels())
                .flat_map(|(p, q)| (0..3).map(move |c| p.0[c].abs_diff(q.0[c])))
                .max()
                .unwrap_or(0)
        };
        assert!(largest_difference(&composed[0], &round_trip(0)) <= 1);
        assert!(largest_difference(&free[0], &round_trip(0)) > 16);
        assert!(largest_difference(&composed[1], &round_trip(1)) > 16);
    }

    #[test]
    fn a_composition_for_other_views_is_refused() {
        let pipeline = tiny_pipeline();
        let input = CompositionInput {
            backgrounds: vec![image::RgbaImage::new(32, 32)],
            bounds: vec![None, None],
            settings: CompositionSettings::default(),
        };
        let err = input
            .hook(pipeline.components(), 2, (32, 32), (16, 16), 0)
            .err()
            .unwrap();
        assert!(err.to_string().contains("composition.backgrounds"), "{err}");
        let input = CompositionInput {
            backgrounds: vec![image::RgbaImage::new(32, 32); 2],
            bounds: vec![None, None],
            settings: CompositionSettings {
                dilation: f32::NAN,
                blend_band: 1.0,
            },
        };
        let err = input
            .hook(pipeline.components(), 2, (32, 32), (16, 16), 0)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("composition.settings.dilation"),
            "{err}"
        );
    }
}
