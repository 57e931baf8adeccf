//! One process doing a job's work with the same crate, for the benchmark beside the
//! distributed jobs (`scripts/bench-jobs`):
//!
//!     histogram FILE [ROUNDS]   ->  "<decoded MB> <seconds per round>"
//!     histogram --make-png W H OUT   (a test image)

use std::io::Cursor;
use std::time::Instant;

use rampart_jobs::count::{self, Limits};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--make-png") {
        let (w, h): (u32, u32) = match (args.get(1), args.get(2)) {
            (Some(w), Some(h)) => (w.parse().map_err(|_| "W")?, h.parse().map_err(|_| "H")?),
            _ => return Err("--make-png W H OUT".into()),
        };
        let out = args.get(3).ok_or("--make-png W H OUT")?;
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7 + y) as u8, ((x ^ y) * 13) as u8, ((x * y) >> 5) as u8])
        });
        let mut bytes = Vec::new();
        img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png).map_err(|e| e.to_string())?;
        return std::fs::write(out, bytes).map_err(|e| e.to_string());
    }
    let file = args.first().ok_or("histogram FILE [ROUNDS]")?;
    let rounds: u32 = args.get(1).map_or(Ok(3), |r| r.parse()).map_err(|_| "ROUNDS")?;
    let bytes = std::fs::read(file).map_err(|e| e.to_string())?;
    let limits = Limits { max_upload: usize::MAX, ..Limits::default() };
    let started = Instant::now();
    let mut decoded = 0u64;
    for _ in 0..rounds {
        let img = count::decode(&bytes, &limits)?;
        let h = count::image_rows(&img, 0..img.height());
        decoded = u64::from(img.width()) * u64::from(img.height()) * 3;
        std::hint::black_box(h);
    }
    println!("{:.1} {:.3}", decoded as f64 / 1e6, started.elapsed().as_secs_f64() / f64::from(rounds));
    Ok(())
}
