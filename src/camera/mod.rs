//! One camera model, [`PinholeCamera`], and every conversion the crate needs: from Bevy
//! cameras, to and from OpenCV / OpenGL / PyTorch3D conventions, Plücker ray maps, Zero-1-to-3
//! relative viewpoints, camera-set normalisation, rig builders and COLMAP import.
//!
//! Everything here is plain math on `glam` types; only [`bevy`](self::bevy) touches Bevy.

pub mod error;
pub mod pinhole;

pub use error::{CameraError, Result};
pub use pinhole::{Extrinsics, ImageSize, Intrinsics, PinholeCamera, Projected, ProjectionKind, Ray};
