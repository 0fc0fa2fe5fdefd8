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
        })
    }

    /// Reads `config.json` of `dir` (e.g. `text_encoder/`), validates it and loads the
    /// weights for `variant` on `settings`' device and dtype.
    pub fn load(
        dir: &ComponentDir,
        variant: WeightVariant,
        settings: &ComputeSettings,
    ) -> Result<Self> {
        dir.load_with_config(variant, settings, ClipTextConfig::validate, Self::new)
    }

    /// The configuration the encoder was built with.
    pub fn config(&self) -> &ClipTextConfig {
        &self.config
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{DType, Device, IndexOp, Tensor};

    use super::*;
    use crate::model::test_support::{TempDir, max_abs_diff, random_weights, write_component};

    const CONFIG: &str = r#"{"vocab_size": 50, "hidden_size": 8, "intermediate_size": 12,
        "num_attention_heads": 2, "num_hidden_layers": 2, "max_position_embeddings": 10,
        "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "eos_token_id": 2}"#;

    fn config(json: &str) -> ClipTextConfig {
        serde_json::from_str(json).unwrap()
    }

    fn weights() -> HashMap<String, Tensor> {
        random_weights(|vb| ClipTextModel::new(vb, &config(CONFIG)))
    }

    /// A text-encoder folder with `config` and `tensors` (written as model.safetensors).
    fn folder(
        tag: &str,
        config: &str,
        tensors: &HashMap<String, Tensor>,
    ) -> (TempDir, ComponentDir) {
        let tmp = TempDir::new(tag);
        write_component(tmp.path(), config, "model.safetensors", tensors);
        let dir = ComponentDir::new(tmp.path());
        (tmp, dir)
    }

    /// Writes a folder, loads it, removes it (the weights are copied out on load).
    fn load_folder(
        tag: &str,
        config: &str,
        tensors: &HashMap<String, Tensor>,
    ) -> Result<ClipTextModel> {
        let (_tmp, dir) = folder(tag, config, tensors);
        load(&dir)
    }

    fn load_with(dir: &ComponentDir, dtype: DType) -> Result<ClipTextModel> {
        let settings = ComputeSettings {
            device: Device::Cpu,
            dtype,
        };
        ClipTextModel::load(dir, WeightVariant::Full, &settings)
    }

    fn load(dir: &ComponentDir) -> Result<ClipTextModel> {
        load_with(dir, DType::F32)
    }

    fn ids(rows: &[&[u32]]) -> Tensor {
        let flat: Vec<u32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_vec(flat, (rows.len(), rows[0].len()), &Device::Cpu).unwrap()
    }

    #[test]
    fn missing_config_is_named() {
        let tmp = TempDir::new("clip-no-config");
        let dir = ComponentDir::new(tmp.path());
        match load(&dir) {
            Err(ModelError::MissingFile { path }) => assert!(path.ends_with("config.json")),
            other => panic!("expected MissingFile, got {other:?}"),
        }
    }

    #[test]
    fn missing_weight_file_is_named() {
        let tmp = TempDir::new("clip-no-weights");
        std::fs::write(tmp.path().join("config.json"), CONFIG).unwrap();
        match load(&ComponentDir::new(tmp.path())) {
            Err(ModelError::MissingFile { path }) => {
                assert_eq!(path.parent(), Some(tmp.path()));
                assert_eq!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("safetensors")
                );
            }
            other => panic!("expected MissingFile, got {other:?}"),
        }
    }

    #[test]
    fn malformed_config_is_a_parse_error() {
        let (_tmp, dir) = folder("clip-bad-json", "{\"hidden_size\": ", &weights());
        assert!(matches!(
            load(&dir),
            Err(ModelError::ConfigParse { path, .. }) if path.ends_with("config.json")
        ));
    }

    #[test]
    fn missing_tensor_names_tensor_and_file() {
        let mut w = weights();
        w.remove("encoder.layers.1.mlp.fc2.weight").unwrap();
        let (_tmp, dir) = folder("clip-missing-tensor", CONFIG, &w);
        match load(&dir) {
            Err(ModelError::MissingTensor { tensor, files }) => {
                assert_eq!(tensor, "encoder.layers.1.mlp.fc2.weight");
                assert_eq!(files, vec![dir.path().join("model.safetensors")]);
            }
            other => panic!("expected MissingTensor, got {other:?}"),
        }
    }

    #[test]
    fn shape_mismatch_reports_expected_and_found() {
        let mut w = weights();
        w.insert(
            "final_layer_norm.weight".into(),
            Tensor::ones(9, DType::F32, &Device::Cpu).unwrap(),
        );
        let (_tmp, dir) = folder("clip-bad-shape", CONFIG, &w);
        match load(&dir) {
            Err(ModelError::ShapeMismatch {
                tensor,
                expected,
                found,
                ..
            }) => {
                assert_eq!(tensor, "final_layer_norm.weight");
                assert_eq!((expected, found), (vec![8], vec![9]));
            }
            other => panic!("expected ShapeMismatch, got {other:?}"),
        }
    }

    #[test]
    fn unsupported_config_values_are_named() {
        let relu = CONFIG.replace("quick_gelu", "relu");
        match load_folder("clip-relu", &relu, &weights()) {
            Err(ModelError::UnsupportedConfig { path, field, value }) => {
                assert!(path.ends_with("config.json"));
                assert_eq!(field, "hidden_act");
                assert!(value.contains("relu"));
            }
            other => panic!("expected UnsupportedConfig, got {other:?}"),
        }
        let heads = CONFIG.replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 3");
        assert!(matches!(
            load_folder("clip-heads", &heads, &weights()),
            Err(ModelError::UnsupportedConfig { field, .. }) if field == "num_attention_heads"
        ));
    }

    #[test]
    fn legacy_text_model_prefix_loads_the_same_network() {
        let w = weights();
        let prefixed: HashMap<String, Tensor> = w
            .iter()
            .map(|(k, v)| (format!("text_model.{k}"), v.clone()))
            .collect();
        let plain = load_folder("clip-plain", CONFIG, &w).unwrap();
        let legacy = load_folder("clip-legacy", CONFIG, &prefixed).unwrap();
        let input = ids(&[&[49, 3, 4, 48, 48]]);
        let a = plain.forward(&input).unwrap();
        let b = legacy.forward(&input).unwrap();
        assert_eq!(
            max_abs_diff(&a.last_hidden_state, &b.last_hidden_state),
            0.0
        );
    }

    #[test]
    fn pooled_output_is_read_at_the_end_of_text() {
        let w = weights();
        // Legacy rule (eos_token_id 2): first position of the largest id.
        let legacy = load_folder("clip-pool-legacy", CONFIG, &w).unwrap();
        let input = ids(&[&[10, 3, 49, 49, 49], &[10, 45, 46, 49, 49]]);
        let out = legacy.forward(&input).unwrap();
        for (row, pos) in [(0usize, 2usize), (1, 3)] {
            let expected = out.last_hidden_state.i((row, pos)).unwrap();
            let got = out.pooler_output.i(row).unwrap();
            assert_eq!(max_abs_diff(&expected, &got), 0.0);
        }
        // Explicit end-of-text id: its first position, even when larger ids follow.
        let explicit = load_folder(
            "clip-pool-eos",
            &CONFIG.replace("\"eos_token_id\": 2", "\"eos_token_id\": 7"),
            &w,
        )
        .unwrap();
        let out = explicit.forward(&ids(&[&[10, 3, 7, 49, 7]])).unwrap();
        let expected = out.last_hidden_state.i((0, 2)).unwrap();
        assert_eq!(
            max_abs_diff(&expected, &out.pooler_output.i(0).unwrap()),
            0.0
        );
    }

    #[test]
    fn overrides_replace_rows_and_respect_causality() {
        let model = load_folder("clip-override", CONFIG, &weights()).unwrap();
        let input = ids(&[&[10, 3, 5, 6, 49]]);
        // Overriding a row with its own value changes nothing.
        let own = TokenOverride {
            id: 5,
            embedding: model.token_embedding().i(5).unwrap(),
        };
        let plain = model.embed_tokens(&input, &[]).unwrap();
        let same = model.embed_tokens(&input, &[own]).unwrap();
        assert_eq!(max_abs_diff(&plain, &same), 0.0);
        // A new id beyond the vocabulary needs an override.
        let new_ids = ids(&[&[10, 3, 50, 6, 49]]);
        assert!(matches!(
            model.embed_tokens(&new_ids, &[]),
            Err(ModelError::InvalidInput { .. })
        ));
        let learned = TokenOverride {
            id: 50,
            embedding: Tensor::ones(8, DType::F32, &Device::Cpu).unwrap(),
        };
        let embeds = model.embed_tokens(&new_ids, &[learned]).unwrap();
        let row = embeds.i((0, 2)).unwrap();
        assert_eq!(row.to_vec1::<f32>().unwrap(), vec![1.0; 8]);
        // Under the causal mask, positions before the new token are unaffected, later ones change.
        let with = model
            .forward_embeds(&embeds, &new_ids)
            .unwrap()
            .last_hidden_state;
        let without = model.forward(&input).unwrap().last_hidden_state;
        for pos in 0..5 {
            let d = max_abs_diff(&with.i((0, pos)).unwrap(), &without.i((0, pos)).unwrap());
            if pos < 2 {
                assert_eq!(d, 0.0, "position {pos}");
            } else {
                assert!(d > 1e-4, "position {pos}");
            }
        }
    }

    #[test]
    fn gradient_reaches_a_learned_token_embedding() {
        let model = load_folder("clip-grad", CONFIG, &weights()).unwrap();
        let var = candle_core::Var::from_tensor(&model.token_embedding().i(3).unwrap()).unwrap();
        let input = ids(&[&[49, 50, 4, 48, 48]]);
        let learned = TokenOverride {
            id: 50,
            embedding: var.as_tensor().clone(),
        };
        let embeds = model.embed_tokens(&input, &[learned]).unwrap();
        let out = model.forward_embeds(&embeds, &input).unwrap();
        let loss = out.last_hidden_state.sqr().unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let grad = grads
            .get(var.as_tensor())
            .expect("no gradient for the learned row");
        let norm = grad
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm.is_finite() && norm > 0.0);
    }

    #[test]
    fn invalid_inputs_are_rejected() {
        let model = load_folder("clip-inputs", CONFIG, &weights()).unwrap();
        let too_long = Tensor::zeros((1, 11), DType::U32, &Device::Cpu).unwrap();
        assert!(matches!(
            model.forward(&too_long),
            Err(ModelError::InvalidInput { .. })
        ));
        let float_ids = Tensor::zeros((1, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(matches!(
            model.forward(&float_ids),
            Err(ModelError::InvalidInput { .. })
        ));
    }

    #[test]
    fn half_precisions_track_f32() {
        let (_tmp, dir) = folder("clip-dtypes", CONFIG, &weights());
        let input = ids(&[&[49, 3, 4, 48, 48, 48]]);
        let reference = load(&dir)
            .unwrap()
            .forward(&input)
            .unwrap()
            .last_hidden_state;
        for (dtype, tol) in [(DType::F16, 1e-2), (DType::BF16, 6e-2)] {
            let out = load_with(&dir, dtype).unwrap().forward(&input).unwrap();
            assert_eq!(out.last_hidden_state.dtype(), dtype);
            let err = max_abs_diff(&out.last_hidden_state, &reference);
            assert!(err < tol, "{dtype:?}: {err}");
        }
    }
}
