//! The render-world half of scene depth: a camera asked for its depth (a [`SceneDepthRequest`]
//! in the main world) has its depth-prepass texture copied by a small compute pass into a
//! buffer right after its prepass, read back asynchronously, and sent to the main world.
//!
//! A compute pass rather than a texture-to-buffer copy: the prepass texture cannot be a copy
//! source, and a multisampled one could not be copied to a buffer at all; the shader reads
//! sample 0.

use std::sync::mpsc::Sender;

use bevy::core_pipeline::prepass::ViewPrepassTextures;
use bevy::core_pipeline::{Core3d, Core3dSystems};
use bevy::ecs::entity::Entity;
use bevy::log::warn;
use bevy::platform::collections::HashMap;
use bevy::prelude::{FromWorld, IntoScheduleConfigs, Query, Res, ResMut, Resource, World};
use bevy::render::renderer::{RenderContext, RenderDevice, ViewQuery};
use bevy::render::sync_world::RenderEntity;
use bevy::render::{Extract, ExtractSchedule, GpuResourceAppExt, Render, RenderApp, RenderSystems};

use super::{CapturedDepth, SceneDepthRequest};

/// Side of the compute shader's square workgroups.
const WORKGROUP: u32 = 8;

/// Adds the capture to the render app: extraction of the requests, the copy after each
/// camera's prepass, the read-back after submission.
pub(super) fn add_render_systems(app: &mut bevy::app::App, sender: Sender<CapturedDepth>) {
    let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
        return;
    };
    render_app
        .insert_resource(CaptureSender(sender))
        .init_resource::<CaptureRequests>()
        .init_resource::<PendingCaptures>()
        .init_gpu_resource::<CapturePipelines>()
        .add_systems(ExtractSchedule, extract_requests)
        .add_systems(
            Core3d,
            copy_view_depth
                .after(Core3dSystems::Prepass)
                .before(Core3dSystems::MainPass),
        )
        .add_systems(Render, map_captures.in_set(RenderSystems::Cleanup));
}

/// Where captured depth goes: the main world's receiver.
#[derive(Resource)]
struct CaptureSender(Sender<CapturedDepth>);

/// This frame's requests: render-world camera entity → request id.
#[derive(Resource, Default)]
struct CaptureRequests(HashMap<Entity, u64>);

/// Copies recorded this frame, to be mapped once the frame is submitted.
#[derive(Resource, Default)]
struct PendingCaptures(Vec<PendingCapture>);

/// One copy in flight: the staging buffer it lands in.
struct PendingCapture {
    id: u64,
    width: u32,
    height: u32,
    staging: wgpu::Buffer,
}

/// The copy pipelines, single-sampled and multisampled, compiled once per render device.
#[derive(Resource)]
struct CapturePipelines {
    single: wgpu::ComputePipeline,
    multisampled: wgpu::ComputePipeline,
}

impl FromWorld for CapturePipelines {
    fn from_world(world: &mut World) -> Self {
        let device = world.resource::<RenderDevice>().wgpu_device();
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("bevy_mvcustom depth capture"),
            source: wgpu::ShaderSource::Wgsl(
                include_str!("../../../shaders/depth_capture.wgsl").into(),
            ),
        });
        let pipeline = |entry_point| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("bevy_mvcustom depth capture"),
                layout: None,
                module: &module,
                entry_point: Some(entry_point),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        Self {
            single: pipeline("copy_single"),
            multisampled: pipeline("copy_multisampled"),
        }
    }
}

/// Collects the main world's requests for this frame.
fn extract_requests(
    mut requests: ResMut<CaptureRequests>,
    cameras: Extract<Query<(RenderEntity, &SceneDepthRequest)>>,
    device: Res<RenderDevice>,
) {
    requests.0.clear();
    for (camera, request) in &cameras {
        requests.0.insert(camera, request.id());
    }
    if !requests.0.is_empty() {
        // Lets finished read-backs report without waiting for the next submission.
        if let Err(e) = device.poll(wgpu::PollType::Poll) {
            warn!("polling the render device for scene depth: {e}");
        }
    }
}

/// Copies the current view's prepass depth into a staging buffer when it was asked for
/// (runs in every 3D camera's schedule, between its prepass and main pass).
fn copy_view_depth(
    view: ViewQuery<&ViewPrepassTextures>,
    requests: Res<CaptureRequests>,
    pipelines: Option<Res<CapturePipelines>>,
    mut pending: ResMut<PendingCaptures>,
    mut ctx: RenderContext,
) {
    let Some(&id) = requests.0.get(&view.entity()) else {
        return;
    };
    let (Some(pipelines), Some(depth)) = (pipelines, view.into_inner().depth.as_ref()) else {
        return;
    };
    let texture = &depth.texture.texture;
    let (width, height) = (texture.width(), texture.height());
    let bytes = u64::from(width) * u64::from(height) * 4;
    let (pipeline, texture_binding) = if texture.sample_count() > 1 {
        (&pipelines.multisampled, 2)
    } else {
        (&pipelines.single, 0)
    };
    let device = ctx.render_device().wgpu_device().clone();
    let buffer = |usage| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("bevy_mvcustom scene depth"),
            size: bytes,
            usage,
            mapped_at_creation: false,
        })
    };
    let packed = buffer(wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC);
    let staging = buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("bevy_mvcustom depth capture"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: texture_binding,
                resource: wgpu::BindingResource::TextureView(&depth.texture.default_view),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: packed.as_entire_binding(),
            },
        ],
    });
    let encoder = ctx.command_encoder();
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("bevy_mvcustom depth capture"),
            timestamp_writes: None,
        });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(width.div_ceil(WORKGROUP), height.div_ceil(WORKGROUP), 1);
    }
    encoder.copy_buffer_to_buffer(&packed, 0, &staging, 0, bytes);
    pending.0.push(PendingCapture {
        id,
        width,
        height,
        staging,
    });
}

/// Maps this frame's staging buffers (their copies are submitted by now); each sends its
/// depth to the main world when the GPU is done.
fn map_captures(mut pending: ResMut<PendingCaptures>, sender: Res<CaptureSender>) {
    for capture in pending.0.drain(..) {
        let PendingCapture {
            id,
            width,
            height,
            staging,
        } = capture;
        let sender = sender.0.clone();
        let buffer = staging.clone();
        staging
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |mapped| {
                let ndc = mapped.map_err(|e| e.to_string()).map(|()| {
                    let values = bytemuck::pod_collect_to_vec(&buffer.slice(..).get_mapped_range());
                    buffer.unmap();
                    values
                });
                // The receiver is gone only when the app is shutting down.
                let _ = sender.send(CapturedDepth {
                    id,
                    width,
                    height,
                    ndc,
                });
            });
    }
}
