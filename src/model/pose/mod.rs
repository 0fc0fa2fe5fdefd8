//! Pose-conditioned transformer blocks (FeatureNeRF, from CustomDiffusion360 as MVCustom uses
//! it): a feature field built from the reference images' features at a block, rendered along
//! the target camera's rays and fused into the block's tokens. These are the parameters a
//! subject's customization trains.
//!
//! - [`PoseBlocks`] places one field + fusion on every spatial transformer block at the
//!   configured resolution levels ([`PoseConfig`]);
//! - [`ReferenceFeatures`] records the reference views' features at those blocks (cached,
//!   with the all-zero image's, in a [`ReferenceCache`]);
//! - [`render_features`] renders the fields for target cameras and prompts once;
//! - [`PoseBlockHook`] fuses the renders into the UNet through its feature hooks.

pub mod blocks;
pub mod encoding;
pub mod field;
pub mod geometry;
pub mod prepared;
pub mod reference;
pub mod render;
#[cfg(test)]
mod synthetic_tests;

pub use blocks::{
    POSE_PREFIX, PoseBlock, PoseBlocks, PoseConfig, fresh_parameters, parameter_shapes,
};
pub use field::{FeatureNerf, FieldOutput, Fuse, TextConditioning, render_weights};
pub use geometry::{Jitter, ReferenceGrid, SampleGeometry, SamplingConfig, sample_geometry};
pub use prepared::PreparedGeometry;
pub use reference::{ReferenceCache, ReferenceFeatures};
pub use render::{
    BlockText, PoseBlockHook, RenderRequest, RenderedBlock, RenderedFeatures, render_features,
};
