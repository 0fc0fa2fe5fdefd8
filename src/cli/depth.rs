//! Reading a supplied anchor depth map (`--depth`): z-depth in world units from a NumPy
//! `.npy` array (float32 or float64, shape `[H, W]`, C order), or from a 16-bit grayscale
//! PNG whose values are divided by `--depth-scale` (1000 for millimetres).

use std::path::Path;

use super::error::{CliError, Result};
use crate::render::DepthMap;

/// Reads the depth map at `path`; `png_scale` converts 16-bit PNG values to world units.
pub fn read_depth(path: &Path, png_scale: f32) -> Result<DepthMap> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::file(path, format!("cannot read depth map: {e}")))?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let (width, height, data) = match extension.as_deref() {
        Some("npy") => parse_npy(&bytes).map_err(|e| CliError::file(path, e))?,
        Some("png") => decode_png16(&bytes, png_scale).map_err(|e| CliError::file(path, e))?,
        _ => {
            return Err(CliError::file(
                path,
                "unknown depth map format: expected a .npy or a 16-bit .png file",
            ));
        }
    };
    DepthMap::new(width, height, data).map_err(|e| CliError::render(path, e))
}

/// Decodes a 16-bit grayscale PNG and divides its values by `scale`.
fn decode_png16(bytes: &[u8], scale: f32) -> std::result::Result<(u32, u32, Vec<f32>), String> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(format!(
            "--depth-scale must be a positive number, got {scale}"
        ));
    }
    let image = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .map_err(|e| format!("not a readable PNG: {e}"))?;
    let image::DynamicImage::ImageLuma16(gray) = image else {
        return Err(format!(
            "depth PNGs must be 16-bit grayscale, this one is {:?}",
            image.color()
        ));
    };
    let (width, height) = gray.dimensions();
    let data = gray
        .into_raw()
        .into_iter()
        .map(|v| v as f32 / scale)
        .collect();
    Ok((width, height, data))
}

/// Parses a NumPy `.npy` file holding a 2-D little-endian float array in C order.
fn parse_npy(bytes: &[u8]) -> std::result::Result<(u32, u32, Vec<f32>), String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if !bytes.starts_with(MAGIC) || bytes.len() < 10 {
        return Err("not a NumPy .npy file (bad magic)".into());
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    let data_start = header_start + header_len;
    let header = bytes
        .get(header_start..data_start)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated or non-text .npy header")?;
    let descr = header_value(header, "descr")?;
    let element = match descr.trim_matches(|c| c == '\'' || c == '"') {
        "<f4" => 4,
        "<f8" => 8,
        other => {
            return Err(format!(
                "depth arrays must be little-endian float32 or float64, not {other:?}"
            ));
        }
    };
    if header_value(header, "fortran_order")? != "False" {
        return Err("Fortran-order arrays are not supported; save with C order".into());
    }
    let shape = header_value(header, "shape")?;
    let dims: Vec<usize> = shape
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().map_err(|_| format!("bad shape {shape}")))
        .collect::<std::result::Result<_, String>>()?;
    let &[height, width] = dims.as_slice() else {
        return Err(format!(
            "depth arrays must be 2-D [H, W], this one has shape {shape}"
        ));
    };
    let count = height
        .checked_mul(width)
        .ok_or_else(|| format!("shape {shape} is too large"))?;
    let payload = &bytes[data_start..];
    if payload.len() != count * element {
        return Err(format!(
            "shape {shape} needs {} bytes of data, the file has {}",
            count * element,
            payload.len()
        ));
    }
    let data = if element == 4 {
        payload
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        payload
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                f64::from_le_bytes(b) as f32
            })
            .collect()
    };
    let side = |v: usize| u32::try_from(v).map_err(|_| format!("shape {shape} is too large"));
    Ok((side(width)?, side(height)?, data))
}

/// A NumPy `.npy` file (format 1.0) holding `data` as a little-endian float32 array of shape
/// `[height, width]` in C order: what [`read_depth`] reads back.
pub fn encode_npy(width: u32, height: u32, data: &[f32]) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({height}, {width}), }}");
    // The magic, version and length take 10 bytes; the header ends in a newline and the whole
    // preamble is padded to a multiple of 64 bytes, as NumPy writes it.
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    bytes
}

