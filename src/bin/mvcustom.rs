//! The `mvcustom` command-line tool; see `mvcustom --help`. The logic is in
//! `bevy_mvcustom::cli`.

use std::process::ExitCode;

use bevy_mvcustom::cli::{Cli, run};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    bevy_mvcustom::heap::retain_freed_memory();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error.one_line());
            ExitCode::from(error.exit_code())
        }
    }
}
