//! Kind `motion_unet`: the UNet with a `MotionAdapter`'s motion modules inserted (diffusers
//! `UNetMotionModel.from_unet2d`), sample `[B, C, F, H, W]`, text `[B·F, tokens, D]`.

use bevy_mvcustom::model::unet::UNet;
use bevy_mvcustom::model::{ComputeSettings, WeightVariant};

use super::common::{Case, Check};

/// Loads `unet/` + `motion_adapter/`, runs the motion UNet and compares `out`.
pub fn run(case: &Case) -> Result<Vec<Check>, String> {
    let io = case.io()?;
    let unet = UNet::load(
        &case.component("unet"),
        Some(&case.component("motion_adapter")),
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
