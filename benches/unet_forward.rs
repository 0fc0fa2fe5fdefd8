//! One UNet + motion-module forward pass on the CPU in f32, at the real SD-1.5 configuration
//! with an AnimateDiff-v2-like adapter (mid block included) and at the tiny fixture
//! configuration, for 1 and 8 frames of 32² latents, with temporal and dense motion attention.
//! Weights are random and built in memory (no files). After each case's first call the peak
//! resident memory of that call is printed (VmHWM, reset through `/proc/self/clear_refs`).
//!
//! `cargo bench --bench unet_forward -- tiny` runs only the tiny configuration.

use std::cell::{Cell, OnceCell};
use std::path::Path;
use std::time::Duration;

use bevy_mvcustom::model::motion::MotionAttention;
use bevy_mvcustom::model::motion_adapter::{MotionAdapterConfig, MotionModules};
use bevy_mvcustom::model::unet::UNet;
use bevy_mvcustom::model::unet::config::UNetConfig;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};

/// SD 1.5: every other field is diffusers' default.
const SD15_UNET: &str = r#"{"cross_attention_dim": 768}"#;
/// AnimateDiff v2 (`motion_max_seq_length` 32, motion mid block): diffusers' defaults.
const SD15_ADAPTER: &str = r#"{}"#;
/// The tiny parity fixture's UNet and adapter.
const TINY_UNET: &str = r#"{"block_out_channels": [32, 64], "norm_num_groups": 8, "cross_attention_dim": 32,
    "attention_head_dim": 8, "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]}"#;
const TINY_ADAPTER: &str = r#"{"block_out_channels": [32, 64], "motion_num_attention_heads": 2, "use_motion_mid_block": false}"#;

/// Weights made when a layer asks for them, pseudo-random values of standard deviation
/// 1/√fan_in for matrices and kernels (so activations stay finite) and 0.1 for vectors.
/// They are a hash of the element index computed with candle's optimised kernels (`rand`
/// runs unoptimised in the dev profile and would take minutes for SD 1.5's 1.7 G values).
/// Plain tensors, not variables: the inference path runs and no autograd graph is kept.
struct RandomWeights;

impl SimpleBackend for RandomWeights {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let dims = s.dims();
        let std = if dims.len() >= 2 {
            1.0 / (dims[1..].iter().product::<usize>() as f64).sqrt()
        } else {
            0.1
        };
        // A per-tensor phase so that tensors differ; sin(sin(·)·k) spreads values over [-1, 1]
        // with standard deviation about 1/√2.
        let phase = name
            .bytes()
            .fold(0f64, |h, b| (h * 31.0 + b as f64) % 1000.0);
        let index = Tensor::arange(0u32, s.elem_count() as u32, dev)?.to_dtype(DType::F32)?;
        let hashed = ((index.affine(0.618_034, phase)?.sin()? * 43_758.545_3)?.sin()?
            * (std * std::f64::consts::SQRT_2))?;
        hashed.reshape(s)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        Err(candle_core::Error::CannotFindTensor {
            path: name.to_string(),
        })
    }

    fn contains_tensor(&self, _: &str) -> bool {
        false
    }
}

/// A UNet with motion modules and random weights, plus its text width.
fn build(unet_json: &str, adapter_json: &str) -> (UNet, usize) {
    let fail = |e: &dyn std::fmt::Display| -> ! { panic!("building the bench model: {e}") };
    let cfg: UNetConfig = serde_json::from_str(unet_json).unwrap_or_else(|e| fail(&e));
    let path = Path::new("in-memory config");
    let layout = cfg
        .layout(path)
        .and_then(|l| l.for_motion(path, &cfg))
        .unwrap_or_else(|e| fail(&e));
    let adapter: MotionAdapterConfig =
        serde_json::from_str(adapter_json).unwrap_or_else(|e| fail(&e));
    let motion_layout = adapter.layout(path, &layout).unwrap_or_else(|e| fail(&e));
    let vb = VarBuilder::from_backend(Box::new(RandomWeights), DType::F32, Device::Cpu);
    let motion = MotionModules::new(vb.clone(), &motion_layout).unwrap_or_else(|e| fail(&e));
    let unet = UNet::new(vb, &layout, Some(motion)).unwrap_or_else(|e| fail(&e));
    let text_dim = layout
        .down
        .iter()
        .find_map(|d| d.attention.map(|a| a.cross_attention_dim))
        .unwrap_or_else(|| fail(&"no cross-attention"));
    (unet, text_dim)
}

/// `VmHWM` / `VmRSS` of this process in MiB.
fn memory_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn bench_configuration(c: &mut Criterion, name: &str, unet_json: &str, adapter_json: &str) {
    let model = OnceCell::new();
    let mut group = c.benchmark_group(format!("unet_forward/{name}"));
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(2));
    for frames in [1usize, 8] {
        for (mode_name, mode) in [
            ("temporal", MotionAttention::Temporal),
            ("dense", MotionAttention::Dense { window: None }),
        ] {
            let reported = Cell::new(false);
            let id = BenchmarkId::new(mode_name, format!("{frames}f_32x32"));
            group.bench_function(id, |b| {
                let (unet, text_dim) = model.get_or_init(|| build(unet_json, adapter_json));
                let mut unet = unet.clone();
                unet.set_motion_attention(mode);
                let dev = Device::Cpu;
                let inputs = Tensor::randn(0f32, 1.0, (1, 4, frames, 32, 32), &dev).and_then(|s| {
                    Ok((s, Tensor::randn(0f32, 1.0, (frames, 77, *text_dim), &dev)?))
                });
                let (sample, text) = inputs.unwrap_or_else(|e| panic!("inputs: {e}"));
                let t = Tensor::new(500f32, &dev).unwrap_or_else(|e| panic!("{e}"));
                let step = || {
                    unet.forward(&sample, &t, &text, None)
                        .unwrap_or_else(|e| panic!("forward: {e}"))
                };
                if !reported.replace(true) {
                    let baseline = memory_mib("VmRSS:");
                    // Resets VmHWM to the current RSS (Linux ≥ 4.0); ignored elsewhere.
                    let _ = std::fs::write("/proc/self/clear_refs", "5");
                    std::hint::black_box(step());
                    if let (Some(base), Some(peak)) = (baseline, memory_mib("VmHWM:")) {
                        eprintln!(
                            "[{name} {mode_name} {frames} frames] peak RSS {peak:.0} MiB \
                             ({base:.0} MiB before the call)"
                        );
                    }
                }
                b.iter(step);
            });
        }
    }
    group.finish();
}

fn unet_forward(c: &mut Criterion) {
    bench_configuration(c, "tiny", TINY_UNET, TINY_ADAPTER);
    bench_configuration(c, "sd15", SD15_UNET, SD15_ADAPTER);
}

criterion_group!(benches, unet_forward);
criterion_main!(benches);
