//! Kind `unet`: `UNet2DConditionModel` forward on `sample`, `timestep`, `encoder_hidden_states`.

use bevy_mvcustom::model::unet::UNet;
use bevy_mvcustom::model::{ComputeSettings, WeightVariant};

use super::common::{Case, Check};

/// Loads `unet/`, runs it on the case's inputs and compares `out`.
pub fn run(case: &Case) -> Result<Vec<Check>, String> {
    let io = case.io()?;
    let unet = UNet::load(
        &case.component("unet"),
        None,
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
