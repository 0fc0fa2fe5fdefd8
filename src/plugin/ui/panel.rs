//! The control panel's drawing: one egui window over a snapshot of the plugin's state (the
//! shots, the selected shot's settings, its views' statuses and thumbnails), returning what
//! the user asked for. Nothing here touches the ECS, so it runs on any egui context.

use bevy::ecs::entity::Entity;
use bevy::math::UVec2;
use bevy_egui::egui;

use super::training::{SubjectItem, TrainingActions, subject_section};
use crate::mvcustom::Stage;
use crate::mvcustom::train::TrainSettings;
use crate::plugin::components::{GenerationState, MvCustomShot};
use crate::plugin::settings::ShotDefaults;

/// Largest side of a gallery thumbnail, in points.
const THUMBNAIL: f32 = 96.0;
/// Range of the generated views' sides, in pixels (multiples of the VAE's factor 8).
const SIZE_RANGE: std::ops::RangeInclusive<u32> = 64..=1024;

/// A shot as the picker lists it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ShotItem {
    /// The shot entity.
    pub entity: Entity,
    /// Its name, or a description from its entity and prompt.
    pub label: String,
}

/// A view (camera) of the selected shot.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ViewItem {
    /// Its name, or its entity.
    pub label: String,
    /// Where its generation stands.
    pub state: GenerationState,
    /// Its generated image as an egui texture, with the image's size, once it has one.
    pub thumbnail: Option<(egui::TextureId, UVec2)>,
}

/// What the panel shows and edits this frame.
pub(crate) struct PanelModel<'a> {
    /// Every shot, in a stable order.
    pub shots: &'a [ShotItem],
    /// The selected shot and a copy of its settings, edited in place.
    pub selected: Option<(Entity, &'a mut MvCustomShot)>,
    /// What unset settings fall back to.
    pub defaults: &'a ShotDefaults,
    /// The selected shot's views, in the shot's order.
    pub views: &'a [ViewItem],
    /// The folder "Save PNGs" writes to, edited in place.
    pub save_dir: &'a mut String,
    /// The outcome of the last save, shown under the gallery.
    pub message: Option<&'a str>,
    /// The subjects the picker lists.
    pub subjects: &'a [SubjectItem],
    /// The settings "Train" uses, edited in place.
    pub train_settings: &'a mut TrainSettings,
    /// The placeholder entity the selected shot composed around before the panel switched
    /// its composition off (restored when switched back on), edited in place.
    pub parked_compose: &'a mut Option<Entity>,
}

/// What the user asked for this frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PanelActions {
    /// Select this shot.
    pub select: Option<Entity>,
    /// Generate the selected shot.
    pub generate: bool,
    /// Cancel the selected shot's generation.
    pub cancel: bool,
    /// Save the selected shot's views as PNG files.
    pub save: bool,
    /// Train or cancel the training of a subject.
    pub training: TrainingActions,
}

/// Draws the panel as a window titled "MVCustom" (closable through `open`).
pub(crate) fn draw_panel(
    ctx: &egui::Context,
    open: &mut bool,
    model: &mut PanelModel<'_>,
) -> PanelActions {
    let mut actions = PanelActions::default();
    egui::Window::new("MVCustom")
        .open(open)
        .default_size([340.0, 760.0])
        .show(ctx, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                shot_picker(ui, model, &mut actions);
                let Some((_, shot)) = model.selected.as_mut() else {
                    ui.label(
                        "No shot: spawn an entity with `MvCustomShot` and cameras with `MvCustom`.",
                    );
                    return;
                };
                ui.separator();
                prompts(ui, shot);
                actions.training = subject_section(ui, shot, model.subjects, model.train_settings);
                ui.separator();
                sampling(ui, shot, model.defaults);
                techniques(ui, shot);
                composition(ui, shot, model.parked_compose);
                restyle(ui, shot);
                ui.separator();
                buttons(ui, model.views, &mut actions);
                progress(ui, model.views);
                ui.separator();
                gallery(ui, model, &mut actions);
            });
        });
    actions
}

