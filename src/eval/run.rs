//! Running the benchmark: every case of every subject, every row of the ablation, measured.

use std::sync::Arc;
use std::time::Instant;

use image::RgbImage;
use serde::Serialize;

use super::ablation::Variant;
use super::alignment::{EnvironmentClassifier, PrototypeSettings};
use super::cases::{EvalCase, case_environments};
use super::identity::ColourHistogram;
use super::metrics::{ClipMetrics, MetricContext, measure};
use super::pose::DEFAULT_DESCRIPTOR_SIDE;
use crate::diffusion::CancelToken;
use crate::mvcustom::demo_subject::demo_subject_token;
use crate::mvcustom::{
    DfrSettings, GenerationEvent, GenerationRequest, LoadedSubject, MvError, MvPipeline, Result,
    Subject,
};
use crate::world::{DemoSubject, RenderSettings, TrajectorySampler};

/// First evaluation-split scene index of the environment prototypes, far from the cases'.
pub const PROTOTYPE_FIRST_SCENE: u64 = 1 << 40;

/// What to evaluate and how to generate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalSettings {
    /// Cases per subject.
    pub cases: usize,
    /// Views (cameras) per case.
    pub views: u32,
    /// Width and height of views, pixels.
    pub size: u32,
    /// Denoising steps.
    pub steps: usize,
    /// Classifier-free guidance scale.
    pub guidance_scale: f64,
    /// Noise seed of the first case (case `k` uses `seed + k`; every row of a case shares it).
    pub seed: u64,
    /// Evaluation-split scene index of the first case (case `k` uses `first_scene + k`).
    pub first_scene: u64,
    /// Side of the pose-retrieval descriptor grid.
    pub descriptor_side: u32,
    /// Ground-truth clips rendered per environment prototype.
    pub prototype_clips: usize,
    /// Renderer settings of the ground truth.
    pub render: RenderSettings,
    /// Depth-aware feature rendering of the rows that use it (see [`Variant::techniques`]).
    pub dfr: DfrSettings,
}

impl Default for EvalSettings {
    /// Four cases per subject of eight 64×64 views, 25 steps, guidance 5.
    fn default() -> Self {
        Self {
            cases: 4,
            views: 8,
            size: 64,
            steps: 25,
            guidance_scale: 5.0,
            seed: 0,
            first_scene: 0,
            descriptor_side: DEFAULT_DESCRIPTOR_SIDE,
            prototype_clips: 3,
            render: RenderSettings::default(),
            dfr: DfrSettings::default(),
        }
    }
}

impl EvalSettings {
    /// The trajectories of cases and prototypes: the world's default sampler (orbits over
    /// several elevations and arcs, dollies) at this view count and size.
    pub fn trajectories(&self) -> TrajectorySampler {
        TrajectorySampler {
            views: self.views,
            width: self.size,
            height: self.size,
            ..Default::default()
        }
    }

