// Feature resolve: gathers the anchor mesh's per-vertex features (a [C, vertices] buffer, i.e.
// the anchor feature map itself) through the visibility buffer into rendered features
// [K, C, height, width]. A dispatch covers the "planes" (view, channel) from plane_offset to
// plane_offset + plane_count, so outputs of any size are produced in chunks that fit the
// device's storage-buffer limit. Each invocation handles one pixel for up to
// planes_per_invocation consecutive planes, reading its visibility texel and triangle once per
// view; neighbouring invocations handle neighbouring pixels, so writes stay contiguous.

struct Params {
    width: u32,
    height: u32,
    // Texels per row of the visibility buffer (rows are padded for texture copies).
    row_stride: u32,
    channels: u32,
    plane_offset: u32,
    plane_count: u32,
    vertex_count: u32,
    planes_per_invocation: u32,
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
    let first = gid.y * params.planes_per_invocation;
    if (pixel >= pixels || first >= params.plane_count) {
        return;
    }
    let last = min(first + params.planes_per_invocation, params.plane_count);
    let x = pixel % params.width;
    let y = pixel / params.width;

    var view = 0xffffffffu;
    var visible = false;
    var corners = vec3<u32>(0u);
    var weights = vec3<f32>(0.0);
    for (var local = first; local < last; local = local + 1u) {
        let plane = params.plane_offset + local;
        let plane_view = plane / params.channels;
        if (plane_view != view) {
            view = plane_view;
            let texel = visibility[(view * params.height + y) * params.row_stride + x];
            visible = texel.x != 0u;
            if (visible) {
                let t = 3u * (texel.x - 1u);
                corners = vec3<u32>(triangles[t], triangles[t + 1u], triangles[t + 2u]);
                let b0 = bitcast<f32>(texel.y);
                let b1 = bitcast<f32>(texel.z);
                weights = vec3<f32>(b0, b1, 1.0 - b0 - b1);
            }
        }
        var value = 0.0;
        if (visible) {
            let base = (plane - view * params.channels) * params.vertex_count;
            value = weights.x * features[base + corners.x]
                + weights.y * features[base + corners.y]
                + weights.z * features[base + corners.z];
        }
        output[local * pixels + pixel] = value;
    }
}
