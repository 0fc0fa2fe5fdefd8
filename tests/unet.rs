//! The UNet on the tiny parity fixtures: feature hooks (names, layout, replacement), motion
//! attention modes on the whole network, and loading errors that name what is wrong.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use bevy_mvcustom::model::hook::{FeatureHook, HookKind, HookPoint};
use bevy_mvcustom::model::motion::MotionAttention;
use bevy_mvcustom::model::motion_adapter::{MotionAdapterConfig, MotionModules};
use bevy_mvcustom::model::unet::UNet;
use bevy_mvcustom::model::unet::config::UNetConfig;
use bevy_mvcustom::model::{ComputeSettings, ModelError, WeightVariant};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

mod common;
use common::parity_dir;

fn io(case: &str) -> HashMap<String, Tensor> {
    let path = parity_dir().join(case).join("io.safetensors");
    candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load(unet: &Path, adapter: Option<&Path>) -> Result<UNet, ModelError> {
    UNet::load(
        unet,
        adapter,
        WeightVariant::Full,
        &ComputeSettings::default(),
    )
}

fn motion_unet() -> UNet {
    let case = parity_dir().join("motion_unet_tiny");
    load(&case.join("unet"), Some(&case.join("motion_adapter"))).unwrap_or_else(|e| panic!("{e}"))
}

fn run(unet: &UNet, io: &HashMap<String, Tensor>, hook: Option<&mut dyn FeatureHook>) -> Tensor {
    unet.forward(
        &io["sample"],
        &io["timestep"],
        &io["encoder_hidden_states"],
        hook,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
        .unwrap_or(f32::INFINITY)
}

/// Records every point it is called at.
#[derive(Default)]
struct Recorder {
    seen: Vec<(String, HookKind, usize, Vec<usize>)>,
}

impl FeatureHook for Recorder {
    fn on_features(
        &mut self,
        point: &HookPoint<'_>,
        features: &Tensor,
    ) -> bevy_mvcustom::model::Result<Option<Tensor>> {
        self.seen.push((
            point.name.to_string(),
            point.kind,
            point.frames,
            features.dims().to_vec(),
        ));
        Ok(None)
    }
}

#[test]
fn a_recording_hook_sees_every_named_layer_in_order() {
    let unet = motion_unet();
    let io = io("motion_unet_tiny");
    let mut recorder = Recorder::default();
    let with_hook = run(&unet, &io, Some(&mut recorder));
    // Hand-written from the tiny config: blocks 32 / 64 channels at 16² / 8², two layers per
    // down block, three per up block, no motion mid block, 1 sample of 4 frames.
    let (s, sc, m) = (
        HookKind::SpatialBlock,
        HookKind::SpatialCrossAttention,
        HookKind::MotionModule,
    );
    let spatial = |prefix: &str, c: usize, hw: usize| {
        let block = format!("{prefix}.transformer_blocks.0");
        vec![(format!("{block}.attn2"), sc, c, hw), (block, s, c, hw)]
    };
    let motion = |name: String, c: usize, hw: usize| vec![(name, m, c, hw)];
    let mut expected = Vec::new();
    for j in 0..2 {
        expected.extend(spatial(&format!("down_blocks.0.attentions.{j}"), 32, 16));
        expected.extend(motion(format!("down_blocks.0.motion_modules.{j}"), 32, 16));
    }
    for j in 0..2 {
        expected.extend(motion(format!("down_blocks.1.motion_modules.{j}"), 64, 8));
    }
    expected.extend(spatial("mid_block.attentions.0", 64, 8));
    for j in 0..3 {
        expected.extend(motion(format!("up_blocks.0.motion_modules.{j}"), 64, 8));
    }
    for j in 0..3 {
        expected.extend(spatial(&format!("up_blocks.1.attentions.{j}"), 32, 16));
        expected.extend(motion(format!("up_blocks.1.motion_modules.{j}"), 32, 16));
    }
    let seen: Vec<_> = recorder
        .seen
        .iter()
        .map(|(name, kind, frames, dims)| {
            assert_eq!(*frames, 4, "{name}");
            assert_eq!(dims[0], 4, "{name}: batch·frames");
            assert_eq!(dims[2], dims[3], "{name}");
            (name.clone(), *kind, dims[1], dims[2])
        })
        .collect();
    assert_eq!(seen, expected);
    let listed: Vec<_> = unet.hook_points();
    let seen_names: Vec<_> = recorder
        .seen
        .iter()
        .map(|(n, k, ..)| (n.clone(), *k))
        .collect();
    assert_eq!(listed, seen_names);
    // Observing changes nothing.
    assert_eq!(max_diff(&with_hook, &run(&unet, &io, None)), 0.0);
}

/// Replaces the features of one named layer.
struct Replace<'a> {
    name: &'a str,
    with: fn(&Tensor) -> candle_core::Result<Tensor>,
    calls: usize,
}

impl FeatureHook for Replace<'_> {
    fn wants(&self, point: &HookPoint<'_>) -> bool {
        point.name == self.name
    }

    fn on_features(
        &mut self,
        _point: &HookPoint<'_>,
        features: &Tensor,
    ) -> bevy_mvcustom::model::Result<Option<Tensor>> {
        self.calls += 1;
        Ok(Some((self.with)(features)?))
    }
}

