//! The method layer: MVCustom's multi-view generation on top of the networks, the sampling
//! loop and the feature renderer — target cameras become the frames of one clip.

pub mod anchor_depth;
pub mod clc;
pub mod components;
pub mod compose;
pub mod customization;
pub mod default_model;
pub mod demo_subject;
pub mod dfr;
pub mod error;
pub mod loaded_subject;
pub mod pipeline;
mod reference_views;
pub mod request;
pub mod subject;
pub mod subject_weights;
pub mod techniques;
pub mod text_to_video;
pub mod train;
pub mod view_latents;

pub use anchor_depth::DepthAlignment;
pub use clc::ClcHook;
pub use components::DiffusionComponents;
pub use default_model::{default_model_dir, demo_subjects_dir};
pub use demo_subject::{DemoSubjectOptions, write_demo_subject};
pub use dfr::{AnchorGeometry, DfrHook};
pub use error::{MvError, Result};
pub use loaded_subject::LoadedSubject;
pub use pipeline::MvPipeline;
pub use request::{
    ClcSettings, DfrSettings, GeneratedViews, Generation, GenerationEvent, GenerationRequest,
    Stage, StageTiming, Techniques,
};
pub use subject::{Subject, SubjectDefinition, SubjectError};
pub use subject_weights::{SubjectWeights, SubjectWeightsInfo};
pub use techniques::SharedRenderer;
pub use view_latents::InitViews;
