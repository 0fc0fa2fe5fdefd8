//! Training data from the world: an endless, reproducible stream of multi-view clips of one
//! split, served as candle tensors.
//!
//! Stream position `p` (batch `i` of size `B` holds positions `i·B .. i·B + B`) maps to a scene
//! index of the split: the first `clips` scene indices are visited once per epoch, in an order
//! reshuffled every epoch by a keyed permutation of the dataset's `seed`. Everything is a pure
//! function of the configuration and the batch index, so training resumes at any step and
//! replays bit for bit. Clips are rendered on the fly ([`ClipSource::Render`]) or read from
//! folders written by [`ClipDataset::write_clips`] ([`ClipSource::Folder`]); both give the same
//! tensors, because a stored clip is checked against the scene and cameras its seed draws.
//!
//! Tensors are `f32` on the CPU:
//! - `frames` `[B, 3, F, H, W]`: sRGB colour mapped linearly from `0..=255` to `[-1, 1]`.
//! - `depth` `[B, 1, F, H, W]`: camera-frame z-depth in world units, `0` where the pixel sees
//!   the background (sky or wall at infinity).
//! - `masks` `[B, 1, F, H, W]`: `1` on the main object, `0` elsewhere.
//! - image batches `[B, 3, H, W]`: one view per clip of the same stream, for the VAE.
//!
//! ```
//! use bevy_mvcustom::world::{ClipDataset, ClipSource, DatasetConfig, TrajectorySampler};
//! # fn main() -> bevy_mvcustom::world::Result<()> {
//! let trajectories = TrajectorySampler { views: 2, width: 16, height: 16, ..Default::default() };
//! let config = DatasetConfig { batch_size: 2, trajectories, ..Default::default() };
//! let data = ClipDataset::new(config, ClipSource::Render)?;
//! let batch = data.batch(41)?; // the 42nd training step's batch, the same on every run
//! assert_eq!(batch.frames.dims(), &[2, 3, 2, 16, 16]);
//! assert_eq!(batch.captions.len(), 2);
//! # Ok(()) }
//! ```

use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::clip::{Clip, ClipPlan};
use super::error::{Result, WorldError, invalid};
use super::render::{RenderSettings, View, object_mask_id, parallel_map, render_view};
use super::spec::SceneSampler;
use super::split::{DemoSubject, EVAL_SEED_BASE, Split};
use super::trajectory::TrajectorySampler;
use crate::camera::PinholeCamera;

/// Mixed into the dataset seed to key each epoch's permutation.
const EPOCH_SALT: u64 = 0x6570_6f63_685f_6b65;
/// Mixed into the dataset seed to pick the view of each image-batch slot.
const VIEW_SALT: u64 = 0x7669_6577_5f70_6963;
/// Rounds of the Feistel network behind the epoch permutation.
const FEISTEL_ROUNDS: u64 = 4;

/// The splitmix64 finaliser: a bijective avalanche mix of 64 bits.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A keyed bijection of `0..n` (`n ≥ 1`): a balanced Feistel network on the smallest
/// even-width bit domain holding `n`, cycle-walked until the value falls below `n` (fewer than
/// four steps on average, since that domain is under `4n`).
fn permute(x: u64, n: u64, key: u64) -> u64 {
    let bits = (64 - n.saturating_sub(1).leading_zeros()).max(2);
    let half = bits.div_ceil(2);
    let low = (1u64 << half) - 1;
    let mut y = x;
    loop {
        let (mut left, mut right) = (y >> half, y & low);
        for round in 0..FEISTEL_ROUNDS {
            let f = mix(right ^ mix(key.wrapping_add(round))) & low;
            (left, right) = (right, left ^ f);
        }
        y = (left << half) | right;
        if y < n {
            return y;
        }
    }
}

