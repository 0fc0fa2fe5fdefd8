//! Generated views as Bevy images and back: RGBA8 sRGB textures usable by materials and UI,
//! and PNG files written atomically.

use std::path::Path;

use bevy::asset::RenderAssetUsages;
use bevy::image::Image;
use bevy::math::UVec2;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};

use super::error::PluginError;

/// A generated view as a Bevy image: RGBA8 in sRGB, kept in both worlds so it can be shown
/// and read back (saved) alike.
pub fn to_bevy_image(view: &image::RgbaImage) -> Image {
    Image::new(
        extent(UVec2::new(view.width(), view.height())),
        TextureDimension::D2,
        view.as_raw().clone(),
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::default(),
    )
}

/// A transparent image of `size`, shown until a view's first preview or result arrives.
pub fn placeholder_image(size: UVec2) -> Image {
    Image::new_fill(
        extent(size),
        TextureDimension::D2,
        &[0, 0, 0, 0],
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::default(),
    )
}

/// The pixels of an RGBA8 image (sRGB or linear-tagged: the bytes are returned as stored).
pub fn to_rgba_image(image: &Image) -> Result<image::RgbaImage, PluginError> {
    let format = image.texture_descriptor.format;
    if !matches!(
        format,
        TextureFormat::Rgba8UnormSrgb | TextureFormat::Rgba8Unorm
    ) {
        return Err(PluginError::Image {
            reason: format!("format {format:?} is not RGBA8"),
        });
    }
    let data = image.data.clone().ok_or_else(|| PluginError::Image {
        reason: "no pixel data in the main world (GPU-only image)".into(),
    })?;
    let (width, height) = (image.width(), image.height());
    image::RgbaImage::from_raw(width, height, data).ok_or_else(|| PluginError::Image {
        reason: format!("pixel data does not fill {width}×{height} RGBA8"),
    })
}

/// Writes `image` to `path` as a PNG, atomically: into a temporary file next to it, then
/// renamed over it, so a reader never sees a half-written file.
pub fn save_png(image: &Image, path: &Path) -> Result<(), PluginError> {
    let pixels = to_rgba_image(image)?;
    let file_error = |path: &Path, reason: String| PluginError::File {
        path: path.to_owned(),
        reason,
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| file_error(path, "not a file path".into()))?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(file_name);
    temporary_name.push(format!(".{}.tmp", std::process::id()));
    let temporary = path.with_file_name(temporary_name);
    pixels
        .save_with_format(&temporary, image::ImageFormat::Png)
        .map_err(|e| file_error(&temporary, e.to_string()))?;
    std::fs::rename(&temporary, path).map_err(|e| {
        // Best effort: do not leave the temporary file behind.
        let _ = std::fs::remove_file(&temporary);
        file_error(path, e.to_string())
    })
}

fn extent(size: UVec2) -> Extent3d {
    Extent3d {
        width: size.x,
        height: size.y,
        depth_or_array_layers: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_round_trip_through_bevy_images() {
        let view = image::RgbaImage::from_fn(5, 3, |x, y| {
            image::Rgba([x as u8 * 40, y as u8 * 70, 200, 255 - x as u8])
        });
        let bevy_image = to_bevy_image(&view);
        assert_eq!(bevy_image.size(), UVec2::new(5, 3));
        assert_eq!(
            bevy_image.texture_descriptor.format,
            TextureFormat::Rgba8UnormSrgb
        );
        assert_eq!(to_rgba_image(&bevy_image).unwrap(), view);
    }

    #[test]
    fn placeholders_are_transparent() {
        let placeholder = to_rgba_image(&placeholder_image(UVec2::new(4, 2))).unwrap();
        assert_eq!(placeholder.dimensions(), (4, 2));
        assert!(placeholder.pixels().all(|p| p.0 == [0, 0, 0, 0]));
    }

    #[test]
    fn non_rgba8_images_are_refused() {
        let mut image = placeholder_image(UVec2::new(2, 2));
        image.texture_descriptor.format = TextureFormat::R32Float;
        let error = to_rgba_image(&image).unwrap_err();
        assert!(error.to_string().contains("R32Float"), "{error}");
    }

    #[test]
    fn save_png_writes_the_pixels_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("mvcustom-png-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let view = image::RgbaImage::from_fn(3, 2, |x, y| image::Rgba([x as u8, y as u8, 9, 255]));
        let path = dir.join("view.png");
        save_png(&to_bevy_image(&view), &path).unwrap();
        let read = image::open(&path).unwrap().to_rgba8();
        assert_eq!(read, view);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("view.png")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
