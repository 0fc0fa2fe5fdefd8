//! One camera model, [`PinholeCamera`], and every conversion the crate needs: from Bevy
//! cameras, to and from OpenCV / OpenGL / PyTorch3D conventions, Plücker ray maps, Zero-1-to-3
//! relative viewpoints, camera-set normalisation, rig builders and COLMAP import.
//!
//! Everything here is plain math on `glam` types; only [`bevy`](self::bevy) touches Bevy.

pub mod bevy;
pub mod colmap;
pub mod conventions;
pub mod error;
pub mod normalize;
pub mod pinhole;
pub mod rays;
pub mod rig;
pub mod viewpoint;

pub use error::{CameraError, Result};
pub use normalize::SceneNormalization;
pub use pinhole::{
    Extrinsics, ImageSize, Intrinsics, PinholeCamera, Projected, ProjectionKind, Ray,
};
pub use rays::{PluckerMap, plucker_map};
pub use rig::{LinearPath, Orbit, look_at};
pub use viewpoint::{RelativeViewpoint, Spherical, UpAxis};
