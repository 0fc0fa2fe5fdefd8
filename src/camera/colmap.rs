//! Import of COLMAP's text model (`cameras.txt`, `images.txt`), so real photo sets
//! reconstructed with COLMAP can serve as subject references.
//!
//! COLMAP's conventions are this crate's: world-to-camera rotation (as a quaternion
//! `QW QX QY QZ`) and translation in the OpenCV camera frame, and continuous pixel
//! coordinates with the top-left corner at (0, 0).

use std::collections::HashMap;
use std::path::Path;

use glam::{Mat3, Quat, Vec3};

use super::error::{CameraError, Result};
use super::pinhole::{Extrinsics, ImageSize, Intrinsics, PinholeCamera, ProjectionKind};

/// OpenCV radial-tangential distortion `k1 k2 p1 p2` of an `OPENCV` COLMAP camera. The camera
/// model itself is undistorted: images with non-zero distortion should be undistorted first
/// (e.g. `colmap image_undistorter`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Distortion {
    /// Radial coefficients k1, k2.
    pub radial: [f32; 2],
    /// Tangential coefficients p1, p2.
    pub tangential: [f32; 2],
}

/// One intrinsic camera of `cameras.txt`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColmapIntrinsics {
    /// Pinhole intrinsics.
    pub intrinsics: Intrinsics,
    /// Image size.
    pub size: ImageSize,
    /// Lens distortion (`OPENCV` model only).
    pub distortion: Option<Distortion>,
}

/// One registered image of `images.txt` with its full camera.
#[derive(Clone, Debug, PartialEq)]
pub struct ColmapView {
    /// COLMAP's image id.
    pub image_id: u32,
    /// Image file name, relative to the image folder of the reconstruction.
    pub name: String,
    /// Intrinsics, pose and size.
    pub camera: PinholeCamera,
    /// Lens distortion of its intrinsic camera, if any.
    pub distortion: Option<Distortion>,
}

/// Reads `cameras.txt` and `images.txt` from a COLMAP text-model folder; views are returned
/// in the order of `images.txt`.
pub fn read_model(dir: &Path) -> Result<Vec<ColmapView>> {
    let cameras_path = dir.join("cameras.txt");
    let images_path = dir.join("images.txt");
    let cameras = parse_cameras(&read(&cameras_path)?, &cameras_path.display().to_string())?;
    parse_images(
        &read(&images_path)?,
        &images_path.display().to_string(),
        &cameras,
    )
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| CameraError::Colmap {
        file: path.display().to_string(),
        line: 0,
        reason: e.to_string(),
    })
}

/// Parses the text of a `cameras.txt` (`CAMERA_ID MODEL WIDTH HEIGHT PARAMS…`); `file` names
/// it in errors. Supports `PINHOLE`, `SIMPLE_PINHOLE` and `OPENCV`.
pub fn parse_cameras(text: &str, file: &str) -> Result<HashMap<u32, ColmapIntrinsics>> {
    let mut cameras = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let err = |reason: String| CameraError::Colmap {
            file: file.to_string(),
            line: line_no,
            reason,
        };
        let tokens: Vec<&str> = trimmed.split_whitespace().collect();
        if tokens.len() < 4 {
            return Err(err(format!(
                "expected `CAMERA_ID MODEL WIDTH HEIGHT PARAMS…`, got {} fields",
                tokens.len()
            )));
        }
        let id: u32 = parse(tokens[0], "CAMERA_ID").map_err(&err)?;
        let width: u32 = parse(tokens[2], "WIDTH").map_err(&err)?;
        let height: u32 = parse(tokens[3], "HEIGHT").map_err(&err)?;
        let params = tokens[4..]
            .iter()
            .map(|t| parse::<f32>(t, "PARAMS"))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(&err)?;
        let model = tokens[1];
        let expected = match model {
            "SIMPLE_PINHOLE" => 3,
            "PINHOLE" => 4,
            "OPENCV" => 8,
            other => {
                return Err(err(format!(
                    "camera model `{other}` is not supported (PINHOLE, SIMPLE_PINHOLE, OPENCV)"
                )));
            }
        };
        if params.len() != expected {
            return Err(err(format!(
                "{model} takes {expected} parameters, got {}",
                params.len()
            )));
        }
        let (fx, fy, cx, cy) = match model {
            "SIMPLE_PINHOLE" => (params[0], params[0], params[1], params[2]),
            _ => (params[0], params[1], params[2], params[3]),
        };
        let distortion = (model == "OPENCV").then(|| Distortion {
            radial: [params[4], params[5]],
            tangential: [params[6], params[7]],
        });
        let intrinsics = Intrinsics {
            fx,
            fy,
            cx,
            cy,
            kind: ProjectionKind::Perspective,
        };
        intrinsics.validate().map_err(|e| err(e.to_string()))?;
        let size = ImageSize::new(width, height).map_err(|e| err(e.to_string()))?;
        if cameras
            .insert(
                id,
                ColmapIntrinsics {
                    intrinsics,
                    size,
                    distortion,
                },
            )
            .is_some()
        {
            return Err(err(format!("camera id {id} appears twice")));
        }
    }
    Ok(cameras)
}

