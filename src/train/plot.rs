//! The loss curve as a PNG: training loss per step (blue line) and evaluation loss (orange
//! dots), with the axis ranges written in a small built-in digit font. Self-contained: the
//! PNG is encoded here (zlib via flate2), no plotting library needed.

use std::io::Write;
use std::path::Path;

use super::Result;

const W: usize = 800;
const H: usize = 480;
const LEFT: usize = 70;
const RIGHT: usize = 20;
const TOP: usize = 20;
const BOTTOM: usize = 40;

/// An RGB raster.
struct Canvas {
    px: Vec<[u8; 3]>,
}

impl Canvas {
    fn new() -> Self {
        Self {
            px: vec![[255, 255, 255]; W * H],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < W && (y as usize) < H {
            self.px[y as usize * W + x as usize] = c;
        }
    }

    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: [u8; 3]) {
        let n = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for i in 0..=n {
            let t = i as f64 / n as f64;
            let (x, y) = (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
            self.set(x.round() as i64, y.round() as i64, c);
            self.set(x.round() as i64, y.round() as i64 + 1, c);
        }
    }

    fn dot(&mut self, x: f64, y: f64, c: [u8; 3]) {
        for dy in -2..=2 {
            for dx in -2..=2 {
                if dx * dx + dy * dy <= 5 {
                    self.set(x.round() as i64 + dx, y.round() as i64 + dy, c);
                }
            }
        }
    }

    /// Writes `text` (digits, `.`, `-`, `e`) with its top-left corner at (x, y), scale 2.
    fn text(&mut self, x: usize, y: usize, text: &str) {
        let mut cx = x as i64;
        for ch in text.chars() {
            if let Some(rows) = glyph(ch) {
                for (ry, row) in rows.iter().enumerate() {
                    for rx in 0..3 {
                        if row & (0b100 >> rx) != 0 {
                            for (sx, sy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                                self.set(cx + 2 * rx + sx, (y + 2 * ry) as i64 + sy, [40, 40, 40]);
                            }
                        }
                    }
                }
            }
            cx += 8;
        }
    }
}

/// 3x5 bitmaps, one row per entry, high bit on the left.
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        '.' => [0b000, 0b000, 0b000, 0b000, 0b010],
        '-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        'e' => [0b000, 0b111, 0b111, 0b100, 0b111],
        _ => return None,
    })
}

fn label(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-2 || v.abs() >= 1e4) {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

/// Draws `train` (step, loss) as a line and `eval` (step, loss) as dots into a PNG at `path`.
/// Non-finite values are skipped.
pub fn loss_curve(stem: &Path, history: &crate::run::History) -> Result<()> {
    let path = &stem.with_extension("png");
    let (train, eval) = (&history.train, &history.eval);
    let finite = |v: &&(u64, f64)| v.1.is_finite();
    let all: Vec<&(u64, f64)> = train.iter().chain(eval).filter(finite).collect();
    let mut c = Canvas::new();
    let (pw, ph) = ((W - LEFT - RIGHT) as f64, (H - TOP - BOTTOM) as f64);
    let axis = [90, 90, 90];
    c.line(
        (LEFT as f64, TOP as f64),
        (LEFT as f64, (H - BOTTOM) as f64),
        axis,
    );
    c.line(
        (LEFT as f64, (H - BOTTOM) as f64),
        ((W - RIGHT) as f64, (H - BOTTOM) as f64),
        axis,
    );
    if !all.is_empty() {
        let xmax = all.iter().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
        let ymin = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let mut ymax = all.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        if ymax <= ymin {
            ymax = ymin + 1.0;
        }
        let to_px = |s: u64, l: f64| {
            (
                LEFT as f64 + pw * s as f64 / xmax,
                TOP as f64 + ph * (1.0 - (l - ymin) / (ymax - ymin)),
            )
        };
        let pts: Vec<(f64, f64)> = train
            .iter()
            .filter(finite)
            .map(|&(s, l)| to_px(s, l))
            .collect();
        for w in pts.windows(2) {
            c.line(w[0], w[1], [31, 119, 180]);
        }
        if pts.len() == 1 {
            c.dot(pts[0].0, pts[0].1, [31, 119, 180]);
        }
        for &(s, l) in eval.iter().filter(finite) {
            let (x, y) = to_px(s, l);
            c.dot(x, y, [255, 127, 14]);
        }
        c.text(4, TOP, &label(ymax));
        c.text(4, H - BOTTOM - 10, &label(ymin));
        c.text(LEFT, H - BOTTOM + 10, "0");
        let xl = format!("{}", xmax as u64);
        c.text(W - RIGHT - 8 * xl.len(), H - BOTTOM + 10, &xl);
    }
    Ok(write_png(path, &c).map_err(|e| crate::run::RunError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?)
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

fn write_png(path: &Path, c: &Canvas) -> std::io::Result<()> {
    let mut raw = Vec::with_capacity(H * (1 + 3 * W));
    for row in c.px.chunks(W) {
        raw.push(0); // filter: none
        for p in row {
            raw.extend_from_slice(p);
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw)?;
    let idat = z.finish()?;
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&(W as u32).to_be_bytes());
    ihdr.extend_from_slice(&(H as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    crate::run::write_atomic(path, &out).map_err(|e| std::io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn writes_a_decodable_png_with_the_curve() {
        let path = std::env::temp_dir().join(format!("curve-{}.png", std::process::id()));
        let train: Vec<(u64, f64)> = (0..50).map(|s| (s, 3.0 / (1.0 + s as f64))).collect();
        let h = crate::run::History {
            train,
            eval: vec![(25, 0.5), (49, f64::NAN)],
            lr: Vec::new(),
        };
        loss_curve(&path, &h).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        // Inflate IDAT and check that blue curve pixels exist.
        let len = u32::from_be_bytes(bytes[33..37].try_into().unwrap()) as usize;
        assert_eq!(&bytes[37..41], b"IDAT");
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&bytes[41..41 + len])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(raw.len(), H * (1 + 3 * W));
        let count = |c: [u8; 3]| {
            raw.chunks(1 + 3 * W)
                .flat_map(|row| row[1..].chunks(3))
                .filter(|p| *p == c)
                .count()
        };
        let (blue, orange) = (count([31, 119, 180]), count([255, 127, 14]));
        assert!(blue > 100 && orange > 5, "{blue} {orange}");
        std::fs::remove_file(&path).ok();
    }
}
