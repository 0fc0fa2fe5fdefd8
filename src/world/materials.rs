//! Surface appearance: a named colour palette (the words captions use), procedural patterns
//! evaluated in object coordinates, and finishes (Blinn–Phong specular strength).

use glam::Vec3;
use serde::{Deserialize, Serialize};

use super::error::{Result, check_positive};

/// A named colour of the palette; its name is the word captions use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Colour {
    /// Red.
    Red,
    /// Orange.
    Orange,
    /// Yellow.
    Yellow,
    /// Green.
    Green,
    /// Teal.
    Teal,
    /// Blue.
    Blue,
    /// Purple.
    Purple,
    /// Pink.
    Pink,
    /// White.
    White,
    /// Black.
    Black,
    /// Grey.
    Grey,
    /// Brown.
    Brown,
}

impl Colour {
    /// Every colour of the palette.
    pub const ALL: [Colour; 12] = [
        Colour::Red,
        Colour::Orange,
        Colour::Yellow,
        Colour::Green,
        Colour::Teal,
        Colour::Blue,
        Colour::Purple,
        Colour::Pink,
        Colour::White,
        Colour::Black,
        Colour::Grey,
        Colour::Brown,
    ];

    /// The English word for the colour.
    pub fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Orange => "orange",
            Colour::Yellow => "yellow",
            Colour::Green => "green",
            Colour::Teal => "teal",
            Colour::Blue => "blue",
            Colour::Purple => "purple",
            Colour::Pink => "pink",
            Colour::White => "white",
            Colour::Black => "black",
            Colour::Grey => "grey",
            Colour::Brown => "brown",
        }
    }

    /// Linear-light RGB albedo (reflectance in `[0, 1]`).
    pub fn albedo(self) -> Vec3 {
        match self {
            Colour::Red => Vec3::new(0.62, 0.05, 0.04),
            Colour::Orange => Vec3::new(0.80, 0.28, 0.03),
            Colour::Yellow => Vec3::new(0.78, 0.62, 0.04),
            Colour::Green => Vec3::new(0.08, 0.42, 0.07),
            Colour::Teal => Vec3::new(0.03, 0.38, 0.36),
            Colour::Blue => Vec3::new(0.04, 0.12, 0.62),
            Colour::Purple => Vec3::new(0.28, 0.06, 0.50),
            Colour::Pink => Vec3::new(0.85, 0.30, 0.45),
            Colour::White => Vec3::new(0.82, 0.82, 0.80),
            Colour::Black => Vec3::new(0.025, 0.025, 0.03),
            Colour::Grey => Vec3::new(0.25, 0.25, 0.26),
            Colour::Brown => Vec3::new(0.25, 0.12, 0.05),
        }
    }
}

/// A procedural pattern mixing an object's primary colour with its accent colour. Patterns are
/// functions of the object's own (unscaled) coordinates, so they turn and scale with it and
/// every view sees the same surface.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Pattern {
    /// The primary colour only.
    Solid,
    /// Horizontal bands: `frequency` stripe pairs per unit of height.
    Stripes {
        /// Stripe pairs per object unit.
        frequency: f32,
    },
    /// A 3-D checkerboard with `frequency` cells per object unit.
    Checks {
        /// Cells per object unit.
        frequency: f32,
    },
    /// Accent dots on a cubic lattice of `frequency` dots per object unit.
    Dots {
        /// Dots per object unit.
        frequency: f32,
        /// Dot radius as a fraction of the lattice spacing (below 0.5).
        radius: f32,
    },
}

