//! Parity kind `animatediff_pipeline`: the whole text-to-video loop (prompt encoding,
//! classifier-free guidance, scheduler, UNet with motion modules, VAE decoding) from the
//! peer's initial noise.

use bevy_mvcustom::diffusion::Sampler;
use bevy_mvcustom::model::{ComputeSettings, WeightVariant};
use bevy_mvcustom::mvcustom::DiffusionComponents;
use bevy_mvcustom::mvcustom::text_to_video::{VideoRequest, sample_latents};

use super::common::{Case, Check};

/// Runs the case: final latents and decoded frames against the peer's.
pub fn run(case: &Case) -> Result<Vec<Check>, String> {
    let io = case.io()?;
    let components =
        DiffusionComponents::load(&case.dir, WeightVariant::Full, &ComputeSettings::default())
            .map_err(|e| e.to_string())?;
    let frames_expected = case.f64_arg("num_frames")? as usize;
    let initial_noise = io.get("latents_init")?;
    if initial_noise.dims().get(2) != Some(&frames_expected) {
        return Err(format!(
            "latents_init {:?} does not hold {frames_expected} frames",
            initial_noise.dims()
        ));
    }
    let request = VideoRequest {
        prompt: case.str_arg("prompt")?.to_string(),
        negative_prompt: case.str_arg("negative_prompt").unwrap_or("").to_string(),
        guidance_scale: case.f64_arg("guidance_scale")?,
        steps: case.f64_arg("num_inference_steps")? as usize,
        initial_noise,
    };
    let latents = sample_latents(
        &components,
        &components.unet,
        &request,
        Sampler::new(),
        None,
    )
    .map_err(|e| e.to_string())?;
    let frames = components
        .decode_frames(&latents)
        .map_err(|e| e.to_string())?;
    Ok(vec![
        case.check("latents_final", &latents, &io.get("latents_final")?)?,
        case.check("frames", &frames, &io.get("frames")?)?,
    ])
}
