//! The object vocabulary: each kind is a small assembly of primitives, about one unit tall,
//! standing on `y = 0`, facing +Z, with proportions varied by a shape seed.

use glam::{Quat, Vec3};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::materials::Colour;
use super::primitives::{Frame, Shape};

/// Which colour a part takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paint {
    /// The object's primary colour, with its pattern.
    Primary,
    /// The object's accent colour, plain.
    Accent,
    /// A colour of its own whatever the object's colours (eyes, tree trunks, bulbs).
    Fixed(Colour),
}

/// One primitive of an object, placed in the object's unit frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Part {
    /// The primitive, in object units.
    pub shape: Shape,
    /// Its placement in the object's frame.
    pub frame: Frame,
    /// Its colour.
    pub paint: Paint,
}

/// The kinds of objects scenes are made of; their names are the nouns captions use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ObjectKind {
    /// A sphere.
    Ball,
    /// A box.
    Block,
    /// A cylinder with rims.
    Pillar,
    /// A cone on a square plate.
    Cone,
    /// Spheres and capsules: body, head, ears, snout, arms, legs.
    Teddy,
    /// A top and four legs.
    Table,
    /// Seat, back and four legs.
    Chair,
    /// Base, pole, shade and bulb.
    Lamp,
    /// A trunk under stacked cones or a round crown.
    Tree,
    /// Three spheres with a hat and a carrot nose.
    Snowman,
    /// A stem under a wide cap.
    Mushroom,
    /// Box body and head, cylinder limbs, antenna (a demo subject, see `split`).
    ToyRobot,
    /// A lathe of stacked frustums (a demo subject, see `split`).
    Vase,
}

impl ObjectKind {
    /// Every kind.
    pub const ALL: [ObjectKind; 13] = [
        ObjectKind::Ball,
        ObjectKind::Block,
        ObjectKind::Pillar,
        ObjectKind::Cone,
        ObjectKind::Teddy,
        ObjectKind::Table,
        ObjectKind::Chair,
        ObjectKind::Lamp,
        ObjectKind::Tree,
        ObjectKind::Snowman,
        ObjectKind::Mushroom,
        ObjectKind::ToyRobot,
        ObjectKind::Vase,
    ];

    /// Small kinds that suit distractors placed around the main object.
    pub const SMALL: [ObjectKind; 6] = [
        ObjectKind::Ball,
        ObjectKind::Block,
        ObjectKind::Pillar,
        ObjectKind::Cone,
        ObjectKind::Tree,
        ObjectKind::Mushroom,
    ];

