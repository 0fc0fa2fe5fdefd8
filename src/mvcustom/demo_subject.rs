//! Subject folders of the procedural demo subjects ([`DemoSubject`]): reference images, masks
//! and exact cameras rendered by the world's ray caster, written as an ordinary subject
//! definition that `mvcustom train`, the CLI and the plugin load like any user's subject.
//!
//! The references show the subject alone (no distractors) in one environment of the training
//! split, drawn from the seed, seen from cameras evenly spaced on a full orbit at two
//! alternating elevations. Evaluation scenes of the subject (held-out environments,
//! distractors, other trajectories) are drawn separately by
//! [`Split::subject_sampler`](crate::world::Split::subject_sampler), so what the
//! customization learns from is never what it is evaluated on.
//!
//! A folder for the toy robot:
//! ```text
//! toy_robot/
//!   toy_robot.subject.ron      token "<toy_robot>", class word "toy robot", inline cameras
//!   images/ref_00.png …        sRGB renders
//!   masks/ref_00.png …         255 on the subject, 0 elsewhere
//!   toy_robot.safetensors      written by `mvcustom train` (named in the definition)
//! ```

use std::path::{Path, PathBuf};

use glam::Vec3;

use super::error::{MvError, Result};
use super::subject::{ReferenceEntry, SubjectDefinition};
use crate::camera::PinholeCamera;
use crate::world::{
    DemoSubject, Jitter, Path as TrajectoryPath, RenderSettings, Scene, Split, TrajectorySpec,
    View, object_mask_id, render_views,
};

/// How a demo subject's reference views are made.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DemoSubjectOptions {
    /// Number of reference views (at least 1).
    pub references: usize,
    /// Width and height of every reference image, pixels.
    pub size: u32,
    /// Seed of the scene around the subject (environment, ground texture, lighting).
    pub seed: u64,
    /// Elevations the reference cameras alternate between, radians.
    pub elevations: [f32; 2],
    /// Vertical field of view, radians.
    pub fov_y: f32,
    /// Camera distance relative to the tightest framing of the subject (see
    /// [`TrajectorySpec::framing`]).
    pub framing: f32,
    /// Replace an existing definition (and its images); off: refuse, so trained weights are
    /// never silently paired with other references.
    pub overwrite: bool,
}

impl Default for DemoSubjectOptions {
    /// Eight 64×64 references at 15° and 35° elevation, 40° field of view, framing 1.4.
    fn default() -> Self {
        Self {
            references: 8,
            size: 64,
            seed: 0,
            elevations: [15f32.to_radians(), 35f32.to_radians()],
            fov_y: 40f32.to_radians(),
            framing: 1.4,
            overwrite: false,
        }
    }
}

/// The prompt token of a demo subject: `<toy_robot>`, `<patterned_vase>`.
pub fn demo_subject_token(subject: DemoSubject) -> String {
    format!("<{}>", subject.name())
}

/// The class word of a demo subject ("toy robot", "vase"): its object kind's noun.
pub fn demo_subject_class_word(subject: DemoSubject) -> &'static str {
    subject.object().kind.noun()
}

/// The definition file of a demo subject in `dir`: `<name>.subject.ron` (the plugin's subject
/// assets are `*.subject.ron`).
pub fn demo_subject_definition(dir: &Path, subject: DemoSubject) -> PathBuf {
    dir.join(format!("{}.subject.ron", subject.name()))
}

/// The file a demo subject's trained weights go to, named by its definition: `<name>.safetensors`.
fn weights_file_name(subject: DemoSubject) -> PathBuf {
    PathBuf::from(format!("{}.safetensors", subject.name()))
}

/// The scene the references are rendered in: the subject alone, in an environment of the
/// training split drawn from `seed`.
fn reference_scene(subject: DemoSubject, seed: u64) -> Result<Scene> {
    let sampler = crate::world::SceneSampler {
        max_distractors: 0,
        ..Split::Train.subject_sampler(subject)
    };
    let spec = sampler.sample(Split::Train.seed(seed)?)?;
    Ok(Scene::new(&spec)?)
}

