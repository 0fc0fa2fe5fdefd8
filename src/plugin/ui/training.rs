//! The panel's subject section: the shot's subject picker, and for the picked subject its
//! training settings, Train / Cancel training, a progress bar and a loss plot (a polyline
//! drawn with egui's painter).

use bevy::asset::Handle;
use bevy::ecs::entity::Entity;
use bevy_egui::egui;

use crate::mvcustom::train::TrainSettings;
use crate::plugin::assets::SubjectAsset;
use crate::plugin::components::MvCustomShot;
use crate::plugin::training::TrainingState;

/// Height of the loss plot, in points.
const PLOT_HEIGHT: f32 = 72.0;

/// A subject the picker lists (an entity with `MvCustomSubject`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SubjectItem {
    /// The subject entity.
    pub entity: Entity,
    /// Its name, else its token, else its asset path.
    pub label: String,
    /// Its definition asset.
    pub handle: Handle<SubjectAsset>,
    /// Where its training stands.
    pub state: TrainingState,
    /// Its latest run's losses.
    pub losses: Vec<f32>,
}

/// What the user asked of the subject section this frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TrainingActions {
    /// Train this subject.
    pub train: Option<Entity>,
    /// Cancel this subject's training.
    pub cancel: Option<Entity>,
}

/// The subject picker (editing `shot.subject`) and the picked subject's training controls.
pub(crate) fn subject_section(
    ui: &mut egui::Ui,
    shot: &mut MvCustomShot,
    subjects: &[SubjectItem],
    settings: &mut TrainSettings,
) -> TrainingActions {
    let picked = subjects
        .iter()
        .find(|item| shot.subject.as_ref() == Some(&item.handle));
    let current = match (&shot.subject, picked) {
        (None, _) => "none (prompt only)".to_owned(),
        (Some(_), Some(item)) => item.label.clone(),
        (Some(handle), None) => handle
            .path()
            .map_or_else(|| "a subject asset".to_owned(), ToString::to_string),
    };
    egui::ComboBox::from_label("Subject")
        .selected_text(current)
        .show_ui(ui, |ui| {
            if ui
                .selectable_label(shot.subject.is_none(), "none (prompt only)")
                .clicked()
            {
                shot.subject = None;
            }
            for item in subjects {
                let selected = shot.subject.as_ref() == Some(&item.handle);
                if ui.selectable_label(selected, &item.label).clicked() {
                    shot.subject = Some(item.handle.clone());
                }
            }
        });
    let mut actions = TrainingActions::default();
    let Some(item) = picked else {
        return actions;
    };
    egui::CollapsingHeader::new("Training settings").show(ui, |ui| {
        ui.add(egui::Slider::new(&mut settings.steps, 1..=5000).text("training steps"));
        ui.add(
            egui::Slider::new(&mut settings.resolution, 16..=512)
                .step_by(8.0)
                .text("resolution"),
        );
        ui.add(
            egui::Slider::new(&mut settings.optimiser.lr, 1e-6..=1e-2)
                .logarithmic(true)
                .text("learning rate"),
        );
    });
    let busy = item.state.is_busy();
    ui.horizontal(|ui| {
        if ui.add_enabled(!busy, egui::Button::new("Train")).clicked() {
            actions.train = Some(item.entity);
        }
        if ui
            .add_enabled(busy, egui::Button::new("Cancel training"))
            .clicked()
        {
            actions.cancel = Some(item.entity);
        }
    });
    let text = training_text(&item.state);
    match item.state.progress() {
        Some(fraction) => {
            ui.add(egui::ProgressBar::new(fraction).text(text));
        }
        None => {
            ui.label(text);
        }
    }
    if !item.losses.is_empty() {
        loss_plot(ui, &item.losses);
    }
    actions
}

/// A training state in words: "training 3/100, loss 0.1234", "failed: …".
pub(crate) fn training_text(state: &TrainingState) -> String {
    match state {
        TrainingState::Idle => "not trained in this session".into(),
        TrainingState::Queued => "training queued".into(),
        TrainingState::Running { step, total, loss } => {
            format!("training {step}/{total}, loss {loss:.4}")
        }
        TrainingState::Done => "trained".into(),
        TrainingState::Failed(error) => format!("training failed: {error}"),
        TrainingState::Cancelled => "training cancelled".into(),
    }
}

