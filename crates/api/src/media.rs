//! What an upload really is: picture types read from the bytes, dimensions and thumbnails
//! decoded under limits, file names and declared types cleaned before they are stored or
//! sent back in a header.

use std::io::{BufReader, Cursor};
use std::path::Path;

use image::{ImageFormat, ImageReader, Limits};

/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_MAX_SIDE: u32 = 256;

/// Bytes of a file's start that [`sniff`] needs.
pub const SNIFF_BYTES: usize = 12;

/// The longest stored file name, in bytes (the column holds 255 characters on every backend).
const MAX_NAME_BYTES: usize = 255;

/// The picture formats an `image` upload may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Picture {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl Picture {
    pub fn mime(self) -> &'static str {
        match self {
            Picture::Png => "image/png",
            Picture::Jpeg => "image/jpeg",
            Picture::Gif => "image/gif",
            Picture::Webp => "image/webp",
        }
    }

    fn format(self) -> ImageFormat {
        match self {
            Picture::Png => ImageFormat::Png,
            Picture::Jpeg => ImageFormat::Jpeg,
            Picture::Gif => ImageFormat::Gif,
            Picture::Webp => ImageFormat::WebP,
        }
    }
}

/// The picture format the first bytes of a file announce, by their magic numbers; the name
/// and the declared type are never trusted for this.
pub fn sniff(head: &[u8]) -> Option<Picture> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Picture::Png)
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Picture::Jpeg)
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some(Picture::Gif)
    } else if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        Some(Picture::Webp)
    } else {
        None
    }
}

/// Why a picture was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    #[error("the picture is {width}x{height}, over the limit of {max} pixels")]
    TooManyPixels { width: u32, height: u32, max: u64 },
    #[error("the picture cannot be decoded: {0}")]
    Undecodable(String),
    #[error("reading the picture: {0}")]
    Io(#[from] std::io::Error),
}

/// A checked picture: its dimensions and an encoded thumbnail.
#[derive(Debug)]
pub struct Inspected {
    pub width: u32,
    pub height: u32,
    pub thumbnail: Vec<u8>,
}

/// Reads the picture's dimensions from its header, refuses it when they exceed `max_pixels`
/// before anything is decoded, then decodes it under allocation limits and makes the
/// thumbnail. Blocking: run it off the async runtime.
pub fn inspect(path: &Path, kind: Picture, max_pixels: u64) -> Result<Inspected, PictureError> {
    let (width, height) = reader(path, kind, max_pixels)?
        .into_dimensions()
        .map_err(|e| PictureError::Undecodable(e.to_string()))?;
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(PictureError::TooManyPixels {
            width,
            height,
            max: max_pixels,
        });
    }
    let picture = reader(path, kind, max_pixels)?
        .decode()
        .map_err(|e| PictureError::Undecodable(e.to_string()))?;
    let small = picture.thumbnail(THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE);
    let mut thumbnail = Cursor::new(Vec::new());
    // A photo's thumbnail stays a JPEG (much smaller); the others keep transparency as PNG.
    let encoded = if kind == Picture::Jpeg {
        image::DynamicImage::ImageRgb8(small.to_rgb8()).write_to(&mut thumbnail, ImageFormat::Jpeg)
    } else {
        small.write_to(&mut thumbnail, ImageFormat::Png)
    };
    encoded.map_err(|e| PictureError::Undecodable(e.to_string()))?;
    Ok(Inspected {
        width,
        height,
        thumbnail: thumbnail.into_inner(),
    })
}

/// The type of the thumbnail made for a picture of type `original`: JPEG for photos, PNG
/// for the rest (see [`inspect`]).
pub fn thumbnail_type(original: &str) -> &'static str {
    if original == Picture::Jpeg.mime() {
        Picture::Jpeg.mime()
    } else {
        Picture::Png.mime()
    }
}

/// A reader for the sniffed format with limits derived from the pixel cap: no side longer
/// than the cap allows, and no more memory than the largest allowed picture needs at 16 bits
/// per RGBA channel. A decompression bomb fails these before its pixels are allocated.
fn reader(
    path: &Path,
    kind: Picture,
    max_pixels: u64,
) -> Result<ImageReader<BufReader<std::fs::File>>, PictureError> {
    let mut reader = ImageReader::new(BufReader::new(std::fs::File::open(path)?));
    reader.set_format(kind.format());
    let side = u32::try_from(max_pixels).unwrap_or(u32::MAX);
    let mut limits = Limits::default();
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(1 << 20));
    reader.limits(limits);
    Ok(reader)
}

