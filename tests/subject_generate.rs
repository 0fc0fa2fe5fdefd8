//! Generation with a trained subject on the tiny fixture model
//! (`<crate>/../shared/fixtures/parity/animatediff_pipeline_tiny`, or under
//! `MVCUSTOM_PARITY_DIR`): freshly initialised pose blocks (zero decoders, identity fusions)
//! leave the views as they are without them, trained-looking weights change them, the
//! features are rendered once per generation, prepared subjects are cached by file, and
//! weights that do not fit the model are rejected naming the file and the tensor.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use bevy_mvcustom::camera::{ImageSize, Intrinsics, PinholeCamera, look_at};
use bevy_mvcustom::diffusion::CancelToken;
use bevy_mvcustom::model::pose::PoseConfig;
use bevy_mvcustom::model::{ComputeSettings, ModelError, WeightVariant};
use bevy_mvcustom::mvcustom::subject::{Reference, Subject};
use bevy_mvcustom::mvcustom::subject_weights::{INFO_METADATA_KEY, TOKEN_EMBEDDING};
use bevy_mvcustom::mvcustom::{
    DiffusionComponents, Generation, GenerationEvent, GenerationRequest, LoadedSubject, MvError,
    MvPipeline, Stage, SubjectWeights, SubjectWeightsInfo, Techniques,
};
use bevy_mvcustom::render::{Backend, DepthMap, FeatureRenderer, RenderSettings};
use candle_core::{DType, Device, Tensor};
use glam::Vec3;

mod common;
use common::{scratch, tiny_model};

const SIZE: u32 = 32;
const VIEWS: usize = 4;
const TOKEN: &str = "<toy>";

fn pipeline() -> &'static MvPipeline {
    static PIPELINE: OnceLock<MvPipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let components = DiffusionComponents::load(
            &tiny_model(),
            WeightVariant::Full,
            &ComputeSettings::default(),
        )
        .unwrap();
        let renderer = FeatureRenderer::new(RenderSettings {
            backend: Backend::Cpu,
            ..RenderSettings::default()
        })
        .unwrap();
        MvPipeline::from_components(components).with_renderer(renderer)
    })
}

/// A camera at `distance` from the origin, `azimuth` radians around +Y, looking at it.
fn camera(azimuth: f32, distance: f32) -> PinholeCamera {
    let k = Intrinsics::from_vertical_fov(0.8, SIZE, SIZE).unwrap();
    let eye = distance * Vec3::new(azimuth.sin(), 0.3, azimuth.cos()).normalize();
    look_at(
        eye,
        Vec3::ZERO,
        Vec3::Y,
        k,
        ImageSize::new(SIZE, SIZE).unwrap(),
    )
    .unwrap()
}

/// Three views of a coloured box (with masks) around the origin, as a subject whose weights
/// file is `dir/toy.safetensors`; the definition is written too, for `load_subject`.
fn subject(dir: &Path) -> Subject {
    let mut references = Vec::new();
    let mut entries = Vec::new();
    for (i, azimuth) in [-0.5f32, 0.0, 0.5].into_iter().enumerate() {
        let inside = |x: u32, y: u32| (8..24).contains(&x) && (6..26).contains(&y);
        let image = image::RgbaImage::from_fn(SIZE, SIZE, |x, y| {
            if inside(x, y) {
                image::Rgba([200, (x * 8) as u8, (y * 6 + 40 * i as u32) as u8, 255])
            } else {
                image::Rgba([20, 30, 40, 255])
            }
        });
        let mask =
            image::GrayImage::from_fn(SIZE, SIZE, |x, y| image::Luma([255 * inside(x, y) as u8]));
        let name = format!("v{i}.png");
        image.save(dir.join(&name)).unwrap();
        let camera = camera(azimuth, 2.0);
        entries.push(format!(
            "(image: {name:?}, camera: Some({}))",
            ron::ser::to_string(&camera).unwrap()
        ));
        references.push(Reference {
            path: dir.join(name),
            image,
            mask,
            camera,
        });
    }
    let definition = dir.join("toy.ron");
    std::fs::write(
        &definition,
        format!(
            "(token: {TOKEN:?}, class_word: \"toy\", references: [{}])",
            entries.join(", ")
        ),
    )
    .unwrap();
    Subject {
        path: definition,
        token: TOKEN.into(),
        class_word: "toy".into(),
        references,
        weights_path: dir.join("toy.safetensors"),
    }
}

fn info() -> SubjectWeightsInfo {
    SubjectWeightsInfo {
        // Both transformer levels of the tiny UNet: six pose blocks.
        pose: PoseConfig {
            levels: vec![0, 1],
            ..Default::default()
        },
        reference_resolution: SIZE,
    }
}

