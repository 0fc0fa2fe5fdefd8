//! A scene compiled for rendering: every object's primitives placed in the world with their
//! materials and bounding spheres, and ray queries against them and the ground plane `y = 0`.

use std::ops::Range;

use glam::{Mat3, Quat, Vec3};

use super::environment::{EnvironmentSpec, LightingSpec};
use super::error::Result;
use super::materials::{Finish, Material};
use super::objects::Paint;
use super::primitives::{Frame, Shape};
use super::spec::SceneSpec;
use crate::camera::PinholeCamera;

/// What a ray hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// The ground plane.
    Ground,
    /// The object at this index of the spec's `objects`.
    Object(usize),
}

/// The nearest surface along a ray, with what shading needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SurfaceHit {
    /// Distance along the unit ray direction.
    pub t: f32,
    /// World position.
    pub position: Vec3,
    /// Outward unit normal, world frame.
    pub normal: Vec3,
    /// Which surface.
    pub surface: Surface,
    /// Linear albedo at the hit.
    pub albedo: Vec3,
    /// Specular finish at the hit.
    pub finish: Finish,
}

/// A primitive placed in the world.
#[derive(Clone, Debug)]
struct Primitive {
    shape: Shape,
    /// World-to-local rotation.
    to_local: Mat3,
    /// Local-to-world rotation.
    to_world: Mat3,
    /// World position of the local origin.
    translation: Vec3,
    material: Material,
}

/// An object's placement and the range of its primitives.
#[derive(Clone, Debug)]
struct PlacedObject {
    /// World frame of the object's unit model (before scaling).
    frame: Frame,
    /// 1 / scale: maps world lengths back to model units for patterns.
    inv_scale: f32,
    /// Enclosing sphere, world frame.
    centre: Vec3,
    radius: f32,
    parts: Range<usize>,
}

/// A scene ready for ray queries.
#[derive(Clone, Debug)]
pub struct Scene {
    spec: SceneSpec,
    sun_direction: Vec3,
    primitives: Vec<Primitive>,
    objects: Vec<PlacedObject>,
}

/// Whether the ray `origin + t·dir` (unit `dir`) can meet the sphere within `(t_min, t_max)`.
fn ray_meets_sphere(
    origin: Vec3,
    dir: Vec3,
    centre: Vec3,
    radius: f32,
    t_min: f32,
    t_max: f32,
) -> bool {
    let oc = centre - origin;
    let tc = oc.dot(dir);
    let d2 = oc.length_squared() - tc * tc;
    if d2 > radius * radius {
        return false;
    }
    let half = (radius * radius - d2).sqrt();
    tc + half > t_min && tc - half < t_max
}

impl Scene {
    /// Validates and compiles a spec.
    pub fn new(spec: &SceneSpec) -> Result<Self> {
        spec.validate()?;
        let mut primitives = Vec::new();
        let mut objects = Vec::with_capacity(spec.objects.len());
        for object in &spec.objects {
            let frame = Frame::new(
                Quat::from_rotation_y(object.yaw),
                Vec3::new(object.position.x, 0.0, object.position.y),
            );
            let start = primitives.len();
            let (mut lo, mut hi) = (Vec3::INFINITY, Vec3::NEG_INFINITY);
            let mut spheres = Vec::new();
            for part in object.kind.parts(object.shape_seed) {
                let local = Frame::new(part.frame.rotation, part.frame.translation * object.scale);
                let world = local.within(&frame);
                let shape = part.shape.scaled(object.scale);
                let (c, r) = shape.bounding_sphere();
                let c = world.to_parent_point(c);
                lo = lo.min(c - r);
                hi = hi.max(c + r);
                spheres.push((c, r));
                let material = match part.paint {
                    Paint::Primary => Material {
                        primary: object.colour.albedo(),
                        accent: object.accent.albedo(),
                        pattern: object.pattern,
                        finish: object.finish,
                    },
                    Paint::Accent => Material::plain(object.accent.albedo(), object.finish),
                    Paint::Fixed(colour) => Material::plain(colour.albedo(), object.finish),
                };
                let to_world = Mat3::from_quat(world.rotation);
                primitives.push(Primitive {
                    shape,
                    to_local: to_world.transpose(),
                    to_world,
                    translation: world.translation,
                    material,
                });
            }
            let centre = 0.5 * (lo + hi);
            let radius = spheres
                .iter()
                .map(|(c, r)| (*c - centre).length() + r)
                .fold(0.0f32, f32::max);
            objects.push(PlacedObject {
                frame,
                inv_scale: 1.0 / object.scale,
                centre,
                radius,
                parts: start..primitives.len(),
            });
        }
        Ok(Self {
            sun_direction: spec.lighting.sun_direction.normalize(),
            spec: spec.clone(),
            primitives,
            objects,
        })
    }