/// The name an upload is stored and offered under: the last path component only, without
/// control characters or leading dots, at most 255 bytes; `fallback` when nothing is left.
pub fn clean_file_name(raw: Option<&str>, fallback: &str) -> String {
    let last = raw
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let kept: String = last.chars().filter(|c| !c.is_control()).collect();
    let trimmed = kept.trim().trim_start_matches('.').trim();
    let mut name = String::new();
    for c in trimmed.chars() {
        if name.len() + c.len_utf8() > MAX_NAME_BYTES {
            break;
        }
        name.push(c);
    }
    if name.is_empty() {
        fallback.to_owned()
    } else {
        name
    }
}

/// The declared type of a file as stored: `type/subtype` in lower case without parameters,
/// or `application/octet-stream` when missing or malformed.
pub fn clean_declared_type(declared: Option<&str>) -> String {
    let essence = declared
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
    };
    match essence.split_once('/') {
        Some((kind, sub)) if token(kind) && token(sub) && essence.len() <= 127 => essence,
        _ => OCTET_STREAM.to_owned(),
    }
}

pub const OCTET_STREAM: &str = "application/octet-stream";

/// Declared types a download is served as; anything else goes out as
/// `application/octet-stream`. Nothing here can run script in a browser (no HTML, no SVG,
/// no XML), and the download headers forbid sniffing and sandbox the response anyway.
const SAFE_DOWNLOAD_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "video/mp4",
    "video/webm",
    "video/quicktime",
    "audio/mpeg",
    "audio/ogg",
    "audio/webm",
    "audio/mp4",
    "application/pdf",
    "application/zip",
    "text/plain",
];

/// The `Content-Type` a stored file is served with.
pub fn download_type(stored: &str) -> &'static str {
    let stored = clean_declared_type(Some(stored));
    SAFE_DOWNLOAD_TYPES
        .iter()
        .find(|t| **t == stored)
        .copied()
        .unwrap_or(OCTET_STREAM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_told_by_their_magic_numbers() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some(Picture::Png));
        assert_eq!(
            sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]),
            Some(Picture::Jpeg)
        );
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0"), Some(Picture::Gif));
        assert_eq!(sniff(b"RIFF\x24\0\0\0WEBPVP8 "), Some(Picture::Webp));
        assert_eq!(sniff(b"RIFF\x24\0\0\0WAVEfmt "), None);
        assert_eq!(sniff(b"<svg xmlns="), None);
        assert_eq!(sniff(b"just text, not a picture"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn file_names_lose_paths_and_control_characters() {
        assert_eq!(
            clean_file_name(Some("../../etc/passwd"), "upload"),
            "passwd"
        );
        assert_eq!(
            clean_file_name(Some("C:\\Users\\me\\cat.png"), "upload"),
            "cat.png"
        );
        assert_eq!(
            clean_file_name(Some("a\u{0}b\r\nc.txt"), "upload"),
            "abc.txt"
        );
        assert_eq!(clean_file_name(Some(".."), "upload"), "upload");
        assert_eq!(clean_file_name(Some(".bashrc"), "upload"), "bashrc");
        assert_eq!(clean_file_name(None, "upload"), "upload");
        assert_eq!(clean_file_name(Some("résumé.pdf"), "upload"), "résumé.pdf");
        let long = "é".repeat(200);
        let cleaned = clean_file_name(Some(&long), "upload");
        assert!(cleaned.len() <= MAX_NAME_BYTES && cleaned.chars().all(|c| c == 'é'));
    }

    #[test]
    fn declared_types_are_normalised_and_unsafe_ones_are_never_served() {
        assert_eq!(
            clean_declared_type(Some("Video/MP4; codecs=avc1")),
            "video/mp4"
        );
        assert_eq!(clean_declared_type(Some("not a type")), OCTET_STREAM);
        assert_eq!(clean_declared_type(None), OCTET_STREAM);
        assert_eq!(download_type("video/mp4"), "video/mp4");
        assert_eq!(download_type("text/html"), OCTET_STREAM);
        assert_eq!(download_type("image/svg+xml"), OCTET_STREAM);
        assert_eq!(download_type("application/xhtml+xml"), OCTET_STREAM);
    }
}
