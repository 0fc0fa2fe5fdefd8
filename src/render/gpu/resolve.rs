//! The GPU feature resolve: a compute pass gathering per-vertex features through the
//! visibility buffer (`shaders/resolve.wgsl`), re-run whenever the features change, without
//! re-rasterising. Outputs larger than one storage binding are produced in chunks of
//! (view, channel) planes.

use bytemuck::{Pod, Zeroable};

use super::context::GpuContext;
use super::raster::GpuVisibility;
use crate::render::error::{RenderError, Result};
use crate::render::maps::{FeatureMap, ViewFeatures};

/// Invocations per workgroup along x (pixels); must match `@workgroup_size` in the shader.
const WORKGROUP: u32 = 64;
/// (view, channel) planes one invocation writes for its pixel: the visibility texel and the
/// triangle are read once for all of them.
const PLANES_PER_INVOCATION: u32 = 16;

/// The shader's `Params` uniform.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Params {
    width: u32,
    height: u32,
    row_stride: u32,
    channels: u32,
    plane_offset: u32,
    plane_count: u32,
    vertex_count: u32,
    planes_per_invocation: u32,
}

/// The compiled resolve pipeline.
#[derive(Debug)]
pub(crate) struct ResolvePass {
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
}

/// A buffer that grows on demand and is kept between resolves.
#[derive(Debug, Default)]
struct Reusable(Option<wgpu::Buffer>);

impl Reusable {
    /// The buffer, re-created when smaller than `size`.
    fn get(
        &mut self,
        ctx: &GpuContext,
        label: &str,
        size: u64,
        usage: wgpu::BufferUsages,
    ) -> &wgpu::Buffer {
        if self.0.as_ref().is_none_or(|b| b.size() < size) {
            self.0 = None;
        }
        self.0.get_or_insert_with(|| {
            ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        })
    }
}

/// The GPU buffers of one rasterised geometry: the visibility buffer plus the feature, output
/// and readback buffers reused from one resolve to the next.
#[derive(Debug)]
pub(crate) struct GpuResolver {
    visibility: GpuVisibility,
    params: wgpu::Buffer,
    features: Reusable,
    output: Reusable,
    staging: Reusable,
    /// Largest output chunk, in bytes (setting or device limit).
    chunk_bytes: u64,
}

/// A binding of the resolve layout.
fn entry(binding: u32, ty: wgpu::BufferBindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

impl ResolvePass {
    /// Compiles the pipeline on `ctx`'s device.
    pub(crate) fn new(ctx: &GpuContext) -> Result<Self> {
        ctx.scoped("compile resolve pipeline", || {
            let device = ctx.device();
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("resolve.wgsl"),
                source: wgpu::ShaderSource::Wgsl(
                    include_str!("../../../shaders/resolve.wgsl").into(),
                ),
            });
            let read = wgpu::BufferBindingType::Storage { read_only: true };
            let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("resolve bindings"),
                entries: &[
                    entry(0, wgpu::BufferBindingType::Uniform),
                    entry(1, read),
                    entry(2, read),
                    entry(3, read),
                    entry(4, wgpu::BufferBindingType::Storage { read_only: false }),
                ],
            });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("resolve layout"),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("resolve pipeline"),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some("resolve"),
                compilation_options: Default::default(),
                cache: None,
            });
            Ok(Self { layout, pipeline })
        })
    }
}

impl GpuResolver {
    /// Keeps `visibility` for resolves; `chunk_bytes` caps one dispatch's output (the device
    /// limit applies when it is `None` or larger).
    pub(crate) fn new(
        ctx: &GpuContext,
        visibility: GpuVisibility,
        chunk_bytes: Option<u64>,
    ) -> Self {
        let device_limit = ctx.max_binding_bytes();
        let params = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("resolve params"),
            size: std::mem::size_of::<Params>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self {
            visibility,
            params,
            features: Reusable::default(),
            output: Reusable::default(),
            staging: Reusable::default(),
            chunk_bytes: chunk_bytes.map_or(device_limit, |c| c.min(device_limit)),
        }
    }

    /// The CPU copy of the visibility buffer.
    pub(crate) fn visibility(&self) -> &crate::render::visibility::Visibility {
        &self.visibility.visibility
    }

