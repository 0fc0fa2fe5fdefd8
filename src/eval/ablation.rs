//! The rows of the ablation table, as in the paper: the base model, then MVCustom's
//! techniques added one at a time, plus the ground-truth renders as the reference every
//! metric's ceiling is read from.
//!
//! Every generated row uses the model's trained attention mode (dense spatio-temporal
//! attention, in which the default model is trained) and the same initial noise per case, so
//! the rows differ only by the technique added.

use serde::Serialize;

use crate::mvcustom::{ClcSettings, DfrSettings, Techniques};

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// The ground-truth renders measured as if generated: each metric's reference value.
    GroundTruth,
    /// The base model alone: no subject (the prompt names the class word), no pose blocks,
    /// no feature rendering, no latent completion.
    Base,
    /// Customization: the trained subject's token and pose-conditioned blocks.
    PoseBlocks,
    /// Customization + depth-aware feature rendering with the ground-truth anchor depth.
    Dfr,
    /// Customization + depth-aware feature rendering + consistency-aware latent completion.
    DfrClc,
}

impl Variant {
    /// The generated rows, in table order.
    pub const GENERATED: [Variant; 4] = [
        Variant::Base,
        Variant::PoseBlocks,
        Variant::Dfr,
        Variant::DfrClc,
    ];

    /// Every row, in table order.
    pub const ALL: [Variant; 5] = [
        Variant::GroundTruth,
        Variant::Base,
        Variant::PoseBlocks,
        Variant::Dfr,
        Variant::DfrClc,
    ];

    /// The row's label in the table.
    pub fn label(self) -> &'static str {
        match self {
            Variant::GroundTruth => "ground truth (renders)",
            Variant::Base => "base model",
            Variant::PoseBlocks => "+ pose blocks (customization)",
            Variant::Dfr => "+ DFR",
            Variant::DfrClc => "+ DFR + CLC",
        }
    }

    /// A short file-name friendly name.
    pub fn name(self) -> &'static str {
        match self {
            Variant::GroundTruth => "truth",
            Variant::Base => "base",
            Variant::PoseBlocks => "pose",
            Variant::Dfr => "dfr",
            Variant::DfrClc => "dfr_clc",
        }
    }

    /// The techniques the row generates with, DFR (where the row uses it) with `dfr`; `None`
    /// for the ground truth.
    pub fn techniques(self, dfr: &DfrSettings) -> Option<Techniques> {
        let base = Techniques {
            dense_attention: true,
            attention_window: None,
            pose_blocks: false,
            dfr: None,
            clc: None,
        };
        match self {
            Variant::GroundTruth => None,
            Variant::Base => Some(base),
            Variant::PoseBlocks => Some(Techniques {
                pose_blocks: true,
                ..base
            }),
            Variant::Dfr => Some(Techniques {
                pose_blocks: true,
                dfr: Some(dfr.clone()),
                ..base
            }),
            Variant::DfrClc => Some(Techniques {
                pose_blocks: true,
                dfr: Some(dfr.clone()),
                clc: Some(ClcSettings::default()),
                ..base
            }),
        }
    }

    /// Whether the row uses the trained subject (its token in the prompt and its pose
    /// blocks); otherwise the prompt names the class word.
    pub fn uses_subject(self) -> bool {
        !matches!(self, Variant::GroundTruth | Variant::Base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_row_adds_one_technique_to_the_previous() {
        let dfr = DfrSettings {
            step_fraction: 0.5,
            ..Default::default()
        };
        let t: Vec<Techniques> = Variant::GENERATED
            .iter()
            .map(|v| v.techniques(&dfr).unwrap())
            .collect();
        assert!(!t[0].pose_blocks && t[0].dfr.is_none() && t[0].clc.is_none());
        assert!(t[1].pose_blocks && t[1].dfr.is_none() && t[1].clc.is_none());
        assert!(t[2].pose_blocks && t[2].dfr.is_some() && t[2].clc.is_none());
        assert!(t[3].pose_blocks && t[3].dfr.is_some() && t[3].clc.is_some());
        // The DFR rows use the given settings.
        assert!(t[2..].iter().all(|t| t.dfr.as_ref() == Some(&dfr)));
        assert!(t.iter().all(|t| t.dense_attention));
        assert!(Variant::GroundTruth.techniques(&dfr).is_none());
        assert!(!Variant::Base.uses_subject() && Variant::DfrClc.uses_subject());
        assert_eq!(&Variant::ALL[1..], &Variant::GENERATED);
    }
}
