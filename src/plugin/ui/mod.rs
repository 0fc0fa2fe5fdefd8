//! The egui control panel (feature `ui`): pick a shot, edit its prompts, pick its subject
//! (among the entities with [`MvCustomSubject`]) and train it (Train / Cancel training, a
//! progress bar, a loss plot), edit sampling settings and technique switches, Generate /
//! Cancel, follow each view's progress, browse the generated views as thumbnails and save
//! them as PNG files.
//!
//! [`MvCustomUiPlugin`] is separate from [`MvCustomPlugin`](super::MvCustomPlugin), which
//! never adds it: egui needs a renderer and a window (or a camera) to draw on, and a headless
//! app with the default features must not get it. Add both to a windowed app:
//!
//! ```no_run
//! use bevy::prelude::*;
//! use bevy_mvcustom::plugin::ui::MvCustomUiPlugin;
//! use bevy_mvcustom::prelude::*;
//!
//! App::new()
//!     .add_plugins(DefaultPlugins)
//!     .add_plugins((MvCustomPlugin::from_folder("models/my-model"), MvCustomUiPlugin))
//!     .run();
//! ```
//!
//! The panel draws on bevy_egui's primary context (by default the first camera spawned); the
//! plugin adds `EguiPlugin` unless the app already has it. "Train" uses
//! [`MvCustomUiState::train_settings`].

mod panel;
mod training;

use std::path::{Path, PathBuf};

use bevy::app::{App, Plugin};
use bevy::asset::{AssetId, Assets};
use bevy::ecs::entity::Entity;
use bevy::ecs::system::SystemParam;
use bevy::image::Image;
use bevy::log::warn;
use bevy::platform::collections::{HashMap, HashSet};
use bevy::prelude::{Commands, Name, Query, Res, ResMut, Resource};
use bevy_egui::{EguiContexts, EguiPlugin, EguiPrimaryContextPass, EguiTextureHandle};

use super::assets::SubjectAsset;
use super::components::{GenerationState, MvCustom, MvCustomShot, MvCustomStatus, ShotViews};
use super::error::PluginError;
use super::events::{CancelShot, GenerateShot};
use super::images::save_png;
use super::settings::ShotDefaults;
use super::training::{CancelTraining, MvCustomSubject, TrainSubject, TrainingStatus};
use crate::mvcustom::train::TrainSettings;
use panel::{PanelModel, ShotItem, ViewItem, draw_panel};
use training::SubjectItem;

/// Adds the MVCustom control panel to an app that renders (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct MvCustomUiPlugin;

impl Plugin for MvCustomUiPlugin {
    fn build(&self, app: &mut App) {
        if !app.is_plugin_added::<EguiPlugin>() {
            app.add_plugins(EguiPlugin::default());
        }
        app.init_resource::<MvCustomUiState>()
            .add_systems(EguiPrimaryContextPass, panel_system);
    }
}

/// The panel's own state; change it to open the panel on a shot or save elsewhere.
#[derive(Resource, Clone, Debug)]
pub struct MvCustomUiState {
    /// Whether the panel is shown (its window's close button clears it).
    pub open: bool,
    /// The shot shown; `None` or a despawned shot: the first one.
    pub selected: Option<Entity>,
    /// The folder "Save PNGs" writes to (created when missing).
    pub save_dir: PathBuf,
    /// The outcome of the last save.
    pub message: Option<String>,
    /// The settings the panel's "Train" button trains subjects with (its sliders edit the
    /// steps, resolution and learning rate).
    pub train_settings: TrainSettings,
    /// Images registered with egui as thumbnails, unregistered when their image goes away.
    registered: HashSet<AssetId<Image>>,
    /// Per shot, the placeholder it composed around before the panel switched composition
    /// off.
    parked_compose: HashMap<Entity, Entity>,
}

impl Default for MvCustomUiState {
    fn default() -> Self {
        Self {
            open: true,
            selected: None,
            save_dir: PathBuf::from("mvcustom_views"),
            message: None,
            train_settings: TrainSettings::default(),
            registered: HashSet::default(),
            parked_compose: HashMap::default(),
        }
    }
}

