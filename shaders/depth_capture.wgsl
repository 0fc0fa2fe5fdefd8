// Copies a camera's depth buffer (Depth32Float: Bevy's reverse-Z NDC depth) into a tightly
// packed, row-major f32 storage buffer that the plugin reads back for scene-aware DFR.
// Two entry points: single-sampled textures, and multisampled ones (MSAA), of which sample 0
// is taken. Each pipeline is built with an automatic layout from its entry point, so only the
// texture binding that entry point uses is part of its layout.

@group(0) @binding(0) var depth_single: texture_depth_2d;
@group(0) @binding(1) var<storage, read_write> out_depth: array<f32>;
@group(0) @binding(2) var depth_multi: texture_depth_multisampled_2d;

@compute @workgroup_size(8, 8)
fn copy_single(@builtin(global_invocation_id) id: vec3<u32>) {
    let size = textureDimensions(depth_single);
    if id.x >= size.x || id.y >= size.y {
        return;
    }
    out_depth[id.y * size.x + id.x] = textureLoad(depth_single, vec2<i32>(id.xy), 0);
}

@compute @workgroup_size(8, 8)
fn copy_multisampled(@builtin(global_invocation_id) id: vec3<u32>) {
    let size = textureDimensions(depth_multi);
    if id.x >= size.x || id.y >= size.y {
        return;
    }
    out_depth[id.y * size.x + id.x] = textureLoad(depth_multi, vec2<i32>(id.xy), 0);
}