    /// The noun captions use.
    pub fn noun(self) -> &'static str {
        match self {
            ObjectKind::Ball => "ball",
            ObjectKind::Block => "block",
            ObjectKind::Pillar => "pillar",
            ObjectKind::Cone => "cone",
            ObjectKind::Teddy => "teddy bear",
            ObjectKind::Table => "table",
            ObjectKind::Chair => "chair",
            ObjectKind::Lamp => "lamp",
            ObjectKind::Tree => "tree",
            ObjectKind::Snowman => "snowman",
            ObjectKind::Mushroom => "mushroom",
            ObjectKind::ToyRobot => "toy robot",
            ObjectKind::Vase => "vase",
        }
    }

    /// The object's primitives in its unit frame; `shape_seed` varies the proportions.
    pub fn parts(self, shape_seed: u64) -> Vec<Part> {
        let mut rng = StdRng::seed_from_u64(shape_seed);
        let mut b = Builder::default();
        match self {
            ObjectKind::Ball => {
                let r = rng.random_range(0.4..0.5);
                b.add(Shape::Sphere { radius: r }, at(0.0, r, 0.0), Paint::Primary);
            }
            ObjectKind::Block => {
                let size = Vec3::new(
                    rng.random_range(0.7..1.0),
                    rng.random_range(0.6..1.0),
                    rng.random_range(0.7..1.0),
                );
                b.add(
                    Shape::cuboid(size),
                    at(0.0, 0.5 * size.y, 0.0),
                    Paint::Primary,
                );
            }
            ObjectKind::Pillar => pillar(&mut b, &mut rng),
            ObjectKind::Cone => {
                let h = rng.random_range(0.9..1.2);
                b.add(
                    Shape::cuboid(Vec3::new(0.9, 0.06, 0.9)),
                    at(0.0, 0.03, 0.0),
                    Paint::Accent,
                );
                b.add(Shape::cone(0.38, h), at(0.0, 0.06, 0.0), Paint::Primary);
            }
            ObjectKind::Teddy => teddy(&mut b, &mut rng),
            ObjectKind::Table => table(&mut b, &mut rng),
            ObjectKind::Chair => chair(&mut b, &mut rng),
            ObjectKind::Lamp => lamp(&mut b, &mut rng),
            ObjectKind::Tree => tree(&mut b, &mut rng),
            ObjectKind::Snowman => snowman(&mut b, &mut rng),
            ObjectKind::Mushroom => {
                let stem = rng.random_range(0.35..0.5);
                let cap = rng.random_range(0.35..0.48);
                b.add(
                    Shape::Frustum {
                        bottom: 0.13,
                        top: 0.1,
                        height: stem,
                    },
                    at(0.0, 0.0, 0.0),
                    Paint::Fixed(Colour::White),
                );
                b.add(
                    Shape::Frustum {
                        bottom: cap,
                        top: 0.06,
                        height: 0.3,
                    },
                    at(0.0, stem - 0.04, 0.0),
                    Paint::Primary,
                );
            }
            ObjectKind::ToyRobot => robot(&mut b, &mut rng),
            ObjectKind::Vase => vase(&mut b, &mut rng),
        }
        b.parts
    }
}

/// Collects parts.
#[derive(Default)]
struct Builder {
    parts: Vec<Part>,
}

impl Builder {
    fn add(&mut self, shape: Shape, frame: Frame, paint: Paint) {
        self.parts.push(Part {
            shape,
            frame,
            paint,
        });
    }

    /// A part mirrored to both sides of the object (x and −x).
    fn pair(&mut self, shape: Shape, x: f32, y: f32, z: f32, paint: Paint) {
        self.add(shape, at(x, y, z), paint);
        self.add(shape, at(-x, y, z), paint);
    }
}

/// A translation-only frame.
fn at(x: f32, y: f32, z: f32) -> Frame {
    Frame::at(Vec3::new(x, y, z))
}

fn pillar(b: &mut Builder, rng: &mut StdRng) {
    let r = rng.random_range(0.22..0.32);
    let h = rng.random_range(0.9..1.25);
    let rim = 0.07;
    b.add(
        Shape::cylinder(r + 0.06, rim),
        at(0.0, 0.0, 0.0),
        Paint::Accent,
    );
    b.add(
        Shape::cylinder(r, h - 2.0 * rim),
        at(0.0, rim, 0.0),
        Paint::Primary,
    );
    b.add(
        Shape::cylinder(r + 0.06, rim),
        at(0.0, h - rim, 0.0),
        Paint::Accent,
    );
}

