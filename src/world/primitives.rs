//! Geometric primitives and their exact ray intersections.
//!
//! Every shape is defined in its own local frame and placed by a rigid [`Frame`] (no scale, so
//! ray parameters are world distances in both frames). Intersections are analytic: quadratic
//! roots for spheres, capsules and frustums (cylinders and cones are frustums), slabs for boxes.

use glam::{Quat, Vec3};
use serde::{Deserialize, Serialize};

/// A rigid placement: local point `p` lies at `rotation · p + translation`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// Local-to-parent rotation.
    pub rotation: Quat,
    /// Position of the local origin in the parent frame.
    pub translation: Vec3,
}

impl Frame {
    /// The identity placement.
    pub const IDENTITY: Self = Self {
        rotation: Quat::IDENTITY,
        translation: Vec3::ZERO,
    };

    /// A translation only.
    pub fn at(translation: Vec3) -> Self {
        Self {
            rotation: Quat::IDENTITY,
            translation,
        }
    }

    /// A rotation followed by a translation.
    pub fn new(rotation: Quat, translation: Vec3) -> Self {
        Self {
            rotation,
            translation,
        }
    }

    /// This frame placed inside `parent` (local → parent → parent's parent).
    pub fn within(&self, parent: &Frame) -> Frame {
        Frame {
            rotation: parent.rotation * self.rotation,
            translation: parent.to_parent_point(self.translation),
        }
    }

    /// Maps a local point to the parent frame.
    pub fn to_parent_point(&self, p: Vec3) -> Vec3 {
        self.rotation * p + self.translation
    }

    /// Maps a parent-frame point to the local frame.
    pub fn to_local_point(&self, p: Vec3) -> Vec3 {
        self.rotation.inverse() * (p - self.translation)
    }

    /// Maps a local direction to the parent frame.
    pub fn to_parent_dir(&self, d: Vec3) -> Vec3 {
        self.rotation * d
    }

    /// Maps a parent-frame direction to the local frame.
    pub fn to_local_dir(&self, d: Vec3) -> Vec3 {
        self.rotation.inverse() * d
    }
}

/// A solid primitive in its local frame.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Shape {
    /// A sphere centred on the origin.
    Sphere {
        /// Radius.
        radius: f32,
    },
    /// An axis-aligned box centred on the origin.
    Cuboid {
        /// Half the side lengths along X, Y and Z.
        half_extents: Vec3,
    },
    /// A capped truncated cone around +Y from `y = 0` (radius `bottom`) to `y = height`
    /// (radius `top`): a cylinder when both radii agree, a cone when `top` is 0.
    Frustum {
        /// Radius of the base disc at `y = 0`.
        bottom: f32,
        /// Radius of the top disc at `y = height`.
        top: f32,
        /// Height.
        height: f32,
    },
    /// A cylinder with hemispherical ends around Y, its axis segment from `y = -half_length`
    /// to `y = half_length`.
    Capsule {
        /// Radius of the body and the end caps.
        radius: f32,
        /// Half the length of the axis segment.
        half_length: f32,
    },
}

/// The nearest intersection of a ray with a shape, in the shape's local frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LocalHit {
    /// Distance along the (unit) ray direction.
    pub t: f32,
    /// Outward unit normal at the hit point, local frame.
    pub normal: Vec3,
}