/// Where clips come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClipSource {
    /// Rendered on the fly by the CPU ray caster.
    Render,
    /// Read from the clip folders under this root, named by [`ClipDataset::clip_dir`] and
    /// written by [`ClipDataset::write_clips`] with the same configuration.
    Folder(PathBuf),
}

/// What a [`ClipDataset`] serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetConfig {
    /// The split whose scenes are served (evaluation never yields training seeds).
    pub split: Split,
    /// A demo subject as every clip's main object (its reference or evaluation clips), or
    /// `None` for the split's base scenes.
    pub subject: Option<DemoSubject>,
    /// Seed of the clip order (the permutation of each epoch and the views of image batches).
    pub seed: u64,
    /// Distinct clips: scene indices `0..clips` of the split (1 to 2^48).
    pub clips: u64,
    /// Clips per batch.
    pub batch_size: usize,
    /// Views per clip (`views`), image size (`width`, `height`) and camera paths.
    pub trajectories: TrajectorySampler,
    /// How views are rendered (also what stored clips must have been rendered with).
    pub render: RenderSettings,
}

impl Default for DatasetConfig {
    /// Training scenes, every one of them, four clips of eight 64×64 views per batch.
    fn default() -> Self {
        Self {
            split: Split::Train,
            subject: None,
            seed: 0,
            clips: EVAL_SEED_BASE,
            batch_size: 4,
            trajectories: TrajectorySampler::default(),
            render: RenderSettings::default(),
        }
    }
}

/// A batch of multi-view clips (see the module documentation for the tensor layouts).
#[derive(Clone, Debug)]
pub struct ClipBatch {
    /// `[B, 3, F, H, W]` colour in `[-1, 1]`.
    pub frames: Tensor,
    /// One caption per clip.
    pub captions: Vec<String>,
    /// One camera per frame of each clip.
    pub cameras: Vec<Vec<PinholeCamera>>,
    /// `[B, 1, F, H, W]` z-depth, `0` on background pixels.
    pub depth: Tensor,
    /// `[B, 1, F, H, W]` main-object masks in `{0, 1}`.
    pub masks: Tensor,
    /// The scene seed of each clip (provenance).
    pub seeds: Vec<u64>,
}

/// A batch of single views for the VAE.
#[derive(Clone, Debug)]
pub struct ImageBatch {
    /// `[B, 3, H, W]` colour in `[-1, 1]`.
    pub images: Tensor,
    /// The scene seed of each image.
    pub seeds: Vec<u64>,
    /// Which view of its clip each image is.
    pub views: Vec<usize>,
}

/// One slot of a batch before it becomes tensors.
struct Slot {
    seed: u64,
    caption: String,
    cameras: Vec<PinholeCamera>,
    views: Vec<View>,
}

/// An endless, deterministic stream of clips of one split (see the module documentation).
#[derive(Clone, Debug)]
pub struct ClipDataset {
    config: DatasetConfig,
    source: ClipSource,
    scenes: SceneSampler,
}

