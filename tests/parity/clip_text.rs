//! `clip_text`: transformers' `CLIPTextModel` forward on the peer's `input_ids`, checking
//! the last hidden state, the penultimate one (the last layer's input) and the pooled output.

use bevy_mvcustom::model::clip::ClipTextModel;
use bevy_mvcustom::model::{ComponentDir, ComputeSettings, WeightVariant};

use super::common::{Case, Check};

/// Loads `text_encoder/`, encodes `input_ids` and compares the three outputs.
pub fn run(case: &Case) -> Result<Vec<Check>, String> {
    let dir = ComponentDir::new(case.component("text_encoder"));
    let model = ClipTextModel::load(&dir, WeightVariant::Full, &ComputeSettings::default())
        .map_err(|e| e.to_string())?;
    let io = case.io()?;
    let out = model
        .forward(&io.get("input_ids")?)
        .map_err(|e| e.to_string())?;
    Ok(vec![
        case.check(
            "last_hidden_state",
            &out.last_hidden_state,
            &io.get("last_hidden_state")?,
        )?,
        case.check(
            "penultimate_hidden_state",
            &out.penultimate_hidden_state,
            &io.get("penultimate_hidden_state")?,
        )?,
        case.check(
            "pooler_output",
            &out.pooler_output,
            &io.get("pooler_output")?,
        )?,
    ])
}
