//! A trained subject made ready for the generations of one pipeline: its definition, its
//! pose blocks built from the learned weights in the pipeline's dtype, its prompt token with
//! the learned embedding row, and its reference features — the reference images encoded at
//! the resolution training used and passed once through the frozen UNet, together with the
//! all-zero image's "no reference" features — computed once when the subject is prepared.
//!
//! Per generation only the fields are rendered, once for the target cameras and the prompts
//! ([`LoadedSubject::render`]); the pose-block hook then reuses them at every step.
//!
//! [`SubjectCache`] keeps prepared subjects by definition path, so a pipeline that generates
//! many times with one subject prepares it once (and again only when its definition or weights
//! file changes on disk).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use candle_core::Tensor;

use super::components::DiffusionComponents;
use super::error::{MvError, Result};
use super::reference_views::{prepare_references, reference_cache, reference_cameras};
use super::subject::Subject;
use super::subject_weights::{SubjectWeights, SubjectWeightsInfo};
use super::text_to_video::PromptEmbeddings;
use crate::camera::{PinholeCamera, SceneNormalization};
use crate::model::clip::TokenOverride;
use crate::model::pose::{
    Jitter, PoseBlocks, ReferenceCache, RenderRequest, RenderedFeatures, render_features,
};
use crate::model::tokenizer::ClipTokenizer;
use crate::model::unet::UNet;

/// A subject prepared for one pipeline's model (see the module documentation). It is tied
/// to the networks it was prepared with: use it only with the pipeline that prepared it.
#[derive(Debug)]
pub struct LoadedSubject {
    subject: Subject,
    info: SubjectWeightsInfo,
    blocks: PoseBlocks,
    tokenizer: ClipTokenizer,
    token: TokenOverride,
    references: ReferenceCache,
    reference_cameras: Vec<PinholeCamera>,
    parameters: usize,
    preparation_time: Duration,
}

impl LoadedSubject {
    /// Prepares `subject` with its trained `weights` for `components`: builds the pose
    /// blocks in the components' dtype, registers the subject token with a copy of the
    /// tokenizer, and computes the reference features (the part timed by
    /// [`LoadedSubject::preparation_time`]).
    pub fn prepare(
        components: &DiffusionComponents,
        subject: Subject,
        weights: &SubjectWeights,
    ) -> Result<Self> {
        let started = Instant::now();
        let unet = &components.unet;
        let info = weights.info().clone();
        let blocks = weights.pose_blocks(unet, components.settings.dtype)?;
        let mut tokenizer = components.tokenizer.clone();
        let id = tokenizer.add_token(&subject.token)?;
        let token = TokenOverride {
            id,
            embedding: weights.token_embedding()?.detach(),
        };
        let size = info.reference_resolution;
        components.latent_size(size, size).map_err(|e| match e {
            MvError::InvalidRequest { reason, .. } => MvError::File {
                path: subject.weights_path.clone(),
                reason: format!(
                    "its reference resolution {size} does not suit this model: {reason}"
                ),
            },
            other => other,
        })?;
        let views = prepare_references(components, &subject, size)?;
        let references = reference_cache(components, &blocks, &views, size, &subject.class_word)?;
        let reference_cameras = reference_cameras(&subject, size)?;
        let parameters = weights.tensors()?.values().map(|t| t.elem_count()).sum();
        Ok(Self {
            subject,
            info,
            blocks,
            tokenizer,
            token,
            references,
            reference_cameras,
            parameters,
            preparation_time: started.elapsed(),
        })
    }

    /// Loads the subject definition `path`, its weights file (named by the definition, by
    /// default beside it) checked against the components' networks, and prepares it. Weights
    /// that do not fit the model are an error naming the file and the tensor.
    pub fn load(components: &DiffusionComponents, path: &Path) -> Result<Self> {
        let subject = Subject::load(path)?;
        if !subject.weights_path.is_file() {
            return Err(MvError::File {
                path: subject.weights_path.clone(),
                reason: format!(
                    "the weights of subject {} are missing: train it first (`mvcustom train {}`)",
                    subject.token,
                    path.display()
                ),
            });
        }
        let weights = SubjectWeights::load(
            &subject.weights_path,
            &components.unet,
            components.text_encoder.config().hidden_size,
            &components.settings.device,
        )?;
        Self::prepare(components, subject, &weights)
    }

