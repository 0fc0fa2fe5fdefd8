//! Plain row-major f32 buffers with explicit shapes: what goes into the renderer (a depth map,
//! a feature map) and what comes out (per-view maps, rendered features). The method layer
//! converts them to and from candle tensors.

use std::ops::Deref;

use super::error::{RenderError, Result};
use crate::grid::{Grid, ShapeError};

/// Checks that `data` holds exactly the product of `shape` elements.
fn check_len(field: &'static str, shape: &[usize], found: usize) -> Result<()> {
    let expected = shape.iter().product::<usize>();
    if expected != found {
        return Err(RenderError::SizeMismatch {
            field,
            shape: shape.to_vec(),
            expected,
            found,
        });
    }
    Ok(())
}

/// Checks that a size is non-zero.
fn non_zero(field: &'static str, value: u32) -> Result<usize> {
    if value == 0 {
        return Err(RenderError::Empty { field });
    }
    Ok(value as usize)
}

/// An anchor view's z-depth map, row-major `[height, width]`, covering the anchor camera's whole
/// image at feature resolution (one value per feature cell). Its shape and values are read
/// through the [`Grid`] it dereferences to (`width()`, `height()`, `data()`, `get(i, j)`).
#[derive(Clone, Debug, PartialEq)]
pub struct DepthMap(Grid<f32>);

impl DepthMap {
    /// A depth map from its values; every depth must be finite and strictly positive.
    pub fn new(width: u32, height: u32, data: Vec<f32>) -> Result<Self> {
        let grid = depth_grid(width, height, data)?;
        for (index, &value) in grid.data().iter().enumerate() {
            if !value.is_finite() {
                return Err(RenderError::NotFinite {
                    field: "depth",
                    index,
                    value,
                });
            }
            if value <= 0.0 {
                return Err(RenderError::NotPositive {
                    field: "depth",
                    index,
                    value,
                });
            }
        }
        Ok(Self(grid))
    }

    /// Resamples to `width × height` cells (any ratio) keeping, for each output cell, the
    /// *smallest* depth among the input cells it overlaps: the nearest surface wins, so depth
    /// edges stay sharp (no depth is invented between a foreground and its background, which
    /// averaging would do, floating geometry across the edge) and thin foreground structures
    /// survive downsampling. When upsampling each output cell lies in one or two input cells,
    /// so this is nearest-neighbour resampling with ties to the nearer surface.
    pub fn resize_min(&self, width: u32, height: u32) -> Result<Self> {
        let out_w = non_zero("resize width", width)?;
        let out_h = non_zero("resize height", height)?;
        let in_w = self.width() as usize;
        let wx = area_weights(in_w, out_w);
        let wy = area_weights(self.height() as usize, out_h);
        let mut data = Vec::with_capacity(out_h * out_w);
        for rows in &wy {
            for cols in &wx {
                let nearest = rows
                    .iter()
                    .flat_map(|&(iy, _)| cols.iter().map(move |&(ix, _)| iy * in_w + ix))
                    .map(|index| self.data()[index])
                    .fold(f32::INFINITY, f32::min);
                data.push(nearest);
            }
        }
        Ok(Self(depth_grid(width, height, data)?))
    }
}

impl Deref for DepthMap {
    type Target = Grid<f32>;

    fn deref(&self) -> &Grid<f32> {
        &self.0
    }
}

/// The depth values as a grid, shape errors naming the depth map's height, width or length.
fn depth_grid(width: u32, height: u32, data: Vec<f32>) -> Result<Grid<f32>> {
    Grid::new(width, height, data).map_err(|e| match e {
        ShapeError::NoRows => RenderError::Empty {
            field: "depth height",
        },
        ShapeError::NoColumns => RenderError::Empty {
            field: "depth width",
        },
        ShapeError::Length {
            width,
            height,
            expected,
            found,
        } => RenderError::SizeMismatch {
            field: "depth",
            shape: vec![height as usize, width as usize],
            expected,
            found,
        },
    })
}

/// A feature map in `[channels, height, width]` layout (one UNet layer's features of the anchor
/// frame), all values finite.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureMap {
    channels: u32,
    height: u32,
    width: u32,
    data: Vec<f32>,
}