/// The reference cameras: `references` views evenly spaced on a full turn around the focus,
/// alternating between the two elevations.
fn reference_cameras(
    options: &DemoSubjectOptions,
    focus: (Vec3, f32),
) -> Result<Vec<PinholeCamera>> {
    let count = options.references;
    let step = std::f32::consts::TAU / count as f32;
    (0..count)
        .map(|k| {
            let spec = TrajectorySpec {
                path: TrajectoryPath::Orbit {
                    elevation: options.elevations[k % 2],
                    start_azimuth: step * k as f32,
                    arc: std::f32::consts::TAU,
                },
                views: 1,
                width: options.size,
                height: options.size,
                fov_y: options.fov_y,
                framing: options.framing,
                jitter: Jitter::default(),
                jitter_seed: 0,
            };
            let cameras = spec.cameras(focus)?;
            cameras
                .into_iter()
                .next()
                .ok_or_else(|| MvError::request("references", "a camera could not be placed"))
        })
        .collect()
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> MvError {
    MvError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The subject's binary mask of a rendered view: 255 where the main object (the subject) is.
pub fn subject_mask(view: &View) -> image::GrayImage {
    let id = object_mask_id(0);
    let (width, height) = view.mask.dimensions();
    image::GrayImage::from_fn(width, height, |x, y| {
        image::Luma([if view.mask.get_pixel(x, y).0[0] == id {
            255
        } else {
            0
        }])
    })
}

/// Writes the subject folder of `subject` into `dir` (created when missing) and returns its
/// definition file. Errors name the file or option at fault; an existing definition is an
/// error unless `options.overwrite`.
pub fn write_demo_subject(
    subject: DemoSubject,
    dir: &Path,
    options: &DemoSubjectOptions,
) -> Result<PathBuf> {
    if options.references == 0 {
        return Err(MvError::request("references", "must be at least 1"));
    }
    if options.size < 8 {
        return Err(MvError::request(
            "size",
            format!("must be at least 8 pixels, got {}", options.size),
        ));
    }
    let definition_path = demo_subject_definition(dir, subject);
    if definition_path.exists() && !options.overwrite {
        return Err(file_error(
            &definition_path,
            "already exists (overwrite it explicitly; its trained weights would no longer match)",
        ));
    }
    let scene = reference_scene(subject, options.seed)?;
    let cameras = reference_cameras(options, scene.focus())?;
    let views = render_views(&scene, &cameras, &RenderSettings::default())?;

    for folder in ["images", "masks"] {
        let path = dir.join(folder);
        std::fs::create_dir_all(&path).map_err(|e| file_error(&path, e))?;
    }
    let mut references = Vec::with_capacity(views.len());
    for (index, (view, camera)) in views.iter().zip(&cameras).enumerate() {
        let image = PathBuf::from(format!("images/ref_{index:02}.png"));
        let mask = PathBuf::from(format!("masks/ref_{index:02}.png"));
        let image_path = dir.join(&image);
        view.rgb
            .save(&image_path)
            .map_err(|e| file_error(&image_path, e))?;
        let mask_path = dir.join(&mask);
        subject_mask(view)
            .save(&mask_path)
            .map_err(|e| file_error(&mask_path, e))?;
        references.push(ReferenceEntry {
            image,
            mask: Some(mask),
            camera: Some(*camera),
        });
    }
    let definition = SubjectDefinition {
        token: demo_subject_token(subject),
        class_word: demo_subject_class_word(subject).to_owned(),
        colmap: None,
        references,
        weights: Some(weights_file_name(subject)),
    };
    let text = ron::ser::to_string_pretty(&definition, ron::ser::PrettyConfig::default())
        .map_err(|e| file_error(&definition_path, e))?;
    // The definition goes last, through a temporary file: a folder with a definition is
    // always complete.
    let temp = definition_path.with_extension("ron.tmp");
    std::fs::write(&temp, text).map_err(|e| file_error(&temp, e))?;
    std::fs::rename(&temp, &definition_path).map_err(|e| file_error(&definition_path, e))?;
    Ok(definition_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcustom::Subject;

    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "mvcustom-demo-subject-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Scratch(dir)
    }

    #[test]
    fn written_folders_load_and_their_cameras_see_the_subject_in_every_mask() {
        for subject in DemoSubject::ALL {
            let dir = scratch(subject.name());
            let options = DemoSubjectOptions {
                references: 4,
                size: 32,
                ..Default::default()
            };
            let path = write_demo_subject(subject, &dir.0, &options).unwrap();
            assert_eq!(
                path.file_name().unwrap().to_str().unwrap(),
                format!("{}.subject.ron", subject.name())
            );
            let loaded = Subject::load(&path).unwrap();
            assert_eq!(loaded.token, format!("<{}>", subject.name()));
            assert_eq!(loaded.class_word, subject.object().kind.noun());
            assert_eq!(
                loaded.weights_path,
                dir.0.join(format!("{}.safetensors", subject.name()))
            );
            assert_eq!(loaded.references.len(), 4);
            // The subject stands at the origin: its bounding sphere's centre.
            let scene = reference_scene(subject, options.seed).unwrap();
            let (centre, _) = scene.focus();
            for (k, reference) in loaded.references.iter().enumerate() {
                assert_eq!(reference.image.dimensions(), (32, 32));
                let pixel = reference
                    .camera
                    .project(centre)
                    .expect("centre in front")
                    .pixel;
                let (i, j) = (pixel.x.floor() as u32, pixel.y.floor() as u32);
                assert!(i < 32 && j < 32, "{subject:?} ref {k}: {pixel}");
                assert_eq!(
                    reference.mask.get_pixel(i, j).0,
                    [255],
                    "{subject:?} ref {k}: centre pixel {pixel} is not on the subject"
                );
                // The mask marks some, not all, of the image.
                let on = reference.mask.pixels().filter(|p| p.0[0] == 255).count();
                assert!(on > 10 && on < 32 * 32 / 2, "{subject:?} ref {k}: {on}");
            }
            // The cameras cover the orbit: neighbours are about τ/4 apart in azimuth.
            let azimuth = |c: &PinholeCamera| c.center().x.atan2(c.center().z);
            let a0 = azimuth(&loaded.references[0].camera);
            let a1 = azimuth(&loaded.references[1].camera);
            let step = (a1 - a0).rem_euclid(std::f32::consts::TAU);
            assert!((step - std::f32::consts::FRAC_PI_2).abs() < 0.05, "{step}");
        }
    }

    #[test]
    fn existing_definitions_and_bad_options_are_refused() {
        let dir = scratch("refuse");
        let options = DemoSubjectOptions {
            references: 1,
            size: 16,
            ..Default::default()
        };
        write_demo_subject(DemoSubject::ToyRobot, &dir.0, &options).unwrap();
        let err = write_demo_subject(DemoSubject::ToyRobot, &dir.0, &options).unwrap_err();
        assert!(
            err.to_string().contains("toy_robot.subject.ron") && err.to_string().contains("exists"),
            "{err}"
        );
        let again = DemoSubjectOptions {
            overwrite: true,
            ..options
        };
        write_demo_subject(DemoSubject::ToyRobot, &dir.0, &again).unwrap();
        let none = DemoSubjectOptions {
            references: 0,
            overwrite: true,
            ..options
        };
        let err = write_demo_subject(DemoSubject::ToyRobot, &dir.0, &none).unwrap_err();
        assert!(err.to_string().contains("references"), "{err}");
    }
}