    /// The definition, with its reference images and cameras.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// What the weights were trained for.
    pub fn info(&self) -> &SubjectWeightsInfo {
        &self.info
    }

    /// The pose blocks, ready for inference.
    pub fn pose_blocks(&self) -> &PoseBlocks {
        &self.blocks
    }

    /// The reference features and the all-zero image's "no reference" features (the
    /// condition customization trains with reference drop-out).
    pub fn reference_features(&self) -> &ReferenceCache {
        &self.references
    }

    /// Number of learned scalars (pose blocks and token row).
    pub fn parameters(&self) -> usize {
        self.parameters
    }

    /// How long preparing took (mostly encoding the references and computing their
    /// features).
    pub fn preparation_time(&self) -> Duration {
        self.preparation_time
    }

    /// Whether `prompt` names the subject by its token.
    pub fn is_named_in(&self, prompt: &str) -> bool {
        self.tokenizer.content_ids(prompt).contains(&self.token.id)
    }

    /// The conditioning `[1, 77, D]` of `prompt`, the subject token taking its learned row.
    pub fn encode_prompt(&self, components: &DiffusionComponents, prompt: &str) -> Result<Tensor> {
        let ids = components.prompt_ids(&self.tokenizer, prompt)?;
        components.encode_ids(&ids, std::slice::from_ref(&self.token))
    }

    /// The prompt and, under guidance, the negative prompt encoded with the subject token.
    pub fn encode_prompts(
        &self,
        components: &DiffusionComponents,
        prompt: &str,
        negative_prompt: &str,
        guidance_scale: f64,
    ) -> Result<PromptEmbeddings> {
        PromptEmbeddings::encode(prompt, negative_prompt, guidance_scale, |text| {
            self.encode_prompt(components, text)
        })
    }

    /// Renders every pose block's field for the target cameras `targets` (the user's world,
    /// any image size) on the latent grid `latent`, with the UNet batch's text conditioning
    /// `conditioning` (`[negative; prompt]` under guidance). Reference and target cameras
    /// are normalised together (axes meeting at the origin, farthest camera at distance 1).
    pub fn render(
        &self,
        unet: &UNet,
        targets: &[PinholeCamera],
        latent: (usize, usize),
        conditioning: &Tensor,
    ) -> Result<RenderedFeatures> {
        let all: Vec<PinholeCamera> = self
            .reference_cameras
            .iter()
            .chain(targets)
            .copied()
            .collect();
        let normalisation = SceneNormalization::fit(&all)?;
        let normalised = all
            .iter()
            .map(|c| normalisation.apply_camera(c))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let (reference_cameras, targets) = normalised.split_at(self.reference_cameras.len());
        Ok(render_features(
            unet,
            &self.blocks,
            &RenderRequest {
                references: &self.references.references,
                reference_cameras,
                targets,
                latent_size: latent,
                conditioning,
            },
            &mut Jitter::None,
        )?)
    }
}

/// When a subject's files last changed: a cached preparation is reused while they have not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamps {
    definition: Option<SystemTime>,
    weights: Option<SystemTime>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A prepared subject and the state of its files when it was prepared.
type CachedSubject = (FileStamps, Arc<LoadedSubject>);

/// Prepared subjects by definition path (shared by clones of a pipeline).
#[derive(Clone, Debug, Default)]
pub(crate) struct SubjectCache(Arc<Mutex<HashMap<PathBuf, CachedSubject>>>);

impl SubjectCache {
    /// The subject of the definition `path`, prepared for `components` now unless it was
    /// already and neither its definition nor its weights changed since.
    pub(crate) fn get(
        &self,
        components: &DiffusionComponents,
        path: &Path,
    ) -> Result<Arc<LoadedSubject>> {
        let key = std::fs::canonicalize(path).map_err(|e| MvError::File {
            path: path.to_path_buf(),
            reason: format!("cannot read subject definition: {e}"),
        })?;
        let stamp_of = |subject: &LoadedSubject| FileStamps {
            definition: modified(&key),
            weights: modified(&subject.subject.weights_path),
        };
        {
            let cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((stamp, subject)) = cache.get(&key)
                && *stamp == stamp_of(subject)
            {
                return Ok(Arc::clone(subject));
            }
        }
        let subject = Arc::new(LoadedSubject::load(components, &key)?);
        let stamp = stamp_of(&subject);
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (stamp, Arc::clone(&subject)));
        Ok(subject)
    }
}