/// Fresh weights: zero decoders, identity fusions, the token row at the class word's.
fn fresh_weights() -> SubjectWeights {
    let c = pipeline().components();
    let class = c.tokenizer.content_ids("toy")[0] as usize;
    let init = c.text_encoder.token_embedding().get(class).unwrap();
    SubjectWeights::fresh(&c.unet, &info(), &init, 3, &Device::Cpu).unwrap()
}

/// `weights` as if trained: non-zero decoders and fusions that let the rendered features in.
fn trained_weights(weights: &SubjectWeights, path: &Path) -> SubjectWeights {
    let c = pipeline().components();
    let mut tensors = weights.tensors().unwrap();
    for (name, tensor) in tensors.iter_mut() {
        if name.ends_with("decoder.weight") {
            *tensor = Tensor::randn(0f32, 0.5, tensor.dims(), &Device::Cpu).unwrap();
        } else if name.ends_with("fuse.weight") {
            let (c_out, _) = tensor.dims2().unwrap();
            let eye = Tensor::eye(c_out, DType::F32, &Device::Cpu).unwrap();
            *tensor = Tensor::cat(&[&eye, &(&eye * 0.5).unwrap()], 1).unwrap();
        }
    }
    let hidden = c.text_encoder.config().hidden_size;
    SubjectWeights::from_tensors(&tensors, path, &c.unet, &info(), hidden).unwrap()
}

/// Four target views on an arc at distance 3, with a flat anchor depth for DFR.
fn request(pose_blocks: bool) -> GenerationRequest {
    let cameras: Vec<PinholeCamera> = (0..VIEWS)
        .map(|k| camera((k as f32 - 1.5) * 0.2, 3.0))
        .collect();
    GenerationRequest {
        prompt: format!("a photo of {TOKEN} toy on a table"),
        negative_prompt: "blurry".into(),
        cameras,
        width: SIZE,
        height: SIZE,
        steps: 3,
        guidance_scale: 4.0,
        seed: 11,
        techniques: Techniques {
            pose_blocks,
            ..Techniques::default()
        },
        anchor_depth: Some(DepthMap::new(16, 16, vec![3.0; 256]).unwrap()),
        preview_every: None,
        composition: None,
        init_views: None,
    }
}

fn generate(
    request: &GenerationRequest,
    subject: Option<&LoadedSubject>,
) -> (Generation, Vec<Stage>) {
    let mut stages = Vec::new();
    let generation = pipeline()
        .generate_with(
            request,
            subject,
            &mut |e| {
                if let GenerationEvent::StageStarted(s) = e {
                    stages.push(s);
                }
            },
            &CancelToken::new(),
        )
        .unwrap();
    (generation, stages)
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}

#[test]
fn fresh_pose_blocks_leave_the_views_unchanged_and_trained_ones_change_them() {
    let dir = scratch("identity");
    let subject = subject(&dir.0);
    let fresh = pipeline()
        .prepare_subject(subject.clone(), &fresh_weights())
        .unwrap();
    assert_eq!(fresh.pose_blocks().blocks().len(), 6);
    assert_eq!(fresh.reference_features().references.views(), 3);
    assert_eq!(fresh.reference_features().empty.views(), 1);

    let (without, without_stages) = generate(&request(false), Some(&fresh));
    let (with, stages) = generate(&request(true), Some(&fresh));
    // The fields are rendered once, before sampling (then DFR rasterises its mesh).
    assert_eq!(
        stages,
        [
            Stage::RenderingFeatures,
            Stage::RenderingFeatures,
            Stage::Denoising,
            Stage::Decoding
        ]
    );
    assert_eq!(
        without_stages,
        [Stage::RenderingFeatures, Stage::Denoising, Stage::Decoding]
    );
    let rendered: Vec<&str> = with
        .views
        .timings
        .iter()
        .map(|t| t.stage.as_str())
        .filter(|s| *s == "rendered_features")
        .collect();
    assert_eq!(rendered.len(), 1);
    assert_eq!(with.subject.as_deref(), Some(TOKEN));
    assert_eq!(without.subject, None);

    // Identity fusions: the same latents up to f32 rounding. Two runs of the same UNet
    // already differ by rounding (threaded reductions), so the bound is relative to the
    // latents' magnitude: 256 ulp.
    let scale = max_abs(&without.latents).max(1.0);
    let identity = max_diff(&with.latents, &without.latents);
    assert!(
        identity <= 256.0 * f32::EPSILON * scale,
        "fresh pose blocks changed the latents by {identity} (scale {scale})"
    );

    // Trained-looking weights, saved next to the definition and loaded through the pipeline.
    let trained = trained_weights(&fresh_weights(), &subject.weights_path);
    trained.save(&subject.weights_path).unwrap();
    let loaded = pipeline().load_subject(&subject.path).unwrap();
    let (changed, _) = generate(&request(true), Some(&loaded));
    let difference = max_diff(&changed.latents, &without.latents);
    assert!(
        difference > 1e3 * identity.max(f32::EPSILON * scale) && difference > 1e-3,
        "trained pose blocks changed the latents by only {difference}"
    );
    // DFR and CLC ran alongside: their masks are reported for every view.
    assert_eq!(changed.anchor_view, Some(VIEWS / 2));
    assert!(!changed.dfr_visibility.is_empty());
    for maps in &changed.dfr_visibility {
        assert_eq!(maps.views(), VIEWS);
        assert!(maps.view(VIEWS / 2).unwrap().iter().all(|&v| v == 0.0));
    }
    let clc = changed.clc_disocclusion.as_ref().unwrap();
    assert_eq!((clc.views(), clc.height(), clc.width()), (VIEWS, 16, 16));
}