    /// The spec the scene was built from.
    pub fn spec(&self) -> &SceneSpec {
        &self.spec
    }

    /// The environment.
    pub fn environment(&self) -> &EnvironmentSpec {
        &self.spec.environment
    }

    /// The lighting.
    pub fn lighting(&self) -> &LightingSpec {
        &self.spec.lighting
    }

    /// Unit direction towards the sun.
    pub fn sun_direction(&self) -> Vec3 {
        self.sun_direction
    }

    /// A sphere (world centre, radius) enclosing object `index`; `None` past the last object.
    pub fn object_bounds(&self, index: usize) -> Option<(Vec3, f32)> {
        self.objects.get(index).map(|o| (o.centre, o.radius))
    }

    /// The main object's enclosing sphere: what cameras aim at and frame.
    pub fn focus(&self) -> (Vec3, f32) {
        self.object_bounds(0).unwrap_or((Vec3::ZERO, 1.0))
    }

    /// The nearest surface hit by the ray `origin + t·dir` (`dir` of unit length) with
    /// `t > t_min`, or `None` when the ray escapes to the background.
    pub fn trace(&self, origin: Vec3, dir: Vec3, t_min: f32) -> Option<SurfaceHit> {
        let mut best_t = f32::INFINITY;
        let mut best: Option<(Surface, Vec3, usize)> = None;
        if origin.y > 0.0 && dir.y < 0.0 {
            let t = -origin.y / dir.y;
            if t > t_min {
                best_t = t;
                best = Some((Surface::Ground, Vec3::Y, 0));
            }
        }
        for (index, object) in self.objects.iter().enumerate() {
            if !ray_meets_sphere(origin, dir, object.centre, object.radius, t_min, best_t) {
                continue;
            }
            for p in object.parts.clone() {
                let prim = &self.primitives[p];
                let o = prim.to_local * (origin - prim.translation);
                let d = prim.to_local * dir;
                if let Some(hit) = prim.shape.intersect(o, d, t_min, best_t) {
                    best_t = hit.t;
                    best = Some((Surface::Object(index), prim.to_world * hit.normal, p));
                }
            }
        }
        let (surface, normal, p) = best?;
        let position = origin + dir * best_t;
        let (albedo, finish) = match surface {
            Surface::Ground => (
                self.spec.environment.ground_albedo(position.x, position.z),
                Finish::Matte,
            ),
            Surface::Object(index) => {
                let object = &self.objects[index];
                let model = object.frame.to_local_point(position) * object.inv_scale;
                let material = &self.primitives[p].material;
                (material.albedo(model), material.finish)
            }
        };
        Some(SurfaceHit {
            t: best_t,
            position,
            normal,
            surface,
            albedo,
            finish,
        })
    }

    /// Whether a camera stands outside every object's bounding sphere and sees the main
    /// object's centre with no other object in the way (what makes a usable training view).
    pub fn sees_main_object(&self, camera: &PinholeCamera) -> bool {
        let eye = camera.center();
        if self
            .objects
            .iter()
            .any(|o| eye.distance(o.centre) <= o.radius)
        {
            return false;
        }
        let (focus, radius) = self.focus();
        let to_focus = focus - eye;
        let distance = to_focus.length();
        // The main object lies beyond `distance - radius` along this ray (exactly there for a
        // ball, hence the margin).
        let clear = (distance - radius) * 0.999;
        !self.occluded(eye, to_focus / distance, 0.0, clear)
    }

    /// Whether any object blocks the segment `origin + t·dir`, `t_min < t < t_max` (the ground
    /// never occludes: everything lit stands on it).
    pub fn occluded(&self, origin: Vec3, dir: Vec3, t_min: f32, t_max: f32) -> bool {
        self.objects.iter().any(|object| {
            ray_meets_sphere(origin, dir, object.centre, object.radius, t_min, t_max)
                && object.parts.clone().any(|p| {
                    let prim = &self.primitives[p];
                    let o = prim.to_local * (origin - prim.translation);
                    prim.shape
                        .intersect(o, prim.to_local * dir, t_min, t_max)
                        .is_some()
                })
        })
    }
}
