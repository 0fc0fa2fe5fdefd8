//! The diffusion layer: noise schedulers configured from diffusers' `scheduler_config.json`
//! ([`scheduler`]), classifier-free guidance ([`guidance`]), seeded noise ([`noise`]) and the
//! text-to-video sampling loop ([`sampling`]) with its hooks, progress and cancellation
//! ([`hooks`]). Nothing here knows a concrete network: the UNet enters through the
//! [`Denoiser`] trait. No Bevy here.

pub mod error;
pub mod guidance;
pub mod hooks;
pub mod noise;
pub mod sampling;
pub mod scheduler;

pub use error::{DiffusionError, Result};
pub use guidance::ClassifierFreeGuidance;
pub use hooks::{CancelToken, HookContext, ProgressEvent, SamplingHook, StepInfo};
pub use noise::NoiseGenerator;
pub use sampling::{Denoiser, InitLatents, Sampler, SamplingRequest};
pub use scheduler::{
    AnyScheduler, DdimConfig, DdimScheduler, DpmSolverConfig, DpmSolverMultistepScheduler,
    EulerConfig, EulerDiscreteScheduler, PredictionType, Scheduler, SchedulerConfig, SchedulerKind,
    StepOutput,
};
