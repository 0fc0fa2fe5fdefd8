//! The anchor view's geometry at each feature grid that depth-aware feature rendering (and
//! latent completion) works at: the anchor depth resampled to the grid, lifted into a feature
//! mesh, rasterised once into every other view; afterwards only features are resolved.
//!
//! **Border.** The renderer's mesh has one vertex per cell *centre*, so it stops half a cell
//! short of the image border, and the top-left fill rule leaves a pixel centre on its right or
//! bottom edge uncovered: even a target camera equal to the anchor would miss the last row and
//! column. The mesh is therefore built on the grid grown by one cell on every side (the anchor
//! camera's principal point shifted by one cell), with the border cells' depths and features
//! copied from the nearest edge cell: the mesh then covers the anchor's whole image and an
//! identical target camera sees every cell, with the anchor's feature exactly at each centre.

use candle_core::{DType, Device, Tensor};

use crate::camera::{ImageSize, Intrinsics, PinholeCamera};
use crate::mvcustom::error::{MvError, Result};
use crate::render::{AnchorMesh, DepthMap, FeatureMap, FeatureRenderer, Rasterization, ViewMaps};

/// Pads the last two dimensions of `t` by one cell on each side, repeating the edge values.
fn pad_edges(t: &Tensor) -> candle_core::Result<Tensor> {
    let rank = t.rank();
    t.pad_with_same(rank - 2, 1, 1)?
        .pad_with_same(rank - 1, 1, 1)
}

/// The anchor camera for a `width × height` grid grown by one cell on every side.
fn bordered_camera(anchor: &PinholeCamera, width: u32, height: u32) -> Result<PinholeCamera> {
    let grid = anchor.resized(width, height)?;
    let k = *grid.intrinsics();
    let k = Intrinsics {
        cx: k.cx + 1.0,
        cy: k.cy + 1.0,
        ..k
    };
    Ok(PinholeCamera::new(
        k,
        *grid.extrinsics(),
        ImageSize::new(width + 2, height + 2)?,
    )?)
}

/// A `u32` side of a grid, or the request error naming it.
fn side(value: usize) -> Result<u32> {
    u32::try_from(value)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| MvError::request("grid", format!("side {value} is not in 1..=u32::MAX")))
}

/// The anchor's mesh rasterised into the other views at one grid.
#[derive(Debug)]
pub struct GridGeometry {
    /// (height, width) of the grid.
    grid: (usize, usize),
    /// The bordered mesh rasterised into the non-anchor views, in view order.
    raster: Rasterization,
    /// Visibility `[views, 1, h, w]` (float32, 0 or 1; 0 for the anchor view).
    visibility: Tensor,
}

impl GridGeometry {
    /// The grid, (height, width).
    pub fn grid(&self) -> (usize, usize) {
        self.grid
    }

    /// Visibility M `[views, 1, h, w]`, float32: 1 where view n sees the anchor mesh, 0
    /// elsewhere and everywhere in the anchor view itself.
    pub fn visibility(&self) -> &Tensor {
        &self.visibility
    }
}

/// The anchor view's geometry at every grid a generation needs.
#[derive(Debug)]
pub struct AnchorGeometry {
    anchor: usize,
    views: usize,
    grids: Vec<GridGeometry>,
}

impl AnchorGeometry {
    /// Builds the geometry of view `anchor` among `cameras` (one per view) from its z-depth
    /// `depth` (world units, any resolution covering the camera's whole image) at each grid of
    /// `grids` ((height, width), duplicates ignored): depth resampled with
    /// [`DepthMap::resize_min`], mesh with `max_surface_angle_deg`, one rasterisation per
    /// grid into the other views with `renderer`. Visibility tensors go to `device`.
    pub fn build(
        renderer: &FeatureRenderer,
        depth: &DepthMap,
        cameras: &[PinholeCamera],
        anchor: usize,
        max_surface_angle_deg: f32,
        grids: &[(usize, usize)],
        device: &Device,
    ) -> Result<Self> {
        let views = cameras.len();
        let anchor_camera = cameras.get(anchor).ok_or_else(|| {
            MvError::request(
                "techniques.dfr.anchor_view",
                format!("view {anchor} does not exist: there are {views} cameras"),
            )
        })?;
        if views < 2 {
            return Err(MvError::request(
                "cameras",
                "rendering the anchor into other views needs at least two cameras",
            ));
        }
        let targets: Vec<PinholeCamera> = cameras
            .iter()
            .enumerate()
            .filter(|&(n, _)| n != anchor)
            .map(|(_, c)| *c)
            .collect();
        let mut built: Vec<GridGeometry> = Vec::new();
        for &grid in grids {
            if built.iter().any(|g| g.grid == grid) {
                continue;
            }
            let (h, w) = (side(grid.0)?, side(grid.1)?);
            let resampled = depth.resize_min(w, h)?;
            let padded = pad_edges(&Tensor::from_slice(
                resampled.data(),
                (grid.0, grid.1),
                &Device::Cpu,
            )?)?;
            let padded = DepthMap::new(w + 2, h + 2, padded.flatten_all()?.to_vec1()?)?;
            let camera = bordered_camera(anchor_camera, w, h)?;
            let mesh = AnchorMesh::build(&padded, &camera, max_surface_angle_deg)?;
            let raster = renderer.rasterize(&mesh, &targets, w, h)?;
            let visibility = with_anchor_row(raster.visibility().mask(), anchor)?;
            built.push(GridGeometry {
                grid,
                raster,
                visibility: visibility.to_device(device)?,
            });
        }
        Ok(Self {
            anchor,
            views,
            grids: built,
        })
    }

