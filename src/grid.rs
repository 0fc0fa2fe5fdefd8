//! A row-major 2-D grid of values with a checked shape: the storage shared by the crate's
//! per-pixel maps ([`crate::render::DepthMap`], [`crate::model::depth::InverseDepth`],
//! [`crate::world::DepthImage`]). Each of those wraps a [`Grid`] and adds its own value rules
//! and its own typed error; the grid only guarantees that the values fill a non-empty
//! `height × width` rectangle, so the wrappers index it without further checks.

/// Why values do not make a grid of the stated size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// The stated height is zero.
    #[error("a grid needs at least one row")]
    NoRows,
    /// The stated width is zero.
    #[error("a grid needs at least one column")]
    NoColumns,
    /// The number of values is not `width · height`.
    #[error("{found} values for a {width}×{height} grid, which needs {expected}")]
    Length {
        /// Stated columns.
        width: u32,
        /// Stated rows.
        height: u32,
        /// Values the shape needs, `width · height`.
        expected: usize,
        /// Values given.
        found: usize,
    },
}

/// `height` rows of `width` values, stored row-major (the value at column `i`, row `j` is
/// `data[j · width + i]`); never empty.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid<T> {
    width: u32,
    height: u32,
    data: Vec<T>,
}

impl<T> Grid<T> {
    /// A grid from its values in row-major order. The height is checked before the width,
    /// then the number of values.
    pub fn new(width: u32, height: u32, data: Vec<T>) -> Result<Self, ShapeError> {
        if height == 0 {
            return Err(ShapeError::NoRows);
        }
        if width == 0 {
            return Err(ShapeError::NoColumns);
        }
        let expected = width as usize * height as usize;
        if data.len() != expected {
            return Err(ShapeError::Length {
                width,
                height,
                expected,
                found: data.len(),
            });
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Columns.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Rows.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The values, row-major.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// Consumes the grid, returning the values in row-major order.
    pub fn into_data(self) -> Vec<T> {
        self.data
    }

    /// The value at column `i`, row `j`; `None` outside the grid.
    pub fn get(&self, i: u32, j: u32) -> Option<&T> {
        if i >= self.width || j >= self.height {
            return None;
        }
        self.data.get(j as usize * self.width as usize + i as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_addressed_row_major() {
        let grid = Grid::new(3, 2, vec![0, 1, 2, 10, 11, 12]).unwrap();
        assert_eq!((grid.width(), grid.height()), (3, 2));
        assert_eq!(grid.get(0, 0), Some(&0));
        assert_eq!(grid.get(2, 0), Some(&2));
        assert_eq!(grid.get(0, 1), Some(&10));
        assert_eq!(grid.get(2, 1), Some(&12));
        assert_eq!(grid.data(), &[0, 1, 2, 10, 11, 12]);
        assert_eq!(grid.into_data(), vec![0, 1, 2, 10, 11, 12]);
    }

    #[test]
    fn reads_outside_the_grid_are_none() {
        let grid = Grid::new(2, 2, vec![1.0f32; 4]).unwrap();
        // Column 2 of row 0 would alias row 1 in the flat buffer: still outside.
        assert_eq!(grid.get(2, 0), None);
        assert_eq!(grid.get(0, 2), None);
        assert_eq!(grid.get(u32::MAX, u32::MAX), None);
    }

    #[test]
    fn bad_shapes_are_typed_errors_height_first() {
        assert_eq!(Grid::<f32>::new(0, 0, vec![]), Err(ShapeError::NoRows));
        assert_eq!(Grid::<f32>::new(0, 2, vec![]), Err(ShapeError::NoColumns));
        let err = Grid::new(3, 2, vec![0u8; 5]).unwrap_err();
        assert_eq!(
            err,
            ShapeError::Length {
                width: 3,
                height: 2,
                expected: 6,
                found: 5
            }
        );
        assert_eq!(err.to_string(), "5 values for a 3×2 grid, which needs 6");
        assert!(Grid::new(3, 2, vec![0u8; 7]).is_err());
    }
}
