//! The components a user puts on entities (`MvCustomShot` on a shot entity, `MvCustom` on each
//! of its cameras) and the status the plugin maintains on each camera.

use bevy::asset::Handle;
use bevy::ecs::entity::Entity;
use bevy::image::Image;
use bevy::math::UVec2;
use bevy::prelude::{Component, ReflectComponent, ReflectDefault};
use bevy::reflect::{Reflect, ReflectDeserialize, ReflectSerialize, impl_reflect_opaque};

use super::assets::SubjectAsset;
use crate::mvcustom::compose::CompositionSettings;
use crate::mvcustom::{Stage, Techniques};

impl_reflect_opaque!((in bevy_mvcustom::mvcustom as Techniques) crate::mvcustom::Techniques(
    Clone,
    Debug,
    PartialEq,
    Default,
    Serialize,
    Deserialize
));
impl_reflect_opaque!((in bevy_mvcustom::mvcustom::compose as CompositionSettings)
crate::mvcustom::compose::CompositionSettings(
    Clone,
    Debug,
    PartialEq,
    Default,
    Serialize,
    Deserialize
));
impl_reflect_opaque!((in bevy_mvcustom::mvcustom as Stage) crate::mvcustom::Stage(
    Clone, Debug, PartialEq
));

/// Written in a shot's prompt (or negative prompt), stands for its subject's token:
/// `"a photo of {subject} on a beach"` generates `a photo of <teddy> on a beach` for the
/// subject `<teddy>`.
pub const SUBJECT_PLACEHOLDER: &str = "{subject}";

/// One generation's worth of settings: the cameras pointing at this entity with [`MvCustom`]
/// are generated together, as consistent views of one subject in one scene.
///
/// Settings left `None` come from the [`ShotDefaults`](super::ShotDefaults) resource when the
/// generation starts. Start a generation with [`GenerateShot`](super::GenerateShot) or
/// [`MvCustomCommandsExt::generate_views`](super::MvCustomCommandsExt::generate_views);
/// changing this component does not start one by itself.
#[derive(Component, Reflect, Clone, Debug, Default, PartialEq)]
#[reflect(Component, Default, Debug, PartialEq)]
pub struct MvCustomShot {
    /// The prompt, naming the shot's subject (if any) by its token, `a photo of <teddy> on
    /// a beach`, or by [`SUBJECT_PLACEHOLDER`]: `a photo of {subject} on a beach`.
    pub prompt: String,
    /// What to steer away from ("" for nothing).
    pub negative_prompt: String,
    /// Seed of the initial noise: the same shot with the same seed gives the same views on
    /// the CPU.
    pub seed: u64,
    /// Denoising steps (`None`: the default).
    pub steps: Option<u32>,
    /// Classifier-free guidance scale (`None`: the default).
    pub guidance: Option<f32>,
    /// Size of every generated view in pixels (`None`: the default). A camera whose aspect
    /// ratio differs is generated over its whole frustum, stretched to this size.
    pub size: Option<UVec2>,
    /// Update the views' images with a decoded preview every this many steps (`None`: the
    /// default).
    pub preview_every: Option<u32>,
    /// Which of MVCustom's techniques to use.
    pub techniques: Techniques,
    /// The trained subject to generate (`None`: the prompt alone). A generation waits,
    /// queued, while the subject loads; one whose subject failed to load, or has no trained
    /// weights yet, fails with the reason.
    pub subject: Option<Handle<SubjectAsset>>,
    /// The camera whose features are rendered into the others (depth-aware feature
    /// rendering); `None`: the middle view. Must be one of this shot's cameras.
    #[entities]
    pub anchor: Option<Entity>,
    /// Compose into the scene around this entity (the subject's placeholder): each view
    /// keeps its camera's own render outside the entity's projected bounding box (its and
    /// its descendants' `Aabb`s), grown by [`composition`](Self::composition), and only that
    /// region is generated. Needs an app that renders; `None`: whole views are generated.
    #[entities]
    pub compose: Option<Entity>,
    /// How far the generated region grows around the subject's projected bounds, and the
    /// width of the band where it blends into the background.
    pub composition: CompositionSettings,
    /// Start each view from its camera's own render and regenerate this fraction of the
    /// denoising, in (0, 1] (video-to-video): the views keep the scene's layout, consistent
    /// from camera to camera, and the prompt restyles them. Needs an app that renders;
    /// `None`: views start from noise.
    pub restyle: Option<f32>,
}

impl MvCustomShot {
    /// A restyling strength that keeps a scene's layout and lets the prompt change its look
    /// (what the UI panel's switch and the previz example start with).
    pub const DEFAULT_RESTYLE: f32 = 0.4;

