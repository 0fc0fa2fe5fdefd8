//! Setting up MVCustom's inference techniques for one generation: the anchor geometry of
//! depth-aware feature rendering (rasterised once, before sampling) and the disocclusion masks
//! latent completion derives from it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use candle_core::Device;

use super::clc::ClcHook;
use super::dfr::{AnchorGeometry, DfrHook};
use super::error::{MvError, Result};
use super::request::{GenerationEvent, GenerationRequest, Stage, StageTiming};
use crate::model::unet::UNet;
use crate::render::{FeatureRenderer, RenderSettings};

/// A feature renderer created on first use (with [`RenderSettings::default`]: a hardware GPU
/// when there is one, else the CPU) and shared by every generation of a pipeline, so that a
/// wgpu device is set up once rather than per call. Clones share it; it is `Send + Sync`.
#[derive(Clone, Debug, Default)]
pub struct SharedRenderer(Arc<Mutex<Option<Arc<FeatureRenderer>>>>);

impl SharedRenderer {
    /// A holder that already has `renderer` (e.g. one on the Bevy app's device).
    pub fn new(renderer: FeatureRenderer) -> Self {
        Self(Arc::new(Mutex::new(Some(Arc::new(renderer)))))
    }

    /// The renderer, created now if this is the first use.
    pub fn get(&self) -> Result<Arc<FeatureRenderer>> {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(renderer) = slot.as_ref() {
            return Ok(Arc::clone(renderer));
        }
        let renderer = Arc::new(FeatureRenderer::new(RenderSettings::default())?);
        *slot = Some(Arc::clone(&renderer));
        Ok(renderer)
    }
}

/// The hooks of the techniques a request switches on.
#[derive(Debug, Default)]
pub(crate) struct TechniqueHooks {
    /// Depth-aware feature rendering, inside the UNet.
    pub dfr: Option<DfrHook>,
    /// Latent completion, around the scheduler step.
    pub clc: Option<ClcHook>,
}

/// Builds the hooks of `request`'s techniques for `unet` at the latent grid `latent`,
/// reporting [`Stage::RenderingFeatures`] and the `dfr_rasterise` timing. A single view has
/// nothing to render into: no hooks.
pub(crate) fn prepare(
    renderer: &SharedRenderer,
    request: &GenerationRequest,
    unet: &UNet,
    latent: (usize, usize),
    device: &Device,
    events: &mut dyn FnMut(GenerationEvent),
    timings: &mut Vec<StageTiming>,
) -> Result<TechniqueHooks> {
    let views = request.cameras.len();
    let techniques = &request.techniques;
    if let Some(clc) = &techniques.clc {
        clc.validate()?;
    }
    let Some(dfr) = &techniques.dfr else {
        if techniques.clc.is_some() {
            return Err(MvError::request(
                "techniques.clc",
                "latent completion uses the visibility of depth-aware feature rendering's \
                 geometry: switch `techniques.dfr` on (with an anchor depth) or CLC off",
            ));
        }
        return Ok(TechniqueHooks::default());
    };
    let anchor = dfr.validate(views)?;
    if views < 2 {
        return Ok(TechniqueHooks::default());
    }
    let Some(depth) = &request.anchor_depth else {
        return Err(MvError::request(
            "anchor_depth",
            "is required by depth-aware feature rendering: estimating depth without a depth \
             map is not available; supply the anchor view's z-depth or switch \
             `techniques.dfr` off",
        ));
    };
    let sites = unet.hook_sites();
    let layers = dfr.layers.select(&sites);
    if layers.is_empty() {
        let available: Vec<String> = sites
            .iter()
            .map(|s| format!("{} ({:?}, {:?}, level {})", s.name, s.kind, s.path, s.level))
            .collect();
        return Err(MvError::request(
            "techniques.dfr.layers",
            format!(
                "selects no layer of this UNet; its hook points are: {}",
                available.join(", ")
            ),
        ));
    }
    let mut grids: Vec<(usize, usize)> = layers.iter().map(|s| s.grid(latent)).collect();
    let clc_grid = techniques.clc.as_ref().map(|c| {
        let s = c.mask_supersampling as usize;
        (latent.0 * s, latent.1 * s)
    });
    grids.extend(clc_grid);

    events(GenerationEvent::StageStarted(Stage::RenderingFeatures));
    let started = Instant::now();
    let renderer = renderer.get()?;
    let geometry = AnchorGeometry::build(
        &renderer,
        depth,
        &request.cameras,
        anchor,
        dfr.discontinuity_threshold,
        &grids,
        device,
    )?;
    let clc = match (&techniques.clc, clc_grid) {
        (Some(settings), Some(grid)) => {
            let mask = geometry.disocclusion(grid, latent, device)?;
            Some(ClcHook::new(
                &mask,
                f64::from(settings.step_fraction),
                request.seed,
            )?)
        }
        _ => None,
    };
    let dfr = DfrHook::new(geometry, &layers, latent, f64::from(dfr.step_fraction))?;
    timings.push(StageTiming {
        stage: "dfr_rasterise".into(),
        seconds: started.elapsed().as_secs_f64(),
    });
    Ok(TechniqueHooks {
        dfr: Some(dfr),
        clc,
    })
}
