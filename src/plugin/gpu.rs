//! The app's own GPU for the feature renderer: Bevy's `RenderDevice` and `RenderQueue` as the
//! render layer's [`GpuContext`], so the anchor feature mesh rasterises on the device the app
//! already renders with instead of a second headless one.

use bevy::prelude::{Commands, Res, Resource};
use bevy::render::renderer::{RenderDevice, RenderQueue};

use super::model::MvCustomModel;
use crate::render::{FeatureRenderer, GpuContext, RenderSettings};

/// The render layer's GPU context on Bevy's device and queue (both reference counted: this
/// shares them, it does not create anything).
pub fn gpu_context(device: &RenderDevice, queue: &RenderQueue) -> GpuContext {
    GpuContext::from_device(device.wgpu_device().clone(), (**queue.0).clone())
}

/// Bevy's device as the feature renderer's GPU context; present in the main world of an app
/// that renders (inserted before start-up systems run). Build a renderer on it with
/// [`MvCustomGpu::feature_renderer`].
#[derive(Resource, Clone, Debug)]
pub struct MvCustomGpu(pub GpuContext);

impl MvCustomGpu {
    /// A feature renderer on the app's device (with `settings.backend`'s rules: `Auto` skips a
    /// software adapter, `Cpu` ignores the device). Compiles the renderer's pipelines.
    pub fn feature_renderer(
        &self,
        settings: RenderSettings,
    ) -> crate::render::Result<FeatureRenderer> {
        FeatureRenderer::with_context(settings, self.0.clone())
    }
}

/// Shares the render device with the plugin when the app has one (start-up system): as the
/// [`MvCustomGpu`] resource, and with the model, whose pipeline renders DFR's features on it.
pub(crate) fn share_render_device(
    mut commands: Commands,
    device: Option<Res<RenderDevice>>,
    queue: Option<Res<RenderQueue>>,
    model: Res<MvCustomModel>,
) {
    if let (Some(device), Some(queue)) = (device, queue) {
        let gpu = gpu_context(&device, &queue);
        model.use_gpu(gpu.clone());
        commands.insert_resource(MvCustomGpu(gpu));
    }
}
