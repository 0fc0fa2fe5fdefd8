//! Subjects: what a user teaches the plugin. A subject is a RON file naming its reference
//! images (with optional masks), their cameras (inline or from a COLMAP text model), the token
//! that names it in prompts (`<teddy>`) and its class word (`teddy bear`); its learned weights
//! live in one safetensors file beside it.
//!
//! ```ron
//! (
//!     token: "<teddy>",
//!     class_word: "teddy bear",
//!     colmap: Some("sparse"),
//!     references: [
//!         (image: "images/front.png", mask: Some("masks/front.png")),
//!         (image: "images/side.png", camera: Some((intrinsics: (fx: 280.0, fy: 280.0,
//!             cx: 128.0, cy: 128.0), extrinsics: (rotation: (1, 0, 0, 0, 1, 0, 0, 0, 1),
//!             translation: (0, 0, 2)), size: (width: 256, height: 256)))),
//!     ],
//! )
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::camera::{PinholeCamera, colmap};
use crate::ron_file::{self, RonFileError};

/// Why a subject could not be loaded: its definition or a file it names could not be read,
/// parsed or used (the error of every RON file the crate reads).
pub type SubjectError = RonFileError;

/// One reference view as written in the definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferenceEntry {
    /// The image, relative to the definition file.
    pub image: PathBuf,
    /// Optional subject mask (white = subject), same size as the image.
    #[serde(default)]
    pub mask: Option<PathBuf>,
    /// The camera; when absent it is looked up by image file name in the COLMAP model.
    #[serde(default)]
    pub camera: Option<PinholeCamera>,
}

/// A subject definition file, as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubjectDefinition {
    /// The token naming the subject in prompts, e.g. `<teddy>`.
    pub token: String,
    /// The class word, used for regularisation prompts, e.g. `teddy bear`.
    pub class_word: String,
    /// A COLMAP text model folder (relative to the definition) giving cameras by image name.
    #[serde(default)]
    pub colmap: Option<PathBuf>,
    /// The reference views.
    pub references: Vec<ReferenceEntry>,
    /// The learned weights file, relative to the definition; default `<stem>.safetensors`.
    #[serde(default)]
    pub weights: Option<PathBuf>,
}

/// A reference view, loaded.
#[derive(Clone, Debug)]
pub struct Reference {
    /// The image file.
    pub path: PathBuf,
    /// Its pixels.
    pub image: image::RgbaImage,
    /// Its subject mask (255 = subject), all-subject when none was given.
    pub mask: image::GrayImage,
    /// Its camera, sized to the image.
    pub camera: PinholeCamera,
}

/// A subject, loaded and checked.
#[derive(Clone, Debug)]
pub struct Subject {
    /// The definition file.
    pub path: PathBuf,
    /// The prompt token.
    pub token: String,
    /// The class word.
    pub class_word: String,
    /// The reference views, in definition order.
    pub references: Vec<Reference>,
    /// Where the learned weights are (or will be written).
    pub weights_path: PathBuf,
}

impl SubjectDefinition {
    /// Parses a definition's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, SubjectError> {
        let definition: Self = ron_file::parse(text, path)?;
        definition.validate(path)?;
        Ok(definition)
    }

    fn validate(&self, path: &Path) -> Result<(), SubjectError> {
        let invalid = |field: &str, reason: String| SubjectError::invalid(path, field, reason);
        let token_ok = self.token.len() > 2
            && self.token.starts_with('<')
            && self.token.ends_with('>')
            && !self.token.chars().any(char::is_whitespace);
        if !token_ok {
            return Err(invalid(
                "token",
                format!(
                    "must look like `<name>` with no spaces, got {:?}",
                    self.token
                ),
            ));
        }
        if self.class_word.trim().is_empty() {
            return Err(invalid("class_word", "must not be empty".into()));
        }
        if self.references.is_empty() {
            return Err(invalid("references", "must name at least one image".into()));
        }
        Ok(())
    }
}

/// The views of the COLMAP text model in `folder` named by the definition at `path`, its two
/// files read through `read`.
fn read_colmap(
    path: &Path,
    folder: &Path,
    read: &mut dyn FnMut(&Path) -> Result<Vec<u8>, SubjectError>,
) -> Result<Vec<colmap::ColmapView>, SubjectError> {
    let mut text = |name: &str| -> Result<(String, String), SubjectError> {
        let file = folder.join(name);
        let bytes = read(&file)?;
        let text = ron_file::utf8(bytes, &file)?;
        Ok((text, file.display().to_string()))
    };
    let (cameras_text, cameras_file) = text("cameras.txt")?;
    let (images_text, images_file) = text("images.txt")?;
    let colmap_error =
        |e: crate::camera::CameraError| SubjectError::invalid(path, "colmap", e.to_string());
    let cameras = colmap::parse_cameras(&cameras_text, &cameras_file).map_err(colmap_error)?;
    colmap::parse_images(&images_text, &images_file, &cameras).map_err(colmap_error)
}

