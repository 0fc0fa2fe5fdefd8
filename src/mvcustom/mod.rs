//! The method layer: MVCustom's multi-view generation on top of the networks, the sampling
//! loop and the feature renderer — target cameras become the frames of one clip.

pub mod anchor_depth;
pub mod clc;
pub mod components;
pub mod compose;
pub mod dfr;
pub mod error;
pub mod pipeline;
pub mod request;
pub mod subject;
pub mod techniques;
pub mod text_to_video;

pub use anchor_depth::DepthAlignment;
pub use clc::ClcHook;
pub use components::DiffusionComponents;
pub use dfr::{AnchorGeometry, DfrHook};
pub use error::{MvError, Result};
pub use pipeline::MvPipeline;
pub use request::{
    ClcSettings, DfrSettings, GeneratedViews, GenerationEvent, GenerationRequest, Stage,
    StageTiming, Techniques,
};
pub use subject::{Subject, SubjectDefinition, SubjectError};
pub use techniques::SharedRenderer;
