//! The target cameras of a generation, from one of four sources: an orbit or a translation
//! built from a few numbers, a RON list of cameras, or a COLMAP text model. Files are read
//! first (so a bad file fails before a model is loaded); the cameras are then made for the
//! output size.

use std::path::{Path, PathBuf};

use clap::Args;
use glam::Vec3;
use serde::Serialize;

use super::args::{
    OrbitSpec, TranslationSpec, parse_fov_deg, parse_orbit, parse_translation, parse_vec3,
};
use super::error::{CliError, Result};
use crate::camera::colmap::read_model;
use crate::camera::{ImageSize, Intrinsics, LinearPath, Orbit, PinholeCamera};

/// Where the target cameras come from (exactly one).
#[derive(Clone, Debug, Args)]
#[group(required = true, multiple = false)]
#[command(next_help_heading = "Cameras (one of)")]
pub struct CameraSourceArgs {
    /// An orbit around --target: VIEWS cameras evenly spaced in azimuth, ELEVATION_DEG above
    /// the horizontal plane, RADIUS from the target, all looking at it.
    #[arg(long, value_name = "VIEWS,ELEVATION_DEG,RADIUS", value_parser = parse_orbit)]
    pub orbit: Option<OrbitSpec>,
    /// A straight path: VIEWS cameras from the centre (SX,SY,SZ) to (EX,EY,EZ), all looking
    /// along --forward.
    #[arg(long, value_name = "VIEWS,SX,SY,SZ,EX,EY,EZ", value_parser = parse_translation)]
    pub translation: Option<TranslationSpec>,
    /// A RON file holding a list of cameras (`[(intrinsics: (fx: …, fy: …, cx: …, cy: …),
    /// extrinsics: (rotation: (…9 values, column-major world→camera…), translation: (x, y,
    /// z)), size: (width: …, height: …)), …]`, OpenCV camera axes). `generate` writes the
    /// cameras it used in this form as `cameras.ron`.
    #[arg(long, value_name = "FILE")]
    pub cameras: Option<PathBuf>,
    /// A COLMAP text model folder (`cameras.txt`, `images.txt`); views in the order of
    /// `images.txt`.
    #[arg(long, value_name = "DIR")]
    pub colmap: Option<PathBuf>,
}

/// How the orbit and translation rigs are placed and how wide they see.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Rig placement")]
pub struct RigArgs {
    /// The point an orbit circles and looks at.
    #[arg(long, value_name = "X,Y,Z", default_value = "0,0,0", value_parser = parse_vec3)]
    pub target: Vec3,
    /// World up direction of orbits and translations.
    #[arg(long, value_name = "X,Y,Z", default_value = "0,1,0", value_parser = parse_vec3)]
    pub up: Vec3,
    /// Viewing direction shared by the cameras of a translation.
    #[arg(long, value_name = "X,Y,Z", default_value = "0,0,-1", value_parser = parse_vec3)]
    pub forward: Vec3,
    /// Azimuth of an orbit's first view, degrees (0: on the +Z side for a +Y up axis).
    #[arg(
        long,
        value_name = "DEG",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub azimuth_deg: f32,
    /// Vertical field of view of orbit and translation cameras, degrees.
    #[arg(long, value_name = "DEG", default_value = "50", value_parser = parse_fov_deg)]
    pub fov_deg: f32,
}

/// How the cameras were obtained, as recorded in `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RigDescription {
    /// `--orbit`.
    Orbit {
        /// Views, elevation and radius.
        #[serde(flatten)]
        spec: OrbitSpec,
        /// Azimuth of the first view, degrees.
        azimuth_deg: f32,
        /// The point looked at.
        target: Vec3,
        /// World up.
        up: Vec3,
        /// Vertical field of view, degrees.
        fov_deg: f32,
    },
    /// `--translation`.
    Translation {
        /// Views and the ends of the segment.
        #[serde(flatten)]
        spec: TranslationSpec,
        /// Viewing direction.
        forward: Vec3,
        /// World up.
        up: Vec3,
        /// Vertical field of view, degrees.
        fov_deg: f32,
    },
    /// `--cameras`.
    CameraFile {
        /// The RON file.
        path: PathBuf,
    },
    /// `--colmap`.
    Colmap {
        /// The model folder.
        path: PathBuf,
        /// The image names of `images.txt`, one per view.
        images: Vec<String>,
    },
}

/// A camera source whose files have been read.
#[derive(Clone, Debug)]
pub enum CameraSource {
    /// An orbit still to be built.
    Orbit(OrbitSpec),
    /// A translation still to be built.
    Translation(TranslationSpec),
    /// Cameras read from a RON file.
    File {
        /// The file.
        path: PathBuf,
        /// Its cameras.
        cameras: Vec<PinholeCamera>,
    },
    /// Cameras read from a COLMAP model.
    Colmap {
        /// The folder.
        path: PathBuf,
        /// Image names and cameras, in `images.txt` order.
        views: Vec<(String, PinholeCamera)>,
    },
}