/// Parses the text of an `images.txt`: each image is a header line
/// `IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME` followed by a (possibly empty) line of 2-D
/// points, which is skipped.
pub fn parse_images(
    text: &str,
    file: &str,
    cameras: &HashMap<u32, ColmapIntrinsics>,
) -> Result<Vec<ColmapView>> {
    let mut views = Vec::new();
    let mut expect_points = false;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        if expect_points {
            expect_points = false;
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        let err = |reason: String| CameraError::Colmap {
            file: file.to_string(),
            line: line_no,
            reason,
        };
        let tokens: Vec<&str> = trimmed.splitn(10, char::is_whitespace).collect();
        if tokens.len() < 10 {
            return Err(err(format!(
                "expected `IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`, got {} fields",
                tokens.len()
            )));
        }
        let image_id: u32 = parse(tokens[0], "IMAGE_ID").map_err(&err)?;
        let mut q = [0.0f32; 4];
        for (k, name) in ["QW", "QX", "QY", "QZ"].iter().enumerate() {
            q[k] = parse(tokens[1 + k], name).map_err(&err)?;
        }
        let mut t = [0.0f32; 3];
        for (k, name) in ["TX", "TY", "TZ"].iter().enumerate() {
            t[k] = parse(tokens[5 + k], name).map_err(&err)?;
        }
        let camera_id: u32 = parse(tokens[8], "CAMERA_ID").map_err(&err)?;
        let name = tokens[9].trim().to_string();
        let quat = Quat::from_xyzw(q[1], q[2], q[3], q[0]);
        let norm = quat.length();
        if !(norm.is_finite() && norm > 1e-6) {
            return Err(err(format!(
                "quaternion {q:?} has no rotation (norm {norm})"
            )));
        }
        let intrinsic = cameras
            .get(&camera_id)
            .ok_or_else(|| err(format!("CAMERA_ID {camera_id} is not in cameras.txt")))?;
        let extrinsics = Extrinsics {
            rotation: Mat3::from_quat(quat / norm),
            translation: Vec3::from(t),
        };
        let camera = PinholeCamera::new(intrinsic.intrinsics, extrinsics, intrinsic.size)
            .map_err(|e| err(e.to_string()))?;
        views.push(ColmapView {
            image_id,
            name,
            camera,
            distortion: intrinsic.distortion,
        });
        expect_points = true;
    }
    Ok(views)
}

fn parse<T: std::str::FromStr>(token: &str, field: &str) -> std::result::Result<T, String> {
    token.parse().map_err(|_| {
        format!(
            "{field} `{token}` is not a valid {}",
            std::any::type_name::<T>()
        )
    })
}