#[test]
fn prepared_subjects_are_cached_until_their_files_change() {
    let dir = scratch("cache");
    let subject = subject(&dir.0);
    fresh_weights().save(&subject.weights_path).unwrap();
    let first = pipeline().load_subject(&subject.path).unwrap();
    let again = pipeline().clone().load_subject(&subject.path).unwrap();
    assert!(Arc::ptr_eq(&first, &again), "a clone shares the cache");
    // Retrained: the file changes, the subject is prepared again.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let trained = trained_weights(&fresh_weights(), &subject.weights_path);
    trained.save(&subject.weights_path).unwrap();
    let retrained = pipeline().load_subject(&subject.path).unwrap();
    assert!(!Arc::ptr_eq(&first, &retrained));
}

#[test]
fn weights_that_do_not_fit_the_model_name_the_file_and_tensor() {
    let dir = scratch("mismatch");
    let subject = subject(&dir.0);
    let c = pipeline().components();
    let weights = fresh_weights();
    let path = subject.weights_path.clone();

    // Untrained subject: the weights file is missing.
    let err = pipeline().load_subject(&subject.path).unwrap_err();
    assert!(
        matches!(&err, MvError::File { path: p, reason } if p == &path && reason.contains("train it first")),
        "{err}"
    );

    // The token row of a text encoder of another width.
    let mut tensors: HashMap<String, Tensor> = weights.tensors().unwrap();
    tensors.insert(
        TOKEN_EMBEDDING.into(),
        Tensor::zeros(7, DType::F32, &Device::Cpu).unwrap(),
    );
    save_with_info(&path, &tensors);
    let err = pipeline().load_subject(&subject.path).unwrap_err();
    assert!(
        matches!(&err, MvError::Model(ModelError::ShapeMismatch { tensor, files, found, .. })
            if tensor == TOKEN_EMBEDDING && files == &vec![path.clone()] && found == &vec![7]),
        "{err}"
    );

    // Pose blocks of a wider UNet (another model's weights).
    let mut tensors = weights.tensors().unwrap();
    let fuse = tensors
        .keys()
        .find(|n| n.starts_with("pose_blocks.mid_block") && n.ends_with("fuse.weight"))
        .unwrap()
        .clone();
    tensors.insert(
        fuse.clone(),
        Tensor::zeros((128, 256), DType::F32, &Device::Cpu).unwrap(),
    );
    save_with_info(&path, &tensors);
    let err = pipeline().load_subject(&subject.path).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&fuse) && text.contains("toy.safetensors"),
        "{text}"
    );

    // A missing pose block.
    let mut tensors = weights.tensors().unwrap();
    tensors.retain(|n, _| !n.starts_with("pose_blocks.up_blocks.1.attentions.2"));
    save_with_info(&path, &tensors);
    let err = pipeline().load_subject(&subject.path).unwrap_err();
    assert!(
        matches!(&err, MvError::Model(ModelError::MissingTensor { tensor, files })
            if tensor.starts_with("pose_blocks.up_blocks.1.attentions.2") && files == &vec![path.clone()]),
        "{err}"
    );
    assert!(c.unet.has_motion_modules());
}

/// Writes `tensors` as a subject weights file with the test's [`SubjectWeightsInfo`].
fn save_with_info(path: &Path, tensors: &HashMap<String, Tensor>) {
    let metadata = HashMap::from([(
        INFO_METADATA_KEY.to_string(),
        serde_json::to_string(&info()).unwrap(),
    )]);
    bevy_mvcustom::train::save_tensors_with_metadata(path, tensors, Some(metadata)).unwrap();
}
