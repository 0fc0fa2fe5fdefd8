//! What every base-model training run shares: its settings, progress events, the networks
//! being trained (one variable map per model-folder component), the resumable checkpoint and
//! the optimisation loop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::error::{PretrainError, Result};
use crate::diffusion::CancelToken;
use crate::train::{
    AdamW, AdamWConfig, Ema, initialise_for_training, load_tensors, named_vars, parameter_count,
    save_tensors_atomic,
};

/// Settings every base-model training run has.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// The diffusers-layout model folder: component configurations are read from it and the
    /// trained weights written into it.
    pub model_dir: PathBuf,
    /// Where the resumable checkpoints live (kept out of the model folder).
    pub work_dir: PathBuf,
    /// Total optimisation steps; a resumed run continues up to this count.
    pub steps: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// AdamW's peak learning rate.
    pub learning_rate: f64,
    /// Steps of linear learning-rate warm-up from zero.
    pub warmup_steps: usize,
    /// Seed of the initialisation, the data order and the noise.
    pub seed: u64,
    /// Write a checkpoint and the model weights every this many steps (0: only at the end).
    pub save_every: usize,
    /// Keep a moving average of the weights with this decay and write it (not the last
    /// step's weights) into the model folder; `None` writes the last step's weights.
    pub ema_decay: Option<f64>,
}

impl RunSettings {
    /// Checks the values a run cannot start with.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(PretrainError::setting("batch_size", "must be at least 1"));
        }
        if let Some(decay) = self.ema_decay
            && !(decay > 0.0 && decay < 1.0)
        {
            return Err(PretrainError::setting(
                "ema_decay",
                format!("{decay} is not strictly between 0 and 1"),
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(PretrainError::setting(
                "learning_rate",
                format!("{} is not a positive number", self.learning_rate),
            ));
        }
        if !self.model_dir.is_dir() {
            return Err(PretrainError::file(
                &self.model_dir,
                "model folder not found (it must hold the component configurations)",
            ));
        }
        Ok(())
    }

    /// The learning rate at `step` (0-based): linear warm-up, then constant.
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            self.learning_rate * (step + 1) as f64 / self.warmup_steps as f64
        } else {
            self.learning_rate
        }
    }
}

/// Progress of a base-model training run.
#[derive(Clone, Debug, PartialEq)]
pub enum PretrainEvent {
    /// The networks are built: how many parameters train, and the step the run starts at
    /// (non-zero when resumed from a checkpoint).
    Started {
        /// Trainable scalar parameters.
        parameters: usize,
        /// First step of this run.
        first_step: usize,
    },
    /// One optimisation step finished.
    Step {
        /// Steps done, counting those of earlier runs.
        completed: usize,
        /// The run's total.
        total: usize,
        /// The step's loss.
        loss: f32,
        /// Wall-clock seconds of the step (batch wait included).
        seconds: f64,
    },
    /// A checkpoint and the model weights were written.
    Saved {
        /// Steps done.
        step: usize,
        /// The checkpoint file.
        checkpoint: PathBuf,
    },
}

/// One component of the model folder being trained from scratch.
pub(crate) struct TrainedComponent {
    /// Its sub-folder (`vae`, `unet`, …).
    pub folder: &'static str,
    /// The weights file name diffusers expects there.
    pub file: &'static str,
    /// Its variables.
    pub varmap: VarMap,
}

impl TrainedComponent {
    /// An empty component; build its network over [`Self::builder`].
    pub fn new(folder: &'static str, file: &'static str) -> Self {
        Self {
            folder,
            file,
            varmap: VarMap::new(),
        }
    }

    /// A variable builder creating this component's variables (f32, CPU).
    pub fn builder(&self) -> VarBuilder<'static> {
        VarBuilder::from_varmap(&self.varmap, DType::F32, &Device::Cpu)
    }

    /// The checkpoint name of one of its tensors.
    fn qualified(&self, name: &str) -> String {
        format!("{}/{name}", self.folder)
    }
}

/// The networks of one run, their optimiser and checkpoint.
pub(crate) struct Trainer {
    components: Vec<TrainedComponent>,
    optimiser: AdamW,
    /// The weights' moving average, when the run keeps one.
    ema: Option<Ema>,
    checkpoint: PathBuf,
    model_dir: PathBuf,
}