fn teddy(b: &mut Builder, rng: &mut StdRng) {
    let body = rng.random_range(0.26..0.32);
    let head = rng.random_range(0.19..0.24);
    let body_y = 0.12 + body;
    let head_y = body_y + body + 0.7 * head;
    b.add(
        Shape::Sphere { radius: body },
        at(0.0, body_y, 0.0),
        Paint::Primary,
    );
    b.add(
        Shape::Sphere { radius: head },
        at(0.0, head_y, 0.0),
        Paint::Primary,
    );
    b.pair(
        Shape::Sphere { radius: 0.3 * head },
        0.7 * head,
        head_y + 0.75 * head,
        0.0,
        Paint::Primary,
    );
    b.add(
        Shape::Sphere { radius: 0.4 * head },
        at(0.0, head_y - 0.2 * head, 0.85 * head),
        Paint::Accent,
    );
    b.pair(
        Shape::Sphere {
            radius: 0.12 * head,
        },
        0.4 * head,
        head_y + 0.25 * head,
        0.85 * head,
        Paint::Fixed(Colour::Black),
    );
    let arm = Shape::Capsule {
        radius: 0.08,
        half_length: 0.11,
    };
    for side in [-1.0f32, 1.0] {
        let tilt = Quat::from_rotation_z(side * 0.9) * Quat::from_rotation_x(-0.5);
        b.add(
            arm,
            Frame::new(
                tilt,
                Vec3::new(side * (body + 0.02), body_y + 0.3 * body, 0.08),
            ),
            Paint::Primary,
        );
    }
    b.pair(
        Shape::Sphere { radius: 0.12 },
        0.6 * body,
        0.12,
        0.55 * body,
        Paint::Primary,
    );
}

fn table(b: &mut Builder, rng: &mut StdRng) {
    let w = rng.random_range(0.9..1.2);
    let d = rng.random_range(0.6..0.9);
    let h = rng.random_range(0.6..0.8);
    let top = 0.06;
    b.add(
        Shape::cuboid(Vec3::new(w, top, d)),
        at(0.0, h - 0.5 * top, 0.0),
        Paint::Primary,
    );
    let leg = Shape::cylinder(0.04, h - top);
    for (sx, sz) in [(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)] {
        b.add(
            leg,
            at(sx * (0.5 * w - 0.08), 0.0, sz * (0.5 * d - 0.08)),
            Paint::Accent,
        );
    }
}

fn chair(b: &mut Builder, rng: &mut StdRng) {
    let w = rng.random_range(0.5..0.65);
    let seat = rng.random_range(0.42..0.5);
    let back = rng.random_range(0.45..0.6);
    let t = 0.06;
    b.add(
        Shape::cuboid(Vec3::new(w, t, w)),
        at(0.0, seat - 0.5 * t, 0.0),
        Paint::Primary,
    );
    b.add(
        Shape::cuboid(Vec3::new(w, back, t)),
        at(0.0, seat + 0.5 * back, -0.5 * w + 0.5 * t),
        Paint::Primary,
    );
    let leg = Shape::cuboid(Vec3::new(0.06, seat - t, 0.06));
    for (sx, sz) in [(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)] {
        b.add(
            leg,
            at(
                sx * (0.5 * w - 0.05),
                0.5 * (seat - t),
                sz * (0.5 * w - 0.05),
            ),
            Paint::Accent,
        );
    }
}

fn lamp(b: &mut Builder, rng: &mut StdRng) {
    let pole = rng.random_range(0.6..0.85);
    let shade_bottom = rng.random_range(0.26..0.34);
    b.add(
        Shape::Frustum {
            bottom: 0.25,
            top: 0.2,
            height: 0.06,
        },
        at(0.0, 0.0, 0.0),
        Paint::Accent,
    );
    b.add(
        Shape::cylinder(0.03, pole),
        at(0.0, 0.06, 0.0),
        Paint::Accent,
    );
    b.add(
        Shape::Sphere { radius: 0.09 },
        at(0.0, pole, 0.0),
        Paint::Fixed(Colour::White),
    );
    b.add(
        Shape::Frustum {
            bottom: shade_bottom,
            top: 0.5 * shade_bottom,
            height: 0.3,
        },
        at(0.0, pole - 0.08, 0.0),
        Paint::Primary,
    );
}

