//! `mvcustom demo-subject`: writes the subject folder of a procedural demo subject (reference
//! renders, masks, cameras, definition) so it can be trained with `mvcustom train` like any
//! user's subject. See [`crate::mvcustom::demo_subject`].

use std::path::PathBuf;

use clap::Args;

use super::error::{CliError, Result};
use crate::mvcustom::demo_subject::demo_subject_definition;
use crate::mvcustom::demo_subjects_dir;
use crate::mvcustom::{DemoSubjectOptions, write_demo_subject};
use crate::world::DemoSubject;

/// Arguments of `mvcustom demo-subject`.
#[derive(Clone, Debug, Args)]
pub struct DemoSubjectArgs {
    /// Which demo subject: toy_robot or patterned_vase.
    #[arg(value_name = "SUBJECT", value_parser = parse_demo_subject)]
    pub subject: DemoSubject,
    /// The folder to write (default: the crate's assets/subjects/<SUBJECT>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Number of reference views, evenly spaced around the subject.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub references: u32,
    /// Width and height of the reference images, pixels.
    #[arg(long, value_name = "PIXELS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(8..=1024))]
    pub size: u32,
    /// Seed of the scene around the subject (environment, ground, lighting).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace an existing definition and its images (trained weights beside it would no
    /// longer match the references: retrain).
    #[arg(long)]
    pub force: bool,
}

/// Parses a demo subject's name.
pub fn parse_demo_subject(text: &str) -> std::result::Result<DemoSubject, String> {
    DemoSubject::ALL
        .into_iter()
        .find(|s| s.name() == text.trim())
        .ok_or_else(|| {
            let names: Vec<&str> = DemoSubject::ALL.iter().map(|s| s.name()).collect();
            format!("expects one of {}, got {text:?}", names.join(", "))
        })
}

/// Runs `mvcustom demo-subject`: writes the folder and prints the definition's path.
pub fn run(args: &DemoSubjectArgs) -> Result<()> {
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| demo_subjects_dir().join(args.subject.name()));
    let options = DemoSubjectOptions {
        references: args.references as usize,
        size: args.size,
        seed: args.seed,
        overwrite: args.force,
        ..Default::default()
    };
    let existing = demo_subject_definition(&dir, args.subject);
    if existing.exists() && !args.force {
        return Err(CliError::file(
            existing,
            "already exists; pass --force to replace it (then retrain the subject)",
        ));
    }
    let definition = write_demo_subject(args.subject, &dir, &options)?;
    println!("{}", definition.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_ones_list_the_choices() {
        assert_eq!(
            parse_demo_subject("toy_robot").unwrap(),
            DemoSubject::ToyRobot
        );
        assert_eq!(
            parse_demo_subject("patterned_vase").unwrap(),
            DemoSubject::PatternedVase
        );
        let err = parse_demo_subject("teapot").unwrap_err();
        assert!(
            err.contains("toy_robot, patterned_vase") && err.contains("teapot"),
            "{err}"
        );
    }
}
