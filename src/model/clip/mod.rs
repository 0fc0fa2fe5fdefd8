//! The CLIP text encoder (transformers' `CLIPTextModel`) that turns token ids into the
//! conditioning of the UNet. Besides the plain forward pass it lets a caller substitute the
//! embedding of chosen token ids (a subject token learned by customization, possibly an id
//! beyond the checkpoint's vocabulary) before the encoder runs.

mod config;
mod layers;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;

pub use self::config::{ClipTextConfig, HiddenAct};
use self::layers::{EncoderLayer, LayerNorm};
use crate::model::error::{ModelError, Result};
use crate::model::load::{ComponentDir, ComputeSettings, WeightVariant};

/// What the encoder returns for a batch of prompts.
#[derive(Clone, Debug)]
pub struct ClipTextOutput {
    /// `[B, S, hidden]`: the last layer's output after `final_layer_norm` (SD's conditioning).
    pub last_hidden_state: Tensor,
    /// `[B, S, hidden]`: the input of the last layer (transformers' `hidden_states[-2]`), not
    /// normalised; pipelines with "clip skip" pass it through `final_layer_norm` themselves.
    pub penultimate_hidden_state: Tensor,
    /// `[B, hidden]`: `last_hidden_state` at each prompt's end-of-text position.
    pub pooler_output: Tensor,
}

/// The learned embedding used wherever `id` appears in the input, in place of the
/// checkpoint's row (which need not exist).
#[derive(Clone, Debug)]
pub struct TokenOverride {
    /// The token id to replace.
    pub id: u32,
    /// Its embedding, `[hidden]`; may be a `Var` whose gradient is wanted.
    pub embedding: Tensor,
}

/// transformers' `CLIPTextModel`: token + position embeddings, pre-norm transformer layers
/// under a causal mask, final layer norm.
#[derive(Clone, Debug)]
pub struct ClipTextModel {
    token_embedding: Tensor,
    position_embedding: Tensor,
    layers: Vec<EncoderLayer>,
    final_layer_norm: LayerNorm,
    config: ClipTextConfig,
    activation: HiddenAct,
}

/// The prefix of transformers 4 checkpoints (`text_model.embeddings…`); transformers 5
/// writes the same tensors without it.
const LEGACY_PREFIX: &str = "text_model";

