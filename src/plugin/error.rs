//! Errors of the plugin layer: a shot that cannot become a request, a generation that failed
//! or panicked, an image that cannot be saved.

use std::path::PathBuf;

use bevy::ecs::entity::Entity;

use crate::camera::CameraError;
use crate::mvcustom::MvError;

/// Why a generation could not start or finish, or an image could not be saved. Its text is
/// what [`GenerationState::Failed`](super::GenerationState::Failed) and
/// [`ShotFailed`](super::ShotFailed) carry.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The entity asked to generate has no `MvCustomShot`.
    #[error("entity {entity} has no `MvCustomShot`")]
    NotAShot {
        /// The entity.
        entity: Entity,
    },
    /// No camera belongs to the shot.
    #[error("shot {shot} has no cameras (no entity has an `MvCustom` pointing at it)")]
    NoViews {
        /// The shot.
        shot: Entity,
    },
    /// A camera of the shot lacks a component needed for its pose.
    #[error("camera {camera} of shot {shot} has no `{component}`")]
    MissingComponent {
        /// The shot.
        shot: Entity,
        /// The camera.
        camera: Entity,
        /// The component it lacks.
        component: &'static str,
    },
    /// A camera's pose or projection cannot be converted.
    #[error("camera {camera}: {source}")]
    Camera {
        /// The camera.
        camera: Entity,
        /// The camera model's objection.
        #[source]
        source: CameraError,
    },
    /// The shot's anchor is not one of its cameras.
    #[error("shot {shot}: anchor {anchor} is not one of its cameras")]
    AnchorNotInShot {
        /// The shot.
        shot: Entity,
        /// The anchor it names.
        anchor: Entity,
    },
    /// The shot's subject failed to load (its file, or a file it names, is missing or
    /// malformed): the loader's error names the file and field.
    #[error("shot {shot}: subject {path}: {reason}")]
    SubjectLoad {
        /// The shot.
        shot: Entity,
        /// The subject's asset path.
        path: String,
        /// The loader's error.
        reason: String,
    },
    /// The shot's subject handle points at no asset (it was removed).
    #[error("shot {shot}: its subject asset does not exist (removed?)")]
    SubjectMissing {
        /// The shot.
        shot: Entity,
    },
    /// The shot's prompt names `{subject}` but the shot has no subject.
    #[error("shot {shot}: its prompt names `{{subject}}` but the shot has no subject")]
    PlaceholderWithoutSubject {
        /// The shot.
        shot: Entity,
    },
    /// The shot's subject has no trained weights yet.
    #[error(
        "shot {shot}: subject {path} is not trained yet (no weights file {weights}); train it \
         first (`TrainSubject`)"
    )]
    UntrainedSubject {
        /// The shot.
        shot: Entity,
        /// The subject's asset path.
        path: String,
        /// Where its weights would be.
        weights: String,
    },
    /// The entity asked to train has no `MvCustomSubject`.
    #[error("entity {entity} has no `MvCustomSubject`")]
    NotASubject {
        /// The entity.
        entity: Entity,
    },
    /// The subject to train failed to load or does not exist.
    #[error("training {entity}: subject {path}: {reason}")]
    TrainingSubject {
        /// The subject entity.
        entity: Entity,
        /// The subject's asset path.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The subject to train does not come from the default asset source, so there is no file
    /// system folder to write its weights to.
    #[error(
        "subject {path} is not in the default asset source: training writes its weights \
         beside its definition on the file system"
    )]
    SubjectSource {
        /// The subject's asset path.
        path: String,
    },
    /// The app has no asset folder (no `AssetPlugin`) to write trained weights to.
    #[error("training needs AssetPlugin: the subject's weights go to its asset folder")]
    NoAssetFolder,
    /// The shot composes around an entity that has no bounding box (no `Aabb` on it or its
    /// descendants).
    #[error(
        "shot {shot}: its compose subject {subject} has no bounding box (no `Aabb` on it or \
         its descendants: give it a mesh, or an `Aabb`)"
    )]
    ComposeSubject {
        /// The shot.
        shot: Entity,
        /// The entity it composes around.
        subject: Entity,
    },
    /// The shot composes into or restyles the scene, but the app does not render it.
    #[error(
        "shot {shot}: composing into or restyling the scene needs the cameras' renders, and \
         this app does not render (no render app with screenshots)"
    )]
    NoRenderer {
        /// The shot.
        shot: Entity,
    },
    /// A camera's render could not be captured (as a composition background or a view to
    /// restyle).
    #[error("shot {shot}: the render of camera {}: {reason}", camera.map_or_else(|| "?".to_string(), |c| c.to_string()))]
    Capture {
        /// The shot.
        shot: Entity,
        /// The camera, when known.
        camera: Option<Entity>,
        /// What went wrong.
        reason: String,
    },
    /// A Bevy image cannot be turned into RGBA8 pixels.
    #[error("image: {reason}")]
    Image {
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The model configuration asset failed to load.
    #[error("model configuration {path}: {reason}")]
    ModelConfig {
        /// The configuration's asset path.
        path: String,
        /// The loader's error.
        reason: String,
    },
    /// The model comes from a configuration asset that has not been applied yet.
    #[error("the model configuration {path} has not loaded yet")]
    ModelConfigPending {
        /// The configuration's asset path.
        path: String,
    },
    /// The generator returned another number of images than views were asked for.
    #[error("the generator returned {got} images for {expected} views")]
    ViewCount {
        /// Views asked for.
        expected: usize,
        /// Images returned.
        got: usize,
    },
    /// The generation or training (or the model load before it) panicked; the panic was
    /// caught.
    #[error("{task} panicked: {message}")]
    Panicked {
        /// What panicked: "generation", "training", "model load".
        task: &'static str,
        /// The panic's message.
        message: String,
    },
    /// The model failed to load or to generate.
    #[error(transparent)]
    Generation(#[from] MvError),
}

impl PluginError {
    /// Whether this is a cancellation rather than a failure.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, PluginError::Generation(e) if e.is_cancelled())
    }
}