fn tree(b: &mut Builder, rng: &mut StdRng) {
    let trunk = rng.random_range(0.3..0.45);
    b.add(
        Shape::Frustum {
            bottom: 0.1,
            top: 0.07,
            height: trunk + 0.1,
        },
        at(0.0, 0.0, 0.0),
        Paint::Fixed(Colour::Brown),
    );
    if rng.random_bool(0.5) {
        // A conifer: three stacked cones narrowing upwards.
        let mut y = trunk;
        let mut r = rng.random_range(0.42..0.5);
        for _ in 0..3 {
            b.add(Shape::cone(r, 0.45), at(0.0, y, 0.0), Paint::Primary);
            y += 0.22;
            r *= 0.75;
        }
    } else {
        let crown = rng.random_range(0.34..0.42);
        b.add(
            Shape::Sphere { radius: crown },
            at(0.0, trunk + 0.8 * crown, 0.0),
            Paint::Primary,
        );
    }
}

fn snowman(b: &mut Builder, rng: &mut StdRng) {
    let r0 = rng.random_range(0.22..0.27);
    let r1 = 0.75 * r0;
    let r2 = 0.55 * r0;
    let y0 = r0;
    let y1 = y0 + r0 + 0.7 * r1;
    let y2 = y1 + r1 + 0.7 * r2;
    b.add(
        Shape::Sphere { radius: r0 },
        at(0.0, y0, 0.0),
        Paint::Primary,
    );
    b.add(
        Shape::Sphere { radius: r1 },
        at(0.0, y1, 0.0),
        Paint::Primary,
    );
    b.add(
        Shape::Sphere { radius: r2 },
        at(0.0, y2, 0.0),
        Paint::Primary,
    );
    b.pair(
        Shape::Sphere { radius: 0.025 },
        0.35 * r2,
        y2 + 0.25 * r2,
        0.9 * r2,
        Paint::Fixed(Colour::Black),
    );
    let nose = Frame::new(
        Quat::from_rotation_x(std::f32::consts::FRAC_PI_2),
        Vec3::new(0.0, y2, 0.8 * r2),
    );
    b.add(Shape::cone(0.035, 0.16), nose, Paint::Fixed(Colour::Orange));
    b.add(
        Shape::cylinder(1.2 * r2, 0.03),
        at(0.0, y2 + 0.75 * r2, 0.0),
        Paint::Accent,
    );
    b.add(
        Shape::cylinder(0.8 * r2, 0.22),
        at(0.0, y2 + 0.75 * r2, 0.0),
        Paint::Accent,
    );
}

fn robot(b: &mut Builder, rng: &mut StdRng) {
    let leg = rng.random_range(0.26..0.32);
    let torso = Vec3::new(
        rng.random_range(0.42..0.5),
        rng.random_range(0.34..0.42),
        0.28,
    );
    let head = rng.random_range(0.24..0.3);
    b.pair(
        Shape::cuboid(Vec3::new(0.12, 0.05, 0.18)),
        0.12,
        0.025,
        0.03,
        Paint::Accent,
    );
    b.pair(Shape::cylinder(0.05, leg), 0.12, 0.05, 0.0, Paint::Accent);
    let torso_y = 0.05 + leg + 0.5 * torso.y;
    b.add(Shape::cuboid(torso), at(0.0, torso_y, 0.0), Paint::Primary);
    b.add(
        Shape::cuboid(Vec3::new(0.5 * torso.x, 0.35 * torso.y, 0.02)),
        at(0.0, torso_y, 0.5 * torso.z + 0.01),
        Paint::Accent,
    );
    for side in [-1.0f32, 1.0] {
        let swing = Quat::from_rotation_z(side * 0.25);
        let shoulder = Vec3::new(side * (0.5 * torso.x + 0.06), torso_y + 0.4 * torso.y, 0.0);
        // A cylinder hanging down from the shoulder: rotate it upside down first.
        let arm = Frame::new(
            swing * Quat::from_rotation_x(std::f32::consts::PI),
            shoulder,
        );
        b.add(Shape::cylinder(0.045, 0.3), arm, Paint::Accent);
    }
    let head_y = torso_y + 0.5 * torso.y + 0.04 + 0.5 * head;
    b.add(
        Shape::cylinder(0.05, 0.06),
        at(0.0, torso_y + 0.5 * torso.y, 0.0),
        Paint::Accent,
    );
    b.add(
        Shape::cuboid(Vec3::new(1.2 * head, head, head)),
        at(0.0, head_y, 0.0),
        Paint::Primary,
    );
    b.pair(
        Shape::Sphere { radius: 0.045 },
        0.3 * head,
        head_y + 0.08 * head,
        0.5 * head,
        Paint::Fixed(Colour::Yellow),
    );
    b.add(
        Shape::Capsule {
            radius: 0.015,
            half_length: 0.07,
        },
        at(0.0, head_y + 0.5 * head + 0.07, 0.0),
        Paint::Accent,
    );
    b.add(
        Shape::Sphere { radius: 0.04 },
        at(0.0, head_y + 0.5 * head + 0.16, 0.0),
        Paint::Fixed(Colour::Red),
    );
}

