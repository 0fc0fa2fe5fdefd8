//! `scheduler` cases: the scheduler of `scheduler/scheduler_config.json` against diffusers'
//! class of the same name. After `set_timesteps(num_inference_steps)`, each step i scales
//! sample_i and steps it with the peer's `model_outputs[i]`; sample_0 = `sample0` and, as
//! the fixture README states, sample_{i+1} = the peer's `prev_samples[i]`: every step is compared
//! on the peer's own input, so float32 rounding differences do not compound.
//! `add_noise` is checked on a freshly configured scheduler, the state diffusers' fixture
//! generator calls it in (σ-based schedulers look the timestep up in their current table).

use bevy_mvcustom::diffusion::{AnyScheduler, Scheduler};
use bevy_mvcustom::model::ComponentDir;
use candle_core::{Device, Tensor};

use super::common::{Case, Check};

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The integer or float values of a 1-D peer tensor, as f64.
fn values(t: &Tensor) -> Result<Vec<f64>, String> {
    t.to_dtype(candle_core::DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .map_err(err)
}

fn load(case: &Case) -> Result<AnyScheduler, String> {
    let scheduler =
        AnyScheduler::from_dir(&ComponentDir::new(case.component("scheduler"))).map_err(err)?;
    let expected = case.str_arg("scheduler")?;
    if scheduler.kind().class_name() != expected {
        return Err(format!(
            "config builds a {}, case.json names {expected}",
            scheduler.kind().class_name()
        ));
    }
    Ok(scheduler)
}

/// Runs one scheduler case.
pub fn run(case: &Case) -> Result<Vec<Check>, String> {
    let io = case.io()?;
    let steps = case.f64_arg("num_inference_steps")? as usize;
    let mut scheduler = load(case)?;
    scheduler.set_timesteps(steps).map_err(err)?;
    let mut checks = Vec::new();

    let timesteps = scheduler.timesteps().to_vec();
    let ours = Tensor::new(timesteps.as_slice(), &Device::Cpu).map_err(err)?;
    checks.push(case.check("timesteps", &ours, &io.get("timesteps")?)?);
    let sigma = Tensor::new(&[scheduler.init_noise_sigma()], &Device::Cpu).map_err(err)?;
    checks.push(case.check("init_noise_sigma", &sigma, &io.get("init_noise_sigma")?)?);

    let (model_outputs, peer_prev) = (io.get("model_outputs")?, io.get("prev_samples")?);
    let mut sample = io.get("sample0")?;
    let (mut scaled, mut prev) = (Vec::new(), Vec::new());
    for (i, &t) in timesteps.iter().enumerate() {
        scaled.push(scheduler.scale_model_input(&sample, t).map_err(err)?);
        let output = model_outputs.get(i).map_err(err)?;
        prev.push(
            scheduler
                .step(&output, t, &sample)
                .map_err(err)?
                .prev_sample,
        );
        sample = peer_prev.get(i).map_err(err)?;
    }
    let stack = |v: &[Tensor]| Tensor::stack(v, 0).map_err(err);
    checks.push(case.check("scaled_inputs", &stack(&scaled)?, &io.get("scaled_inputs")?)?);
    checks.push(case.check("prev_samples", &stack(&prev)?, &peer_prev)?);

    let fresh = load(case)?;
    let (original, noise) = (io.get("add_noise_original")?, io.get("add_noise_noise")?);
    let noisy = values(&io.get("add_noise_timesteps")?)?
        .into_iter()
        .map(|t| fresh.add_noise(&original, &noise, t).map_err(err))
        .collect::<Result<Vec<_>, _>>()?;
    checks.push(case.check("add_noise_out", &stack(&noisy)?, &io.get("add_noise_out")?)?);
    Ok(checks)
}
