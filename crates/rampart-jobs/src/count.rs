//! The work itself: what an upload is (from its first bytes and an image's header only, so a
//! decompression bomb is refused before anything is decoded), and the counts of a task.
//! Images are decoded by the `image` crate with only PNG and JPEG built in, under limits that
//! bound the memory a decode may take.

use std::io::Cursor;
use std::ops::Range;

use image::{DynamicImage, ImageFormat, ImageReader};

use crate::model::{Histogram, Kind};

/// What an upload may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest upload, bytes.
    pub max_upload: usize,
    /// The widest or tallest image, pixels.
    pub max_side: u32,
    /// The most bytes an image may decode to.
    pub max_decoded: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_upload: 8 << 20, max_side: 16_384, max_decoded: 256 << 20 }
    }
}

/// What an upload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inspected {
    /// What is counted.
    pub kind: Kind,
    /// An image's width and height.
    pub dimensions: Option<(u32, u32)>,
}

/// Why an upload is not taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InputError {
    /// Over the size limit.
    #[error("the upload is {size} bytes; at most {max} are taken")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// An image whose header promises more than may be decoded.
    #[error("{0}")]
    TooBig(String),
    /// A PNG or JPEG whose header does not read.
    #[error("the image's header does not read: {0}")]
    Unreadable(String),
}

/// What `bytes` is, from its first bytes and, for an image, its header alone.
pub fn inspect(bytes: &[u8], limits: &Limits) -> Result<Inspected, InputError> {
    if bytes.len() > limits.max_upload {
        return Err(InputError::TooLarge { size: bytes.len(), max: limits.max_upload });
    }
    let format = match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg)) => f,
        _ => return Ok(Inspected { kind: Kind::Bytes, dimensions: None }),
    };
    let reader = ImageReader::with_format(Cursor::new(bytes), format);
    let (width, height) = reader.into_dimensions().map_err(|e| InputError::Unreadable(e.to_string()))?;
    if width == 0 || height == 0 {
        return Err(InputError::Unreadable("the image has no pixels".into()));
    }
    if width > limits.max_side || height > limits.max_side {
        return Err(InputError::TooBig(format!(
            "the image is {width}×{height}; at most {0}×{0} pixels are decoded",
            limits.max_side
        )));
    }
    // Four bytes a pixel at most once decoded to 8 bits a channel (RGBA).
    let decoded = u64::from(width) * u64::from(height) * 4;
    if decoded > limits.max_decoded {
        return Err(InputError::TooBig(format!(
            "the image would decode to {decoded} bytes; at most {} are decoded",
            limits.max_decoded
        )));
    }
    Ok(Inspected { kind: Kind::Image, dimensions: Some((width, height)) })
}

/// Decodes `bytes` (a PNG or JPEG) under `limits`.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<DynamicImage, String> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_is_whole(bytes) {
        // The decoder fills what is missing with grey; counting that would be a wrong answer.
        return Err("the JPEG stops short: no end-of-image marker after its scan (truncated?)".into());
    }
    let mut bounds = image::Limits::default();
    bounds.max_image_width = Some(limits.max_side);
    bounds.max_image_height = Some(limits.max_side);
    bounds.max_alloc = Some(limits.max_decoded);
    reader.limits(bounds);
    reader.decode().map_err(|e| e.to_string())
}

/// Whether a JPEG has its end-of-image marker (FF D9) after the start of its scan (FF DA).
fn jpeg_is_whole(bytes: &[u8]) -> bool {
    let scan = bytes.windows(2).position(|w| w == [0xFF, 0xDA]);
    scan.is_some_and(|at| bytes[at..].windows(2).any(|w| w == [0xFF, 0xD9]))
}

/// The bins of rows `rows` of `image`: one channel `l` for a grey image, `r`, `g`, `b` for a
/// colour one (alpha ignored; 16-bit channels scaled to 8).
pub fn image_rows(image: &DynamicImage, rows: Range<u32>) -> Histogram {
    use image::ColorType as C;
    let width = image.width() as usize;
    let (start, end) = (rows.start.min(image.height()) as usize, rows.end.min(image.height()) as usize);
    let mut out = Histogram::default();
    if matches!(image.color(), C::L8 | C::La8 | C::L16 | C::La16) {
        let grey = image.to_luma8();
        let mut bins = vec![0u64; 256];
        for &v in &grey.as_raw()[start * width..end * width] {
            bins[usize::from(v)] += 1;
        }
        out.channels.insert("l".into(), bins);
    } else {
        let rgb = image.to_rgb8();
        let mut bins = [vec![0u64; 256], vec![0u64; 256], vec![0u64; 256]];
        for px in rgb.as_raw()[start * width * 3..end * width * 3].chunks_exact(3) {
            for (channel, &v) in bins.iter_mut().zip(px) {
                channel[usize::from(v)] += 1;
            }
        }
        for (name, b) in ["r", "g", "b"].into_iter().zip(bins) {
            out.channels.insert(name.into(), b);
        }
    }
    out
}

/// The bins of `bytes`.
pub fn bytes(bytes: &[u8]) -> Histogram {
    let mut bins = vec![0u64; 256];
    for &b in bytes {
        bins[usize::from(b)] += 1;
    }
    let mut out = Histogram::default();
    out.channels.insert("bytes".into(), bins);
    out
}

/// `units` (rows or bytes) cut into `tasks` ranges as even as can be.
pub fn split(units: u64, tasks: u32) -> Vec<Range<u64>> {
    let t = u64::from(tasks.max(1)).min(units.max(1));
    (0..t).map(|i| i * units / t..(i + 1) * units / t).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, (x ^ y) as u8]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png).unwrap();
        out
    }

    #[test]
    fn bands_of_rows_add_up_to_the_whole_image() {
        let bytes = png(40, 30);
        let limits = Limits::default();
        assert_eq!(inspect(&bytes, &limits).unwrap().dimensions, Some((40, 30)));
        let img = decode(&bytes, &limits).unwrap();
        let whole = image_rows(&img, 0..30);
        let mut sum = Histogram::default();
        for r in split(30, 7) {
            sum.add(&image_rows(&img, r.start as u32..r.end as u32));
        }
        assert_eq!(sum, whole);
        for bins in whole.channels.values() {
            assert_eq!(bins.iter().sum::<u64>(), 40 * 30);
        }
    }

    #[test]
    fn ranges_cover_every_unit_once() {
        assert_eq!(split(10, 3), vec![0..3, 3..6, 6..10]);
        assert_eq!(split(2, 5), vec![0..1, 1..2]);
        assert_eq!(split(0, 4), vec![0..0]);
    }

    #[test]
    fn bombs_and_oversized_uploads_are_refused_from_the_header() {
        let limits = Limits { max_upload: 1 << 20, ..Limits::default() };
        // A PNG header declaring 65535×65535 (its IHDR's CRC right): refused unread.
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&65535u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&65535u32.to_be_bytes());
        let crc = crc32fast::hash(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        assert!(
            matches!(inspect(&bomb, &limits), Err(InputError::TooBig(_))),
            "{:?}",
            inspect(&bomb, &limits)
        );
        let big = vec![0u8; (1 << 20) + 1];
        assert!(matches!(inspect(&big, &limits), Err(InputError::TooLarge { .. })));
        assert_eq!(inspect(b"plain bytes", &limits).unwrap().kind, Kind::Bytes);
    }
}