#[test]
fn a_replacing_hook_changes_the_output() {
    let unet = motion_unet();
    let io = io("motion_unet_tiny");
    let plain = run(&unet, &io, None);
    for name in [
        "down_blocks.0.attentions.1.transformer_blocks.0.attn2",
        "mid_block.attentions.0.transformer_blocks.0",
        "up_blocks.0.motion_modules.2",
        "up_blocks.1.attentions.2.transformer_blocks.0",
    ] {
        let mut identity = Replace {
            name,
            with: |t| Ok(t.clone()),
            calls: 0,
        };
        let same = run(&unet, &io, Some(&mut identity));
        assert_eq!(identity.calls, 1, "{name}");
        assert!(
            max_diff(&plain, &same) < 1e-6,
            "{name}: identity replacement"
        );
        let mut zero = Replace {
            name,
            with: |t| t.zeros_like(),
            calls: 0,
        };
        let changed = run(&unet, &io, Some(&mut zero));
        assert_eq!(zero.calls, 1, "{name}");
        assert!(
            max_diff(&plain, &changed) > 1e-3,
            "{name}: zeroing had no effect"
        );
    }
}

#[test]
fn a_misshapen_replacement_is_an_error() {
    let unet = motion_unet();
    let io = io("motion_unet_tiny");
    let mut bad = Replace {
        name: "mid_block.attentions.0.transformer_blocks.0",
        with: |t| t.narrow(1, 0, 1),
        calls: 0,
    };
    let err = unet
        .forward(
            &io["sample"],
            &io["timestep"],
            &io["encoder_hidden_states"],
            Some(&mut bad),
        )
        .err();
    match err {
        Some(ModelError::InvalidInput { name, .. }) => assert!(name.contains("mid_block")),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn dense_motion_attention_on_the_whole_unet() {
    let mut unet = motion_unet();
    let io = io("motion_unet_tiny");
    let temporal = run(&unet, &io, None);
    unet.set_motion_attention(MotionAttention::Dense { window: Some(0) });
    let window0 = run(&unet, &io, None);
    assert!(
        max_diff(&temporal, &window0) < 1e-4,
        "{}",
        max_diff(&temporal, &window0)
    );
    unet.set_motion_attention(MotionAttention::Dense { window: None });
    let dense = run(&unet, &io, None);
    assert!(max_diff(&temporal, &dense) > 1e-3);
    // The motion modules matter: the same UNet without them differs.
    let case = parity_dir().join("motion_unet_tiny");
    let plain = load(&case.join("unet"), None).unwrap_or_else(|e| panic!("{e}"));
    let frames = io["sample"]
        .permute((0, 2, 1, 3, 4))
        .and_then(|t| t.reshape((4, 4, 16, 16)))
        .unwrap_or_else(|e| panic!("{e}"));
    let per_image = plain
        .forward(&frames, &io["timestep"], &io["encoder_hidden_states"], None)
        .unwrap_or_else(|e| panic!("{e}"));
    let per_image = per_image
        .reshape((1, 4, 4, 16, 16))
        .and_then(|t| t.permute((0, 2, 1, 3, 4)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(max_diff(&temporal, &per_image) > 1e-3);
}

/// A scratch copy of a fixture component that a test may edit.
struct Scratch(PathBuf);

impl Scratch {
    fn copy_of(component: &Path) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mvcustom-unet-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        for entry in std::fs::read_dir(component).unwrap_or_else(|e| panic!("{e}")) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            let target = dir.join(path.file_name().unwrap_or_default());
            std::fs::copy(&path, &target).unwrap_or_else(|e| panic!("{e}"));
            let mut perms = std::fs::metadata(&target)
                .unwrap_or_else(|e| panic!("{e}"))
                .permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(&target, perms).unwrap_or_else(|e| panic!("{e}"));
        }
        Self(dir)
    }

    fn edit_config(&self, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = self.0.join("config.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        edit(&mut json);
        std::fs::write(&path, json.to_string()).unwrap_or_else(|e| panic!("{e}"));
    }

    fn weights(&self) -> PathBuf {
        self.0.join("diffusion_pytorch_model.safetensors")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_missing_tensor_is_named_with_its_file() {
    let unet = Scratch::copy_of(&parity_dir().join("unet_tiny/unet"));
    let mut tensors = candle_core::safetensors::load(unet.weights(), &Device::Cpu)
        .unwrap_or_else(|e| panic!("{e}"));
    let gone = "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight";
    assert!(tensors.remove(gone).is_some());
    candle_core::safetensors::save(&tensors, unet.weights()).unwrap_or_else(|e| panic!("{e}"));
    match load(&unet.0, None) {
        Err(ModelError::MissingTensor { tensor, files }) => {
            assert_eq!(tensor, gone);
            assert_eq!(files, vec![unet.weights()]);
        }
        other => panic!("expected MissingTensor, got {other:?}"),
    }
}

#[test]
fn an_adapter_with_other_channels_is_a_shape_mismatch() {
    // An adapter for a UNet of 48 / 96 channels, random weights, saved in the diffusers layout.
    let case = parity_dir().join("motion_unet_tiny");
    let adapter = Scratch::copy_of(&case.join("motion_adapter"));
    let other_unet: UNetConfig = serde_json::from_str(
        r#"{"block_out_channels": [48, 96], "norm_num_groups": 8, "cross_attention_dim": 32,
            "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
            "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let other_layout = other_unet
        .layout(Path::new("other.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    let config_text =
        std::fs::read_to_string(adapter.0.join("config.json")).unwrap_or_else(|e| panic!("{e}"));
    let config: MotionAdapterConfig =
        serde_json::from_str(&config_text).unwrap_or_else(|e| panic!("{e}"));
    let layout = config
        .layout(Path::new("a.json"), &other_layout)
        .unwrap_or_else(|e| panic!("{e}"));
    let map = VarMap::new();
    MotionModules::new(
        VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu),
        &layout,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    map.save(adapter.weights())
        .unwrap_or_else(|e| panic!("{e}"));
    adapter.edit_config(|c| c["block_out_channels"] = serde_json::json!([48, 96]));
    match load(&case.join("unet"), Some(&adapter.0)) {
        Err(ModelError::ShapeMismatch {
            tensor,
            files,
            expected,
            found,
        }) => {
            assert!(
                tensor.starts_with("down_blocks.0.motion_modules.0."),
                "{tensor}"
            );
            assert_eq!(files, vec![adapter.weights()]);
            assert!(
                expected.contains(&32) && found.contains(&48),
                "{expected:?} vs {found:?}"
            );
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
}

#[test]
fn an_unsupported_config_value_is_named_with_its_file() {
    let unet = Scratch::copy_of(&parity_dir().join("unet_tiny/unet"));
    unet.edit_config(|c| c["resnet_time_scale_shift"] = "scale_shift".into());
    match load(&unet.0, None) {
        Err(ModelError::UnsupportedConfig { path, field, value }) => {
            assert_eq!(path, unet.0.join("config.json"));
            assert_eq!(field, "resnet_time_scale_shift");
            assert!(value.contains("scale_shift"));
        }
        other => panic!("expected UnsupportedConfig, got {other:?}"),
    }
    let case = parity_dir().join("motion_unet_tiny");
    let adapter = Scratch::copy_of(&case.join("motion_adapter"));
    adapter.edit_config(|c| c["motion_layers_per_block"] = 3.into());
    match load(&case.join("unet"), Some(&adapter.0)) {
        Err(ModelError::UnsupportedConfig { path, field, .. }) => {
            assert_eq!(path, adapter.0.join("config.json"));
            assert_eq!(field, "motion_layers_per_block");
        }
        other => panic!("expected UnsupportedConfig, got {other:?}"),
    }
}

#[test]
fn wrong_inputs_are_typed_errors() {
    let unet = motion_unet();
    let io = io("motion_unet_tiny");
    let four_d = io["sample"].get(0).unwrap_or_else(|e| panic!("{e}"));
    let too_many_frames =
        Tensor::zeros((1, 4, 33, 8, 8), DType::F32, &Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
    let narrow_text = io["encoder_hidden_states"]
        .narrow(2, 0, 16)
        .unwrap_or_else(|e| panic!("{e}"));
    let three_rows = io["encoder_hidden_states"]
        .narrow(0, 0, 3)
        .unwrap_or_else(|e| panic!("{e}"));
    let two_steps = Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
    for (sample, t, text, field) in [
        (
            &four_d,
            &io["timestep"],
            &io["encoder_hidden_states"],
            "sample",
        ),
        (
            &too_many_frames,
            &io["timestep"],
            &io["encoder_hidden_states"],
            "sample",
        ),
        (
            &io["sample"],
            &io["timestep"],
            &narrow_text,
            "encoder_hidden_states",
        ),
        (
            &io["sample"],
            &io["timestep"],
            &three_rows,
            "encoder_hidden_states",
        ),
        (
            &io["sample"],
            &two_steps,
            &io["encoder_hidden_states"],
            "timestep",
        ),
    ] {
        match unet.forward(sample, t, text, None) {
            Err(ModelError::InvalidInput { name, .. }) => assert_eq!(name, field),
            other => panic!("expected InvalidInput for {field}, got {other:?}"),
        }
    }
    // One text row per sample is repeated for every frame.
    let one_row = io["encoder_hidden_states"]
        .narrow(0, 0, 1)
        .unwrap_or_else(|e| panic!("{e}"));
    let repeated = unet
        .forward(&io["sample"], &io["timestep"], &one_row, None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(max_diff(&repeated, &io["out"]) < 1e-3);
}

#[test]
fn sizes_that_do_not_halve_evenly_come_back_unchanged() {
    let unet = load(&parity_dir().join("unet_tiny/unet"), None).unwrap_or_else(|e| panic!("{e}"));
    let io = io("unet_tiny");
    let sample =
        Tensor::randn(0f32, 1.0, (2, 4, 15, 13), &Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
    let out = unet
        .forward(&sample, &io["timestep"], &io["encoder_hidden_states"], None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.dims(), &[2, 4, 15, 13]);
}

#[test]
fn gradients_flow_back_to_the_input() {
    // Customization training back-propagates through the frozen UNet.
    let unet = motion_unet();
    let io = io("motion_unet_tiny");
    let sample = candle_core::Var::from_tensor(&io["sample"]).unwrap_or_else(|e| panic!("{e}"));
    let out = unet
        .forward(
            sample.as_tensor(),
            &io["timestep"],
            &io["encoder_hidden_states"],
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let grads = out
        .sqr()
        .and_then(|t| t.sum_all()?.backward())
        .unwrap_or_else(|e| panic!("{e}"));
    let grad = grads
        .get(sample.as_tensor())
        .unwrap_or_else(|| panic!("no gradient"));
    assert_eq!(grad.dims(), io["sample"].dims());
    let norm = grad
        .sqr()
        .and_then(|t| t.sum_all()?.to_scalar::<f32>())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(norm.is_finite() && norm > 0.0);
}

#[test]
fn motion_modules_for_another_layout_are_refused() {
    let layout_of = |layers: usize| {
        let json = format!(
            r#"{{"block_out_channels": [32, 64], "norm_num_groups": 8, "cross_attention_dim": 32,
                "layers_per_block": {layers}, "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
                "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]}}"#
        );
        let cfg: UNetConfig = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        cfg.layout(Path::new("c.json"))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let adapter: MotionAdapterConfig =
        serde_json::from_str(r#"{"block_out_channels": [32, 64], "motion_layers_per_block": 1}"#)
            .unwrap_or_else(|e| panic!("{e}"));
    let one_layer = adapter
        .layout(Path::new("a.json"), &layout_of(1))
        .unwrap_or_else(|e| panic!("{e}"));
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
    let motion = MotionModules::new(vb.clone(), &one_layer).unwrap_or_else(|e| panic!("{e}"));
    assert!(UNet::new(vb.clone(), &layout_of(1), Some(motion.clone())).is_ok());
    assert!(UNet::new(vb, &layout_of(2), Some(motion)).is_err());
}