impl FeatureMap {
    /// A feature map from its values in `[channels, height, width]` order.
    pub fn new(channels: u32, height: u32, width: u32, data: Vec<f32>) -> Result<Self> {
        let shape = [
            non_zero("feature channels", channels)?,
            non_zero("feature height", height)?,
            non_zero("feature width", width)?,
        ];
        check_len("features", &shape, data.len())?;
        if let Some((index, &value)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(RenderError::NotFinite {
                field: "features",
                index,
                value,
            });
        }
        Ok(Self {
            channels,
            height,
            width,
            data,
        })
    }

    /// Number of channels C.
    pub fn channels(&self) -> u32 {
        self.channels
    }

    /// Rows.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Columns.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// The values in `[channels, height, width]` order.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Number of grid cells, `height · width`.
    pub fn area(&self) -> usize {
        self.height as usize * self.width as usize
    }
}

/// `views` equal blocks of values over one `height × width` pixel grid, view-major: the
/// storage and accessors shared by the per-view outputs of a rasterisation ([`ViewMaps`]: one
/// value per pixel, [`ViewFeatures`]: `channels` planes per view,
/// [`Visibility`](super::Visibility): one fragment per pixel), which dereference to it.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewStack<T> {
    views: usize,
    height: u32,
    width: u32,
    data: Vec<T>,
}

impl<T> ViewStack<T> {
    /// Blocks whose shape the caller has checked: `views`, `height`, `width` non-zero and
    /// `data` a multiple of `views · height · width` long.
    pub(super) fn from_valid(views: usize, height: u32, width: u32, data: Vec<T>) -> Self {
        debug_assert!(views > 0 && height > 0 && width > 0);
        debug_assert!(
            data.len()
                .is_multiple_of(views * height as usize * width as usize)
        );
        Self {
            views,
            height,
            width,
            data,
        }
    }

    /// Number of views K.
    pub fn views(&self) -> usize {
        self.views
    }

    /// Rows.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Columns.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Pixels per view, `height · width`.
    pub fn area(&self) -> usize {
        self.height as usize * self.width as usize
    }

    /// All values, view after view.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// The block of view `k`, `None` past the last view.
    pub fn view(&self, k: usize) -> Option<&[T]> {
        let n = self.data.len() / self.views;
        self.data.get(k * n..(k + 1) * n)
    }
}

/// One scalar map per target view, `[views, height, width]` row-major: visibility masks,
/// disocclusion masks, rendered depth. Shape and values are read through the [`ViewStack`]
/// it dereferences to; [`ViewStack::view`] is the `[height, width]` map of one view.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewMaps(ViewStack<f32>);

impl ViewMaps {
    /// Maps from their values in `[views, height, width]` order.
    pub fn new(views: usize, height: u32, width: u32, data: Vec<f32>) -> Result<Self> {
        if views == 0 {
            return Err(RenderError::Empty { field: "views" });
        }
        let shape = [
            views,
            non_zero("map height", height)?,
            non_zero("map width", width)?,
        ];
        check_len("view maps", &shape, data.len())?;
        Ok(Self::from_valid(views, height, width, data))
    }

    /// Maps whose shape the caller guarantees (`views · height · width` values, all non-zero).
    pub(crate) fn from_valid(views: usize, height: u32, width: u32, data: Vec<f32>) -> Self {
        debug_assert_eq!(data.len(), views * height as usize * width as usize);
        Self(ViewStack::from_valid(views, height, width, data))
    }

    /// Consumes the maps, returning the values in `[views, height, width]` order.
    pub fn into_data(self) -> Vec<f32> {
        self.0.data
    }

    /// `1 − x` everywhere: the disocclusion mask of a visibility mask and vice versa.
    pub fn complement(&self) -> Self {
        Self(ViewStack {
            data: self.data().iter().map(|v| 1.0 - v).collect(),
            ..self.0.clone()
        })
    }