/// The shot picker.
fn shot_picker(ui: &mut egui::Ui, model: &PanelModel<'_>, actions: &mut PanelActions) {
    let selected = model.selected.as_ref().map(|(entity, _)| *entity);
    let current = model
        .shots
        .iter()
        .find(|item| Some(item.entity) == selected)
        .map_or("none", |item| item.label.as_str());
    egui::ComboBox::from_label("Shot")
        .selected_text(current)
        .show_ui(ui, |ui| {
            for item in model.shots {
                if ui
                    .selectable_label(Some(item.entity) == selected, &item.label)
                    .clicked()
                {
                    actions.select = Some(item.entity);
                }
            }
        });
}

/// Prompt and negative prompt.
fn prompts(ui: &mut egui::Ui, shot: &mut MvCustomShot) {
    ui.label("Prompt");
    ui.add(egui::TextEdit::multiline(&mut shot.prompt).desired_rows(2));
    ui.label("Negative prompt");
    ui.add(egui::TextEdit::multiline(&mut shot.negative_prompt).desired_rows(1));
}

/// Steps, guidance, seed, size: each shows the shot's value or the default it falls back to;
/// moving it sets the shot's own value.
fn sampling(ui: &mut egui::Ui, shot: &mut MvCustomShot, defaults: &ShotDefaults) {
    option_slider(ui, &mut shot.steps, defaults.steps, 1..=100, "steps");
    option_slider(
        ui,
        &mut shot.guidance,
        defaults.guidance,
        1.0..=20.0,
        "guidance",
    );
    ui.horizontal(|ui| {
        ui.add(egui::DragValue::new(&mut shot.seed));
        ui.label("seed");
        if ui.button("🎲").on_hover_text("random seed").clicked() {
            shot.seed = u64::from(rand::random::<u32>());
        }
    });
    let mut size = shot.size.unwrap_or(defaults.size);
    let mut changed = false;
    for (side, label) in [(&mut size.x, "width"), (&mut size.y, "height")] {
        changed |= ui
            .add(egui::Slider::new(side, SIZE_RANGE).step_by(8.0).text(label))
            .changed();
    }
    if changed {
        shot.size = Some(size);
    }
    if ui
        .add_enabled(
            shot.steps.is_some() || shot.guidance.is_some() || shot.size.is_some(),
            egui::Button::new("Use defaults"),
        )
        .clicked()
    {
        shot.steps = None;
        shot.guidance = None;
        shot.size = None;
    }
}

/// A slider over an optional setting: shows `value` or `default`, sets `value` when moved.
fn option_slider<T: egui::emath::Numeric>(
    ui: &mut egui::Ui,
    value: &mut Option<T>,
    default: T,
    range: std::ops::RangeInclusive<T>,
    label: &str,
) {
    let mut shown = value.unwrap_or(default);
    if ui
        .add(egui::Slider::new(&mut shown, range).text(label))
        .changed()
    {
        *value = Some(shown);
    }
}

