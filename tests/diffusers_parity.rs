//! Parity with diffusers / transformers: runs every case folder under `MVCUSTOM_PARITY_DIR`
//! (default `../shared/fixtures/parity`) and prints one line per case with its largest error.
//! Fails when a case is over tolerance, when a kind is unknown, or when no case is found.
//! `MVCUSTOM_PARITY_FILTER=substring` runs only the cases whose name contains it.

mod parity;

use std::path::PathBuf;
use std::process::ExitCode;

use parity::common::Case;

fn parity_dir() -> PathBuf {
    std::env::var_os("MVCUSTOM_PARITY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/parity")
        })
}

fn main() -> ExitCode {
    let root = parity_dir();
    let filter = std::env::var("MVCUSTOM_PARITY_FILTER").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&root) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("case.json").is_file())
            .collect(),
        Err(e) => {
            eprintln!("cannot read parity directory {}: {e}", root.display());
            return ExitCode::FAILURE;
        }
    };
    dirs.sort();
    dirs.retain(|d| {
        d.file_name()
            .is_some_and(|n| n.to_string_lossy().contains(&filter))
    });
    if dirs.is_empty() {
        eprintln!("no parity case found under {}", root.display());
        return ExitCode::FAILURE;
    }
    let (mut passed, mut failed) = (0usize, 0usize);
    for dir in dirs {
        let started = std::time::Instant::now();
        let outcome = Case::load(&dir).and_then(|case| parity::run(&case).map(|c| (case, c)));
        let seconds = started.elapsed().as_secs_f64();
        match outcome {
            Ok((case, checks)) => {
                let ok = !checks.is_empty() && checks.iter().all(|c| c.passed());
                let worst = checks
                    .iter()
                    .map(|c| c.max_abs_err)
                    .fold(0.0f64, |a, b| if b.is_nan() { b } else { a.max(b) });
                let detail: Vec<String> = checks
                    .iter()
                    .map(|c| {
                        let over = if c.passed() {
                            String::new()
                        } else {
                            format!(" ({}/{} over)", c.failures, c.elements)
                        };
                        format!("{}={:.3e}{over}", c.name, c.max_abs_err)
                    })
                    .collect();
                println!(
                    "{} {:<28} {:<22} max_abs_err={worst:.3e} (atol={}, rtol={}) [{}] {seconds:.1}s",
                    if ok { "PASS" } else { "FAIL" },
                    case.name,
                    case.kind,
                    case.atol,
                    case.rtol,
                    detail.join(", "),
                );
                if ok { passed += 1 } else { failed += 1 }
            }
            Err(e) => {
                println!("FAIL {:<28} error: {e}", dir.display());
                failed += 1;
            }
        }
    }
    println!("parity: {passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