    /// The anchor view.
    pub fn anchor(&self) -> usize {
        self.anchor
    }

    /// Number of views.
    pub fn views(&self) -> usize {
        self.views
    }

    /// The geometry at `grid` ((height, width)), if it was built.
    pub fn grid(&self, grid: (usize, usize)) -> Option<&GridGeometry> {
        self.grids.iter().find(|g| g.grid == grid)
    }

    /// Renders the anchor's `[C, h, w]` features (any dtype) at `grid` into every view:
    /// `[views, C, h, w]` float32, zero where a view does not see the anchor mesh and in the
    /// anchor's own slot. Only resolves: the geometry was rasterised by [`Self::build`].
    pub fn render(&mut self, grid: (usize, usize), anchor_features: &Tensor) -> Result<Tensor> {
        let geometry = self
            .grids
            .iter_mut()
            .find(|g| g.grid == grid)
            .ok_or_else(|| {
                MvError::request(
                    "features",
                    format!("no anchor geometry was built for the {grid:?} grid"),
                )
            })?;
        let (c, h, w) = anchor_features.dims3()?;
        if (h, w) != grid {
            return Err(MvError::request(
                "features",
                format!(
                    "anchor features are {h}×{w}, the grid is {}×{}",
                    grid.0, grid.1
                ),
            ));
        }
        let device = anchor_features.device();
        let padded = pad_edges(&anchor_features.to_dtype(DType::F32)?)?;
        let features = FeatureMap::new(
            side(c)?,
            side(h + 2)?,
            side(w + 2)?,
            padded.flatten_all()?.to_vec1()?,
        )?;
        let rendered = geometry.raster.resolve(&features)?;
        let others = Tensor::from_vec(rendered.into_data(), (self.views - 1, c, h, w), device)?;
        let zero = Tensor::zeros((1, c, h, w), DType::F32, device)?;
        let before = others.narrow(0, 0, self.anchor)?;
        let after = others.narrow(0, self.anchor, self.views - 1 - self.anchor)?;
        Ok(Tensor::cat(&[&before, &zero, &after], 0)?)
    }

    /// The disocclusion mask D = 1 − M of every view at `grid`, area-averaged to the
    /// `(height, width)` grid `out`: `[views, out_h, out_w]` float32 on `device`, 0 in the
    /// anchor view (which sees all of itself).
    pub fn disocclusion(
        &self,
        grid: (usize, usize),
        out: (usize, usize),
        device: &Device,
    ) -> Result<Tensor> {
        let geometry = self.grid(grid).ok_or_else(|| {
            MvError::request(
                "grid",
                format!("no anchor geometry was built for the {grid:?} grid"),
            )
        })?;
        let maps = geometry
            .raster
            .visibility()
            .disocclusion()
            .area_resize(side(out.1)?, side(out.0)?)?;
        Ok(with_anchor_row(maps, self.anchor)?
            .squeeze(1)?
            .to_device(device)?)
    }
}

/// `[K, h, w]` maps of the non-anchor views as a `[K + 1, 1, h, w]` CPU tensor with a zero
/// map in the anchor's slot.
fn with_anchor_row(maps: ViewMaps, anchor: usize) -> candle_core::Result<Tensor> {
    let (k, h, w) = (maps.views(), maps.height() as usize, maps.width() as usize);
    let others = Tensor::from_vec(maps.into_data(), (k, 1, h, w), &Device::Cpu)?;
    let zero = Tensor::zeros((1, 1, h, w), DType::F32, &Device::Cpu)?;
    Tensor::cat(
        &[
            &others.narrow(0, 0, anchor)?,
            &zero,
            &others.narrow(0, anchor, k - anchor)?,
        ],
        0,
    )
}
