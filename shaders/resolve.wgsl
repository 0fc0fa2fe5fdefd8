// Feature resolve: gathers the anchor mesh's per-vertex features (a [C, vertices] buffer, i.e.
// the anchor feature map itself) through the visibility buffer into rendered features
// [K, C, height, width]. One invocation per output value; a dispatch covers the "planes"
// (view, channel) from plane_offset to plane_offset + plane_count, so outputs of any size are
// produced in chunks that fit the device's storage-buffer limit.

struct Params {
    width: u32,
    height: u32,
    // Texels per row of the visibility buffer (rows are padded for texture copies).
    row_stride: u32,
    channels: u32,
    plane_offset: u32,
    plane_count: u32,
    vertex_count: u32,
    _pad: u32,
};

@group(0) @binding(0) var<uniform> params: Params;
// (triangle id + 1, b0 bits, b1 bits, depth bits) per texel, [K, height, row_stride].
@group(0) @binding(1) var<storage, read> visibility: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> triangles: array<u32>;
@group(0) @binding(3) var<storage, read> features: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(64)
fn resolve(@builtin(global_invocation_id) gid: vec3<u32>) {
    let pixels = params.width * params.height;
    let pixel = gid.x;
    let local_plane = gid.y;
    if (pixel >= pixels || local_plane >= params.plane_count) {
        return;
    }
    let plane = params.plane_offset + local_plane;
    let view = plane / params.channels;
    let channel = plane % params.channels;
    let x = pixel % params.width;
    let y = pixel / params.width;
    let texel = visibility[(view * params.height + y) * params.row_stride + x];
    var value = 0.0;
    if (texel.x != 0u) {
        let t = 3u * (texel.x - 1u);
        let b0 = bitcast<f32>(texel.y);
        let b1 = bitcast<f32>(texel.z);
        let b2 = 1.0 - b0 - b1;
        let base = channel * params.vertex_count;
        value = b0 * features[base + triangles[t]]
            + b1 * features[base + triangles[t + 1u]]
            + b2 * features[base + triangles[t + 2u]];
    }
    output[local_plane * pixels + pixel] = value;
}
