//! The GPU visibility pass: the anchor mesh rasterised into each target view with a depth test,
//! writing triangle id, barycentrics and depth per pixel (`shaders/visibility.wgsl`).

use wgpu::util::DeviceExt;

use super::context::GpuContext;
use crate::render::error::{RenderError, Result};
use crate::render::mesh::AnchorMesh;
use crate::render::view::ViewTransform;
use crate::render::visibility::{Fragment, Visibility};

/// Format of the visibility target: (triangle id + 1, b0, b1, depth) as 32-bit words.
const VISIBILITY_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba32Uint;
/// Bytes per visibility texel.
const TEXEL_BYTES: u32 = std::mem::size_of::<Fragment>() as u32;

/// The compiled visibility pipeline.
#[derive(Debug)]
pub(crate) struct VisibilityPass {
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::RenderPipeline,
}

/// The visibility buffer on the GPU, kept for the resolve pass, and its CPU copy.
#[derive(Debug)]
pub(crate) struct GpuVisibility {
    /// `[K, height, row_stride]` texels.
    pub(crate) buffer: wgpu::Buffer,
    /// Texels per padded row.
    pub(crate) row_stride: u32,
    /// Mesh triangles, three u32 per triangle (at least one word, bindings cannot be empty).
    pub(crate) triangles: wgpu::Buffer,
    /// The CPU copy (unpadded).
    pub(crate) visibility: Visibility,
}

/// A read-only storage-buffer binding visible to the vertex stage.
fn storage_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::VERTEX,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only: true },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// A storage buffer holding `bytes`, padded to at least 16 bytes (empty bindings are invalid).
pub(crate) fn storage_buffer(
    ctx: &GpuContext,
    label: &str,
    bytes: &[u8],
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    let mut contents = bytes.to_vec();
    contents.resize(bytes.len().max(16), 0);
    ctx.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: &contents,
            usage: wgpu::BufferUsages::STORAGE | usage,
        })
}