impl Trainer {
    /// Initialises `components` from scratch (seeded), or restores them and the optimiser
    /// from the checkpoint `<work_dir>/<name>.checkpoint.safetensors` when it exists (with the
    /// moving average; one resumed from a checkpoint without it starts at the weights).
    pub fn new(
        name: &str,
        components: Vec<TrainedComponent>,
        settings: &RunSettings,
    ) -> Result<Self> {
        std::fs::create_dir_all(&settings.work_dir)
            .map_err(|e| PretrainError::file(&settings.work_dir, e))?;
        let checkpoint = settings
            .work_dir
            .join(format!("{name}.checkpoint.safetensors"));
        let mut vars: Vec<(String, Var)> = Vec::new();
        for (index, component) in components.iter().enumerate() {
            initialise_for_training(&component.varmap, settings.seed.wrapping_add(index as u64))?;
            for (tensor, var) in named_vars(&component.varmap)? {
                vars.push((component.qualified(&tensor), var));
            }
        }
        let config = AdamWConfig {
            lr: settings.learning_rate,
            ..Default::default()
        };
        let mut optimiser = AdamW::new(vars.clone(), config)?;
        let tensors = if checkpoint.is_file() {
            let tensors = load_tensors(&checkpoint, &Device::Cpu)?;
            restore(&vars, &tensors, &checkpoint)?;
            optimiser
                .load_state(&tensors)
                .map_err(|e| PretrainError::file(&checkpoint, format!("optimiser state: {e}")))?;
            tensors
        } else {
            HashMap::new()
        };
        let ema = match settings.ema_decay {
            Some(decay) => {
                let mut ema = Ema::new(vars, decay)?;
                ema.load_state(&tensors).map_err(|e| {
                    PretrainError::file(&checkpoint, format!("weight average: {e}"))
                })?;
                Some(ema)
            }
            None => None,
        };
        Ok(Self {
            components,
            optimiser,
            ema,
            checkpoint,
            model_dir: settings.model_dir.clone(),
        })
    }

    /// Trainable scalar parameters.
    pub fn parameters(&self) -> usize {
        self.components
            .iter()
            .map(|c| parameter_count(&c.varmap))
            .sum()
    }

    /// Steps done so far (restored from the checkpoint).
    pub fn step(&self) -> usize {
        self.optimiser.step_count() as usize
    }

    /// Runs steps from the current one up to `settings.steps`, computing each step's loss
    /// with `loss_at(step)`, saving every `save_every` steps and at the end.
    pub fn run(
        &mut self,
        settings: &RunSettings,
        events: &mut dyn FnMut(PretrainEvent),
        cancel: &CancelToken,
        mut loss_at: impl FnMut(usize) -> Result<Tensor>,
    ) -> Result<()> {
        let first_step = self.step();
        events(PretrainEvent::Started {
            parameters: self.parameters(),
            first_step,
        });
        for step in first_step..settings.steps {
            if cancel.is_cancelled() {
                return Err(PretrainError::Cancelled);
            }
            let started = Instant::now();
            self.optimiser.set_lr(settings.learning_rate_at(step));
            let loss = loss_at(step)?;
            let value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
            if !value.is_finite() {
                return Err(PretrainError::setting(
                    "learning_rate",
                    format!(
                        "the loss became {value} at step {step}; lower the learning rate and \
                         resume from the last checkpoint"
                    ),
                ));
            }
            self.optimiser.backward_step(&loss)?;
            if let Some(ema) = &mut self.ema {
                ema.update(self.optimiser.step_count())?;
            }
            events(PretrainEvent::Step {
                completed: step + 1,
                total: settings.steps,
                loss: value,
                seconds: started.elapsed().as_secs_f64(),
            });
            let due = settings.save_every > 0 && (step + 1) % settings.save_every == 0;
            if due && step + 1 < settings.steps {
                self.save(events)?;
            }
        }
        self.save(events)
    }

    /// Writes the checkpoint (weights, optimiser state and moving average) and every
    /// component's weights into the model folder (the average when the run keeps one),
    /// atomically.
    pub fn save(&self, events: &mut dyn FnMut(PretrainEvent)) -> Result<()> {
        let mut tensors = self.optimiser.state()?;
        if let Some(ema) = &self.ema {
            tensors.extend(ema.state());
        }
        for component in &self.components {
            let weights = weights_of(component)?;
            let path = self.model_dir.join(component.folder).join(component.file);
            save_tensors_atomic(&path, &published(self.ema.as_ref(), component, &weights))?;
            tensors.extend(
                weights
                    .into_iter()
                    .map(|(name, t)| (component.qualified(&name), t)),
            );
        }
        save_tensors_atomic(&self.checkpoint, &tensors)?;
        events(PretrainEvent::Saved {
            step: self.step(),
            checkpoint: self.checkpoint.clone(),
        });
        Ok(())
    }
}

/// What goes into the model folder for `component`: the moving average of its weights when
/// the run keeps one, else its `weights`.
fn published(
    ema: Option<&Ema>,
    component: &TrainedComponent,
    weights: &HashMap<String, Tensor>,
) -> HashMap<String, Tensor> {
    weights
        .iter()
        .map(|(name, tensor)| {
            let average = ema.and_then(|ema| ema.average(&component.qualified(name)));
            (name.clone(), average.unwrap_or(tensor).clone())
        })
        .collect()
}

/// A component's variables as plain tensors, by their component-local names.
fn weights_of(component: &TrainedComponent) -> Result<HashMap<String, Tensor>> {
    Ok(named_vars(&component.varmap)?
        .into_iter()
        .map(|(name, var)| (name, var.as_tensor().clone()))
        .collect())
}

/// Sets every variable from the checkpoint's tensor of the same name and shape.
fn restore(vars: &[(String, Var)], tensors: &HashMap<String, Tensor>, file: &Path) -> Result<()> {
    for (name, var) in vars {
        let tensor = crate::train::take_tensor(tensors, name, var.dims(), file)?;
        var.set(&tensor.to_dtype(var.dtype())?)?;
    }
    Ok(())
}
