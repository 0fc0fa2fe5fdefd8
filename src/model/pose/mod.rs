//! Pose-conditioned transformer blocks (FeatureNeRF, from CustomDiffusion360 as MVCustom uses
//! it): a feature field built from the reference images' features at a block, rendered along
//! the target camera's rays and fused into the block's tokens. These are the parameters a
//! subject's customization trains.

pub mod encoding;
pub mod field;
pub mod geometry;

pub use field::{FeatureNerf, FieldOutput, Fuse, TextConditioning, render_weights};
pub use geometry::{Jitter, ReferenceGrid, SampleGeometry, SamplingConfig, sample_geometry};
