//! The wgpu device the renderer runs on: the app's own (Bevy's `RenderDevice` / `RenderQueue`
//! hold a `wgpu::Device` / `wgpu::Queue`) or a headless one created here.

use std::sync::mpsc;

use crate::render::error::{RenderError, Result};

/// Backends searched by [`GpuContext::headless`] unless `WGPU_BACKEND` says otherwise: the
/// native APIs (Vulkan on Linux, including Mesa's software lavapipe).
const DEFAULT_BACKENDS: wgpu::Backends = wgpu::Backends::VULKAN
    .union(wgpu::Backends::METAL)
    .union(wgpu::Backends::DX12);

/// A wgpu device and its queue, cheap to clone (both are reference counted).
#[derive(Clone, Debug)]
pub struct GpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
}

impl GpuContext {
    /// Wraps an existing device and queue, e.g. a Bevy app's
    /// `RenderDevice::wgpu_device()` and the `wgpu::Queue` inside `RenderQueue`, so the
    /// renderer shares the app's GPU.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        Self { device, queue }
    }

    /// A headless device on the first adapter of the default backends (Vulkan, Metal, DX12;
    /// the `WGPU_BACKEND` environment variable overrides, e.g. `WGPU_BACKEND=vulkan`).
    /// [`RenderError::NoAdapter`] when there is none.
    pub fn headless() -> Result<Self> {
        Self::headless_with_backends(wgpu::Backends::from_env().unwrap_or(DEFAULT_BACKENDS))
    }

    /// A headless device on the first adapter of `backends`, asking for the adapter's own
    /// limits (larger buffers mean fewer resolve chunks).
    pub fn headless_with_backends(backends: wgpu::Backends) -> Result<Self> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
        }))
        .map_err(|e| RenderError::NoAdapter {
            backends: format!("{backends:?}"),
            reason: e.to_string(),
        })?;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("bevy_mvcustom feature renderer"),
            required_features: wgpu::Features::empty(),
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| RenderError::RequestDevice {
            adapter: adapter.get_info().name,
            reason: e.to_string(),
        })?;
        Ok(Self { device, queue })
    }

    /// The device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The adapter's name and backend, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)`.
    pub fn describe(&self) -> String {
        let info = self.device.adapter_info();
        format!("{} ({:?})", info.name, info.backend)
    }

    /// Whether the adapter is a software rasteriser running on the CPU (e.g. Mesa's lavapipe).
    pub fn is_software(&self) -> bool {
        self.device.adapter_info().device_type == wgpu::DeviceType::Cpu
    }

    /// Runs `f`, turning any wgpu validation, out-of-memory or internal error it raises into
    /// [`RenderError::Gpu`] instead of wgpu's default panic.
    pub(crate) fn scoped<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let errors = [validation.pop(), memory.pop(), internal.pop()].map(pollster::block_on);
        match errors.into_iter().flatten().next() {
            Some(e) => Err(RenderError::Gpu {
                operation,
                reason: e.to_string(),
            }),
            None => out,
        }
    }

    /// Blocks until all submitted work is done.
    pub(crate) fn wait(&self, operation: &'static str) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| RenderError::Gpu {
                operation,
                reason: e.to_string(),
            })
    }

    /// Copies `size` bytes at `offset` of `src` (a `COPY_SRC` buffer) through `staging` (a
    /// `MAP_READ | COPY_DST` buffer at least `size` long) into `dst`.
    pub(crate) fn read_back(
        &self,
        operation: &'static str,
        src: &wgpu::Buffer,
        offset: u64,
        staging: &wgpu::Buffer,
        dst: &mut [u8],
    ) -> Result<()> {
        let size = dst.len() as u64;
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(src, offset, staging, 0, size);
        self.queue.submit([encoder.finish()]);
        let slice = staging.slice(..size);
        let (tx, rx) = mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            // The receiver outlives the wait below; a failed send only means it gave up.
            let _ = tx.send(r);
        });
        self.wait(operation)?;
        let mapped = rx.recv().map_err(|e| RenderError::Gpu {
            operation,
            reason: e.to_string(),
        })?;
        mapped.map_err(|e| RenderError::Gpu {
            operation,
            reason: e.to_string(),
        })?;
        dst.copy_from_slice(&slice.get_mapped_range());
        staging.unmap();
        Ok(())
    }

    /// Bytes one storage-buffer binding (and one buffer) may hold on this device.
    pub(crate) fn max_binding_bytes(&self) -> u64 {
        let limits = self.device.limits();
        limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
    }
}
