//! The networks: the SD-1.x/2.x UNet with AnimateDiff motion modules (1-D temporal or dense
//! spatio-temporal attention), the CLIP tokenizer and text encoder, and the VAE, loaded from
//! the diffusers folder layout. No Bevy here.

pub mod attention;
pub mod blocks;
pub mod clip;
pub mod depth;
pub mod error;
pub mod hook;
pub mod load;
pub mod motion;
pub mod motion_adapter;
pub mod ops;
pub mod pose;
pub mod tokenizer;
pub mod transformer;
pub mod unet;
pub mod vae;

#[cfg(test)]
pub(crate) mod test_support;

pub use error::{ModelError, Result};
pub use load::{ComponentDir, ComputeSettings, WeightVariant, Weights};