/// The cameras of a generation and where they came from.
#[derive(Clone, Debug)]
pub struct Rig {
    /// One camera per view, made for the output size.
    pub cameras: Vec<PinholeCamera>,
    /// How they were obtained.
    pub description: RigDescription,
}

/// Reads a RON list of cameras.
pub fn read_camera_file(path: &Path) -> Result<Vec<PinholeCamera>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::file(path, format!("cannot read camera file: {e}")))?;
    let cameras: Vec<PinholeCamera> = ron::from_str(&text)
        .map_err(|e| CliError::file(path, format!("not a RON list of cameras: {e}")))?;
    if cameras.is_empty() {
        return Err(CliError::file(path, "the camera list is empty"));
    }
    Ok(cameras)
}

impl CameraSourceArgs {
    /// The argument that gives the cameras (for error messages).
    pub fn flag(&self) -> &'static str {
        if self.orbit.is_some() {
            "--orbit"
        } else if self.translation.is_some() {
            "--translation"
        } else if self.cameras.is_some() {
            "--cameras"
        } else {
            "--colmap"
        }
    }

    /// Reads the files of the chosen source.
    pub fn load(&self) -> Result<CameraSource> {
        if let Some(spec) = self.orbit {
            return Ok(CameraSource::Orbit(spec));
        }
        if let Some(spec) = self.translation {
            return Ok(CameraSource::Translation(spec));
        }
        if let Some(path) = &self.cameras {
            return Ok(CameraSource::File {
                path: path.clone(),
                cameras: read_camera_file(path)?,
            });
        }
        if let Some(path) = &self.colmap {
            if !path.is_dir() {
                return Err(CliError::file(path, "COLMAP model folder not found"));
            }
            let views = read_model(path)?;
            if views.is_empty() {
                return Err(CliError::file(path, "images.txt lists no images"));
            }
            return Ok(CameraSource::Colmap {
                path: path.clone(),
                views: views.into_iter().map(|v| (v.name, v.camera)).collect(),
            });
        }
        Err(CliError::argument(
            "--orbit",
            "(or --translation, --cameras, --colmap) is needed to place the cameras",
        ))
    }
}

impl CameraSource {
    /// Number of views the source gives.
    pub fn views(&self) -> usize {
        match self {
            CameraSource::Orbit(spec) => spec.views as usize,
            CameraSource::Translation(spec) => spec.views as usize,
            CameraSource::File { cameras, .. } => cameras.len(),
            CameraSource::Colmap { views, .. } => views.len(),
        }
    }