    /// Area-average resampling to `width × height` (each output cell is the mean of the input
    /// cells it overlaps, weighted by overlap area): masks at latent size for latent completion.
    /// Works for any ratio, not only integer factors.
    pub fn area_resize(&self, width: u32, height: u32) -> Result<Self> {
        let out_w = non_zero("resize width", width)?;
        let out_h = non_zero("resize height", height)?;
        let in_w = self.width() as usize;
        let in_h = self.height() as usize;
        let wx = area_weights(in_w, out_w);
        let wy = area_weights(in_h, out_h);
        let mut out = vec![0.0f32; self.views() * out_h * out_w];
        let mut rows = vec![0.0f32; out_h * in_w];
        for (src, dst) in self
            .data()
            .chunks(in_h * in_w)
            .zip(out.chunks_mut(out_h * out_w))
        {
            rows.iter_mut().for_each(|v| *v = 0.0);
            for (oy, taps) in wy.iter().enumerate() {
                for &(iy, w) in taps {
                    let row = &src[iy * in_w..(iy + 1) * in_w];
                    for (acc, &v) in rows[oy * in_w..(oy + 1) * in_w].iter_mut().zip(row) {
                        *acc += w * v;
                    }
                }
            }
            for oy in 0..out_h {
                for (ox, taps) in wx.iter().enumerate() {
                    dst[oy * out_w + ox] =
                        taps.iter().map(|&(ix, w)| w * rows[oy * in_w + ix]).sum();
                }
            }
        }
        Ok(Self::from_valid(self.views(), height, width, out))
    }
}

impl Deref for ViewMaps {
    type Target = ViewStack<f32>;

    fn deref(&self) -> &ViewStack<f32> {
        &self.0
    }
}

/// For each of `n_out` output cells along one axis, the input cells it overlaps and the
/// normalised overlap weights (input cell i spans [i, i+1) · n_out / n_in in output units).
fn area_weights(n_in: usize, n_out: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let lo = o as f64 * scale;
            let hi = (o + 1) as f64 * scale;
            let first = lo.floor() as usize;
            let last = (hi.ceil() as usize).min(n_in);
            (first..last)
                .filter_map(|i| {
                    let overlap = (hi.min((i + 1) as f64) - lo.max(i as f64)).max(0.0);
                    (overlap > 0.0).then_some((i, (overlap / scale) as f32))
                })
                .collect()
        })
        .collect()
}

/// Features rendered into the target views, `[views, channels, height, width]` row-major; zero
/// where the anchor mesh is not visible. Shape and values are read through the [`ViewStack`]
/// it dereferences to; [`ViewStack::view`] is the `[channels, height, width]` block of one view.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewFeatures {
    channels: u32,
    stack: ViewStack<f32>,
}

impl ViewFeatures {
    /// Features from their values in `[views, channels, height, width]` order.
    pub fn new(
        views: usize,
        channels: u32,
        height: u32,
        width: u32,
        data: Vec<f32>,
    ) -> Result<Self> {
        if views == 0 {
            return Err(RenderError::Empty { field: "views" });
        }
        let shape = [
            views,
            non_zero("feature channels", channels)?,
            non_zero("feature height", height)?,
            non_zero("feature width", width)?,
        ];
        check_len("rendered features", &shape, data.len())?;
        Ok(Self {
            channels,
            stack: ViewStack::from_valid(views, height, width, data),
        })
    }

    /// Number of channels C.
    pub fn channels(&self) -> u32 {
        self.channels
    }

    /// Consumes the features, returning the values in `[views, channels, height, width]` order.
    pub fn into_data(self) -> Vec<f32> {
        self.stack.data
    }
}

impl Deref for ViewFeatures {
    type Target = ViewStack<f32>;