impl VisibilityPass {
    /// Compiles the pipeline on `ctx`'s device.
    pub(crate) fn new(ctx: &GpuContext) -> Result<Self> {
        ctx.scoped("compile visibility pipeline", || {
            let device = ctx.device();
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("visibility.wgsl"),
                source: wgpu::ShaderSource::Wgsl(
                    include_str!("../../../shaders/visibility.wgsl").into(),
                ),
            });
            let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("visibility bindings"),
                entries: &[storage_entry(0), storage_entry(1), storage_entry(2)],
            });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("visibility layout"),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some("visibility pipeline"),
                layout: Some(&pipeline_layout),
                vertex: wgpu::VertexState {
                    module: &module,
                    entry_point: Some("vs_main"),
                    compilation_options: Default::default(),
                    buffers: &[],
                },
                primitive: wgpu::PrimitiveState {
                    topology: wgpu::PrimitiveTopology::TriangleList,
                    cull_mode: None,
                    ..Default::default()
                },
                depth_stencil: Some(wgpu::DepthStencilState {
                    format: wgpu::TextureFormat::Depth32Float,
                    depth_write_enabled: Some(true),
                    depth_compare: Some(wgpu::CompareFunction::Greater),
                    stencil: Default::default(),
                    bias: Default::default(),
                }),
                multisample: Default::default(),
                fragment: Some(wgpu::FragmentState {
                    module: &module,
                    entry_point: Some("fs_main"),
                    compilation_options: Default::default(),
                    targets: &[Some(wgpu::ColorTargetState {
                        format: VISIBILITY_FORMAT,
                        blend: None,
                        write_mask: wgpu::ColorWrites::ALL,
                    })],
                }),
                multiview_mask: None,
                cache: None,
            });
            Ok(Self { layout, pipeline })
        })
    }

    /// Rasterises `mesh` into every view at `width × height` and reads the visibility buffer
    /// back; the GPU copy stays for the resolve pass.
    pub(crate) fn run(
        &self,
        ctx: &GpuContext,
        mesh: &AnchorMesh,
        views: &[ViewTransform],
        width: u32,
        height: u32,
    ) -> Result<GpuVisibility> {
        let max_side = ctx.device().limits().max_texture_dimension_2d;
        if width.max(height) > max_side {
            return Err(RenderError::TooLarge {
                what: "output width/height (pixels)",
                needed: width.max(height) as u64,
                limit: max_side as u64,
            });
        }
        let align = wgpu::COPY_BYTES_PER_ROW_ALIGNMENT / TEXEL_BYTES;
        let row_stride = width.div_ceil(align) * align;
        let view_bytes = row_stride as u64 * height as u64 * TEXEL_BYTES as u64;
        let total_bytes = view_bytes * views.len() as u64;
        let limit = ctx.max_binding_bytes();
        if total_bytes > limit {
            return Err(RenderError::TooLarge {
                what: "visibility buffer (bytes)",
                needed: total_bytes,
                limit,
            });
        }
        ctx.scoped("rasterise visibility", || {
            let device = ctx.device();
            let positions: Vec<[f32; 4]> = mesh
                .positions()
                .iter()
                .map(|p| p.extend(1.0).to_array())
                .collect();
            let positions = storage_buffer(
                ctx,
                "mesh positions",
                bytemuck::cast_slice(&positions),
                wgpu::BufferUsages::empty(),
            );
            let triangles = storage_buffer(
                ctx,
                "mesh triangles",
                bytemuck::cast_slice(mesh.triangles()),
                wgpu::BufferUsages::empty(),
            );
            let view_buffer = storage_buffer(
                ctx,
                "target views",
                bytemuck::cast_slice(views),
                wgpu::BufferUsages::empty(),
            );
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("visibility bind group"),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: positions.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: triangles.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: view_buffer.as_entire_binding(),
                    },
                ],
            });
            let target_size = wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            };
            let target = |label, format, usage| {
                device.create_texture(&wgpu::TextureDescriptor {
                    label: Some(label),
                    size: target_size,
                    mip_level_count: 1,
                    sample_count: 1,
                    dimension: wgpu::TextureDimension::D2,
                    format,
                    usage,
                    view_formats: &[],
                })
            };
            let color = target(
                "visibility target",
                VISIBILITY_FORMAT,
                wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
            );
            let depth = target(
                "visibility depth",
                wgpu::TextureFormat::Depth32Float,
                wgpu::TextureUsages::RENDER_ATTACHMENT,
            );
            let color_view = color.create_view(&Default::default());
            let depth_view = depth.create_view(&Default::default());
            let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("visibility buffer"),
                size: total_bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let vertex_count = 3 * mesh.triangles().len() as u32;
            let mut encoder = device.create_command_encoder(&Default::default());
            for k in 0..views.len() as u32 {
                {
                    let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                        label: Some("visibility pass"),
                        color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                            view: &color_view,
                            depth_slice: None,
                            resolve_target: None,
                            ops: wgpu::Operations {
                                load: wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT),
                                store: wgpu::StoreOp::Store,
                            },
                        })],
                        depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                            view: &depth_view,
                            depth_ops: Some(wgpu::Operations {
                                load: wgpu::LoadOp::Clear(0.0),
                                store: wgpu::StoreOp::Discard,
                            }),
                            stencil_ops: None,
                        }),
                        ..Default::default()
                    });
                    if vertex_count > 0 {
                        pass.set_pipeline(&self.pipeline);
                        pass.set_bind_group(0, &bind_group, &[]);
                        pass.draw(0..vertex_count, k..k + 1);
                    }
                }
                encoder.copy_texture_to_buffer(
                    color.as_image_copy(),
                    wgpu::TexelCopyBufferInfo {
                        buffer: &buffer,
                        layout: wgpu::TexelCopyBufferLayout {
                            offset: k as u64 * view_bytes,
                            bytes_per_row: Some(row_stride * TEXEL_BYTES),
                            rows_per_image: Some(height),
                        },
                    },
                    target_size,
                );
            }
            ctx.queue().submit([encoder.finish()]);

            let staging = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("visibility readback"),
                size: total_bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut padded = vec![Fragment::default(); (total_bytes / TEXEL_BYTES as u64) as usize];
            ctx.read_back(
                "read visibility buffer",
                &buffer,
                0,
                &staging,
                bytemuck::cast_slice_mut(&mut padded),
            )?;
            let fragments = padded
                .chunks(row_stride as usize)
                .flat_map(|row| &row[..width as usize])
                .copied()
                .collect();
            Ok(GpuVisibility {
                buffer,
                row_stride,
                triangles,
                visibility: Visibility::new(views.len(), height, width, fragments),
            })
        })
    }
}