    /// Gathers `features` (already checked against the mesh grid) into every view.
    pub(crate) fn resolve(
        &mut self,
        ctx: &GpuContext,
        pass: &ResolvePass,
        features: &FeatureMap,
    ) -> Result<ViewFeatures> {
        let vis = &self.visibility.visibility;
        let (width, height) = (vis.width(), vis.height());
        let pixels = vis.area() as u64;
        let channels = features.channels();
        let planes = vis.views() as u64 * channels as u64;
        let plane_bytes = pixels * 4;
        let feature_bytes = features.data().len() as u64 * 4;
        let device_limit = ctx.max_binding_bytes();
        if feature_bytes > device_limit {
            return Err(RenderError::TooLarge {
                what: "feature map (bytes)",
                needed: feature_bytes,
                limit: device_limit,
            });
        }
        if plane_bytes > self.chunk_bytes {
            return Err(RenderError::TooLarge {
                what: "one rendered feature plane (bytes)",
                needed: plane_bytes,
                limit: self.chunk_bytes,
            });
        }
        let max_groups = ctx.device().limits().max_compute_workgroups_per_dimension as u64;
        let groups_x = pixels.div_ceil(WORKGROUP as u64);
        if groups_x > max_groups {
            return Err(RenderError::TooLarge {
                what: "output pixels per view",
                needed: pixels,
                limit: max_groups * WORKGROUP as u64,
            });
        }
        if planes > u32::MAX as u64 {
            return Err(RenderError::TooLarge {
                what: "views × channels",
                needed: planes,
                limit: u32::MAX as u64,
            });
        }
        let chunk_planes = (self.chunk_bytes / plane_bytes)
            .min(max_groups * PLANES_PER_INVOCATION as u64)
            .min(planes);
        let chunk_bytes = chunk_planes * plane_bytes;
        let mut data = vec![0.0f32; (planes * pixels) as usize];

        ctx.scoped("resolve features", || {
            let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
            let feature_buffer = self
                .features
                .get(ctx, "vertex features", feature_bytes, usage);
            ctx.queue()
                .write_buffer(feature_buffer, 0, bytemuck::cast_slice(features.data()));
            let output = self.output.get(
                ctx,
                "rendered features",
                chunk_bytes,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            );
            let staging = self.staging.get(
                ctx,
                "rendered features readback",
                chunk_bytes,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            );
            let bind_group = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("resolve bind group"),
                layout: &pass.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: self.params.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: self.visibility.buffer.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: self.visibility.triangles.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: feature_buffer,
                            offset: 0,
                            size: wgpu::BufferSize::new(feature_bytes),
                        }),
                    },
                    wgpu::BindGroupEntry {
                        binding: 4,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: output,
                            offset: 0,
                            size: wgpu::BufferSize::new(chunk_bytes),
                        }),
                    },
                ],
            });
            let mut first = 0u64;
            for dst in data.chunks_mut((chunk_planes * pixels) as usize) {
                let count = dst.len() as u64 / pixels;
                let params = Params {
                    width,
                    height,
                    row_stride: self.visibility.row_stride,
                    channels,
                    plane_offset: first as u32,
                    plane_count: count as u32,
                    vertex_count: features.area() as u32,
                    planes_per_invocation: PLANES_PER_INVOCATION,
                };
                ctx.queue()
                    .write_buffer(&self.params, 0, bytemuck::bytes_of(&params));
                let mut encoder = ctx.device().create_command_encoder(&Default::default());
                {
                    let mut cpass = encoder.begin_compute_pass(&Default::default());
                    cpass.set_pipeline(&pass.pipeline);
                    cpass.set_bind_group(0, &bind_group, &[]);
                    cpass.dispatch_workgroups(
                        groups_x as u32,
                        count.div_ceil(PLANES_PER_INVOCATION as u64) as u32,
                        1,
                    );
                }
                ctx.queue().submit([encoder.finish()]);
                ctx.read_back(
                    "read rendered features",
                    output,
                    0,
                    staging,
                    bytemuck::cast_slice_mut(dst),
                )?;
                first += count;
            }
            Ok(())
        })?;
        ViewFeatures::new(vis.views(), channels, height, width, data)
    }
}