/// MVCustom's technique switches.
fn techniques(ui: &mut egui::Ui, shot: &mut MvCustomShot) {
    let techniques = &mut shot.techniques;
    egui::CollapsingHeader::new("Techniques").show(ui, |ui| {
        ui.checkbox(
            &mut techniques.dense_attention,
            "dense spatio-temporal attention",
        );
        if techniques.dense_attention {
            let mut windowed = techniques.attention_window.is_some();
            ui.horizontal(|ui| {
                ui.checkbox(&mut windowed, "window");
                let mut radius = techniques.attention_window.unwrap_or(4);
                if windowed {
                    ui.add(egui::DragValue::new(&mut radius).range(1..=64));
                }
                techniques.attention_window = windowed.then_some(radius);
            });
        }
        ui.checkbox(&mut techniques.pose_blocks, "pose blocks (with a subject)");
        let mut dfr = techniques.dfr.is_some();
        ui.checkbox(&mut dfr, "depth-aware feature rendering");
        toggle(&mut techniques.dfr, dfr);
        if let Some(dfr) = techniques.dfr.as_mut() {
            ui.add(egui::Slider::new(&mut dfr.step_fraction, 0.0..=1.0).text("DFR steps"));
            ui.add(
                egui::Slider::new(&mut dfr.max_surface_angle_deg, 45.0..=89.0)
                    .text("max surface angle °"),
            );
        }
        let mut clc = techniques.clc.is_some();
        ui.checkbox(&mut clc, "consistency-aware latent completion");
        toggle(&mut techniques.clc, clc);
        if let Some(clc) = techniques.clc.as_mut() {
            ui.add(egui::Slider::new(&mut clc.step_fraction, 0.0..=1.0).text("CLC steps"));
        }
    });
}

/// Composition into the scene around the shot's placeholder entity: a switch (the
/// placeholder is kept while it is off) and the margins of the generated region. Shown only
/// for shots that name a placeholder.
fn composition(ui: &mut egui::Ui, shot: &mut MvCustomShot, parked: &mut Option<Entity>) {
    if shot.compose.is_none() && parked.is_none() {
        return;
    }
    egui::CollapsingHeader::new("Composition")
        .default_open(true)
        .show(ui, |ui| {
            let mut on = shot.compose.is_some();
            if ui.checkbox(&mut on, "compose into the scene").changed() {
                if on {
                    shot.compose = parked.take();
                } else {
                    *parked = shot.compose.take();
                }
            }
            if shot.compose.is_some() {
                let settings = &mut shot.composition;
                ui.add(egui::Slider::new(&mut settings.dilation, 0.0..=64.0).text("margin px"));
                ui.add(
                    egui::Slider::new(&mut settings.blend_band, 0.0..=64.0).text("blend band px"),
                );
            }
        });
}

/// Starting the views from the cameras' own renders (video-to-video) and the fraction of
/// the denoising that restyles them.
fn restyle(ui: &mut egui::Ui, shot: &mut MvCustomShot) {
    let mut on = shot.restyle.is_some();
    if ui
        .checkbox(&mut on, "start from the cameras' renders")
        .changed()
    {
        shot.restyle = on.then_some(MvCustomShot::DEFAULT_RESTYLE);
    }
    if let Some(strength) = shot.restyle.as_mut() {
        ui.add(egui::Slider::new(strength, 0.05..=1.0).text("restyle strength"));
    }
}

/// Switches an optional technique on (with its default settings) or off.
fn toggle<T: Default>(setting: &mut Option<T>, on: bool) {
    match (setting.is_some(), on) {
        (false, true) => *setting = Some(T::default()),
        (true, false) => *setting = None,
        _ => {}
    }
}

/// Generate and Cancel.
fn buttons(ui: &mut egui::Ui, views: &[ViewItem], actions: &mut PanelActions) {
    let busy = views.iter().any(|view| view.state.is_busy());
    ui.horizontal(|ui| {
        let generate = ui
            .add_enabled(!views.is_empty(), egui::Button::new("Generate"))
            .on_disabled_hover_text("the shot has no cameras");
        actions.generate = generate.clicked();
        actions.cancel = ui.add_enabled(busy, egui::Button::new("Cancel")).clicked();
    });
}

/// A progress bar per view.
fn progress(ui: &mut egui::Ui, views: &[ViewItem]) {
    for view in views {
        ui.horizontal(|ui| {
            ui.label(&view.label);
            let text = state_text(&view.state);
            match view.state.progress() {
                Some(fraction) => {
                    ui.add(egui::ProgressBar::new(fraction).text(text));
                }
                None => {
                    ui.label(text);
                }
            }
        });
    }
}