/// The textual value of `key` in a `.npy` header dictionary (`{'descr': '<f4', ...}`).
fn header_value<'h>(header: &'h str, key: &str) -> std::result::Result<&'h str, String> {
    let missing = || format!(".npy header has no {key:?} entry");
    let quoted = [format!("'{key}':"), format!("\"{key}\":")];
    let start = quoted
        .iter()
        .find_map(|q| header.find(q.as_str()).map(|i| i + q.len()))
        .ok_or_else(missing)?;
    let rest = header[start..].trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')').map(|i| i + 1)
    } else {
        rest.find([',', '}'])
    }
    .ok_or_else(missing)?;
    Ok(rest[..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.npy` file as NumPy 1.x writes it (version 1.0, header padded to 64 bytes).
    fn npy(descr: &str, shape: &str, payload: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    fn scratch(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("mvcustom-depth-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn reads_float32_and_float64_npy_arrays_row_major() {
        let values = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let f4: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let f8: Vec<u8> = values
            .iter()
            .flat_map(|&v| (v as f64).to_le_bytes())
            .collect();
        for (descr, payload) in [("<f4", f4), ("<f8", f8)] {
            let (w, h, data) = parse_npy(&npy(descr, "(2, 3)", &payload)).unwrap();
            assert_eq!((w, h), (3, 2));
            assert_eq!(data, values);
        }
    }

    #[test]
    fn written_npy_arrays_read_back() {
        let values = [0.5f32, 1.0, 2.0, 4.0, 8.0, 16.0];
        let bytes = encode_npy(3, 2, &values);
        assert_eq!((bytes.len() - values.len() * 4) % 64, 0);
        assert_eq!(
            bytes,
            npy("<f4", "(2, 3)", &values.map(f32::to_le_bytes).concat())
        );
        let path = scratch("written.npy", &bytes);
        let depth = read_depth(&path, 1.0).unwrap();
        assert_eq!((depth.width(), depth.height()), (3, 2));
        assert_eq!(depth.data(), &values);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn rejects_npy_arrays_it_cannot_use() {
        let four = [0u8; 16];
        assert!(
            parse_npy(&npy("<i4", "(2, 2)", &four))
                .unwrap_err()
                .contains("float32")
        );
        assert!(
            parse_npy(&npy("<f4", "(4,)", &four))
                .unwrap_err()
                .contains("2-D")
        );
        assert!(
            parse_npy(&npy("<f4", "(2, 3)", &four))
                .unwrap_err()
                .contains("needs 24 bytes")
        );
        assert!(
            parse_npy(b"PK\x03\x04 not numpy")
                .unwrap_err()
                .contains("magic")
        );
    }

    #[test]
    fn reads_16_bit_pngs_with_a_scale_and_names_bad_files() {
        let gray =
            image::ImageBuffer::<image::Luma<u16>, _>::from_raw(2, 1, vec![1000u16, 2500]).unwrap();
        let mut png = Vec::new();
        gray.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let path = scratch("depth.png", &png);
        let depth = read_depth(&path, 1000.0).unwrap();
        assert_eq!((depth.width(), depth.height()), (2, 1));
        assert_eq!(depth.data(), &[1.0, 2.5]);

        let rgb = image::RgbImage::new(2, 2);
        let mut png8 = Vec::new();
        rgb.write_to(
            &mut std::io::Cursor::new(&mut png8),
            image::ImageFormat::Png,
        )
        .unwrap();
        let rgb_path = scratch("rgb.png", &png8);
        let err = read_depth(&rgb_path, 1000.0).unwrap_err().to_string();
        assert!(
            err.contains("rgb.png") && err.contains("16-bit grayscale"),
            "{err}"
        );

        let zero = image::ImageBuffer::<image::Luma<u16>, _>::from_raw(1, 1, vec![0u16]).unwrap();
        let mut png0 = Vec::new();
        zero.write_to(
            &mut std::io::Cursor::new(&mut png0),
            image::ImageFormat::Png,
        )
        .unwrap();
        let zero_path = scratch("zero.png", &png0);
        assert!(
            read_depth(&zero_path, 1000.0)
                .unwrap_err()
                .to_string()
                .contains("zero.png")
        );

        let other = scratch("depth.exr", b"x");
        assert!(
            read_depth(&other, 1.0)
                .unwrap_err()
                .to_string()
                .contains("unknown depth map format")
        );
        for p in [path, rgb_path, zero_path, other] {
            std::fs::remove_file(p).unwrap();
        }
    }
}