impl Pattern {
    /// The adjective captions use ("striped", …), or `None` for [`Pattern::Solid`].
    pub fn adjective(&self) -> Option<&'static str> {
        let [striped, checkered, dotted] = Self::ADJECTIVES;
        match self {
            Pattern::Solid => None,
            Pattern::Stripes { .. } => Some(striped),
            Pattern::Checks { .. } => Some(checkered),
            Pattern::Dots { .. } => Some(dotted),
        }
    }

    /// Every adjective [`Pattern::adjective`] returns (stripes, checks, dots).
    pub const ADJECTIVES: [&'static str; 3] = ["striped", "checkered", "dotted"];

    /// Checks frequencies and radii.
    pub fn validate(&self, field: &str) -> Result<()> {
        match *self {
            Pattern::Solid => Ok(()),
            Pattern::Stripes { frequency } | Pattern::Checks { frequency } => {
                check_positive(format!("{field}.frequency"), frequency).map(drop)
            }
            Pattern::Dots { frequency, radius } => {
                check_positive(format!("{field}.frequency"), frequency)?;
                check_positive(format!("{field}.radius"), radius)?;
                if radius >= 0.5 {
                    return Err(super::error::invalid(
                        format!("{field}.radius"),
                        radius,
                        "dots must be smaller than half their spacing (< 0.5)",
                    ));
                }
                Ok(())
            }
        }
    }

    /// How much of the accent colour shows at object point `p` (0 or 1).
    pub fn accent_weight(&self, p: Vec3) -> f32 {
        match *self {
            Pattern::Solid => 0.0,
            Pattern::Stripes { frequency } => ((p.y * frequency * 2.0).floor() as i64 & 1) as f32,
            Pattern::Checks { frequency } => {
                let c = (p * frequency).floor();
                ((c.x as i64 + c.y as i64 + c.z as i64) & 1) as f32
            }
            Pattern::Dots { frequency, radius } => {
                let q = p * frequency;
                let offset = q - q.round();
                if offset.length() < radius { 1.0 } else { 0.0 }
            }
        }
    }
}

/// How shiny a surface is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Finish {
    /// Purely diffuse.
    Matte,
    /// A faint broad highlight.
    Satin,
    /// A strong narrow highlight (plastic, glaze).
    Glossy,
}

impl Finish {
    /// Blinn–Phong (strength, exponent) of the specular lobe.
    pub fn specular(self) -> (f32, f32) {
        match self {
            Finish::Matte => (0.0, 1.0),
            Finish::Satin => (0.08, 12.0),
            Finish::Glossy => (0.3, 48.0),
        }
    }
}

/// The appearance of one part of an object.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Material {
    /// Albedo where the pattern shows the primary colour.
    pub primary: Vec3,
    /// Albedo where the pattern shows the accent colour.
    pub accent: Vec3,
    /// The pattern mixing the two.
    pub pattern: Pattern,
    /// Specular finish.
    pub finish: Finish,
}

impl Material {
    /// A plain material of one colour.
    pub fn plain(albedo: Vec3, finish: Finish) -> Self {
        Self {
            primary: albedo,
            accent: albedo,
            pattern: Pattern::Solid,
            finish,
        }
    }

    /// The albedo at object point `p` (object coordinates, before scaling).
    pub fn albedo(&self, p: Vec3) -> Vec3 {
        let w = self.pattern.accent_weight(p);
        self.primary + (self.accent - self.primary) * w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_alternate_with_height() {
        let stripes = Pattern::Stripes { frequency: 2.0 };
        // Two pairs per unit: bands of height 0.25 alternating primary / accent.
        assert_eq!(stripes.accent_weight(Vec3::new(0.0, 0.1, 0.0)), 0.0);
        assert_eq!(stripes.accent_weight(Vec3::new(3.0, 0.3, -1.0)), 1.0);
        assert_eq!(stripes.accent_weight(Vec3::new(0.0, 0.6, 0.0)), 0.0);
        assert_eq!(stripes.accent_weight(Vec3::new(0.0, -0.1, 0.0)), 1.0);
    }

    #[test]
    fn checks_and_dots_cover_both_colours() {
        let checks = Pattern::Checks { frequency: 4.0 };
        assert_ne!(
            checks.accent_weight(Vec3::new(0.1, 0.1, 0.1)),
            checks.accent_weight(Vec3::new(0.35, 0.1, 0.1))
        );
        let dots = Pattern::Dots {
            frequency: 5.0,
            radius: 0.3,
        };
        assert_eq!(dots.accent_weight(Vec3::new(0.2, 0.4, 0.6)), 1.0);
        assert_eq!(dots.accent_weight(Vec3::new(0.1, 0.1, 0.1)), 0.0);
        let material = Material {
            primary: Vec3::X,
            accent: Vec3::Y,
            pattern: dots,
            finish: Finish::Matte,
        };
        assert_eq!(material.albedo(Vec3::new(0.2, 0.4, 0.6)), Vec3::Y);
    }

    #[test]
    fn bad_patterns_name_the_field() {
        let err = Pattern::Dots {
            frequency: 3.0,
            radius: 0.7,
        }
        .validate("objects[0].pattern")
        .unwrap_err();
        assert!(
            err.to_string().contains("objects[0].pattern.radius"),
            "{err}"
        );
        assert!(
            Pattern::Stripes {
                frequency: f32::NAN
            }
            .validate("p")
            .is_err()
        );
    }
}
