//! The shared training machinery on a real network: a UNet built over a `VarMap` from the tiny
//! fixture configuration, initialised from scratch, overfits one batch under AdamW, and its
//! checkpoint round-trips.

use bevy_mvcustom::diffusion::SchedulerConfig;
use bevy_mvcustom::diffusion::scheduler::NoiseSchedule;
use bevy_mvcustom::model::unet::UNet;
use bevy_mvcustom::model::unet::config::UNetConfig;
use bevy_mvcustom::train::{
    AdamW, AdamWConfig, DenoisingBatch, denoising_loss, initialise_for_training, load_tensors,
    named_vars, save_tensors_atomic, snapshot,
};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

mod common;
use common::{max_abs_difference, parity_dir};

fn tiny_unet(varmap: &VarMap) -> UNet {
    let path = parity_dir().join("unet_tiny/unet/config.json");
    let text = std::fs::read_to_string(&path).expect("fixture config");
    let config: UNetConfig = serde_json::from_str(&text).expect("config parses");
    let layout = config.layout(&path).expect("supported config");
    let vb = VarBuilder::from_varmap(varmap, DType::F32, &Device::Cpu);
    UNet::new(vb, &layout, None).expect("builds over a VarMap")
}

#[test]
fn a_unet_trained_from_scratch_overfits_one_batch() {
    let varmap = VarMap::new();
    let unet = tiny_unet(&varmap);
    initialise_for_training(&varmap, 0).unwrap();
    let schedule = NoiseSchedule::new(
        SchedulerConfig::from_file(
            &parity_dir().join("scheduler_ddim_25/scheduler/scheduler_config.json"),
        )
        .unwrap()
        .common(),
    );
    let device = Device::Cpu;
    let latents = Tensor::randn(0f32, 1.0, (2, 4, 8, 8), &device).unwrap();
    let noise = Tensor::randn(0f32, 1.0, (2, 4, 8, 8), &device).unwrap();
    let conditioning = Tensor::randn(0f32, 1.0, (2, 7, 32), &device).unwrap();
    let batch = DenoisingBatch {
        latents: &latents,
        conditioning: &conditioning,
        timesteps: &[900, 300],
        noise: &noise,
        mask: None,
    };
    let vars = named_vars(&varmap).unwrap();
    let mut opt = AdamW::new(
        vars,
        AdamWConfig {
            lr: 2e-3,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let prediction = bevy_mvcustom::diffusion::PredictionType::Epsilon;
    let first = denoising_loss(&unet, &schedule, prediction, &batch, None).unwrap();
    let first_value = first.to_scalar::<f32>().unwrap();
    opt.backward_step(&first).unwrap();
    let mut last_value = first_value;
    for _ in 0..24 {
        let loss = denoising_loss(&unet, &schedule, prediction, &batch, None).unwrap();
        last_value = loss.to_scalar::<f32>().unwrap();
        opt.backward_step(&loss).unwrap();
    }
    assert!(
        last_value < 0.5 * first_value,
        "loss {first_value} → {last_value}"
    );

    // The trained weights round-trip through an atomic checkpoint.
    let dir = std::env::temp_dir().join(format!("mvcustom-training-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("unet.safetensors");
    let weights = snapshot(&varmap, DType::F32).unwrap();
    save_tensors_atomic(&path, &weights).unwrap();
    let loaded = load_tensors(&path, &device).unwrap();
    assert_eq!(loaded.len(), weights.len());
    let vb = VarBuilder::from_tensors(loaded, DType::F32, &device);
    let layout = unet.layout().clone();
    let reloaded = UNet::new(vb, &layout, None).unwrap();
    let t = Tensor::new(&[500f32], &device).unwrap();
    let a = unet.forward(&latents, &t, &conditioning, None).unwrap();
    let b = reloaded.forward(&latents, &t, &conditioning, None).unwrap();
    let diff = max_abs_difference(&a, &b);
    // Same weights, same inputs: equal up to the reduction order of threaded kernels.
    assert!(diff < 1e-5, "{diff}");
    let _ = std::fs::remove_dir_all(&dir);
}
