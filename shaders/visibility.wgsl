// Visibility pass of the anchor feature mesh: rasterises the mesh into one target view per
// instance and writes, per pixel, (triangle id + 1, barycentric b0, barycentric b1, z-depth)
// into an Rgba32Uint target (floats bit-cast), with a reversed depth test (greater wins).
//
// Vertices are pulled from storage buffers (non-indexed draw of 3 vertices per triangle), so a
// vertex knows its whole triangle: a triangle with any vertex at or in front of the near plane
// collapses to a point and produces no fragments, exactly as the CPU reference skips it.

struct View {
    // Rows of the world -> camera rotation (xyz used).
    rows: array<vec4<f32>, 3>,
    // World -> camera translation (xyz used).
    translation: vec4<f32>,
    // (ax, bx, ay, by): clip.x = ax * p.x + bx * w, clip.y = ay * p.y + by * w.
    xy: vec4<f32>,
    // (z0, z1, w0, w1): clip.z = z0 + z1 * p.z, w = w0 + w1 * p.z.
    zw: vec4<f32>,
    // (near, -, -, -).
    near: vec4<f32>,
};

@group(0) @binding(0) var<storage, read> positions: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> triangles: array<u32>;
@group(0) @binding(2) var<storage, read> views: array<View>;

struct VertexOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) @interpolate(flat) triangle: u32,
    @location(1) bary: vec2<f32>,
    @location(2) depth: f32,
};

fn camera_point(view: View, p: vec3<f32>) -> vec3<f32> {
    return vec3<f32>(
        view.rows[0].x * p.x + view.rows[0].y * p.y + view.rows[0].z * p.z + view.translation.x,
        view.rows[1].x * p.x + view.rows[1].y * p.y + view.rows[1].z * p.z + view.translation.y,
        view.rows[2].x * p.x + view.rows[2].y * p.y + view.rows[2].z * p.z + view.translation.z,
    );
}

@vertex
fn vs_main(@builtin(vertex_index) vertex: u32, @builtin(instance_index) view_index: u32) -> VertexOut {
    let view = views[view_index];
    let triangle = vertex / 3u;
    let corner = vertex % 3u;
    var out: VertexOut;
    out.triangle = triangle + 1u;

    var z_min = 3.4e38;
    for (var i = 0u; i < 3u; i = i + 1u) {
        z_min = min(z_min, camera_point(view, positions[triangles[3u * triangle + i]].xyz).z);
    }
    let p = camera_point(view, positions[triangles[3u * triangle + corner]].xyz);
    if (z_min <= view.near.x) {
        // Every corner lands on the same point outside the clip volume: no fragments.
        out.clip = vec4<f32>(2.0, 2.0, 2.0, 1.0);
        out.bary = vec2<f32>(0.0);
        out.depth = 0.0;
        return out;
    }

    let w = view.zw.z + view.zw.w * p.z;
    out.clip = vec4<f32>(
        view.xy.x * p.x + view.xy.y * w,
        view.xy.z * p.y + view.xy.w * w,
        view.zw.x + view.zw.y * p.z,
        w,
    );
    out.bary = vec2<f32>(select(0.0, 1.0, corner == 0u), select(0.0, 1.0, corner == 1u));
    out.depth = p.z;
    return out;
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<u32> {
    return vec4<u32>(in.triangle, bitcast<u32>(in.bary.x), bitcast<u32>(in.bary.y), bitcast<u32>(in.depth));
}
