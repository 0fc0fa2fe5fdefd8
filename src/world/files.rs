//! Clip folders: each view's colour and mask as PNG, its depth as raw little-endian `f32`, and
//! `clip.ron` with the scene spec, trajectory, cameras and caption. Written atomically: into a
//! hidden temporary folder beside the target, then renamed.
//!
//! Layout of `<clip>/`:
//! - `clip.ron`: [`ClipManifest`].
//! - `rgb_000.png`: 8-bit sRGB colour.
//! - `depth_000.f32`: `width × height` little-endian `f32`, row-major from the top-left pixel,
//!   camera-frame z-depth in world units, `0.0` where the pixel sees the background.
//! - `mask_000.png`: 8-bit grey instance ids (0 background, 1 ground, 2 + object index).

use std::path::{Path, PathBuf};

use image::{GrayImage, ImageReader, RgbImage};
use serde::{Deserialize, Serialize};

use super::clip::Clip;
use super::error::{Result, WorldError};
use super::render::{DepthImage, View};
use super::spec::SceneSpec;
use super::trajectory::TrajectorySpec;
use crate::camera::PinholeCamera;

/// Name of the manifest inside a clip folder.
pub const MANIFEST_FILE: &str = "clip.ron";

/// Version of the folder layout written by [`Clip::write`].
pub const FORMAT_VERSION: u32 = 1;

/// The files of one frame, relative to the clip folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameFiles {
    /// Colour PNG.
    pub rgb: String,
    /// Raw depth.
    pub depth: String,
    /// Mask PNG.
    pub mask: String,
}

/// The contents of `clip.ron`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClipManifest {
    /// Layout version ([`FORMAT_VERSION`]).
    pub format: u32,
    /// The caption.
    pub caption: String,
    /// The scene.
    pub spec: SceneSpec,
    /// The trajectory.
    pub trajectory: TrajectorySpec,
    /// One camera per frame.
    pub cameras: Vec<PinholeCamera>,
    /// One set of files per frame.
    pub frames: Vec<FrameFiles>,
}

