//! Training the embedded default model from scratch on the procedural world: first the
//! autoencoder on single views ([`train_vae`]), then the text encoder, the UNet and its motion
//! modules jointly on multi-view clips with dense spatio-temporal attention
//! ([`train_denoiser`]). Both read the component configurations of a diffusers-layout model
//! folder (`assets/default_model` for the shipped model), write the trained weights into it
//! atomically, keep a resumable checkpoint (weights, optimiser state, step) in a work folder,
//! report every step and stop cleanly when cancelled. A run that is interrupted resumes
//! where its last checkpoint left off, so training can span several sessions.

pub mod data;
pub mod denoiser;
pub mod error;
pub mod run;
pub mod vae;

pub use denoiser::{DenoiserSettings, train_denoiser};
pub use error::{PretrainError, Result};
pub use run::{PretrainEvent, RunSettings};
pub use vae::{VaeSettings, train_vae};