    /// Checks the counts (generation settings are checked by the pipeline).
    pub fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("cases", self.cases),
            ("views", self.views as usize),
            ("descriptor_side", self.descriptor_side as usize),
            ("prototype_clips", self.prototype_clips),
        ] {
            if value == 0 {
                return Err(MvError::request(field, "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// The demo subject a subject definition stands for, recognised by its token.
pub fn demo_subject_of(subject: &Subject) -> Result<DemoSubject> {
    DemoSubject::ALL
        .into_iter()
        .find(|d| demo_subject_token(*d) == subject.token)
        .ok_or_else(|| MvError::File {
            path: subject.path.clone(),
            reason: format!(
                "token {} is no demo subject's: the evaluation renders its ground truth, so it \
                 needs one of {} (written by `mvcustom demo-subject`)",
                subject.token,
                DemoSubject::ALL
                    .iter()
                    .map(|d| demo_subject_token(*d))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

/// A trained demo subject to evaluate.
#[derive(Clone, Debug)]
pub struct EvalSubject {
    /// Which demo subject it is.
    pub demo: DemoSubject,
    /// Its definition, weights and reference features.
    pub loaded: Arc<LoadedSubject>,
    /// The pooled colour histogram of its references' subject pixels.
    pub references: ColourHistogram,
}

impl EvalSubject {
    /// Wraps a loaded subject, recognising its demo subject by token.
    pub fn new(loaded: Arc<LoadedSubject>) -> Result<Self> {
        let subject = loaded.subject();
        let demo = demo_subject_of(subject)?;
        let mut references = ColourHistogram::default();
        for reference in &subject.references {
            let rgb = image::DynamicImage::ImageRgba8(reference.image.clone()).to_rgb8();
            references.add_masked(&rgb, &reference.mask)?;
        }
        Ok(Self {
            demo,
            loaded,
            references,
        })
    }
}

/// Progress of an evaluation.
#[derive(Clone, Debug)]
pub enum EvalEvent<'a> {
    /// The environment prototypes are being rendered.
    Prototypes,
    /// A case's ground truth is ready (`index` of `total`).
    Case {
        /// The case.
        case: &'a EvalCase,
        /// Cases in the run.
        total: usize,
    },
    /// A row of the current case starts generating.
    Row(Variant),
    /// Progress of that generation.
    Generation(&'a GenerationEvent),
}

/// One row of one case: what was asked, what came out, how it measured.
#[derive(Clone, Debug)]
pub struct RowRun {
    /// The row.
    pub variant: Variant,
    /// The prompt (`None` for the ground truth).
    pub prompt: Option<String>,
    /// The views, one per camera.
    pub images: Vec<RgbImage>,
    /// Their metrics.
    pub metrics: ClipMetrics,
    /// Seconds the generation took (`None` for the ground truth).
    pub seconds: Option<f64>,
    /// What the pipeline noted (e.g. a technique that could not run).
    pub notices: Vec<String>,
}

/// One case with all its rows.
#[derive(Clone, Debug)]
pub struct CaseRun {
    /// The case and its ground truth.
    pub case: EvalCase,
    /// Its rows, in [`Variant::ALL`] order.
    pub rows: Vec<RowRun>,
}

/// Runs the benchmark: `settings.cases` cases per subject (interleaved, so the environments
/// cycle across subjects), each measured as ground truth and generated with every row of the
/// ablation.
pub fn evaluate(
    pipeline: &MvPipeline,
    subjects: &[EvalSubject],
    settings: &EvalSettings,
    events: &mut dyn FnMut(EvalEvent<'_>),
    cancel: &CancelToken,
) -> Result<Vec<CaseRun>> {
    settings.validate()?;
    if subjects.is_empty() {
        return Err(MvError::request(
            "subjects",
            "at least one subject is needed",
        ));
    }
    let trajectories = settings.trajectories();
    events(EvalEvent::Prototypes);
    let environments = EnvironmentClassifier::from_world(&PrototypeSettings {
        environments: case_environments(),
        clips: settings.prototype_clips,
        trajectories: trajectories.clone(),
        render: settings.render,
        first_scene: PROTOTYPE_FIRST_SCENE,
    })?;
    let total = settings.cases * subjects.len();
    let mut runs = Vec::with_capacity(total);
    for index in 0..total {
        cancel.check()?;
        let subject = &subjects[index % subjects.len()];
        let case = EvalCase::new(
            index,
            subject.demo,
            settings.first_scene,
            &trajectories,
            &settings.render,
        )?;
        events(EvalEvent::Case { case: &case, total });
        let context = MetricContext {
            references: &subject.references,
            environments: &environments,
            descriptor_side: settings.descriptor_side,
        };
        let mut rows = Vec::with_capacity(Variant::ALL.len());
        let truth = case.truth_rgb();
        rows.push(RowRun {
            variant: Variant::GroundTruth,
            prompt: None,
            metrics: measure(&case, &truth, &context)?,
            images: truth,
            seconds: None,
            notices: Vec::new(),
        });
        for variant in Variant::GENERATED {
            events(EvalEvent::Row(variant));
            let row = generate_row(pipeline, subject, &case, variant, settings, events, cancel)?;
            rows.push(RowRun {
                variant,
                metrics: measure(&case, &row.images, &context)?,
                prompt: Some(row.prompt),
                images: row.images,
                seconds: Some(row.seconds),
                notices: row.notices,
            });
        }
        runs.push(CaseRun { case, rows });
    }
    Ok(runs)
}

/// What one generated row produced, before it is measured.
struct GeneratedRow {
    prompt: String,
    images: Vec<RgbImage>,
    seconds: f64,
    notices: Vec<String>,
}

/// Generates one row of a case.
fn generate_row(
    pipeline: &MvPipeline,
    subject: &EvalSubject,
    case: &EvalCase,
    variant: Variant,
    settings: &EvalSettings,
    events: &mut dyn FnMut(EvalEvent<'_>),
    cancel: &CancelToken,
) -> Result<GeneratedRow> {
    let techniques = variant
        .techniques(&settings.dfr)
        .ok_or_else(|| MvError::request("variant", "the ground truth is not generated"))?;
    let definition = subject.loaded.subject();
    let prompt = if variant.uses_subject() {
        case.prompt(&format!("{} {}", definition.token, definition.class_word))
    } else {
        case.prompt(&definition.class_word)
    };
    let anchor_depth = match &techniques.dfr {
        Some(dfr) => Some(case.anchor_depth(dfr.validate(case.clip.cameras.len())?)?),
        None => None,
    };
    let request = GenerationRequest {
        prompt: prompt.clone(),
        negative_prompt: String::new(),
        cameras: case.clip.cameras.clone(),
        width: settings.size,
        height: settings.size,
        steps: settings.steps,
        guidance_scale: settings.guidance_scale,
        seed: settings.seed + case.index as u64,
        techniques,
        anchor_depth,
        preview_every: None,
        composition: None,
        init_views: None,
    };
    let started = Instant::now();
    let generation = pipeline.generate_with(
        &request,
        variant.uses_subject().then_some(subject.loaded.as_ref()),
        &mut |event| events(EvalEvent::Generation(&event)),
        cancel,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let images = generation
        .views
        .images
        .into_iter()
        .map(|image| image::DynamicImage::ImageRgba8(image).to_rgb8())
        .collect();
    Ok(GeneratedRow {
        prompt,
        images,
        seconds,
        notices: generation.views.notices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcustom::demo_subject::{DemoSubjectOptions, write_demo_subject};

    #[test]
    fn demo_subjects_are_recognised_by_token_and_others_rejected() {
        let dir = std::env::temp_dir().join(format!("mvcustom-eval-token-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let options = DemoSubjectOptions {
            references: 1,
            size: 16,
            ..Default::default()
        };
        for demo in DemoSubject::ALL {
            let path = write_demo_subject(demo, &dir.join(demo.name()), &options).unwrap();
            let subject = Subject::load(&path).unwrap();
            assert_eq!(demo_subject_of(&subject).unwrap(), demo);
            let renamed = Subject {
                token: "<teddy>".into(),
                ..subject
            };
            let err = demo_subject_of(&renamed).unwrap_err().to_string();
            assert!(
                err.contains("<teddy>") && err.contains("<toy_robot>"),
                "{err}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
        let none = EvalSettings {
            cases: 0,
            ..Default::default()
        };
        assert!(none.validate().unwrap_err().to_string().contains("cases"));
        EvalSettings::default().validate().unwrap();
    }
}