impl ClipTextModel {
    /// Builds the encoder from a checkpoint's tensors, with or without the `text_model.`
    /// prefix. The config must have passed [`ClipTextConfig::validate`].
    pub fn new(vb: VarBuilder, cfg: &ClipTextConfig) -> candle_core::Result<Self> {
        let activation = cfg
            .activation()
            .ok_or_else(|| candle_core::Error::Msg(format!("hidden_act {}", cfg.hidden_act)))?;
        let prefixed = format!("{LEGACY_PREFIX}.embeddings.token_embedding.weight");
        let vb = if vb.contains_tensor(&prefixed) {
            vb.pp(LEGACY_PREFIX)
        } else {
            vb
        };
        let emb = vb.pp("embeddings");
        let h = cfg.hidden_size;
        let token_embedding = emb.get((cfg.vocab_size, h), "token_embedding.weight")?;
        let position_embedding = emb.get(
            (cfg.max_position_embeddings, h),
            "position_embedding.weight",
        )?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| EncoderLayer::new(vb.pp("encoder.layers").pp(i), cfg, activation))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let final_layer_norm = LayerNorm::new(vb.pp("final_layer_norm"), h, cfg.layer_norm_eps)?;
        Ok(Self {
            token_embedding,
            position_embedding,
            layers,
            final_layer_norm,
            config: cfg.clone(),
            activation,
        })
    }

    /// Reads `config.json` of `dir` (e.g. `text_encoder/`), validates it and loads the
    /// weights for `variant` on `settings`' device and dtype.
    pub fn load(
        dir: &ComponentDir,
        variant: WeightVariant,
        settings: &ComputeSettings,
    ) -> Result<Self> {
        let (cfg, path): (ClipTextConfig, _) = dir.json("config.json")?;
        cfg.validate(&path)?;
        dir.weights(variant, settings)?
            .build(|vb| Self::new(vb, &cfg))
    }

    /// The configuration the encoder was built with.
    pub fn config(&self) -> &ClipTextConfig {
        &self.config
    }

    /// The MLP activation in use.
    pub fn activation(&self) -> HiddenAct {
        self.activation
    }

    /// The token-embedding table `[vocab_size, hidden]` (e.g. to initialise a learned token
    /// from an existing word's row).
    pub fn token_embedding(&self) -> &Tensor {
        &self.token_embedding
    }

    /// Encodes `input_ids` `[B, S]` (u32 or i64, S ≤ `max_position_embeddings`).
    pub fn forward(&self, input_ids: &Tensor) -> Result<ClipTextOutput> {
        let embeds = self.embed_tokens(input_ids, &[])?;
        self.forward_embeds(&embeds, input_ids)
    }

    /// The token embeddings `[B, S, hidden]` of `input_ids`, with the rows of the ids named
    /// in `overrides` replaced by their given embedding. Ids outside the vocabulary are
    /// accepted only when overridden.
    pub fn embed_tokens(&self, input_ids: &Tensor, overrides: &[TokenOverride]) -> Result<Tensor> {
        let ids = self.host_ids(input_ids)?;
        let (b, s) = (ids.len(), ids.first().map_or(0, Vec::len));
        let vocab = self.config.vocab_size as i64;
        let is_overridden = |id: i64| overrides.iter().any(|o| i64::from(o.id) == id);
        let mut lookup = Vec::with_capacity(b * s);
        for &id in ids.iter().flatten() {
            if (0..vocab).contains(&id) {
                lookup.push(id as u32);
            } else if is_overridden(id) {
                lookup.push(0);
            } else {
                return Err(invalid_ids(format!(
                    "id {id} is outside the vocabulary (size {vocab}) and has no override"
                )));
            }
        }
        let device = self.token_embedding.device();
        let dtype = self.token_embedding.dtype();
        let hidden = self.config.hidden_size;
        let index = Tensor::from_vec(lookup, b * s, device)?;
        let mut embeds = self
            .token_embedding
            .index_select(&index, 0)?
            .reshape((b, s, hidden))?;
        for o in overrides {
            if o.embedding.elem_count() != hidden {
                return Err(ModelError::InvalidInput {
                    name: "overrides".into(),
                    reason: format!(
                        "embedding of token {} has shape {:?}, expected [{hidden}]",
                        o.id,
                        o.embedding.dims()
                    ),
                });
            }
            let hits: Vec<f32> = ids
                .iter()
                .flatten()
                .map(|&id| f32::from(u8::from(id == i64::from(o.id))))
                .collect();
            if hits.iter().all(|&h| h == 0.0) {
                continue;
            }
            let mask = Tensor::from_vec(hits, (b, s, 1), device)?.to_dtype(dtype)?;
            let row = o
                .embedding
                .to_device(device)?
                .to_dtype(dtype)?
                .reshape((1, 1, hidden))?;
            let keep = mask.affine(-1.0, 1.0)?;
            embeds = (embeds.broadcast_mul(&keep)? + mask.broadcast_mul(&row)?)?;
        }
        Ok(embeds)
    }

    /// Runs the encoder on token embeddings `[B, S, hidden]` (from [`Self::embed_tokens`]);
    /// `input_ids` `[B, S]` locate the end-of-text position for the pooled output.
    pub fn forward_embeds(
        &self,
        token_embeds: &Tensor,
        input_ids: &Tensor,
    ) -> Result<ClipTextOutput> {
        let ids = self.host_ids(input_ids)?;
        let (b, s, hidden) = token_embeds.dims3()?;
        if (b, s) != (ids.len(), ids.first().map_or(0, Vec::len))
            || hidden != self.config.hidden_size
        {
            return Err(ModelError::InvalidInput {
                name: "token_embeds".into(),
                reason: format!(
                    "shape {:?} does not match input_ids {:?} and hidden size {}",
                    token_embeds.dims(),
                    input_ids.dims(),
                    self.config.hidden_size
                ),
            });
        }
        let positions = self.position_embedding.narrow(0, 0, s)?.unsqueeze(0)?;
        let mut h = token_embeds.broadcast_add(&positions)?;
        let mask = causal_mask(s, h.dtype(), h.device())?;
        let mut penultimate = h.clone();
        for layer in &self.layers {
            penultimate = h;
            h = layer.forward(&penultimate, &mask)?;
        }
        let last_hidden_state = self.final_layer_norm.forward(&h)?;
        let pooled = ids
            .iter()
            .enumerate()
            .map(|(row, ids)| last_hidden_state.i((row, self.eos_position(ids))))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(ClipTextOutput {
            pooler_output: Tensor::stack(&pooled, 0)?,
            last_hidden_state,
            penultimate_hidden_state: penultimate,
        })
    }

    /// Where transformers reads the pooled output: with the legacy `eos_token_id == 2` the
    /// first position of the largest id (`<|endoftext|>` is the largest id of CLIP's
    /// vocabulary), otherwise the first position holding `eos_token_id` (0 when none does).
    fn eos_position(&self, ids: &[i64]) -> usize {
        let eos = self.config.eos_token_id;
        if eos == 2 {
            let max = ids.iter().copied().max().unwrap_or(0);
            ids.iter().position(|&id| id == max).unwrap_or(0)
        } else {
            ids.iter().position(|&id| id == eos).unwrap_or(0)
        }
    }

    /// `input_ids` copied to the host as rows of i64, checked to be `[B, S]` with
    /// `0 < S ≤ max_position_embeddings`.
    fn host_ids(&self, input_ids: &Tensor) -> Result<Vec<Vec<i64>>> {
        let (b, s) = input_ids.dims2().map_err(|_| {
            invalid_ids(format!(
                "shape {:?}, expected [batch, seq]",
                input_ids.dims()
            ))
        })?;
        let max = self.config.max_position_embeddings;
        if s == 0 || s > max || b == 0 {
            return Err(invalid_ids(format!(
                "shape {:?}: batch and sequence must be non-empty, sequence at most {max}",
                input_ids.dims()
            )));
        }
        match input_ids.dtype() {
            DType::U8 | DType::U32 | DType::I64 => Ok(input_ids.to_dtype(DType::I64)?.to_vec2()?),
            other => Err(invalid_ids(format!(
                "dtype {other:?}, expected an integer type"
            ))),
        }
    }
}

fn invalid_ids(reason: String) -> ModelError {
    ModelError::InvalidInput {
        name: "input_ids".into(),
        reason,
    }
}

/// `[1, 1, S, S]`: 0 where a query may see a key (key ≤ query), −∞ above the diagonal.
fn causal_mask(s: usize, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
    let values: Vec<f32> = (0..s)
        .flat_map(|q| (0..s).map(move |k| if k <= q { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Tensor::from_vec(values, (1, 1, s, s), device)?.to_dtype(dtype)
}
