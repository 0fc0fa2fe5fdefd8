//! The procedural world: writes a few training clips and one evaluation clip of each demo
//! subject, then times the renderer per view at 64×64 and 128×128.
//!
//! Run: `cargo run --release --example world_clips [OUT_DIR] [CLIPS]`
//! (default `target/world_clips`, 4 clips). No window and no Bevy app: the world is plain CPU
//! code. Each clip folder holds `rgb_*.png`, `depth_*.f32`, `mask_*.png` and `clip.ron`.

use std::path::PathBuf;
use std::time::Instant;

use bevy_mvcustom::world::warp::{WarpSettings, multi_view_error};
use bevy_mvcustom::world::{Clip, DemoSubject, RenderSettings, Split, TrajectorySampler};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "target/world_clips".into()));
    let count: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(4);
    std::fs::create_dir_all(&out)?;

    let render = RenderSettings::default();
    let trajectories = TrajectorySampler::default();
    let write = |name: String, clip: Clip| -> Result<(), Box<dyn std::error::Error>> {
        let dir = out.join(&name);
        if dir.exists() {
            println!("{name}: exists, kept");
            return Ok(());
        }
        let depths: Vec<_> = clip.frames.iter().map(|f| f.depth.clone()).collect();
        let images: Vec<_> = clip.frames.iter().map(|f| f.rgb.clone()).collect();
        let error = multi_view_error(&clip.cameras, &depths, &images, &WarpSettings::default())?;
        clip.write(&dir)?;
        println!(
            "{name}: \"{}\" — multi-view colour error {:.4} over {} co-visible pixels",
            clip.caption, error.mean_abs, error.pixels
        );
        Ok(())
    };
    for index in 0..count {
        let seed = Split::Train.seed(index)?;
        let clip = Clip::sample(seed, &Split::Train.sampler(), &trajectories, &render)?;
        write(format!("train_{index:05}"), clip)?;
    }
    for subject in DemoSubject::ALL {
        let seed = Split::Eval.seed(0)?;
        let clip = Clip::sample(
            seed,
            &Split::Eval.subject_sampler(subject),
            &trajectories,
            &render,
        )?;
        write(format!("eval_{}_00000", subject.name()), clip)?;
    }
    println!("clips written to {}", out.display());

    // Timing: 16 clips of 8 views at each size and sampling, one thread, then all cores.
    for size in [64u32, 128] {
        for supersampling in [1u32, 2] {
            for threads in [1usize, 0] {
                let trajectories = TrajectorySampler {
                    width: size,
                    height: size,
                    ..TrajectorySampler::default()
                };
                let settings = RenderSettings {
                    supersampling,
                    threads,
                    ..RenderSettings::default()
                };
                let start = Instant::now();
                let mut views = 0;
                for index in 0..16 {
                    let clip =
                        Clip::sample(index, &Split::Train.sampler(), &trajectories, &settings)?;
                    views += clip.frames.len();
                }
                let seconds = start.elapsed().as_secs_f64();
                println!(
                    "{size}×{size}, {supersampling}×{supersampling} samples/pixel, {}: {:.2} ms per view ({views} views)",
                    if threads == 1 {
                        "1 thread"
                    } else {
                        "all cores"
                    },
                    1e3 * seconds / views as f64,
                );
            }
        }
    }
    Ok(())
}