impl SubjectDefinition {
    /// Every file the definition names besides its weights, as paths under `base` (the
    /// definition's folder): the COLMAP model's `cameras.txt` and `images.txt`, then each
    /// reference's image and mask. What [`Subject::from_definition_with`] will ask for.
    pub fn referenced_files(&self, base: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let Some(folder) = &self.colmap {
            files.push(base.join(folder).join("cameras.txt"));
            files.push(base.join(folder).join("images.txt"));
        }
        for entry in &self.references {
            files.push(base.join(&entry.image));
            files.extend(entry.mask.as_ref().map(|mask| base.join(mask)));
        }
        files
    }

    /// Where the learned weights of the definition at `path` are: its `weights` field
    /// relative to its folder, else the definition's path with the extension `safetensors`.
    pub fn weights_path(&self, path: &Path) -> PathBuf {
        match &self.weights {
            Some(weights) => definition_folder(path).join(weights),
            None => path.with_extension("safetensors"),
        }
    }
}

/// The folder a definition's relative paths start from.
fn definition_folder(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

impl Subject {
    /// Loads a subject definition file with its images, masks and cameras.
    pub fn load(path: &Path) -> Result<Self, SubjectError> {
        let text = std::fs::read_to_string(path).map_err(|e| SubjectError::read(path, e))?;
        let definition = SubjectDefinition::parse(&text, path)?;
        Self::from_definition(definition, path)
    }

    /// Loads the files a parsed definition names, relative to `path`'s folder, from the
    /// file system.
    pub fn from_definition(
        definition: SubjectDefinition,
        path: &Path,
    ) -> Result<Self, SubjectError> {
        Self::from_definition_with(definition, path, &mut |file| {
            std::fs::read(file).map_err(|e| SubjectError::read(file, e))
        })
    }

    /// Builds the subject from a parsed definition whose files (those of
    /// [`SubjectDefinition::referenced_files`], under `path`'s folder) `read` returns as
    /// bytes: the file system, or what a Bevy asset loader read through its asset source.
    /// Images are decoded by their content.
    pub fn from_definition_with(
        definition: SubjectDefinition,
        path: &Path,
        read: &mut dyn FnMut(&Path) -> Result<Vec<u8>, SubjectError>,
    ) -> Result<Self, SubjectError> {
        let base = definition_folder(path);
        let invalid = |field: String, reason: String| SubjectError::invalid(path, field, reason);
        let colmap_views = match &definition.colmap {
            Some(folder) => read_colmap(path, &base.join(folder), read)?,
            None => Vec::new(),
        };
        let mut read_image = |file: &Path| -> Result<image::DynamicImage, SubjectError> {
            let bytes = read(file)?;
            image::load_from_memory(&bytes).map_err(|e| SubjectError::read(file, e))
        };
        let mut references = Vec::with_capacity(definition.references.len());
        for (index, entry) in definition.references.iter().enumerate() {
            let field = |name: &str| format!("references[{index}].{name}");
            let image_path = base.join(&entry.image);
            let image = read_image(&image_path)?.to_rgba8();
            let (width, height) = image.dimensions();
            let mask = match &entry.mask {
                Some(mask) => {
                    let mask = read_image(&base.join(mask))?.to_luma8();
                    if mask.dimensions() != (width, height) {
                        return Err(invalid(
                            field("mask"),
                            format!("is {:?}, the image is {width}×{height}", mask.dimensions()),
                        ));
                    }
                    mask
                }
                None => image::GrayImage::from_pixel(width, height, image::Luma([255])),
            };
            let camera = match entry.camera {
                Some(camera) => camera,
                None => {
                    let name = entry
                        .image
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned());
                    colmap_views
                        .iter()
                        .find(|v| {
                            Path::new(&v.name)
                                .file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                == name
                        })
                        .map(|v| v.camera)
                        .ok_or_else(|| {
                            invalid(
                                field("camera"),
                                format!(
                                    "is missing and {} has no camera for it",
                                    if definition.colmap.is_some() {
                                        "the COLMAP model"
                                    } else {
                                        "no COLMAP model"
                                    }
                                ),
                            )
                        })?
                }
            };
            // Cameras may describe the image at another resolution (e.g. COLMAP on full-size
            // photos, references downsized): same aspect ratio, rescaled intrinsics.
            let size = camera.size();
            let aspect_error =
                (size.width as f32 / size.height as f32 - width as f32 / height as f32).abs();
            if aspect_error > 1e-2 {
                return Err(invalid(
                    field("camera"),
                    format!(
                        "is for a {}×{} image, the image is {width}×{height} (another aspect ratio)",
                        size.width, size.height
                    ),
                ));
            }
            let camera = camera
                .resized(width, height)
                .map_err(|e| invalid(field("camera"), e.to_string()))?;
            references.push(Reference {
                path: image_path,
                image,
                mask,
                camera,
            });
        }
        let weights_path = definition.weights_path(path);
        Ok(Self {
            path: path.to_path_buf(),
            token: definition.token,
            class_word: definition.class_word,
            references,
            weights_path,
        })
    }

    /// The reference cameras, in order.
    pub fn cameras(&self) -> Vec<PinholeCamera> {
        self.references.iter().map(|r| r.camera).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{ImageSize, Intrinsics, look_at};
    use glam::Vec3;

    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("mvcustom-subject-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("images")).unwrap();
        Scratch(dir)
    }

    fn camera(width: u32, height: u32) -> PinholeCamera {
        let k = Intrinsics::from_vertical_fov(0.7, width, height).unwrap();
        look_at(
            Vec3::new(0.0, 0.0, 2.0),
            Vec3::ZERO,
            Vec3::Y,
            k,
            ImageSize::new(width, height).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn loads_inline_and_colmap_cameras_resized_to_the_images() {
        let dir = scratch("ok");
        image::RgbaImage::new(32, 24)
            .save(dir.0.join("images/a.png"))
            .unwrap();
        image::RgbaImage::new(32, 24)
            .save(dir.0.join("images/b.png"))
            .unwrap();
        image::GrayImage::new(32, 24)
            .save(dir.0.join("images/a_mask.png"))
            .unwrap();
        std::fs::create_dir_all(dir.0.join("sparse")).unwrap();
        std::fs::write(
            dir.0.join("sparse/cameras.txt"),
            "1 PINHOLE 64 48 50 50 32 24\n",
        )
        .unwrap();
        std::fs::write(
            dir.0.join("sparse/images.txt"),
            "1 1 0 0 0 0 0 3 1 b.png\n\n",
        )
        .unwrap();
        let inline = ron::ser::to_string(&camera(64, 48)).unwrap();
        let text = format!(
            r#"(token: "<robot>", class_word: "toy robot", colmap: Some("sparse"),
                references: [(image: "images/a.png", mask: Some("images/a_mask.png"), camera: Some({inline})),
                             (image: "images/b.png")])"#
        );
        let path = dir.0.join("robot.ron");
        std::fs::write(&path, text).unwrap();
        let subject = Subject::load(&path).unwrap();
        assert_eq!(subject.token, "<robot>");
        assert_eq!(subject.references.len(), 2);
        // Both cameras were for 64×48 and now describe the 32×24 images.
        for r in &subject.references {
            assert_eq!(r.camera.size(), ImageSize::new(32, 24).unwrap());
        }
        assert!((subject.references[1].camera.intrinsics().fx - 25.0).abs() < 1e-5);
        assert_eq!(subject.references[0].mask.get_pixel(0, 0).0, [0]);
        assert_eq!(subject.references[1].mask.get_pixel(0, 0).0, [255]);
        assert_eq!(subject.weights_path, dir.0.join("robot.safetensors"));
    }

    #[test]
    fn the_documented_example_parses() {
        let text = r#"(
            token: "<teddy>",
            class_word: "teddy bear",
            colmap: Some("sparse"),
            references: [
                (image: "images/front.png", mask: Some("masks/front.png")),
                (image: "images/side.png", camera: Some((intrinsics: (fx: 280.0, fy: 280.0,
                    cx: 128.0, cy: 128.0), extrinsics: (rotation: (1, 0, 0, 0, 1, 0, 0, 0, 1),
                    translation: (0, 0, 2)), size: (width: 256, height: 256)))),
            ],
        )"#;
        let definition = SubjectDefinition::parse(text, Path::new("teddy.ron")).unwrap();
        assert_eq!(definition.references.len(), 2);
        let camera = definition.references[1].camera.unwrap();
        assert!((camera.center().z + 2.0).abs() < 1e-6);
    }

    #[test]
    fn bad_definitions_name_the_file_and_field() {
        let dir = scratch("bad");
        let path = dir.0.join("s.ron");
        let parse = |text: &str| SubjectDefinition::parse(text, &path);
        let err =
            parse("(token: \"<a>\", class_word: \"x\", references: [(image: 3)])").unwrap_err();
        assert!(matches!(err, SubjectError::Parse { line: 1, .. }), "{err}");
        let err = parse("(token: \"teddy\", class_word: \"x\", references: [(image: \"a.png\")])")
            .unwrap_err();
        assert!(
            matches!(&err, SubjectError::Invalid { field, .. } if field == "token"),
            "{err}"
        );
        let err = parse("(token: \"<t>\", class_word: \"x\", references: [])").unwrap_err();
        assert!(matches!(&err, SubjectError::Invalid { field, .. } if field == "references"));
        // An image without a camera and no COLMAP model.
        image::RgbaImage::new(8, 8)
            .save(dir.0.join("images/a.png"))
            .unwrap();
        std::fs::write(
            &path,
            "(token: \"<t>\", class_word: \"x\", references: [(image: \"images/a.png\")])",
        )
        .unwrap();
        let err = Subject::load(&path).unwrap_err();
        assert!(
            matches!(&err, SubjectError::Invalid { field, .. } if field == "references[0].camera"),
            "{err}"
        );
        // A missing image names the image.
        std::fs::write(
            &path,
            "(token: \"<t>\", class_word: \"x\", references: [(image: \"images/nope.png\")])",
        )
        .unwrap();
        let err = Subject::load(&path).unwrap_err();
        assert!(err.to_string().contains("nope.png"), "{err}");
    }
}