/// Keeps the nearer of two optional hits.
fn nearer(a: Option<LocalHit>, b: Option<LocalHit>) -> Option<LocalHit> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.t < x.t { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The real roots of `a t² + b t + c = 0` in ascending order (one root when `a` vanishes).
fn quadratic_roots(a: f32, b: f32, c: f32) -> Option<(f32, f32)> {
    if a.abs() <= 1e-9 {
        if b.abs() <= 1e-12 {
            return None;
        }
        let t = -c / b;
        return Some((t, t));
    }
    let disc = b * b - 4.0 * a * c;
    if disc < 0.0 {
        return None;
    }
    // The numerically stable pair: q = -(b + sign(b)·√disc)/2, roots q/a and c/q.
    let q = -0.5 * (b + b.signum() * disc.sqrt());
    let (r0, r1) = if q == 0.0 { (0.0, 0.0) } else { (q / a, c / q) };
    Some(if r0 <= r1 { (r0, r1) } else { (r1, r0) })
}

/// The part `t_min < t < t_max` of the local ray `origin + t·dir`.
#[derive(Clone, Copy, Debug)]
struct Segment {
    origin: Vec3,
    dir: Vec3,
    t_min: f32,
    t_max: f32,
}

impl Segment {
    /// Whether `t` lies strictly inside the segment.
    fn contains(&self, t: f32) -> bool {
        t > self.t_min && t < self.t_max
    }

    /// The point at parameter `t`.
    fn at(&self, t: f32) -> Vec3 {
        self.origin + self.dir * t
    }
}

/// A segment against a sphere of `radius` centred on `centre`.
fn sphere_hit(seg: &Segment, centre: Vec3, radius: f32) -> Option<LocalHit> {
    let oc = seg.origin - centre;
    let (t0, t1) = quadratic_roots(
        seg.dir.length_squared(),
        2.0 * oc.dot(seg.dir),
        oc.length_squared() - radius * radius,
    )?;
    [t0, t1]
        .into_iter()
        .find(|t| seg.contains(*t))
        .map(|t| LocalHit {
            t,
            normal: (oc + seg.dir * t) / radius,
        })
}

/// A segment against the lateral surface `x² + z² = (r0 + k·y)²` for `y ∈ [y_lo, y_hi]` (a
/// cylinder when `k = 0`).
fn side_hit(seg: &Segment, r0: f32, k: f32, y_lo: f32, y_hi: f32) -> Option<LocalHit> {
    let (o, d) = (seg.origin, seg.dir);
    let rho = |y: f32| r0 + k * y;
    let a = d.x * d.x + d.z * d.z - k * k * d.y * d.y;
    let b = 2.0 * (o.x * d.x + o.z * d.z - k * d.y * rho(o.y));
    let c = o.x * o.x + o.z * o.z - rho(o.y) * rho(o.y);
    let (t0, t1) = quadratic_roots(a, b, c)?;
    [t0, t1].into_iter().find_map(|t| {
        let p = seg.at(t);
        (seg.contains(t) && p.y >= y_lo && p.y <= y_hi).then(|| LocalHit {
            t,
            normal: Vec3::new(p.x, -k * rho(p.y), p.z).normalize_or(Vec3::Y),
        })
    })
}

/// A segment against the disc of `radius` in the plane `y = height`, facing `normal_y` (±1).
fn disc_hit(seg: &Segment, height: f32, radius: f32, normal_y: f32) -> Option<LocalHit> {
    if radius <= 0.0 || seg.dir.y.abs() <= 1e-12 {
        return None;
    }
    let t = (height - seg.origin.y) / seg.dir.y;
    let p = seg.at(t);
    (seg.contains(t) && p.x * p.x + p.z * p.z <= radius * radius).then_some(LocalHit {
        t,
        normal: Vec3::new(0.0, normal_y, 0.0),
    })
}

/// A segment against an origin-centred box (slab method), from outside or inside.
fn cuboid_hit(seg: &Segment, half: Vec3) -> Option<LocalHit> {
    let mut t_enter = f32::NEG_INFINITY;
    let mut t_exit = f32::INFINITY;
    let mut enter_axis = 0;
    let mut exit_axis = 0;
    for axis in 0..3 {
        let (o, d, h) = (seg.origin[axis], seg.dir[axis], half[axis]);
        if d.abs() <= 1e-12 {
            if o.abs() > h {
                return None;
            }
            continue;
        }
        let (mut t0, mut t1) = ((-h - o) / d, (h - o) / d);
        if t0 > t1 {
            std::mem::swap(&mut t0, &mut t1);
        }
        if t0 > t_enter {
            t_enter = t0;
            enter_axis = axis;
        }
        if t1 < t_exit {
            t_exit = t1;
            exit_axis = axis;
        }
    }
    if t_enter > t_exit {
        return None;
    }
    let axis_normal = |axis: usize, sign: f32| {
        let mut n = Vec3::ZERO;
        n[axis] = sign;
        n
    };
    if seg.contains(t_enter) {
        Some(LocalHit {
            t: t_enter,
            normal: axis_normal(enter_axis, -seg.dir[enter_axis].signum()),
        })
    } else if seg.contains(t_exit) && t_enter <= seg.t_min {
        Some(LocalHit {
            t: t_exit,
            normal: axis_normal(exit_axis, seg.dir[exit_axis].signum()),
        })
    } else {
        None
    }
}

impl Shape {
    /// A capped cylinder of `radius` from `y = 0` to `y = height`.
    pub fn cylinder(radius: f32, height: f32) -> Self {
        Shape::Frustum {
            bottom: radius,
            top: radius,
            height,
        }
    }

    /// A cone with its base disc of `radius` at `y = 0` and its apex at `y = height`.
    pub fn cone(radius: f32, height: f32) -> Self {
        Shape::Frustum {
            bottom: radius,
            top: 0.0,
            height,
        }
    }

    /// A box with full side lengths `size`.
    pub fn cuboid(size: Vec3) -> Self {
        Shape::Cuboid {
            half_extents: 0.5 * size,
        }
    }

    /// The same shape with every length multiplied by `s`.
    pub fn scaled(&self, s: f32) -> Self {
        match *self {
            Shape::Sphere { radius } => Shape::Sphere { radius: radius * s },
            Shape::Cuboid { half_extents } => Shape::Cuboid {
                half_extents: half_extents * s,
            },
            Shape::Frustum {
                bottom,
                top,
                height,
            } => Shape::Frustum {
                bottom: bottom * s,
                top: top * s,
                height: height * s,
            },
            Shape::Capsule {
                radius,
                half_length,
            } => Shape::Capsule {
                radius: radius * s,
                half_length: half_length * s,
            },
        }
    }

    /// A sphere (local centre, radius) enclosing the shape.
    pub fn bounding_sphere(&self) -> (Vec3, f32) {
        match *self {
            Shape::Sphere { radius } => (Vec3::ZERO, radius),
            Shape::Cuboid { half_extents } => (Vec3::ZERO, half_extents.length()),
            Shape::Frustum {
                bottom,
                top,
                height,
            } => (
                Vec3::new(0.0, 0.5 * height, 0.0),
                (bottom.max(top).powi(2) + 0.25 * height * height).sqrt(),
            ),
            Shape::Capsule {
                radius,
                half_length,
            } => (Vec3::ZERO, radius + half_length),
        }
    }

    /// The nearest intersection with `t_min < t < t_max` of the local ray `origin + t·dir`
    /// (`dir` of unit length).
    pub fn intersect(&self, origin: Vec3, dir: Vec3, t_min: f32, t_max: f32) -> Option<LocalHit> {
        let seg = Segment {
            origin,
            dir,
            t_min,
            t_max,
        };
        match *self {
            Shape::Sphere { radius } => sphere_hit(&seg, Vec3::ZERO, radius),
            Shape::Cuboid { half_extents } => cuboid_hit(&seg, half_extents),
            Shape::Frustum {
                bottom,
                top,
                height,
            } => {
                let side = side_hit(&seg, bottom, (top - bottom) / height, 0.0, height);
                let base = disc_hit(&seg, 0.0, bottom, -1.0);
                let lid = disc_hit(&seg, height, top, 1.0);
                nearer(nearer(side, base), lid)
            }
            Shape::Capsule {
                radius,
                half_length,
            } => {
                let body = side_hit(&seg, radius, 0.0, -half_length, half_length);
                let end = |y: f32| sphere_hit(&seg, Vec3::new(0.0, y, 0.0), radius);
                nearer(nearer(body, end(half_length)), end(-half_length))
            }
        }
    }

    /// Whether a local point lies inside the closed solid (used to check intersections).
    pub fn contains(&self, p: Vec3) -> bool {
        match *self {
            Shape::Sphere { radius } => p.length() <= radius,
            Shape::Cuboid { half_extents } => p.abs().cmple(half_extents).all(),
            Shape::Frustum {
                bottom,
                top,
                height,
            } => {
                p.y >= 0.0
                    && p.y <= height
                    && (p.x * p.x + p.z * p.z).sqrt() <= bottom + (top - bottom) * p.y / height
            }
            Shape::Capsule {
                radius,
                half_length,
            } => {
                let axis = Vec3::new(0.0, p.y.clamp(-half_length, half_length), 0.0);
                (p - axis).length() <= radius
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes() -> Vec<Shape> {
        vec![
            Shape::Sphere { radius: 0.7 },
            Shape::cuboid(Vec3::new(1.0, 0.6, 0.4)),
            Shape::cylinder(0.4, 1.2),
            Shape::cone(0.5, 1.0),
            Shape::Frustum {
                bottom: 0.2,
                top: 0.5,
                height: 0.8,
            },
            Shape::Capsule {
                radius: 0.3,
                half_length: 0.4,
            },
        ]
    }

    #[test]
    fn sphere_hit_distance_is_analytic() {
        let hit = Shape::Sphere { radius: 1.5 }
            .intersect(Vec3::new(0.0, 0.0, -5.0), Vec3::Z, 0.0, f32::INFINITY)
            .unwrap();
        assert!((hit.t - 3.5).abs() < 1e-6);
        assert!((hit.normal - Vec3::NEG_Z).length() < 1e-6);
    }

    #[test]
    fn box_cylinder_cone_hits_are_analytic() {
        let down = Vec3::NEG_Y;
        let above = Vec3::new(0.1, 5.0, 0.05);
        let b = Shape::cuboid(Vec3::new(1.0, 0.6, 0.4))
            .intersect(above, down, 0.0, 10.0)
            .unwrap();
        assert!((b.t - 4.7).abs() < 1e-5 && b.normal == Vec3::Y);
        let c = Shape::cylinder(0.4, 1.2)
            .intersect(above, down, 0.0, 10.0)
            .unwrap();
        assert!((c.t - 3.8).abs() < 1e-5 && c.normal == Vec3::Y);
        // A horizontal ray at y = 0.5 meets the cone (radius 0.5 at y = 0, apex at y = 1) where
        // its radius is 0.25.
        let k = Shape::cone(0.5, 1.0)
            .intersect(Vec3::new(-3.0, 0.5, 0.0), Vec3::X, 0.0, 10.0)
            .unwrap();
        assert!((k.t - 2.75).abs() < 1e-5, "{}", k.t);
        let expected = Vec3::new(-1.0, 0.5, 0.0).normalize();
        assert!((k.normal - expected).length() < 1e-5, "{:?}", k.normal);
        // The capsule's end cap: straight down the axis hits the top of the upper hemisphere.
        let cap = Shape::Capsule {
            radius: 0.3,
            half_length: 0.4,
        }
        .intersect(Vec3::new(0.0, 3.0, 0.0), down, 0.0, 10.0)
        .unwrap();
        assert!((cap.t - 2.3).abs() < 1e-5);
    }

    #[test]
    fn hits_lie_on_the_surface_and_agree_with_containment() {
        // Rays from many directions towards each shape: the hit point lies on the boundary
        // (inside just behind it, outside just in front), the normal points outwards, and rays
        // that miss never pass through the solid.
        for shape in shapes() {
            for k in 0..400 {
                let a = k as f32 * 0.731;
                let b = k as f32 * 0.377;
                let origin = 3.0 * Vec3::new(a.cos() * b.sin(), b.cos(), a.sin() * b.sin());
                let target = Vec3::new(
                    (a * 3.1).sin() * 0.4,
                    0.5 + (a * 1.7).cos() * 0.4,
                    (b * 2.3).sin() * 0.4,
                );
                let dir = (target - origin).normalize();
                match shape.intersect(origin, dir, 0.0, f32::INFINITY) {
                    Some(hit) => {
                        let p = origin + dir * hit.t;
                        assert!(
                            shape.contains(p + dir * 1e-3),
                            "{shape:?} ray {k}: behind hit not inside"
                        );
                        assert!(
                            !shape.contains(p - dir * 1e-3),
                            "{shape:?} ray {k}: before hit inside"
                        );
                        assert!(
                            hit.normal.dot(dir) < 0.0,
                            "{shape:?} ray {k}: normal faces away"
                        );
                        assert!((hit.normal.length() - 1.0).abs() < 1e-4);
                        let (c, r) = shape.bounding_sphere();
                        assert!((p - c).length() <= r + 1e-4);
                    }
                    None => {
                        for s in 0..200 {
                            let p = origin + dir * (s as f32 * 0.03);
                            assert!(
                                !shape.contains(p),
                                "{shape:?} ray {k}: missed but passes inside"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn frames_round_trip_and_compose() {
        let parent = Frame::new(Quat::from_rotation_y(0.7), Vec3::new(1.0, 2.0, 3.0));
        let child = Frame::new(Quat::from_rotation_z(-0.4), Vec3::new(0.2, 0.0, -0.5));
        let p = Vec3::new(0.3, -0.8, 1.1);
        assert!((parent.to_local_point(parent.to_parent_point(p)) - p).length() < 1e-5);
        let composed = child.within(&parent).to_parent_point(p);
        assert!((composed - parent.to_parent_point(child.to_parent_point(p))).length() < 1e-5);
    }
}