    /// The cameras for `width × height` views: rigs are built at that size, cameras read from
    /// files are rescaled to it (intrinsics scaled, poses unchanged).
    pub fn rig(&self, rig: &RigArgs, width: u32, height: u32) -> Result<Rig> {
        let size = ImageSize::new(width, height).map_err(|e| CliError::camera("--width", e))?;
        let intrinsics = || {
            Intrinsics::from_vertical_fov(rig.fov_deg.to_radians(), width, height)
                .map_err(|e| CliError::camera("--fov-deg", e))
        };
        let resize = |cameras: &mut dyn Iterator<Item = &PinholeCamera>, flag| {
            cameras
                .map(|c| {
                    c.resized(width, height)
                        .map_err(|e| CliError::camera(flag, e))
                })
                .collect::<Result<Vec<_>>>()
        };
        match self {
            CameraSource::Orbit(spec) => {
                let orbit = Orbit {
                    views: spec.views,
                    elevation: spec.elevation_deg.to_radians(),
                    radius: spec.radius,
                    start_azimuth: rig.azimuth_deg.to_radians(),
                    target: rig.target,
                    up: rig.up,
                };
                Ok(Rig {
                    cameras: orbit
                        .cameras(intrinsics()?, size)
                        .map_err(|e| CliError::camera("--orbit", e))?,
                    description: RigDescription::Orbit {
                        spec: *spec,
                        azimuth_deg: rig.azimuth_deg,
                        target: rig.target,
                        up: rig.up,
                        fov_deg: rig.fov_deg,
                    },
                })
            }
            CameraSource::Translation(spec) => {
                let path = LinearPath {
                    views: spec.views,
                    start: spec.start,
                    end: spec.end,
                    forward: rig.forward,
                    up: rig.up,
                };
                Ok(Rig {
                    cameras: path
                        .cameras(intrinsics()?, size)
                        .map_err(|e| CliError::camera("--translation", e))?,
                    description: RigDescription::Translation {
                        spec: *spec,
                        forward: rig.forward,
                        up: rig.up,
                        fov_deg: rig.fov_deg,
                    },
                })
            }
            CameraSource::File { path, cameras } => Ok(Rig {
                cameras: resize(&mut cameras.iter(), "--cameras")?,
                description: RigDescription::CameraFile { path: path.clone() },
            }),
            CameraSource::Colmap { path, views } => Ok(Rig {
                cameras: resize(&mut views.iter().map(|(_, c)| c), "--colmap")?,
                description: RigDescription::Colmap {
                    path: path.clone(),
                    images: views.iter().map(|(name, _)| name.clone()).collect(),
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::Extrinsics;

    fn rig_args() -> RigArgs {
        RigArgs {
            target: Vec3::new(0.0, 0.5, 0.0),
            up: Vec3::Y,
            forward: Vec3::NEG_Z,
            azimuth_deg: 0.0,
            fov_deg: 50.0,
        }
    }

    #[test]
    fn an_orbit_looks_at_its_target_from_its_radius() {
        let spec = parse_orbit("4,30,2").unwrap();
        let rig = CameraSource::Orbit(spec).rig(&rig_args(), 64, 48).unwrap();
        assert_eq!(rig.cameras.len(), 4);
        let target = rig_args().target;
        for camera in &rig.cameras {
            assert_eq!((camera.size().width, camera.size().height), (64, 48));
            assert!(((camera.center() - target).length() - 2.0).abs() < 1e-5);
            let seen = camera.project(target).unwrap();
            assert!((seen.pixel - glam::Vec2::new(32.0, 24.0)).length() < 1e-3);
            let height = camera.center().y - target.y;
            assert!((height - 2.0 * 30f32.to_radians().sin()).abs() < 1e-5);
        }
        let focal = rig.cameras[0].intrinsics().fy;
        assert!((focal - 24.0 / 25f32.to_radians().tan()).abs() < 1e-3);
    }

    #[test]
    fn a_translation_spaces_centres_evenly_with_one_orientation() {
        let spec = parse_translation("3,-1,0,0,1,0,0").unwrap();
        let rig = CameraSource::Translation(spec)
            .rig(&rig_args(), 32, 32)
            .unwrap();
        let xs: Vec<f32> = rig.cameras.iter().map(|c| c.center().x).collect();
        assert_eq!(xs, vec![-1.0, 0.0, 1.0]);
        for c in &rig.cameras {
            assert!((c.forward() - Vec3::NEG_Z).length() < 1e-6);
        }
    }

    #[test]
    fn camera_files_round_trip_and_are_resized() {
        let dir = std::env::temp_dir().join(format!("mvcustom-cameras-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let camera = PinholeCamera::new(
            Intrinsics::from_vertical_fov(1.0, 64, 32).unwrap(),
            Extrinsics::IDENTITY,
            ImageSize::new(64, 32).unwrap(),
        )
        .unwrap();
        let path = dir.join("cams.ron");
        std::fs::write(&path, ron::to_string(&vec![camera, camera]).unwrap()).unwrap();
        let source = CameraSourceArgs {
            orbit: None,
            translation: None,
            cameras: Some(path.clone()),
            colmap: None,
        }
        .load()
        .unwrap();
        assert_eq!(source.views(), 2);
        let rig = source.rig(&rig_args(), 32, 16).unwrap();
        assert_eq!(rig.cameras[0], camera.resized(32, 16).unwrap());

        std::fs::write(&path, "[(intrinsics: (fx: 1.0))]").unwrap();
        let err = read_camera_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("cams.ron") && err.contains("not a RON list of cameras"),
            "{err}"
        );
        std::fs::write(&path, "[]").unwrap();
        assert!(
            read_camera_file(&path)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let missing = read_camera_file(&dir.join("absent.ron"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("absent.ron") && missing.contains("cannot read"),
            "{missing}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn colmap_folders_give_their_views_in_order() {
        let dir = std::env::temp_dir().join(format!("mvcustom-colmap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cameras.txt"), "1 PINHOLE 64 64 50 50 32 32\n").unwrap();
        std::fs::write(
            dir.join("images.txt"),
            "1 1 0 0 0 0 0 3 1 b.png\n\n2 1 0 0 0 1 0 3 1 a.png\n\n",
        )
        .unwrap();
        let source = CameraSourceArgs {
            orbit: None,
            translation: None,
            cameras: None,
            colmap: Some(dir.clone()),
        }
        .load()
        .unwrap();
        let rig = source.rig(&rig_args(), 32, 32).unwrap();
        assert_eq!(rig.cameras.len(), 2);
        assert_eq!(rig.cameras[0].intrinsics().fx, 25.0);
        let RigDescription::Colmap { images, .. } = rig.description else {
            panic!("not a COLMAP rig")
        };
        assert_eq!(images, vec!["b.png".to_string(), "a.png".to_string()]);
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = CameraSourceArgs {
            orbit: None,
            translation: None,
            cameras: None,
            colmap: Some(dir.clone()),
        }
        .load()
        .unwrap_err()
        .to_string();
        assert!(
            missing.contains("COLMAP model folder not found"),
            "{missing}"
        );
    }
}