/// Thumbnails of the views, a save folder and "Save PNGs".
fn gallery(ui: &mut egui::Ui, model: &mut PanelModel<'_>, actions: &mut PanelActions) {
    ui.label("Gallery");
    ui.horizontal_wrapped(|ui| {
        for view in model.views {
            if let Some((texture, size)) = view.thumbnail {
                ui.add(egui::Image::new(egui::load::SizedTexture::new(
                    texture,
                    thumbnail_size(size),
                )))
                .on_hover_text(&view.label);
            }
        }
    });
    ui.horizontal(|ui| {
        ui.label("folder");
        ui.text_edit_singleline(model.save_dir);
    });
    let any_done = model
        .views
        .iter()
        .any(|view| view.state == GenerationState::Done);
    actions.save = ui
        .add_enabled(any_done, egui::Button::new("Save PNGs"))
        .clicked();
    if let Some(message) = model.message {
        ui.label(message);
    }
}

/// The displayed size of a thumbnail of an image of `size` pixels: its aspect ratio, the
/// longer side [`THUMBNAIL`] points.
pub(crate) fn thumbnail_size(size: UVec2) -> egui::Vec2 {
    let longer = size.x.max(size.y).max(1) as f32;
    egui::vec2(size.x as f32, size.y as f32) * (THUMBNAIL / longer)
}

/// A status in words: "queued", "denoising 3/20", "failed: …".
pub(crate) fn state_text(state: &GenerationState) -> String {
    match state {
        GenerationState::Idle => "idle".into(),
        GenerationState::Queued => "queued".into(),
        GenerationState::Running { stage, step, total } => match stage {
            Stage::Denoising => format!("denoising {step}/{total}"),
            other => stage_text(*other).into(),
        },
        GenerationState::Done => "done".into(),
        GenerationState::Failed(error) => format!("failed: {error}"),
        GenerationState::Cancelled => "cancelled".into(),
    }
}

