//! Kinds `unet` (`UNet2DConditionModel` forward) and `motion_unet` (the UNet with a
//! `MotionAdapter`'s motion modules inserted, diffusers `UNetMotionModel.from_unet2d`: sample
//! `[B, C, F, H, W]`, text `[B·F, tokens, D]`), on `sample`, `timestep`,
//! `encoder_hidden_states`.

use bevy_mvcustom::model::unet::UNet;
use bevy_mvcustom::model::{ComputeSettings, WeightVariant};

use super::common::{Case, Check};

/// Loads `unet/` (plus `motion_adapter/` when `with_motion`), runs it on the case's inputs
/// and compares `out`.
pub fn run(case: &Case, with_motion: bool) -> Result<Vec<Check>, String> {
    let io = case.io()?;
    let adapter = case.component("motion_adapter");
    let unet = UNet::load(
        &case.component("unet"),
        with_motion.then_some(adapter.as_path()),
        WeightVariant::Full,
        &ComputeSettings::default(),
    )
    .map_err(|e| e.to_string())?;
    let out = unet
        .forward(
            &io.get("sample")?,
            &io.get("timestep")?,
            &io.get("encoder_hidden_states")?,
            None,
        )
        .map_err(|e| e.to_string())?;
    Ok(vec![case.check("out", &out, &io.get("out")?)?])
}