/// The losses as a framed polyline over the available width, with their range in words.
fn loss_plot(ui: &mut egui::Ui, losses: &[f32]) {
    let size = egui::vec2(ui.available_width().max(64.0), PLOT_HEIGHT);
    let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
    let painter = ui.painter_at(rect);
    let visuals = ui.visuals();
    painter.rect_stroke(
        rect,
        2.0,
        visuals.widgets.noninteractive.bg_stroke,
        egui::StrokeKind::Inside,
    );
    let plot = rect.shrink(3.0);
    painter.add(egui::Shape::line(
        plot_points(losses, plot),
        egui::Stroke::new(1.5, visuals.selection.bg_fill),
    ));
    let (min, max) = range(losses);
    ui.label(format!(
        "loss: latest {:.4}, min {min:.4}, max {max:.4}",
        losses[losses.len() - 1]
    ));
}

/// Smallest and largest finite loss (0, 0 when none is finite).
fn range(losses: &[f32]) -> (f32, f32) {
    let finite = losses.iter().copied().filter(|l| l.is_finite());
    let min = finite.clone().fold(f32::INFINITY, f32::min);
    let max = finite.fold(f32::NEG_INFINITY, f32::max);
    if min <= max { (min, max) } else { (0.0, 0.0) }
}

/// Where each loss is drawn in `rect`: steps spread evenly left to right, the largest loss
/// at the top and the smallest at the bottom (a flat history in the middle); non-finite
/// losses are left out. A single loss becomes a horizontal segment.
pub(crate) fn plot_points(losses: &[f32], rect: egui::Rect) -> Vec<egui::Pos2> {
    let (min, max) = range(losses);
    let last = losses.len().saturating_sub(1).max(1) as f32;
    let y = |loss: f32| {
        if max > min {
            rect.bottom() - (loss - min) / (max - min) * rect.height()
        } else {
            rect.center().y
        }
    };
    let mut points: Vec<egui::Pos2> = losses
        .iter()
        .enumerate()
        .filter(|(_, loss)| loss.is_finite())
        .map(|(i, &loss)| egui::pos2(rect.left() + i as f32 / last * rect.width(), y(loss)))
        .collect();
    if let [only] = points[..] {
        points = vec![
            egui::pos2(rect.left(), only.y),
            egui::pos2(rect.right(), only.y),
        ];
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_spans_the_rect_with_the_extremes_at_its_edges() {
        let rect = egui::Rect::from_min_size(egui::pos2(10.0, 20.0), egui::vec2(100.0, 50.0));
        let points = plot_points(&[4.0, 2.0, f32::NAN, 1.0, 3.0], rect);
        let expected = [
            egui::pos2(10.0, 20.0),
            egui::pos2(35.0, 20.0 + 50.0 * 2.0 / 3.0),
            egui::pos2(85.0, 70.0),
            egui::pos2(110.0, 20.0 + 50.0 / 3.0),
        ];
        assert_eq!(points.len(), expected.len());
        for (point, expected) in points.iter().zip(expected) {
            assert!(point.distance(expected) < 1e-4, "{point:?} vs {expected:?}");
        }
        assert_eq!(
            plot_points(&[0.5], rect),
            vec![egui::pos2(10.0, 45.0), egui::pos2(110.0, 45.0)]
        );
        assert_eq!(plot_points(&[2.0, 2.0], rect)[1], egui::pos2(110.0, 45.0));
        assert!(plot_points(&[], rect).is_empty());
    }

    #[test]
    fn training_states_read_as_words() {
        let running = TrainingState::Running {
            step: 3,
            total: 100,
            loss: 0.123456,
        };
        assert_eq!(training_text(&running), "training 3/100, loss 0.1235");
        assert_eq!(
            training_text(&TrainingState::Failed("no weights".into())),
            "training failed: no weights"
        );
    }
}