impl ClipDataset {
    /// Checks the configuration and prepares the stream.
    pub fn new(config: DatasetConfig, source: ClipSource) -> Result<Self> {
        if config.clips == 0 || config.clips > EVAL_SEED_BASE {
            return Err(invalid("dataset.clips", config.clips, "must be 1 to 2^48"));
        }
        if config.batch_size == 0 {
            return Err(invalid(
                "dataset.batch_size",
                config.batch_size,
                "must be at least 1",
            ));
        }
        let t = &config.trajectories;
        for (field, value) in [
            ("dataset.trajectories.views", t.views),
            ("dataset.trajectories.width", t.width),
            ("dataset.trajectories.height", t.height),
        ] {
            if value == 0 {
                return Err(invalid(field, value, "must be at least 1"));
            }
        }
        config.render.validate()?;
        let scenes = match config.subject {
            Some(subject) => config.split.subject_sampler(subject),
            None => config.split.sampler(),
        };
        Ok(Self {
            config,
            source,
            scenes,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DatasetConfig {
        &self.config
    }

    /// The folder of the clip of scene `seed` under `root`.
    pub fn clip_dir(root: &Path, seed: u64) -> PathBuf {
        root.join(format!("clip_{seed:015}"))
    }

    /// The scene seed at stream position `position` (epoch `position / clips`, shuffled by
    /// that epoch's permutation).
    pub fn seed_at(&self, position: u64) -> Result<u64> {
        let n = self.config.clips;
        let key = mix(self.config.seed ^ mix(EPOCH_SALT ^ (position / n)));
        self.config.split.seed(permute(position % n, n, key))
    }

    /// The scene and cameras of scene `seed`.
    pub fn plan(&self, seed: u64) -> Result<ClipPlan> {
        ClipPlan::sample(seed, &self.scenes, &self.config.trajectories)
    }

    /// Renders the clip of scene `seed` with this configuration (what [`ClipSource::Folder`]
    /// clips must equal; used by [`ClipDataset::write_clips`]).
    pub fn render_clip(&self, seed: u64) -> Result<Clip> {
        self.plan(seed)?.render(&self.config.render)
    }

    /// Writes the clips of scene indices `indices` of the split under `root` for
    /// [`ClipSource::Folder`], skipping those already there (folders are written atomically,
    /// so an interrupted run resumes). Returns how many were written.
    pub fn write_clips(&self, root: &Path, indices: Range<u64>) -> Result<usize> {
        let mut written = 0;
        for index in indices {
            let seed = self.config.split.seed(index)?;
            let dir = Self::clip_dir(root, seed);
            if !dir.exists() {
                self.render_clip(seed)?.write(&dir)?;
                written += 1;
            }
        }
        Ok(written)
    }

    /// Reads the stored clip of `seed` from `root`, refusing one whose scene, trajectory or
    /// cameras differ from what this configuration draws for the seed.
    fn read_clip(&self, root: &Path, seed: u64) -> Result<Clip> {
        let dir = Self::clip_dir(root, seed);
        let clip = Clip::read(&dir)?;
        let plan = self.plan(seed)?;
        let differs = if clip.spec != plan.spec {
            Some("scene")
        } else if clip.trajectory != plan.trajectory {
            Some("trajectory (views, size or path)")
        } else if clip.cameras != plan.cameras {
            Some("cameras")
        } else {
            None
        };
        match differs {
            Some(what) => Err(WorldError::Manifest {
                path: dir.join(super::files::MANIFEST_FILE),
                reason: format!(
                    "its {what} differs from what seed {seed} draws with this dataset's \
                     configuration (written with other settings?)"
                ),
            }),
            None => Ok(clip),
        }
    }

    /// Stream positions of batch `index`.
    fn positions(&self, index: u64) -> Result<Range<u64>> {
        let b = self.config.batch_size as u64;
        index
            .checked_mul(b)
            .and_then(|start| Some(start..start.checked_add(b)?))
            .ok_or_else(|| invalid("batch index", index, "stream position overflows u64"))
    }

    /// The view an image-batch slot at `position` takes.
    fn view_at(&self, position: u64) -> usize {
        let views = u64::from(self.config.trajectories.views);
        (mix(mix(self.config.seed ^ VIEW_SALT) ^ position) % views) as usize
    }

    /// The slots at `positions`, with the views `pick(position)` of each (all when `None`).
    fn slots(
        &self,
        positions: Range<u64>,
        pick: impl Fn(u64) -> Option<usize>,
    ) -> Result<Vec<Slot>> {
        let threads = self.config.render.threads;
        let wanted: Vec<(u64, Option<usize>)> = positions
            .map(|p| Ok((self.seed_at(p)?, pick(p))))
            .collect::<Result<_>>()?;
        match &self.source {
            ClipSource::Folder(root) => parallel_map(&wanted, threads, |&(seed, view)| {
                let clip = self.read_clip(root, seed)?;
                let views = match view {
                    Some(v) => vec![clip.frames.get(v).cloned().ok_or_else(|| {
                        invalid(
                            format!("view of clip {seed}"),
                            v,
                            "beyond the clip's frames",
                        )
                    })?],
                    None => clip.frames,
                };
                Ok(Slot {
                    seed,
                    caption: clip.caption,
                    cameras: clip.cameras,
                    views,
                })
            }),
            ClipSource::Render => {
                let plans = parallel_map(&wanted, threads, |&(seed, _)| self.plan(seed))?;
                // One job per rendered view, so the workers stay busy whatever B and F are.
                let jobs: Vec<(usize, usize)> = wanted
                    .iter()
                    .zip(&plans)
                    .enumerate()
                    .flat_map(|(slot, ((_, view), plan))| {
                        let all = 0..plan.cameras.len();
                        let views: Vec<usize> = view.map_or_else(|| all.collect(), |v| vec![v]);
                        views.into_iter().map(move |v| (slot, v))
                    })
                    .collect();
                let mut rendered = parallel_map(&jobs, threads, |&(slot, v)| {
                    let plan = &plans[slot];
                    render_view(&plan.scene, &plan.cameras[v], &self.config.render)
                })?
                .into_iter();
                let mut slots = Vec::with_capacity(plans.len());
                for ((seed, view), plan) in wanted.into_iter().zip(plans) {
                    let count = if view.is_some() {
                        1
                    } else {
                        plan.cameras.len()
                    };
                    slots.push(Slot {
                        seed,
                        caption: plan.spec.caption(),
                        cameras: plan.cameras,
                        views: rendered.by_ref().take(count).collect(),
                    });
                }
                Ok(slots)
            }
        }
    }

    /// Batch `index` of the stream: a pure function of the configuration and `index`.
    pub fn batch(&self, index: u64) -> Result<ClipBatch> {
        let slots = self.slots(self.positions(index)?, |_| None)?;
        let t = &self.config.trajectories;
        let (f, h, w) = (t.views as usize, t.height as usize, t.width as usize);
        let shape = |channels: usize| (slots.len(), channels, f, h, w);
        let main = object_mask_id(0);
        let mut frames = Vec::with_capacity(slots.len() * 3 * f * h * w);
        let mut depth = Vec::with_capacity(slots.len() * f * h * w);
        let mut masks = Vec::with_capacity(slots.len() * f * h * w);
        for slot in &slots {
            for channel in 0..3 {
                for view in &slot.views {
                    push_channel(&mut frames, view, channel);
                }
            }
            for view in &slot.views {
                depth.extend_from_slice(view.depth.data());
                masks.extend(
                    view.mask
                        .pixels()
                        .map(|p| f32::from(u8::from(p[0] == main))),
                );
            }
        }
        Ok(ClipBatch {
            frames: tensor("frames", frames, shape(3))?,
            depth: tensor("depth", depth, shape(1))?,
            masks: tensor("masks", masks, shape(1))?,
            seeds: slots.iter().map(|s| s.seed).collect(),
            captions: slots.iter().map(|s| s.caption.clone()).collect(),
            cameras: slots.into_iter().map(|s| s.cameras).collect(),
        })
    }

    /// Image batch `index`: one view of each clip at the same stream positions as
    /// [`ClipDataset::batch`] `index`, the view drawn from the dataset seed and the position.
    pub fn image_batch(&self, index: u64) -> Result<ImageBatch> {
        let positions = self.positions(index)?;
        let views: Vec<usize> = positions.clone().map(|p| self.view_at(p)).collect();
        let slots = self.slots(positions, |p| Some(self.view_at(p)))?;
        let t = &self.config.trajectories;
        let (h, w) = (t.height as usize, t.width as usize);
        let mut images = Vec::with_capacity(slots.len() * 3 * h * w);
        for slot in &slots {
            for channel in 0..3 {
                for view in &slot.views {
                    push_channel(&mut images, view, channel);
                }
            }
        }
        Ok(ImageBatch {
            images: tensor("images", images, (slots.len(), 3, h, w))?,
            seeds: slots.iter().map(|s| s.seed).collect(),
            views,
        })
    }

    /// The clip batches from batch `start` on, without end.
    pub fn batches(&self, start: u64) -> impl Iterator<Item = Result<ClipBatch>> + '_ {
        (start..).map(|index| self.batch(index))
    }

    /// The image batches from batch `start` on, without end.
    pub fn image_batches(&self, start: u64) -> impl Iterator<Item = Result<ImageBatch>> + '_ {
        (start..).map(|index| self.image_batch(index))
    }
}

/// Appends one colour channel of a view, row-major, mapped from `0..=255` to `[-1, 1]`.
fn push_channel(out: &mut Vec<f32>, view: &View, channel: usize) {
    out.extend(
        view.rgb
            .pixels()
            .map(|p| f32::from(p[channel]) / 127.5 - 1.0),
    );
}

/// A CPU `f32` tensor of `shape` from `data`.
fn tensor(
    name: &'static str,
    data: Vec<f32>,
    shape: impl Into<candle_core::Shape>,
) -> Result<Tensor> {
    Tensor::from_vec(data, shape, &Device::Cpu).map_err(|e| WorldError::Tensor {
        name,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(split: Split, clips: u64) -> DatasetConfig {
        DatasetConfig {
            split,
            seed: 9,
            clips,
            batch_size: 2,
            trajectories: TrajectorySampler {
                views: 3,
                width: 16,
                height: 12,
                ..Default::default()
            },
            render: RenderSettings {
                supersampling: 1,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    fn assert_same(a: &ClipBatch, b: &ClipBatch) {
        assert_eq!(values(&a.frames), values(&b.frames));
        assert_eq!(values(&a.depth), values(&b.depth));
        assert_eq!(values(&a.masks), values(&b.masks));
        assert_eq!(a.captions, b.captions);
        assert_eq!(a.cameras, b.cameras);
        assert_eq!(a.seeds, b.seeds);
    }

    /// A fresh folder under the system's temporary directory.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mvcustom-dataset-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn permutation_is_a_bijection_and_depends_on_the_key() {
        for n in [1u64, 2, 3, 5, 64, 1000, 4097] {
            for key in [0u64, 7, u64::MAX] {
                let mut image: Vec<u64> = (0..n).map(|x| permute(x, n, key)).collect();
                image.sort_unstable();
                assert_eq!(image, (0..n).collect::<Vec<_>>(), "n {n} key {key}");
            }
        }
        let a: Vec<u64> = (0..1000).map(|x| permute(x, 1000, 1)).collect();
        let b: Vec<u64> = (0..1000).map(|x| permute(x, 1000, 2)).collect();
        assert_ne!(a, b);
        assert_ne!(a, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn every_epoch_visits_each_clip_once_in_a_new_order() {
        let data = ClipDataset::new(config(Split::Train, 10), ClipSource::Render).unwrap();
        let epoch = |e: u64| -> Vec<u64> {
            (10 * e..10 * e + 10)
                .map(|p| data.seed_at(p).unwrap())
                .collect()
        };
        let (first, second) = (epoch(0), epoch(1));
        for order in [&first, &second] {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        }
        assert_ne!(first, second);
    }

    #[test]
    fn same_index_same_batch_different_indices_differ() {
        let data = ClipDataset::new(config(Split::Train, 50), ClipSource::Render).unwrap();
        let a = data.batch(3).unwrap();
        assert_same(&a, &data.batch(3).unwrap());
        let mut other_dataset = data.clone();
        other_dataset.config.render.threads = 1;
        assert_same(&a, &other_dataset.batch(3).unwrap());
        let b = data.batch(4).unwrap();
        assert_ne!(values(&a.frames), values(&b.frames));
        assert_ne!(a.seeds, b.seeds);
        let from_iterator = data.batches(3).next().unwrap().unwrap();
        assert_same(&a, &from_iterator);
        let images = data.image_batch(3).unwrap();
        let again = data.image_batches(3).next().unwrap().unwrap();
        assert_eq!(values(&images.images), values(&again.images));
        assert_eq!(images.seeds, a.seeds);
    }

    #[test]
    fn batches_have_the_documented_layout_shapes_and_ranges() {
        let data = ClipDataset::new(config(Split::Train, 50), ClipSource::Render).unwrap();
        let batch = data.batch(0).unwrap();
        assert_eq!(batch.frames.dims(), &[2, 3, 3, 12, 16]);
        assert_eq!(batch.depth.dims(), &[2, 1, 3, 12, 16]);
        assert_eq!(batch.masks.dims(), &[2, 1, 3, 12, 16]);
        assert_eq!(batch.captions.len(), 2);
        assert!(batch.cameras.iter().all(|c| c.len() == 3));
        let frames = values(&batch.frames);
        assert!(frames.iter().all(|v| (-1.0..=1.0).contains(v)));
        let masks = values(&batch.masks);
        assert!(masks.iter().all(|&m| m == 0.0 || m == 1.0));
        let depth = values(&batch.depth);
        assert!(depth.iter().all(|d| d.is_finite() && *d >= 0.0));
        // The main object has depth wherever its mask is set.
        assert!(masks.iter().zip(&depth).all(|(&m, &d)| m == 0.0 || d > 0.0));
        // Independent check of the layout against the clip rendered directly.
        let frames = &batch.frames;
        let depth = &batch.depth;
        for (b, seed) in batch.seeds.iter().enumerate() {
            let clip = data.render_clip(*seed).unwrap();
            assert_eq!(batch.captions[b], clip.caption);
            assert_eq!(batch.cameras[b], clip.cameras);
            for (f, view) in clip.frames.iter().enumerate() {
                for (x, y) in [(0u32, 0u32), (15, 11), (7, 5), (3, 9)] {
                    let rgb = view.rgb.get_pixel(x, y);
                    for c in 0..3 {
                        let ours: f32 = frames
                            .get(b)
                            .unwrap()
                            .get(c)
                            .unwrap()
                            .get(f)
                            .unwrap()
                            .get(y as usize)
                            .unwrap()
                            .get(x as usize)
                            .unwrap()
                            .to_scalar()
                            .unwrap();
                        assert_eq!(ours, rgb[c] as f32 / 127.5 - 1.0);
                    }
                    let d: f32 = depth
                        .get(b)
                        .unwrap()
                        .get(0)
                        .unwrap()
                        .get(f)
                        .unwrap()
                        .get(y as usize)
                        .unwrap()
                        .get(x as usize)
                        .unwrap()
                        .to_scalar()
                        .unwrap();
                    assert_eq!(d, view.depth.get(x, y).unwrap_or(0.0));
                }
            }
            let masks = batch.masks.get(b).unwrap();
            let on: f32 = masks.sum_all().unwrap().to_scalar().unwrap();
            let expected = clip
                .frames
                .iter()
                .flat_map(|v| v.mask.pixels())
                .filter(|p| p[0] == object_mask_id(0))
                .count();
            assert_eq!(on as usize, expected);
            assert!(expected > 0, "every view sees the main object");
        }
        let images = data.image_batch(0).unwrap();
        assert_eq!(images.images.dims(), &[2, 3, 12, 16]);
        for (b, (&seed, &v)) in images.seeds.iter().zip(&images.views).enumerate() {
            let clip = data.render_clip(seed).unwrap();
            let expected: Vec<f32> = (0..3)
                .flat_map(|c| {
                    clip.frames[v]
                        .rgb
                        .pixels()
                        .map(move |p| p[c] as f32 / 127.5 - 1.0)
                })
                .collect();
            assert_eq!(values(&images.images.get(b).unwrap()), expected);
        }
    }

    #[test]
    fn folder_and_rendered_batches_are_identical() {
        let root = scratch("folder");
        let rendered = ClipDataset::new(config(Split::Train, 5), ClipSource::Render).unwrap();
        assert_eq!(rendered.write_clips(&root, 0..5).unwrap(), 5);
        assert_eq!(rendered.write_clips(&root, 0..5).unwrap(), 0, "resumes");
        let stored =
            ClipDataset::new(config(Split::Train, 5), ClipSource::Folder(root.clone())).unwrap();
        for index in [0, 1, 7] {
            assert_same(
                &rendered.batch(index).unwrap(),
                &stored.batch(index).unwrap(),
            );
            let (a, b) = (
                rendered.image_batch(index).unwrap(),
                stored.image_batch(index).unwrap(),
            );
            assert_eq!(values(&a.images), values(&b.images));
            assert_eq!((a.seeds, a.views), (b.seeds, b.views));
        }
        // A folder written with other settings is refused, naming its manifest.
        let mut other = config(Split::Train, 5);
        other.trajectories.views = 2;
        let mismatched = ClipDataset::new(other, ClipSource::Folder(root.clone())).unwrap();
        let err = mismatched.batch(0).unwrap_err().to_string();
        assert!(
            err.contains("clip.ron") && err.contains("trajectory"),
            "{err}"
        );
        // A missing clip names its folder.
        let bigger =
            ClipDataset::new(config(Split::Train, 500), ClipSource::Folder(root.clone())).unwrap();
        let missing = (0..20)
            .find_map(|i| bigger.batch(i).err())
            .unwrap()
            .to_string();
        assert!(missing.contains("clip_"), "{missing}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn evaluation_never_yields_training_seeds() {
        for clips in [3, 1000, EVAL_SEED_BASE] {
            let data = ClipDataset::new(config(Split::Eval, clips), ClipSource::Render).unwrap();
            for position in (0..2000).chain([u64::MAX / 2, u64::MAX - 1]) {
                let seed = data.seed_at(position).unwrap();
                assert_eq!(Split::of_seed(seed), Split::Eval, "position {position}");
            }
            let train = ClipDataset::new(config(Split::Train, clips), ClipSource::Render).unwrap();
            assert!((0..2000).all(|p| Split::of_seed(train.seed_at(p).unwrap()) == Split::Train));
        }
        let data = ClipDataset::new(config(Split::Eval, 100), ClipSource::Render).unwrap();
        let batch = data.batch(0).unwrap();
        assert!(
            batch
                .seeds
                .iter()
                .all(|&s| Split::of_seed(s) == Split::Eval)
        );
    }

    #[test]
    fn bad_configurations_name_the_field() {
        let mut bad = config(Split::Train, 0);
        let err = ClipDataset::new(bad.clone(), ClipSource::Render)
            .unwrap_err()
            .to_string();
        assert!(err.contains("dataset.clips"), "{err}");
        bad.clips = 4;
        bad.batch_size = 0;
        let err = ClipDataset::new(bad.clone(), ClipSource::Render)
            .unwrap_err()
            .to_string();
        assert!(err.contains("dataset.batch_size"), "{err}");
        bad.batch_size = 1;
        bad.trajectories.views = 0;
        let err = ClipDataset::new(bad, ClipSource::Render)
            .unwrap_err()
            .to_string();
        assert!(err.contains("dataset.trajectories.views"), "{err}");
        let data = ClipDataset::new(config(Split::Train, 4), ClipSource::Render).unwrap();
        assert!(
            data.batch(u64::MAX)
                .unwrap_err()
                .to_string()
                .contains("batch index")
        );
    }
}
