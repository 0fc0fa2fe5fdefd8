//! Setting up MVCustom's inference techniques for one generation: the anchor geometry of
//! depth-aware feature rendering (rasterised once, before sampling) and the disocclusion masks
//! latent completion derives from it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use candle_core::Device;

use super::clc::ClcHook;
use super::dfr::{AnchorGeometry, DfrHook};
use super::error::{MvError, Result};
use super::request::{
    ClcSettings, DfrSettings, GenerationEvent, GenerationRequest, Stage, StageTiming,
};
use crate::model::unet::UNet;
use crate::render::{DepthMap, FeatureRenderer, RenderSettings};

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

/// Depth-aware feature rendering (and latent completion) as a request asks for them, checked.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    /// The anchor view.
    pub anchor: usize,
    /// DFR's settings.
    pub dfr: &'a DfrSettings,
    /// CLC's settings, when on.
    pub clc: Option<&'a ClcSettings>,
}

/// Checks `request`'s technique settings; `None` when DFR is off or there is a single view
/// (nothing to render into). CLC without DFR is an error: it uses DFR's geometry.
pub(crate) fn plan(request: &GenerationRequest) -> Result<Option<Plan<'_>>> {
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
        return Ok(None);
    };
    let views = request.cameras.len();
    let anchor = dfr.validate(views)?;
    Ok((views >= 2).then_some(Plan {
        anchor,
        dfr,
        clc: techniques.clc.as_ref(),
    }))
}

/// Why depth-aware feature rendering (and latent completion, which uses its geometry) did
/// not run: the request has no anchor depth and the pipeline no depth estimator.
pub(crate) const MISSING_DEPTH_NOTICE: &str = "depth-aware feature rendering and latent \
     completion were skipped: the request has no anchor depth and the pipeline no depth \
     estimator (supply the anchor view's z-depth — in Bevy, a `DepthPrepass` on the anchor \
     camera — or give the pipeline an estimator with `MvPipeline::with_depth_estimator`)";

/// Builds the hooks of `plan` for `request`'s cameras, the anchor depth `depth`, `unet` at
/// the latent grid `latent`, reporting [`Stage::RenderingFeatures`] and the `dfr_rasterise`
/// timing.
#[allow(clippy::too_many_arguments)]
pub(crate) fn prepare(
    renderer: &SharedRenderer,
    request: &GenerationRequest,
    plan: &Plan<'_>,
    depth: &DepthMap,
    unet: &UNet,
    latent: (usize, usize),
    device: &Device,
    events: &mut dyn FnMut(GenerationEvent),
    timings: &mut Vec<StageTiming>,
) -> Result<TechniqueHooks> {
    let sites = unet.hook_sites();
    let layers = plan.dfr.layers.select(&sites);
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
    let clc_grid = plan.clc.map(|c| {
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
        plan.anchor,
        plan.dfr.max_surface_angle_deg,
        &grids,
        device,
    )?;
    let clc = match (plan.clc, clc_grid) {
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
    let dfr = DfrHook::new(geometry, &layers, latent, f64::from(plan.dfr.step_fraction))?;
    timings.push(StageTiming {
        stage: "dfr_rasterise".into(),
        seconds: started.elapsed().as_secs_f64(),
    });
    Ok(TechniqueHooks {
        dfr: Some(dfr),
        clc,
    })
}
