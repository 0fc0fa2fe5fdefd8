//! Behaviour shared by the schedulers: timestep layouts against values diffusers produces,
//! analytic x̂₀ recovery for each prediction type, the forward process against ᾱ, state resets
//! and typed errors.

use std::path::Path;

use candle_core::{Device, Tensor};

use super::*;
use crate::model::test_support::max_abs_diff;

fn scheduler(json: &str) -> AnyScheduler {
    AnyScheduler::new(SchedulerConfig::from_json_str(json, Path::new("test.json")).unwrap())
}

fn sd_config(class: &str, extra: &str) -> String {
    format!(
        r#"{{"_class_name": "{class}", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
            "beta_end": 0.012, "steps_offset": 1, "clip_sample": false, "set_alpha_to_one": false{extra}}}"#
    )
}

fn tensor(values: &[f32]) -> Tensor {
    Tensor::new(values, &Device::Cpu).unwrap()
}

#[test]
fn timestep_layouts_match_diffusers() {
    let mut ddim = scheduler(&sd_config("DDIMScheduler", ""));
    ddim.set_timesteps(25).unwrap();
    let expected: Vec<f64> = (0..25).rev().map(|i| (i * 40 + 1) as f64).collect();
    assert_eq!(ddim.timesteps(), expected.as_slice());

    let mut trailing = scheduler(&sd_config(
        "DDIMScheduler",
        r#", "timestep_spacing": "trailing""#,
    ));
    trailing.set_timesteps(10).unwrap();
    let expected: Vec<f64> = (0..10).rev().map(|i| (i * 100 + 99) as f64).collect();
    assert_eq!(trailing.timesteps(), expected.as_slice());

    let mut dpm = scheduler(&sd_config("DPMSolverMultistepScheduler", ""));
    dpm.set_timesteps(20).unwrap();
    assert_eq!(
        dpm.timesteps(),
        &[
            999.0, 949.0, 899.0, 849.0, 799.0, 749.0, 699.0, 649.0, 599.0, 549.0, 500.0, 450.0,
            400.0, 350.0, 300.0, 250.0, 200.0, 150.0, 100.0, 50.0
        ]
    );

    let mut euler = scheduler(&sd_config("EulerDiscreteScheduler", ""));
    euler.set_timesteps(20).unwrap();
    assert_eq!(euler.timesteps()[0], 999.0);
    assert_eq!(
        euler.timesteps()[1],
        f64::from((999.0 - 999.0 / 19.0) as f32)
    );
    assert_eq!(euler.timesteps()[19], 0.0);
    // linspace spacing starts at σ_max; leading at √(σ_max² + 1).
    assert!((euler.init_noise_sigma() - 14.614_646_911_621_094).abs() < 1e-12);
    let mut leading = scheduler(&sd_config(
        "EulerDiscreteScheduler",
        r#", "timestep_spacing": "leading""#,
    ));
    leading.set_timesteps(10).unwrap();
    assert_eq!(leading.timesteps()[0], 901.0);
    let sigma = leading.alpha_bar(901.0).unwrap().recip() - 1.0;
    let max_sigma = match &leading {
        AnyScheduler::EulerDiscrete(e) => f64::from(e.sigmas()[0]),
        _ => unreachable!(),
    };
    assert!((sigma.sqrt() - max_sigma).abs() < 1e-5);
    assert!((leading.init_noise_sigma() - (max_sigma * max_sigma + 1.0).sqrt()).abs() < 1e-5);
}

