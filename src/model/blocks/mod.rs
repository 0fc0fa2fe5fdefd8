//! 2-D building blocks shared by the UNet and the VAE, with the weight names diffusers
//! checkpoints use: the residual block ([`ResnetBlock2D`]) and the resolution changes
//! ([`Downsample2D`], [`Upsample2D`]).

mod resnet;
mod sampling;

pub use resnet::{ResnetBlock2D, ResnetConfig};
pub use sampling::{Downsample2D, DownsamplePadding, Upsample2D};
