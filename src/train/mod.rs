//! Training machinery shared by subject customization and by the project's own base-model
//! training: an AdamW whose state survives restarts, a moving average of the weights, atomic
//! checkpoints, and from-scratch initialisation of networks built over a `VarMap`.

pub mod adamw;
pub mod checkpoint;
pub mod denoising;
pub mod ema;
pub mod init;

pub use adamw::{AdamW, AdamWConfig};
pub use checkpoint::{
    load_metadata, load_tensors, save_tensors_atomic, save_tensors_with_metadata, take_tensor,
    write_atomic,
};
pub use denoising::{
    DenoisingBatch, TimestepSampling, denoising_loss, masked_mse, noised_and_target,
};
pub use ema::Ema;
pub use init::{initialise_for_training, named_vars, parameter_count, snapshot};
