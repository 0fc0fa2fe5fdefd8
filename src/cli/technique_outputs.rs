//! The files `generate` writes besides the views, so a run can be inspected and reproduced:
//!
//! - the anchor depth depth-aware feature rendering used: `anchor_depth.npy` (the raw z-depth
//!   in world units, float32 `[H, W]`; `--depth` reads it back) and `anchor_depth.png`
//!   (16-bit grayscale, linear between the nearest and farthest depth:
//!   `depth = near + value / 65535 · (far − near)`, near and far in `report.json`);
//! - the masks: `dfr_visibility_<h>x<w>_view_NN.png`, DFR's visibility at each feature grid it
//!   replaced features on (white: the view sees the anchor mesh), and
//!   `clc_disocclusion_view_NN.png`, latent completion's disocclusion at the latent grid (white:
//!   re-noised; grey on edges). Masks are 8-bit grayscale at the grid they were used on.

use std::path::Path;

use serde::Serialize;

use super::atomic::write_atomic;
use super::depth::encode_npy;
use super::error::{CliError, Result};
use crate::render::{DepthMap, ViewMaps};

/// The anchor depth files written.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DepthOutput {
    /// The view it is the depth of.
    pub view: usize,
    /// The raw z-depth in world units (float32 `.npy`), relative to the output folder.
    pub npy: String,
    /// The normalised 16-bit PNG, relative to the output folder.
    pub png: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The nearest depth (PNG value 0).
    pub near: f32,
    /// The farthest depth (PNG value 65535).
    pub far: f32,
}

/// One set of mask images, one per view.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MaskOutput {
    /// `dfr_visibility` or `clc_disocclusion`.
    pub kind: &'static str,
    /// The grid the masks were used on, `[height, width]`.
    pub grid: [u32; 2],
    /// The PNG of each view, in view order, relative to the output folder.
    pub files: Vec<String>,
}

/// Writes `depth`, the anchor view `view`'s z-depth, as `anchor_depth.npy` and
/// `anchor_depth.png` into `out`.
pub fn write_depth(out: &Path, depth: &DepthMap, view: usize) -> Result<DepthOutput> {
    let (width, height) = (depth.width(), depth.height());
    let data = depth.data();
    let near = data.iter().copied().fold(f32::INFINITY, f32::min);
    let far = data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let npy = "anchor_depth.npy".to_string();
    write_atomic(&out.join(&npy), &encode_npy(width, height, data))?;
    let range = far - near;
    let levels: Vec<u16> = data
        .iter()
        .map(|&d| {
            if range > 0.0 {
                ((d - near) / range * 65535.0).round().clamp(0.0, 65535.0) as u16
            } else {
                0
            }
        })
        .collect();
    let png = "anchor_depth.png".to_string();
    let image = image::ImageBuffer::<image::Luma<u16>, _>::from_raw(width, height, levels)
        .ok_or_else(|| CliError::file(out.join(&png), "depth map has an inconsistent size"))?;
    write_png(&out.join(&png), &image::DynamicImage::ImageLuma16(image))?;
    Ok(DepthOutput {
        view,
        npy,
        png,
        width,
        height,
        near,
        far,
    })
}

/// Writes one 8-bit PNG per view of `maps` (values in [0, 1]) named
/// `<prefix>_view_NN.png` into `out`.
pub fn write_masks(
    out: &Path,
    kind: &'static str,
    prefix: &str,
    maps: &ViewMaps,
) -> Result<MaskOutput> {
    let (width, height) = (maps.width(), maps.height());
    let mut files = Vec::with_capacity(maps.views());
    for k in 0..maps.views() {
        let name = format!("{prefix}_view_{k:02}.png");
        let values: Vec<u8> = maps
            .view(k)
            .unwrap_or_default()
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        let image = image::GrayImage::from_raw(width, height, values)
            .ok_or_else(|| CliError::file(out.join(&name), "mask has an inconsistent size"))?;
        write_png(&out.join(&name), &image::DynamicImage::ImageLuma8(image))?;
        files.push(name);
    }
    Ok(MaskOutput {
        kind,
        grid: [height, width],
        files,
    })
}

/// Writes DFR's visibility masks (one set per grid) and CLC's disocclusion masks.
pub fn write_technique_masks(
    out: &Path,
    dfr_visibility: &[ViewMaps],
    clc_disocclusion: Option<&ViewMaps>,
) -> Result<Vec<MaskOutput>> {
    let mut written = Vec::new();
    for maps in dfr_visibility {
        let prefix = format!("dfr_visibility_{}x{}", maps.height(), maps.width());
        written.push(write_masks(out, "dfr_visibility", &prefix, maps)?);
    }
    if let Some(maps) = clc_disocclusion {
        written.push(write_masks(
            out,
            "clc_disocclusion",
            "clc_disocclusion",
            maps,
        )?);
    }
    Ok(written)
}

/// Encodes `image` as PNG and writes it atomically.
pub fn write_png(path: &Path, image: &image::DynamicImage) -> Result<()> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| CliError::file(path, format!("cannot encode PNG: {e}")))?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::depth::read_depth;

    #[test]
    fn depth_and_masks_are_written_losslessly_enough_to_reuse() {
        let out = std::env::temp_dir().join(format!("mvcustom-outputs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        let depth = DepthMap::new(3, 2, vec![2.0, 2.5, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let written = write_depth(&out, &depth, 1).unwrap();
        assert_eq!((written.near, written.far, written.view), (2.0, 6.0, 1));
        // The .npy is exact and readable by --depth.
        let back = read_depth(&out.join(&written.npy), 1.0).unwrap();
        assert_eq!(back.data(), depth.data());
        // The PNG spans the range linearly.
        let png = image::open(out.join(&written.png)).unwrap().to_luma16();
        assert_eq!(png.get_pixel(0, 0).0, [0]);
        assert_eq!(png.get_pixel(2, 1).0, [65535]);
        assert_eq!(
            png.get_pixel(1, 0).0,
            [(0.5f32 / 4.0 * 65535.0).round() as u16]
        );

        let maps = ViewMaps::new(2, 1, 2, vec![0.0, 1.0, 0.5, 0.25]).unwrap();
        let masks = write_technique_masks(&out, std::slice::from_ref(&maps), Some(&maps)).unwrap();
        assert_eq!(masks.len(), 2);
        assert_eq!(
            masks[0].files,
            [
                "dfr_visibility_1x2_view_00.png",
                "dfr_visibility_1x2_view_01.png"
            ]
        );
        assert_eq!((masks[1].kind, masks[1].grid), ("clc_disocclusion", [1, 2]));
        let second = image::open(out.join(&masks[1].files[1]))
            .unwrap()
            .to_luma8();
        assert_eq!(second.as_raw(), &vec![128u8, 64]);
        std::fs::remove_dir_all(out).unwrap();
    }
}