fn vase(b: &mut Builder, rng: &mut StdRng) {
    // A profile of (height, radius) points turned around Y; consecutive points make frustums.
    let belly = rng.random_range(0.3..0.38);
    let belly_y = rng.random_range(0.3..0.42);
    let neck = rng.random_range(0.1..0.14);
    let profile = [
        (0.0, 0.18),
        (0.06, 0.22),
        (0.5 * belly_y, 0.85 * belly),
        (belly_y, belly),
        (0.5 * (belly_y + 0.8), 0.7 * belly),
        (0.8, neck),
        (0.95, neck * 1.1),
        (1.0, neck * 1.5),
    ];
    for pair in profile.windows(2) {
        let ((y0, r0), (y1, r1)) = (pair[0], pair[1]);
        b.add(
            Shape::Frustum {
                bottom: r0,
                top: r1,
                height: y1 - y0,
            },
            at(0.0, y0, 0.0),
            Paint::Primary,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lowest and highest surface points and the largest horizontal distance from the axis
    /// of an object's parts, found by vertical rays on a grid.
    fn extent(parts: &[Part]) -> (f32, f32, f32) {
        let (mut lo, mut hi, mut reach) = (f32::INFINITY, f32::NEG_INFINITY, 0.0f32);
        for a in -50..=50 {
            for b in -50..=50 {
                let (x, z) = (a as f32 * 0.02, b as f32 * 0.02);
                for (y, dir) in [(5.0, Vec3::NEG_Y), (-5.0, Vec3::Y)] {
                    for part in parts {
                        let o = part.frame.to_local_point(Vec3::new(x, y, z));
                        let d = part.frame.to_local_dir(dir);
                        if let Some(hit) = part.shape.intersect(o, d, 0.0, 20.0) {
                            let height = y + dir.y * hit.t;
                            lo = lo.min(height);
                            hi = hi.max(height);
                            reach = reach.max((x * x + z * z).sqrt());
                        }
                    }
                }
            }
        }
        (lo, hi, reach)
    }

    #[test]
    fn every_kind_stands_on_the_ground_about_one_unit_tall() {
        for kind in ObjectKind::ALL {
            for seed in 0..2 {
                let parts = kind.parts(seed);
                let (lo, hi, reach) = extent(&parts);
                assert!(lo.abs() < 0.02, "{kind:?} seed {seed}: lowest {lo}");
                assert!(hi > 0.6 && hi < 1.4, "{kind:?} seed {seed}: highest {hi}");
                assert!(reach < 0.8, "{kind:?} seed {seed}: reach {reach}");
            }
        }
    }

    #[test]
    fn shape_seed_varies_proportions_deterministically() {
        for kind in ObjectKind::ALL {
            assert_eq!(kind.parts(3), kind.parts(3));
        }
        assert_ne!(ObjectKind::ToyRobot.parts(1), ObjectKind::ToyRobot.parts(2));
        assert_ne!(ObjectKind::Vase.parts(1), ObjectKind::Vase.parts(2));
    }
}