/// Writes each of `views` (in the shot's order, `None` for a view with nothing to save) to
/// `dir` as `{shot_name}_view{k}.png`, creating `dir` when missing; returns the files
/// written. The shot name is reduced to letters, digits, `-` and `_`.
pub fn save_views(
    dir: &Path,
    shot_name: &str,
    views: &[Option<&Image>],
) -> Result<Vec<PathBuf>, PluginError> {
    std::fs::create_dir_all(dir).map_err(|e| PluginError::File {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    let stem: String = shot_name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut written = Vec::new();
    for (k, image) in views.iter().enumerate() {
        if let Some(image) = image {
            let path = dir.join(format!("{stem}_view{k}.png"));
            save_png(image, &path)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// What the panel reads of a shot.
type ShotData = (
    Entity,
    &'static mut MvCustomShot,
    Option<&'static Name>,
    Option<&'static ShotViews>,
);

/// What the panel reads of a camera.
type ViewData = (
    &'static MvCustom,
    &'static MvCustomStatus,
    Option<&'static Name>,
);

/// The subjects the panel lists, with their definitions for labels.
#[derive(SystemParam)]
struct PanelSubjects<'w, 's> {
    entities: Query<
        'w,
        's,
        (
            Entity,
            &'static MvCustomSubject,
            &'static TrainingStatus,
            Option<&'static Name>,
        ),
    >,
    assets: Option<Res<'w, Assets<SubjectAsset>>>,
}

impl PanelSubjects<'_, '_> {
    /// Every subject entity, in entity order, labelled by its name, else its token, else its
    /// asset path.
    fn items(&self) -> Vec<SubjectItem> {
        let mut items: Vec<SubjectItem> = self
            .entities
            .iter()
            .map(|(entity, subject, status, name)| {
                let token = self
                    .assets
                    .as_ref()
                    .and_then(|assets| assets.get(&subject.subject))
                    .map(|asset| asset.subject().token.clone());
                let label = name
                    .map(ToString::to_string)
                    .or(token)
                    .or_else(|| subject.subject.path().map(ToString::to_string))
                    .unwrap_or_else(|| format!("subject {entity}"));
                SubjectItem {
                    entity,
                    label,
                    handle: subject.subject.clone(),
                    state: status.state().clone(),
                    losses: status.losses().to_vec(),
                }
            })
            .collect();
        items.sort_by_key(|item| item.entity);
        items
    }
}

/// Draws the panel and carries out what the user asked for.
#[allow(clippy::too_many_arguments)]
fn panel_system(
    mut contexts: EguiContexts,
    mut state: ResMut<MvCustomUiState>,
    mut shots: Query<ShotData>,
    cameras: Query<ViewData>,
    subjects: PanelSubjects,
    defaults: Option<Res<ShotDefaults>>,
    images: Res<Assets<Image>>,
    mut commands: Commands,
) {
    if !state.open {
        return;
    }
    let mut items: Vec<ShotItem> = shots
        .iter()
        .map(|(entity, shot, name, _)| ShotItem {
            entity,
            label: shot_label(entity, shot, name),
        })
        .collect();
    items.sort_by_key(|item| item.entity);
    let selected = state
        .selected
        .filter(|entity| items.iter().any(|item| item.entity == *entity))
        .or_else(|| items.first().map(|item| item.entity));
    state.selected = selected;
    state
        .parked_compose
        .retain(|shot, _| items.iter().any(|item| item.entity == *shot));
    let mut parked = selected.and_then(|shot| state.parked_compose.get(&shot).copied());

    // The selected shot's views, in its order, with their thumbnails registered.
    let mut ordered: Vec<(i32, Entity, &MvCustomStatus, Option<&Name>)> = selected
        .and_then(|shot| shots.get(shot).ok())
        .and_then(|(_, _, _, views)| views)
        .map_or(&[][..], ShotViews::cameras)
        .iter()
        .filter_map(|&camera| {
            let (view, status, name) = cameras.get(camera).ok()?;
            Some((view.order, camera, status, name))
        })
        .collect();
    ordered.sort_by_key(|&(order, camera, ..)| (order, camera));
    let views: Vec<ViewItem> = ordered
        .iter()
        .map(|&(_, camera, status, name)| ViewItem {
            label: name.map_or_else(|| format!("camera {camera}"), |n| n.as_str().to_owned()),
            state: status.state().clone(),
            thumbnail: status.image().and_then(|handle| {
                let size = images.get(handle)?.size();
                let id = handle.id();
                state.registered.insert(id);
                let texture = contexts
                    .image_id(id)
                    .unwrap_or_else(|| contexts.add_image(EguiTextureHandle::Weak(id)));
                Some((texture, size))
            }),
        })
        .collect();
    let gone: Vec<AssetId<Image>> = state
        .registered
        .iter()
        .copied()
        .filter(|&id| !images.contains(id))
        .collect();
    for id in gone {
        contexts.remove_image(id);
        state.registered.remove(&id);
    }

    let Ok(ctx) = contexts.ctx_mut().map(|ctx| ctx.clone()) else {
        return;
    };
    let defaults = defaults.map(|d| d.clone()).unwrap_or_default();
    let mut edited = selected.and_then(|shot| Some((shot, shots.get(shot).ok()?.1.clone())));
    let mut save_dir = state.save_dir.display().to_string();
    let mut open = state.open;
    let subject_items = subjects.items();
    let mut train_settings = state.train_settings.clone();
    let actions = {
        let mut model = PanelModel {
            shots: &items,
            selected: edited.as_mut().map(|(entity, shot)| (*entity, shot)),
            defaults: &defaults,
            views: &views,
            save_dir: &mut save_dir,
            message: state.message.as_deref(),
            subjects: &subject_items,
            train_settings: &mut train_settings,
            parked_compose: &mut parked,
        };
        draw_panel(&ctx, &mut open, &mut model)
    };
    if let Some(shot) = selected {
        match parked {
            Some(placeholder) => state.parked_compose.insert(shot, placeholder),
            None => state.parked_compose.remove(&shot),
        };
    }
    state.open = open;
    state.save_dir = PathBuf::from(save_dir);
    if state.train_settings != train_settings {
        state.train_settings = train_settings;
    }
    if let Some(entity) = actions.training.train {
        commands.trigger(TrainSubject::new(entity, state.train_settings.clone()));
    }
    if let Some(entity) = actions.training.cancel {
        commands.trigger(CancelTraining { entity });
    }

    if let Some(entity) = actions.select {
        state.selected = Some(entity);
    }
    let Some((shot, edited)) = edited else { return };
    let Ok((_, mut current, name, _)) = shots.get_mut(shot) else {
        return;
    };
    // Written back only when changed, so change detection sees real edits only.
    if *current != edited {
        *current = edited;
    }
    if actions.generate {
        commands.trigger(GenerateShot { shot });
    }
    if actions.cancel {
        commands.trigger(CancelShot { shot });
    }
    if actions.save {
        let done: Vec<Option<&Image>> = ordered
            .iter()
            .map(|(_, _, status, _)| {
                (*status.state() == GenerationState::Done)
                    .then(|| status.image().and_then(|handle| images.get(handle)))
                    .flatten()
            })
            .collect();
        let shot_name = name.map_or_else(|| format!("shot{}", shot.index()), |n| n.to_string());
        state.message = Some(match save_views(&state.save_dir, &shot_name, &done) {
            Ok(written) => format!(
                "saved {} view(s) to {}",
                written.len(),
                state.save_dir.display()
            ),
            Err(e) => {
                warn!("saving the views of shot {shot}: {e}");
                format!("save failed: {e}")
            }
        });
    }
}

/// The picker's label of a shot: its name, else its entity and the start of its prompt.
fn shot_label(entity: Entity, shot: &MvCustomShot, name: Option<&Name>) -> String {
    if let Some(name) = name {
        return name.to_string();
    }
    let mut prompt: String = shot.prompt.chars().take(32).collect();
    if shot.prompt.chars().count() > 32 {
        prompt.push('…');
    }
    format!("shot {entity}: {prompt}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::images::to_bevy_image;

    #[test]
    fn save_views_writes_the_done_views_under_a_safe_name() {
        let dir = std::env::temp_dir().join(format!("mvcustom-ui-{}", std::process::id()));
        let a = image::RgbaImage::from_pixel(4, 2, image::Rgba([1, 2, 3, 255]));
        let b = image::RgbaImage::from_pixel(4, 2, image::Rgba([9, 8, 7, 255]));
        let (a_image, b_image) = (to_bevy_image(&a), to_bevy_image(&b));
        let written = save_views(
            &dir.join("nested"),
            "my shot/1",
            &[Some(&a_image), None, Some(&b_image)],
        )
        .unwrap();
        assert_eq!(
            written,
            vec![
                dir.join("nested/my_shot_1_view0.png"),
                dir.join("nested/my_shot_1_view2.png")
            ]
        );
        assert_eq!(image::open(&written[0]).unwrap().to_rgba8(), a);
        assert_eq!(image::open(&written[1]).unwrap().to_rgba8(), b);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unnamed_shots_are_labelled_by_entity_and_prompt() {
        let entity = Entity::from_raw_u32(3).unwrap();
        let shot = MvCustomShot::new("a very long prompt about a teddy bear on a table");
        let label = shot_label(entity, &shot, None);
        assert!(label.starts_with(&format!("shot {entity}: a very long prompt")));
        assert!(label.ends_with('…'));
        assert_eq!(shot_label(entity, &shot, Some(&Name::new("hero"))), "hero");
    }
}