fn io_error<'a>(
    operation: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> WorldError + 'a {
    move |e| WorldError::Io {
        operation,
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn image_error(path: &Path) -> impl FnOnce(image::ImageError) -> WorldError + '_ {
    move |e| WorldError::Image {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// A file name from a manifest, refused unless it is a plain name inside the folder.
fn member(dir: &Path, name: &str, manifest: &Path) -> Result<PathBuf> {
    let plain = !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..";
    if !plain {
        return Err(WorldError::Manifest {
            path: manifest.to_path_buf(),
            reason: format!("frame file `{name}` must be a plain file name inside the clip folder"),
        });
    }
    Ok(dir.join(name))
}

fn write_frame(dir: &Path, index: usize, view: &View) -> Result<FrameFiles> {
    let files = FrameFiles {
        rgb: format!("rgb_{index:03}.png"),
        depth: format!("depth_{index:03}.f32"),
        mask: format!("mask_{index:03}.png"),
    };
    let rgb = dir.join(&files.rgb);
    view.rgb.save(&rgb).map_err(image_error(&rgb))?;
    let mask = dir.join(&files.mask);
    view.mask.save(&mask).map_err(image_error(&mask))?;
    let depth = dir.join(&files.depth);
    let bytes: Vec<u8> = view
        .depth
        .data()
        .iter()
        .flat_map(|d| d.to_le_bytes())
        .collect();
    std::fs::write(&depth, bytes).map_err(io_error("write", &depth))?;
    Ok(files)
}

fn read_frame(
    dir: &Path,
    files: &FrameFiles,
    camera: &PinholeCamera,
    manifest: &Path,
) -> Result<View> {
    let size = camera.size();
    let (w, h) = (size.width, size.height);
    let check_size = |path: &Path, found: (u32, u32)| {
        if found == (w, h) {
            Ok(())
        } else {
            Err(WorldError::Image {
                path: path.to_path_buf(),
                reason: format!("is {}×{}, its camera is {w}×{h}", found.0, found.1),
            })
        }
    };
    let open = |path: &Path| -> Result<image::DynamicImage> {
        ImageReader::open(path)
            .map_err(io_error("open", path))?
            .decode()
            .map_err(image_error(path))
    };
    let rgb_path = member(dir, &files.rgb, manifest)?;
    let rgb: RgbImage = open(&rgb_path)?.into_rgb8();
    check_size(&rgb_path, rgb.dimensions())?;
    let mask_path = member(dir, &files.mask, manifest)?;
    let mask: GrayImage = open(&mask_path)?.into_luma8();
    check_size(&mask_path, mask.dimensions())?;
    let depth_path = member(dir, &files.depth, manifest)?;
    let bytes = std::fs::read(&depth_path).map_err(io_error("read", &depth_path))?;
    if bytes.len() != 4 * size.area() {
        return Err(WorldError::SizeMismatch {
            field: depth_path.display().to_string(),
            expected: 4 * size.area(),
            found: bytes.len(),
        });
    }
    let values = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let depth = DepthImage::new(w, h, values).map_err(|e| WorldError::Image {
        path: depth_path.clone(),
        reason: e.to_string(),
    })?;
    Ok(View { rgb, depth, mask })
}

impl Clip {
    /// Writes the clip to the folder `dir`, which must not exist yet; its parent is created.
    /// Everything goes into a temporary sibling folder first and is renamed into place, so
    /// a folder at `dir` is always complete.
    pub fn write(&self, dir: &Path) -> Result<()> {
        if dir.exists() {
            return Err(WorldError::AlreadyExists {
                path: dir.to_path_buf(),
            });
        }
        let name = dir.file_name().ok_or_else(|| WorldError::Io {
            operation: "name",
            path: dir.to_path_buf(),
            reason: "the clip folder needs a final path component".into(),
        })?;
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(io_error("create", parent))?;
        let temp = parent.join(format!(
            ".{}.partial-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        if temp.exists() {
            std::fs::remove_dir_all(&temp).map_err(io_error("remove", &temp))?;
        }
        std::fs::create_dir(&temp).map_err(io_error("create", &temp))?;
        let written = self.write_contents(&temp).and_then(|()| {
            std::fs::rename(&temp, dir).map_err(|e| match dir.exists() {
                true => WorldError::AlreadyExists {
                    path: dir.to_path_buf(),
                },
                false => io_error("rename into place", dir)(e),
            })
        });
        if written.is_err() {
            // Best effort: the error being returned matters more than a failed clean-up.
            let _ = std::fs::remove_dir_all(&temp);
        }
        written
    }

    fn write_contents(&self, dir: &Path) -> Result<()> {
        let frames = self
            .frames
            .iter()
            .enumerate()
            .map(|(index, view)| write_frame(dir, index, view))
            .collect::<Result<Vec<_>>>()?;
        let manifest = ClipManifest {
            format: FORMAT_VERSION,
            caption: self.caption.clone(),
            spec: self.spec.clone(),
            trajectory: self.trajectory,
            cameras: self.cameras.clone(),
            frames,
        };
        let path = dir.join(MANIFEST_FILE);
        let text = ron::ser::to_string_pretty(&manifest, ron::ser::PrettyConfig::default())
            .map_err(|e| WorldError::Manifest {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        std::fs::write(&path, text).map_err(io_error("write", &path))
    }

    /// Reads a clip folder written by [`Clip::write`], checking sizes and the spec.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(io_error("read", &path))?;
        let manifest: ClipManifest = ron::from_str(&text).map_err(|e| WorldError::Manifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let bad = |reason: String| WorldError::Manifest {
            path: path.clone(),
            reason,
        };
        if manifest.format != FORMAT_VERSION {
            return Err(bad(format!(
                "format {} is not the supported {FORMAT_VERSION}",
                manifest.format
            )));
        }
        if manifest.frames.len() != manifest.cameras.len() {
            return Err(bad(format!(
                "{} frames but {} cameras",
                manifest.frames.len(),
                manifest.cameras.len()
            )));
        }
        manifest.spec.validate().map_err(|e| bad(e.to_string()))?;
        let frames = manifest
            .frames
            .iter()
            .zip(&manifest.cameras)
            .map(|(files, camera)| read_frame(dir, files, camera, &path))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            spec: manifest.spec,
            trajectory: manifest.trajectory,
            cameras: manifest.cameras,
            frames,
            caption: manifest.caption,
        })
    }
}