    fn deref(&self) -> &ViewStack<f32> {
        &self.stack
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_resize_averages_blocks_and_fractional_overlaps() {
        // 4×2 → 2×1: each output is the mean of a 2×2 block.
        let maps = ViewMaps::new(1, 2, 4, vec![1., 0., 1., 1., 0., 0., 1., 0.]).unwrap();
        let half = maps.area_resize(2, 1).unwrap();
        assert_eq!(half.data(), &[0.25, 0.75]);
        // 3 → 2 columns: output 0 covers input 0 fully and half of input 1.
        let maps = ViewMaps::new(1, 1, 3, vec![3., 0., 6.]).unwrap();
        let two = maps.area_resize(2, 1).unwrap();
        assert!((two.data()[0] - 2.0).abs() < 1e-6);
        assert!((two.data()[1] - 4.0).abs() < 1e-6);
        // Upsampling replicates.
        let up = ViewMaps::new(1, 1, 1, vec![0.5])
            .unwrap()
            .area_resize(3, 2)
            .unwrap();
        assert!(up.data().iter().all(|v| (v - 0.5).abs() < 1e-6));
    }

    #[test]
    fn depth_resize_keeps_the_nearest_surface() {
        // 4×2 → 2×1: each output is the minimum of a 2×2 block.
        let depth = DepthMap::new(4, 2, vec![5., 2., 7., 7., 3., 4., 7., 6.]).unwrap();
        assert_eq!(depth.resize_min(2, 1).unwrap().data(), &[2., 6.]);
        // 3 → 2 columns: output 0 overlaps inputs 0 and 1, output 1 inputs 1 and 2.
        let depth = DepthMap::new(3, 1, vec![4., 9., 1.]).unwrap();
        assert_eq!(depth.resize_min(2, 1).unwrap().data(), &[4., 1.]);
        // 2 → 4 columns (upsampling): nearest neighbour.
        let depth = DepthMap::new(2, 1, vec![4., 9.]).unwrap();
        assert_eq!(depth.resize_min(4, 1).unwrap().data(), &[4., 4., 9., 9.]);
        // 2 → 3 columns: the middle output straddles both inputs and takes the nearer.
        assert_eq!(depth.resize_min(3, 1).unwrap().data(), &[4., 4., 9.]);
        assert!(matches!(
            depth.resize_min(0, 1),
            Err(RenderError::Empty { .. })
        ));
    }

    #[test]
    fn depth_shape_errors_name_the_depth_maps_axis_or_shape() {
        assert_eq!(
            DepthMap::new(0, 0, vec![]),
            Err(RenderError::Empty {
                field: "depth height"
            })
        );
        assert_eq!(
            DepthMap::new(0, 2, vec![]),
            Err(RenderError::Empty {
                field: "depth width"
            })
        );
        assert_eq!(
            DepthMap::new(3, 2, vec![1.0; 5]),
            Err(RenderError::SizeMismatch {
                field: "depth",
                shape: vec![2, 3],
                expected: 6,
                found: 5
            })
        );
    }

    #[test]
    fn views_are_sliced_by_their_block_size() {
        let maps = ViewMaps::new(2, 1, 2, vec![1., 2., 3., 4.]).unwrap();
        assert_eq!((maps.views(), maps.area()), (2, 2));
        assert_eq!(maps.view(1), Some(&[3., 4.][..]));
        assert_eq!(maps.view(2), None);
        let features = ViewFeatures::new(2, 3, 1, 1, (0..6).map(|v| v as f32).collect()).unwrap();
        assert_eq!(features.channels(), 3);
        assert_eq!(features.view(1), Some(&[3., 4., 5.][..]));
        assert_eq!(features.view(2), None);
        assert_eq!(features.into_data().len(), 6);
        assert_eq!(maps.complement().into_data(), vec![0., -1., -2., -3.]);
    }

    #[test]
    fn bad_shapes_are_typed_errors() {
        assert!(matches!(
            DepthMap::new(2, 2, vec![1.0; 3]),
            Err(RenderError::SizeMismatch { field: "depth", .. })
        ));
        assert!(matches!(
            DepthMap::new(2, 1, vec![1.0, f32::NAN]),
            Err(RenderError::NotFinite { index: 1, .. })
        ));
        assert!(matches!(
            DepthMap::new(2, 1, vec![1.0, -1.0]),
            Err(RenderError::NotPositive { index: 1, .. })
        ));
        assert!(matches!(
            FeatureMap::new(0, 1, 1, vec![]),
            Err(RenderError::Empty { .. })
        ));
        assert!(matches!(
            FeatureMap::new(1, 1, 2, vec![0.0, f32::INFINITY]),
            Err(RenderError::NotFinite {
                field: "features",
                index: 1,
                ..
            })
        ));
    }
}
