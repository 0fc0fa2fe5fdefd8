//! Errors of the camera layer.

/// Why a camera could not be built, converted or read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CameraError {
    /// A value that must be finite is NaN or infinite.
    #[error("`{field}` is not finite: {value}")]
    NotFinite {
        /// The field at fault.
        field: &'static str,
        /// Its value, as text.
        value: String,
    },
    /// A value that must be strictly positive is not.
    #[error("`{field}` must be > 0, got {value}")]
    NotPositive {
        /// The field at fault.
        field: &'static str,
        /// Its value.
        value: f64,
    },
    /// The transform scales space: the camera's extrinsics must be a rotation and a
    /// translation.
    #[error("camera transform has scale {scale:?}; cameras must not be scaled")]
    ScaledTransform {
        /// The scale found.
        scale: [f32; 3],
    },
    /// The rotation part of an extrinsic matrix is not orthonormal with determinant +1.
    #[error("`{field}` is not a rotation (orthonormality error {error})")]
    NotARotation {
        /// The field at fault.
        field: &'static str,
        /// Largest deviation of RᵀR from the identity, or of det R from 1.
        error: f32,
    },
    /// A look-at with coincident eye and target, or an up vector parallel to the view.
    #[error("degenerate look-at: {reason}")]
    DegenerateLookAt {
        /// What is degenerate.
        reason: &'static str,
    },
    /// A projection matrix that is neither a pinhole perspective nor an orthographic one.
    #[error("unsupported projection matrix: {reason}")]
    UnsupportedProjection {
        /// What makes it unsupported.
        reason: String,
    },
    /// A set of cameras whose optical axes do not determine a common centre (for example all
    /// parallel, or a single camera).
    #[error("cannot normalise camera set: {reason}")]
    DegenerateCameraSet {
        /// What is degenerate.
        reason: String,
    },
    /// Buffer sizes that disagree with the stated image size.
    #[error("`{field}` has {found} elements, expected {expected}")]
    SizeMismatch {
        /// The buffer at fault.
        field: &'static str,
        /// Elements expected.
        expected: usize,
        /// Elements found.
        found: usize,
    },
    /// A COLMAP text file that cannot be parsed.
    #[error("{file}:{line}: {reason}")]
    Colmap {
        /// The file being read.
        file: String,
        /// 1-based line number of the offending line (0 when the file itself is at fault).
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Result type of the camera layer.
pub type Result<T> = std::result::Result<T, CameraError>;

/// Checks that a value is finite, naming the field otherwise.
pub(crate) fn finite(field: &'static str, value: f32) -> Result<f32> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(CameraError::NotFinite {
            field,
            value: value.to_string(),
        })
    }
}

/// Checks that a value is finite and strictly positive, naming the field otherwise.
pub(crate) fn positive(field: &'static str, value: f32) -> Result<f32> {
    finite(field, value)?;
    if value > 0.0 {
        Ok(value)
    } else {
        Err(CameraError::NotPositive {
            field,
            value: value as f64,
        })
    }
}

/// Checks every component of a vector for finiteness.
pub(crate) fn finite_vec3(field: &'static str, v: glam::Vec3) -> Result<glam::Vec3> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(CameraError::NotFinite {
            field,
            value: format!("{v:?}"),
        })
    }
}