#[test]
fn karras_sigmas_run_from_max_to_min() {
    for class in ["EulerDiscreteScheduler", "DPMSolverMultistepScheduler"] {
        let mut s = scheduler(&sd_config(class, r#", "use_karras_sigmas": true"#));
        s.set_timesteps(12).unwrap();
        let t = s.timesteps();
        assert_eq!(t.len(), 12, "{class}");
        assert!(t.windows(2).all(|w| w[1] <= w[0]), "{class}: {t:?}");
        assert!(t[0] > 990.0 && t[11] < 10.0, "{class}: {t:?}");
    }
}

#[test]
fn karras_range_follows_sigma_min_and_max() {
    for class in ["EulerDiscreteScheduler", "DPMSolverMultistepScheduler"] {
        let extra = r#", "use_karras_sigmas": true, "sigma_min": 0.1, "sigma_max": 10.0"#;
        let mut s = scheduler(&sd_config(class, extra));
        s.set_timesteps(8).unwrap();
        let sigmas = match &s {
            AnyScheduler::EulerDiscrete(e) => e.sigmas().to_vec(),
            AnyScheduler::DpmSolverMultistep(d) => d.sigmas().to_vec(),
            AnyScheduler::Ddim(_) => unreachable!(),
        };
        assert_eq!(sigmas.len(), 9, "{class}");
        assert_eq!(
            (sigmas[0], sigmas[7], sigmas[8]),
            (10.0, 0.1, 0.0),
            "{class}"
        );
    }
}

/// For every prediction type, the exact network output for a known (x₀, ε) gives back x₀.
#[test]
fn predicted_original_is_exact_for_every_prediction_type() {
    let x0 = tensor(&[0.5, -1.0, 2.0]);
    let eps = tensor(&[1.0, 0.25, -0.75]);
    for class in [
        "DDIMScheduler",
        "EulerDiscreteScheduler",
        "DPMSolverMultistepScheduler",
    ] {
        for prediction in ["epsilon", "v_prediction", "sample"] {
            let mut s = scheduler(&sd_config(
                class,
                &format!(r#", "prediction_type": "{prediction}""#),
            ));
            s.set_timesteps(10).unwrap();
            let t = s.timesteps()[3];
            let abar = s.alpha_bar(t).unwrap();
            let (alpha, sigma) = (abar.sqrt() as f32, (1.0 - abar).sqrt() as f32);
            // The VP sample and the network targets; Euler works on x/α (x₀ + σ/α·ε).
            let vp =
                ((&x0 * f64::from(alpha)).unwrap() + (&eps * f64::from(sigma)).unwrap()).unwrap();
            let sample = if class == "EulerDiscreteScheduler" {
                (&vp / f64::from(alpha)).unwrap()
            } else {
                vp
            };
            let output = match prediction {
                "epsilon" => eps.clone(),
                "v_prediction" => ((&eps * f64::from(alpha)).unwrap()
                    - (&x0 * f64::from(sigma)).unwrap())
                .unwrap(),
                _ => x0.clone(),
            };
            let got = s.predict_original(&output, t, &sample).unwrap();
            assert!(
                max_abs_diff(&got, &x0) < 1e-4,
                "{class} {prediction}: {got}"
            );
        }
    }
}

/// `add_noise` is the forward process at ᾱ(t) in each scheduler's parametrisation.
#[test]
fn add_noise_follows_alpha_bar() {
    let x0 = tensor(&[0.5, -1.0, 2.0]);
    let eps = tensor(&[1.0, 0.25, -0.75]);
    for class in [
        "DDIMScheduler",
        "EulerDiscreteScheduler",
        "DPMSolverMultistepScheduler",
    ] {
        let mut s = scheduler(&sd_config(class, ""));
        s.set_timesteps(10).unwrap();
        let t = s.timesteps()[2];
        let abar = s.alpha_bar(t).unwrap();
        let vp = ((&x0 * abar.sqrt()).unwrap() + (&eps * (1.0 - abar).sqrt()).unwrap()).unwrap();
        let expected = if class == "EulerDiscreteScheduler" {
            (&vp / abar.sqrt()).unwrap()
        } else {
            vp
        };
        let got = s.add_noise(&x0, &eps, t).unwrap();
        assert!(max_abs_diff(&got, &expected) < 1e-5, "{class}");
    }
    // DDIM's ᾱ is the training table's.
    let ddim = scheduler(&sd_config("DDIMScheduler", ""));
    let table = NoiseSchedule::new(&DdimConfig::default().common);
    let plain = AnyScheduler::new(SchedulerConfig::Ddim(DdimConfig::default()));
    assert_eq!(
        plain.alpha_bar(500.0).unwrap(),
        f64::from(table.alphas_cumprod()[500])
    );
    assert!(ddim.alpha_bar(999.0).unwrap() < 0.01);
}

#[test]
fn multistep_history_resets_with_set_timesteps() {
    let mut s = scheduler(&sd_config("DPMSolverMultistepScheduler", ""));
    let run = |s: &mut AnyScheduler| -> Vec<f32> {
        s.set_timesteps(6).unwrap();
        let mut x = tensor(&[1.0, -2.0, 0.5]);
        for (i, &t) in s.timesteps().to_vec().iter().enumerate() {
            let out = (&x * (0.1 * i as f64 + 0.3)).unwrap();
            x = s.step(&out, t, &x).unwrap().prev_sample;
        }
        x.to_vec1().unwrap()
    };
    let first = run(&mut s);
    assert_eq!(run(&mut s), first);
}

#[test]
fn misuse_is_a_typed_error() {
    let x = tensor(&[1.0, 2.0]);
    let mut ddim = scheduler(&sd_config("DDIMScheduler", ""));
    assert!(matches!(
        ddim.step(&x, 961.0, &x),
        Err(DiffusionError::TimestepsNotSet { .. })
    ));
    ddim.set_timesteps(25).unwrap();
    assert!(matches!(
        ddim.step(&x, 960.5, &x),
        Err(DiffusionError::InvalidTimestep { .. })
    ));
    assert!(matches!(
        ddim.step(&x, 1000.0, &x),
        Err(DiffusionError::InvalidTimestep { .. })
    ));
    assert!(matches!(
        ddim.step(&tensor(&[1.0]), 961.0, &x),
        Err(DiffusionError::InvalidArgument { .. })
    ));
    assert!(matches!(
        ddim.set_timesteps(0),
        Err(DiffusionError::InvalidArgument { .. })
    ));
    assert!(matches!(
        ddim.set_timesteps(1001),
        Err(DiffusionError::InvalidArgument { .. })
    ));

    let mut euler = scheduler(&sd_config("EulerDiscreteScheduler", ""));
    euler.set_timesteps(20).unwrap();
    assert!(matches!(
        euler.scale_model_input(&x, 500.0),
        Err(DiffusionError::InvalidTimestep { .. })
    ));
    let mut dpm = scheduler(&sd_config("DPMSolverMultistepScheduler", ""));
    assert!(matches!(
        dpm.step(&x, 999.0, &x),
        Err(DiffusionError::TimestepsNotSet { .. })
    ));
    dpm.set_timesteps(2).unwrap();
    for &t in &dpm.timesteps().to_vec() {
        dpm.step(&x, t, &x).unwrap();
    }
    assert!(matches!(
        dpm.step(&x, 0.0, &x),
        Err(DiffusionError::InvalidTimestep { .. })
    ));
}

#[test]
fn stochastic_ddim_needs_a_generator_and_is_reproducible() {
    let mut ddim = DdimScheduler::new(DdimConfig::default());
    assert!(ddim.set_eta(1.0, None).is_err());
    assert!(ddim.set_eta(-0.5, None).is_err());
    let x = tensor(&[0.3, -0.2, 0.1, 0.9]);
    let run = |eta: f64| -> Vec<f32> {
        let mut s = DdimScheduler::new(DdimConfig::default());
        s.set_eta(eta, Some(crate::diffusion::NoiseGenerator::from_seed(3)))
            .unwrap();
        s.set_timesteps(5).unwrap();
        let t = s.timesteps()[1];
        s.step(&x, t, &x).unwrap().prev_sample.to_vec1().unwrap()
    };
    assert_eq!(run(1.0), run(1.0));
    assert_ne!(run(1.0), run(0.0));
}