    /// A shot with this prompt and every other setting at its default.
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            ..Self::default()
        }
    }

    /// The same shot with this negative prompt.
    pub fn with_negative_prompt(mut self, negative_prompt: impl Into<String>) -> Self {
        self.negative_prompt = negative_prompt.into();
        self
    }

    /// The same shot with this seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The same shot with this many denoising steps.
    pub fn with_steps(mut self, steps: u32) -> Self {
        self.steps = Some(steps);
        self
    }

    /// The same shot with this guidance scale.
    pub fn with_guidance(mut self, guidance: f32) -> Self {
        self.guidance = Some(guidance);
        self
    }

    /// The same shot generating views of `width × height` pixels.
    pub fn with_size(mut self, width: u32, height: u32) -> Self {
        self.size = Some(UVec2::new(width, height));
        self
    }

    /// The same shot updating its images with a preview every `steps` steps.
    pub fn with_preview_every(mut self, steps: u32) -> Self {
        self.preview_every = Some(steps);
        self
    }

    /// The same shot with these technique switches.
    pub fn with_techniques(mut self, techniques: Techniques) -> Self {
        self.techniques = techniques;
        self
    }

    /// The same shot generating this subject.
    pub fn with_subject(mut self, subject: Handle<SubjectAsset>) -> Self {
        self.subject = Some(subject);
        self
    }

    /// The same shot composed into the scene around `subject` (see
    /// [`compose`](Self::compose)).
    pub fn composed_around(mut self, subject: Entity) -> Self {
        self.compose = Some(subject);
        self
    }

    /// The same shot started from its cameras' renders, regenerating `strength` of the
    /// denoising (see [`restyle`](Self::restyle)).
    pub fn restyled(mut self, strength: f32) -> Self {
        self.restyle = Some(strength);
        self
    }

    /// The same shot anchored on this camera.
    pub fn with_anchor(mut self, camera: Entity) -> Self {
        self.anchor = Some(camera);
        self
    }
}

/// Put on a `Camera` entity to have a view generated from its pose: which shot it belongs
/// to, and where its view goes in the shot's order (views are generated as the frames of one
/// clip, sorted by `order`, then by entity).
///
/// The pose is the camera's `GlobalTransform` and `Projection` at the moment the generation
/// starts, over its viewport (or render target) size when Bevy has computed it, else over
/// the shot's size. The component is immutable: insert a new one to move the camera to
/// another shot or order. Removing it (or despawning the camera) while its shot is being
/// generated cancels that generation.
#[derive(Component, Reflect, Clone, Debug, PartialEq)]
#[component(immutable)]
#[relationship(relationship_target = ShotViews)]
#[require(MvCustomStatus)]
#[reflect(Component, Debug, PartialEq)]
pub struct MvCustom {
    /// The entity holding this camera's [`MvCustomShot`].
    #[relationship]
    #[entities]
    pub shot: Entity,
    /// Position of this view in the shot.
    pub order: i32,
}

impl MvCustom {
    /// A view of `shot` at order 0.
    pub fn new(shot: Entity) -> Self {
        Self { shot, order: 0 }
    }

    /// The same view at this position in the shot's order.
    pub fn with_order(mut self, order: i32) -> Self {
        self.order = order;
        self
    }
}

/// The cameras of a shot, maintained by Bevy from their [`MvCustom`] components (do not
/// insert it yourself). Despawning the shot removes `MvCustom` from its cameras but keeps
/// the cameras.
#[derive(Component, Reflect, Debug, Default, PartialEq)]
#[relationship_target(relationship = MvCustom)]
#[reflect(Component, Debug, Default)]
pub struct ShotViews(Vec<Entity>);

impl ShotViews {
    /// The cameras, in no particular order (the shot's order comes from [`MvCustom::order`]).
    pub fn cameras(&self) -> &[Entity] {
        &self.0
    }
}

/// Where a camera's generation stands.
#[derive(Clone, Debug, Default, PartialEq, Reflect)]
#[reflect(Default, Debug, PartialEq)]
pub enum GenerationState {
    /// Nothing generated yet.
    #[default]
    Idle,
    /// Asked for; waiting for the generation to start (and, the first time, for the model
    /// to load).
    Queued,
    /// Computing.
    Running {
        /// What the generation is doing.
        stage: Stage,
        /// Denoising steps done.
        step: usize,
        /// Denoising steps of the run.
        total: usize,
    },
    /// Finished: the image holds the generated view.
    Done,
    /// Failed, with the error's text.
    Failed(String),
    /// Cancelled before it finished (on request, or because the shot or one of its cameras
    /// went away).
    Cancelled,
}

impl GenerationState {
    /// Fraction of the denoising done, in [0, 1]; `None` unless running or done.
    pub fn progress(&self) -> Option<f32> {
        match self {
            GenerationState::Running { step, total, .. } if *total > 0 => {
                Some(*step as f32 / *total as f32)
            }
            GenerationState::Running { .. } => Some(0.0),
            GenerationState::Done => Some(1.0),
            _ => None,
        }
    }

    /// Whether a generation is queued or running.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            GenerationState::Queued | GenerationState::Running { .. }
        )
    }
}

/// A camera's generation status and generated view, maintained by the plugin (read it, do
/// not write it). Added automatically with [`MvCustom`].
///
/// The image handle is created when the camera's first generation starts and kept across
/// generations, so a material or UI node showing it updates by itself (with previews while
/// running, when asked for).
#[derive(Component, Reflect, Clone, Debug, Default, PartialEq)]
#[reflect(Component, Default, Debug, PartialEq)]
pub struct MvCustomStatus {
    state: GenerationState,
    image: Option<Handle<Image>>,
}

impl MvCustomStatus {
    /// Where the camera's generation stands.
    pub fn state(&self) -> &GenerationState {
        &self.state
    }

    /// The camera's generated view (an RGBA8 sRGB image of the shot's size), once a
    /// generation has started.
    pub fn image(&self) -> Option<&Handle<Image>> {
        self.image.as_ref()
    }

    /// Sets the state (plugin only).
    pub(crate) fn set_state(&mut self, state: GenerationState) {
        self.state = state;
    }

    /// Sets the image handle (plugin only).
    pub(crate) fn set_image(&mut self, image: Handle<Image>) {
        self.image = Some(image);
    }
}
