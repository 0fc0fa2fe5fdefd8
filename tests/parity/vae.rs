//! `vae`: diffusers' `AutoencoderKL` on the peer's `image` (latent mean and log variance)
//! and on the peer's sampled `latents` (raw decode, no scaling factor).

use bevy_mvcustom::model::vae::AutoencoderKL;
use bevy_mvcustom::model::{ComponentDir, ComputeSettings, WeightVariant};

use super::common::{Case, Check};

/// Loads `vae/`, encodes `image`, decodes `latents`, compares with the peer.
pub fn run(case: &Case) -> Result<Vec<Check>, String> {
    let dir = ComponentDir::new(case.component("vae"));
    let vae = AutoencoderKL::load(&dir, WeightVariant::Full, &ComputeSettings::default())
        .map_err(|e| e.to_string())?;
    let io = case.io()?;
    let dist = vae.encode(&io.get("image")?).map_err(|e| e.to_string())?;
    let decoded = vae.decode(&io.get("latents")?).map_err(|e| e.to_string())?;
    Ok(vec![
        case.check("latent_mean", &dist.mean, &io.get("latent_mean")?)?,
        case.check("latent_logvar", &dist.logvar, &io.get("latent_logvar")?)?,
        case.check("decoded", &decoded, &io.get("decoded")?)?,
    ])
}