/// A stage in words.
fn stage_text(stage: Stage) -> &'static str {
    match stage {
        Stage::EncodingPrompt => "encoding the prompt",
        Stage::AnchorDepth => "anchor depth",
        Stage::RenderingFeatures => "rendering features",
        Stage::Denoising => "denoising",
        Stage::Decoding => "decoding",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcustom::DfrSettings;
    use crate::plugin::training::TrainingState;

    /// One egui pass over the panel with these input events; returns the actions and the
    /// painted shapes.
    fn run(
        ctx: &egui::Context,
        model: &mut PanelModel<'_>,
        events: Vec<egui::Event>,
    ) -> (PanelActions, Vec<egui::epaint::ClippedShape>) {
        let mut open = true;
        let mut actions = PanelActions::default();
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(1280.0, 1600.0),
            )),
            events,
            // A tenth of a second per pass: longer than egui's animations (a header opening),
            // shorter than a click.
            time: Some(ctx.input(|i| i.time) + 0.1),
            ..Default::default()
        };
        let mut output = ctx.run_ui(input, |ui| actions = draw_panel(ui.ctx(), &mut open, model));
        let shapes = std::mem::take(&mut output.shapes);
        // No painter here: the font atlas upload is not applied anywhere.
        output.drop_without_applying_deltas();
        (actions, shapes)
    }

    /// Two passes without input: the first lays the window out, the second draws it settled;
    /// returns the second's actions and shapes.
    fn settled(
        ctx: &egui::Context,
        model: &mut PanelModel<'_>,
    ) -> (PanelActions, Vec<egui::epaint::ClippedShape>) {
        run(ctx, model, vec![]);
        run(ctx, model, vec![])
    }

    /// The picker's list with the one shot `shot {id}`.
    fn one_shot(id: u32) -> [ShotItem; 1] {
        [ShotItem {
            entity: Entity::from_raw_u32(id).unwrap(),
            label: format!("shot {id}"),
        }]
    }

    /// Where the text `label` was painted.
    fn find_text(shapes: &[egui::epaint::ClippedShape], label: &str) -> Option<egui::Pos2> {
        shapes.iter().find_map(|clipped| match &clipped.shape {
            egui::Shape::Text(text) if text.galley.text() == label => {
                Some(text.galley.rect.translate(text.pos.to_vec2()).center())
            }
            _ => None,
        })
    }

    /// Clicks the widget labelled `label` (laid out by the pass that painted `shapes`):
    /// press, then release; returns the actions of the release pass.
    fn click(
        ctx: &egui::Context,
        model: &mut PanelModel<'_>,
        shapes: &[egui::epaint::ClippedShape],
        label: &str,
    ) -> PanelActions {
        let pos = find_text(shapes, label).unwrap_or_else(|| panic!("no `{label}` painted"));
        let button = |pressed| egui::Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        };
        run(
            ctx,
            model,
            vec![egui::Event::PointerMoved(pos), button(true)],
        );
        run(ctx, model, vec![button(false)]).0
    }

    fn views(states: Vec<GenerationState>) -> Vec<ViewItem> {
        states
            .into_iter()
            .enumerate()
            .map(|(k, state)| ViewItem {
                label: format!("view {k}"),
                state,
                thumbnail: Some((egui::TextureId::User(k as u64), UVec2::new(64, 48))),
            })
            .collect()
    }

    /// What a test's panel model borrows: one shot item, default settings, a save folder,
    /// train settings and the parked placeholder.
    struct Borrowed {
        shots: [ShotItem; 1],
        defaults: ShotDefaults,
        save_dir: String,
        train: TrainSettings,
        parked: Option<Entity>,
    }

    impl Borrowed {
        fn new() -> Self {
            Self {
                shots: one_shot(2),
                defaults: ShotDefaults::default(),
                save_dir: "views".to_owned(),
                train: TrainSettings::default(),
                parked: None,
            }
        }

        /// A model with `shot` selected and no views, subjects or message.
        fn model<'a>(&'a mut self, shot: &'a mut MvCustomShot) -> PanelModel<'a> {
            PanelModel {
                shots: &self.shots,
                selected: Some((self.shots[0].entity, shot)),
                defaults: &self.defaults,
                views: &[],
                save_dir: &mut self.save_dir,
                message: None,
                subjects: &[],
                train_settings: &mut self.train,
                parked_compose: &mut self.parked,
            }
        }
    }

    #[test]
    fn states_read_as_words() {
        assert_eq!(state_text(&GenerationState::Queued), "queued");
        assert_eq!(
            state_text(&GenerationState::Running {
                stage: Stage::Denoising,
                step: 3,
                total: 20
            }),
            "denoising 3/20"
        );
        assert_eq!(
            state_text(&GenerationState::Running {
                stage: Stage::AnchorDepth,
                step: 0,
                total: 20
            }),
            "anchor depth"
        );
        assert_eq!(
            state_text(&GenerationState::Failed("no unet".into())),
            "failed: no unet"
        );
    }

    #[test]
    fn thumbnails_keep_the_aspect_ratio() {
        assert_eq!(thumbnail_size(UVec2::new(512, 256)), egui::vec2(96.0, 48.0));
        assert_eq!(thumbnail_size(UVec2::new(64, 128)), egui::vec2(48.0, 96.0));
    }

    #[test]
    fn toggles_restore_the_default_settings() {
        let mut dfr = None::<DfrSettings>;
        toggle(&mut dfr, true);
        assert_eq!(dfr, Some(DfrSettings::default()));
        dfr.as_mut().unwrap().step_fraction = 0.3;
        toggle(&mut dfr, true);
        assert_eq!(dfr.as_ref().unwrap().step_fraction, 0.3);
        toggle(&mut dfr, false);
        assert_eq!(dfr, None);
    }

    #[test]
    fn the_panel_draws_every_state_without_asking_for_anything() {
        let ctx = egui::Context::default();
        let views = views(vec![
            GenerationState::Idle,
            GenerationState::Queued,
            GenerationState::Running {
                stage: Stage::Denoising,
                step: 2,
                total: 4,
            },
            GenerationState::Done,
            GenerationState::Failed("boom".into()),
            GenerationState::Cancelled,
        ]);
        let mut shot = MvCustomShot::new("a teddy bear");
        let before = shot.clone();
        let mut borrowed = Borrowed::new();
        let mut model = borrowed.model(&mut shot);
        model.views = &views;
        model.message = Some("saved 2 views");
        let (actions, shapes) = settled(&ctx, &mut model);
        assert_eq!(actions, PanelActions::default());
        for text in [
            "Generate",
            "Cancel",
            "Save PNGs",
            "denoising 2/4",
            "failed: boom",
        ] {
            assert!(find_text(&shapes, text).is_some(), "`{text}` not painted");
        }
        assert_eq!(shot, before, "drawing alone edits nothing");

        // No shot at all: only the picker and a hint.
        let mut model = borrowed.model(&mut shot);
        model.shots = &[];
        model.selected = None;
        let (actions, _) = run(&ctx, &mut model, vec![]);
        assert_eq!(actions, PanelActions::default());
    }

    #[test]
    fn buttons_ask_for_generation_cancellation_and_saving_when_enabled() {
        let ctx = egui::Context::default();
        let mut shot = MvCustomShot::new("a teddy bear");
        let mut borrowed = Borrowed::new();
        let mut panel = |states: Vec<GenerationState>, label: &str| {
            let views = views(states);
            let mut model = borrowed.model(&mut shot);
            model.views = &views;
            let (_, shapes) = settled(&ctx, &mut model);
            click(&ctx, &mut model, &shapes, label)
        };
        let idle = vec![GenerationState::Idle, GenerationState::Idle];
        let running = vec![
            GenerationState::Running {
                stage: Stage::Denoising,
                step: 1,
                total: 4,
            };
            2
        ];
        let done = vec![GenerationState::Done, GenerationState::Done];
        let generate = PanelActions {
            generate: true,
            ..Default::default()
        };
        assert_eq!(panel(idle.clone(), "Generate"), generate);
        // Cancel and Save are disabled with nothing running and nothing done.
        assert_eq!(panel(idle.clone(), "Cancel"), PanelActions::default());
        assert_eq!(panel(idle, "Save PNGs"), PanelActions::default());
        let cancel = PanelActions {
            cancel: true,
            ..Default::default()
        };
        assert_eq!(panel(running, "Cancel"), cancel);
        let save = PanelActions {
            save: true,
            ..Default::default()
        };
        assert_eq!(panel(done, "Save PNGs"), save);
    }

    #[test]
    fn a_switched_technique_edits_the_shot() {
        let ctx = egui::Context::default();
        let mut shot = MvCustomShot::new("a teddy bear");
        let mut borrowed = Borrowed::new();
        {
            let mut model = borrowed.model(&mut shot);
            let (_, shapes) = settled(&ctx, &mut model);
            click(&ctx, &mut model, &shapes, "Techniques");
            let (_, shapes) = settled(&ctx, &mut model);
            click(
                &ctx,
                &mut model,
                &shapes,
                "consistency-aware latent completion",
            );
        }
        assert_eq!(shot.techniques.clc, None);
        assert!(shot.techniques.dfr.is_some());
    }

    #[test]
    fn the_restyle_switch_starts_views_from_the_renders_at_the_default_strength() {
        let ctx = egui::Context::default();
        let mut shot = MvCustomShot::new("a teddy bear");
        let mut borrowed = Borrowed::new();
        let mut model = borrowed.model(&mut shot);
        let toggle = |model: &mut PanelModel<'_>| {
            let (_, shapes) = settled(&ctx, model);
            click(&ctx, model, &shapes, "start from the cameras' renders");
            model.selected.as_ref().unwrap().1.restyle
        };
        assert_eq!(toggle(&mut model), Some(0.4));
        let (_, shapes) = settled(&ctx, &mut model);
        assert!(find_text(&shapes, "restyle strength").is_some());
        assert_eq!(toggle(&mut model), None);
        let (_, shapes) = settled(&ctx, &mut model);
        assert!(find_text(&shapes, "restyle strength").is_none());
    }

    #[test]
    fn the_composition_switch_parks_and_restores_the_placeholder() {
        let ctx = egui::Context::default();
        let placeholder = Entity::from_raw_u32(9).unwrap();
        let mut shot = MvCustomShot::new("a teddy bear").composed_around(placeholder);
        let mut borrowed = Borrowed::new();
        let shot_entity = borrowed.shots[0].entity;
        let mut model = borrowed.model(&mut shot);
        let toggle = |model: &mut PanelModel<'_>| {
            let (_, shapes) = settled(&ctx, model);
            click(&ctx, model, &shapes, "compose into the scene");
        };
        toggle(&mut model);
        let composes = |model: &PanelModel<'_>| model.selected.as_ref().unwrap().1.compose;
        assert_eq!(composes(&model), None);
        assert_eq!(*model.parked_compose, Some(placeholder));
        toggle(&mut model);
        assert_eq!(composes(&model), Some(placeholder));
        assert_eq!(*model.parked_compose, None);

        // A shot that never named a placeholder shows no composition switch.
        let (_, shapes) = run(&ctx, &mut model, vec![]);
        assert!(find_text(&shapes, "compose into the scene").is_some());
        let mut plain = MvCustomShot::new("a teddy bear");
        model.selected = Some((shot_entity, &mut plain));
        let (_, shapes) = settled(&ctx, &mut model);
        assert!(find_text(&shapes, "compose into the scene").is_none());
    }

    #[test]
    fn the_picked_subject_trains_cancels_and_plots_its_losses() {
        let ctx = egui::Context::default();
        let subject = Entity::from_raw_u32(9).unwrap();
        let item = |state, losses: Vec<f32>| SubjectItem {
            entity: subject,
            label: "robot".into(),
            handle: Default::default(),
            state,
            losses,
        };
        let mut shot = MvCustomShot::new("a photo of <robot>").with_subject(Default::default());
        let mut borrowed = Borrowed::new();
        let mut panel = |item: SubjectItem, label: &str| {
            let subjects = [item];
            let mut model = borrowed.model(&mut shot);
            model.subjects = &subjects;
            let (_, shapes) = settled(&ctx, &mut model);
            (click(&ctx, &mut model, &shapes, label), shapes)
        };
        let (actions, shapes) = panel(item(TrainingState::Idle, vec![]), "Train");
        assert_eq!(actions.training.train, Some(subject));
        assert!(find_text(&shapes, "robot").is_some(), "the picker shows it");
        let losses = vec![0.9, 0.5, 0.7, 0.2];
        let running = TrainingState::Running {
            step: 4,
            total: 10,
            loss: 0.2,
        };
        // Train is disabled while running; Cancel training is not.
        let (actions, _) = panel(item(running.clone(), losses.clone()), "Train");
        assert_eq!(actions.training, TrainingActions::default());
        let (actions, shapes) = panel(item(running, losses.clone()), "Cancel training");
        assert_eq!(actions.training.cancel, Some(subject));
        assert!(find_text(&shapes, "training 4/10, loss 0.2000").is_some());
        let plotted = shapes.iter().any(|clipped| {
            matches!(&clipped.shape, egui::Shape::Path(path) if path.points.len() == losses.len())
        });
        assert!(plotted, "the loss plot is drawn with one point per step");
    }
}
