//! Loss-curve plots of a training run, drawn with `plotters` as PNG and SVG.
//!
//! One chart shows
//! - the training loss of every optimizer update as a thin, semi-transparent
//!   line (for runs of more than 1000 points, more than the plot has pixels
//!   across, the band between the minimum and maximum of each of 500
//!   buckets), and the same series smoothed as a thicker line of the same
//!   hue;
//! - the evaluation loss as markers joined by a line, in a second colour;
//! - the learning rate as a grey dashed line on a secondary y axis (right);
//! - a legend naming the series that have data.
//!
//! **Smoothing** is a *centred moving average* (no lag, unlike TensorBoard's
//! EMA): the smoothed value at point `i` is the mean of the points
//! `i-h ..= i+h` with `h = n / 25`, so the window spans about 8% of the run
//! (points are taken as evenly spaced; runs under 25 points are not
//! smoothed). Within `h` of either end, where the window is cut off, the
//! value is instead the least-squares line through the points of the cut
//! window, evaluated at `i`: a falling loss is then not flattened towards the
//! interior (as a plain truncated mean would) and the last points are not
//! raw noise (as a window shrinking to one point would be). In the interior
//! both rules give the same value.
//!
//! Text is laid out and rendered with an embedded subset of DejaVu Sans
//! (`assets/fonts/DejaVuSans-subset.ttf`, made by `scripts/make_plot_font.py`, Bitstream Vera licence with DejaVu changes
//! in the public domain; see `assets/fonts/DejaVuSans-LICENSE.txt`), so no system
//! font is needed. PNG text is rasterized by `PngCanvas` rather than by
//! plotters' own `ab_glyph` renderer, which drops each glyph's left side
//! bearing and so spaces letters unevenly ("lo gged", "i ll icit").
//!
//! Robustness: points whose value is not finite (or whose magnitude exceeds
//! [`MAX_ABS_VALUE`]) or whose step exceeds [`MAX_STEP`] are skipped; every
//! series may be empty; degenerate ranges get padding. Plotting never panics
//! on any input; every failure, including an unexpected panic inside
//! `plotters`, is returned as a [`PlotError`] naming the file.

use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ab_glyph::FontRef;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub use crate::run::History;

/// Failure to draw or write one of the plot files.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The file at `path` could not be drawn or written.
    #[error("cannot write plot {}: {reason}", .path.display())]
    Write {
        /// The file that was being written (`stem.png` or `stem.svg`).
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Points with a larger step are skipped (keeps axis arithmetic exact).
pub const MAX_STEP: u64 = 1_000_000_000_000_000;
/// Points with a larger absolute value are skipped, like non-finite ones.
pub const MAX_ABS_VALUE: f64 = 1e100;
/// A raw training loss with more points is drawn as a min/max band.
const MAX_RAW_POINTS: usize = 1000;
/// Thick lines (smoothed loss, learning rate) are drawn through at most this
/// many points, about one per two pixels: plotters' joins of thick
/// polylines spike where points are denser than pixels.
const MAX_LINE_POINTS: usize = 400;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 540;
/// Registered under the generic name, so SVG viewers fall back to their own
/// sans-serif font while PNG rendering (and all text layout) uses ours.
const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-subset.ttf");

const TRAIN: RGBColor = RGBColor(31, 119, 180); // matplotlib tab:blue
const EVAL: RGBColor = RGBColor(214, 39, 40); // tab:red
const LR: RGBColor = RGBColor(110, 110, 110); // grey

/// Writes `stem.png` and `stem.svg` (stem is a path without extension, e.g. RUN/loss_curve).
pub fn loss_curve(stem: &Path, history: &History) -> Result<(), PlotError> {
    let png = with_suffix(stem, "png");
    let svg = with_suffix(stem, "svg");
    let font = embedded_font().map_err(|reason| PlotError::Write {
        path: png.clone(),
        reason,
    })?;
    let prepared = Prepared::new(history);

    guarded(&png, || {
        let root =
            PngCanvas::new(BitMapBackend::new(&png, (WIDTH, HEIGHT)), font).into_drawing_area();
        draw_chart(&root, &prepared)?;
        root.present()
    })?;
    guarded(&svg, || {
        let root = SVGBackend::new(&svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw_chart(&root, &prepared)?;
        root.present()
    })
}

/// `stem` + "." + `ext`, without replacing anything after a dot in `stem`.
fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// Registers the embedded font with plotters (used for all text layout and
/// the SVG output) once, and returns it for [`PngCanvas`].
fn embedded_font() -> Result<&'static FontRef<'static>, String> {
    static PARSED: OnceLock<Result<FontRef<'static>, String>> = OnceLock::new();
    PARSED
        .get_or_init(|| {
            register_font(FONT, FontStyle::Normal, FONT_BYTES)
                .map_err(|_| "the embedded font could not be parsed".to_string())?;
            FontRef::try_from_slice(FONT_BYTES).map_err(|e| format!("embedded font: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Runs one backend's drawing, turning its error or a panic into a `PlotError`.
fn guarded<E: std::fmt::Display>(
    path: &Path,
    draw: impl FnOnce() -> Result<(), E>,
) -> Result<(), PlotError> {
    let reason = match catch_unwind(AssertUnwindSafe(draw)) {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => e.to_string(),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            format!("plotting library panicked: {msg}")
        }
    };
    Err(PlotError::Write {
        path: path.to_path_buf(),
        reason,
    })
}

/// PNG text rendering (kept in its own module: `BackendStyle` in scope would
/// make `Color::stroke_width` ambiguous in the chart code).
mod png_canvas {
    use ab_glyph::{Font, FontRef, ScaleFont};
    use plotters::prelude::{BitMapBackend, DrawingBackend};
    use plotters::style::text_anchor::{HPos, VPos};
    use plotters_backend::{
        BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
    };

    /// A [`BitMapBackend`] that draws text itself, placing every glyph at its
    /// pen position plus its side bearing (with kerning and sub-pixel advances).
    /// Everything else, and all text measurement, is left to plotters, so the
    /// layout is identical to what plotters computed.
    pub(super) struct PngCanvas<'a> {
        inner: BitMapBackend<'a>,
        font: &'static FontRef<'static>,
        /// Cap height over (ascent - descent): plotters' text size is the pixel
        /// height of (ascent - descent).
        cap_ratio: f32,
    }

    impl<'a> PngCanvas<'a> {
        pub(super) fn new(inner: BitMapBackend<'a>, font: &'static FontRef<'static>) -> Self {
            let cap = font
                .outline(font.glyph_id('H'))
                .map(|o| o.bounds.min.y.abs().max(o.bounds.max.y.abs()))
                .unwrap_or(0.0);
            let height = font.height_unscaled();
            let cap_ratio = if cap > 0.0 && height > 0.0 {
                cap / height
            } else {
                0.63
            };
            PngCanvas {
                inner,
                font,
                cap_ratio,
            }
        }
    }

    type BackendResult<E> = Result<(), DrawingErrorKind<E>>;

    impl<'a> DrawingBackend for PngCanvas<'a> {
        type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

        fn get_size(&self) -> (u32, u32) {
            self.inner.get_size()
        }
        fn ensure_prepared(&mut self) -> BackendResult<Self::ErrorType> {
            self.inner.ensure_prepared()
        }
        fn present(&mut self) -> BackendResult<Self::ErrorType> {
            self.inner.present()
        }
        fn draw_pixel(
            &mut self,
            p: BackendCoord,
            c: BackendColor,
        ) -> BackendResult<Self::ErrorType> {
            self.inner.draw_pixel(p, c)
        }
        fn draw_line<S: BackendStyle>(
            &mut self,
            from: BackendCoord,
            to: BackendCoord,
            style: &S,
        ) -> BackendResult<Self::ErrorType> {
            self.inner.draw_line(from, to, style)
        }
        fn draw_rect<S: BackendStyle>(
            &mut self,
            upper_left: BackendCoord,
            bottom_right: BackendCoord,
            style: &S,
            fill: bool,
        ) -> BackendResult<Self::ErrorType> {
            self.inner.draw_rect(upper_left, bottom_right, style, fill)
        }
        fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
            &mut self,
            path: I,
            style: &S,
        ) -> BackendResult<Self::ErrorType> {
            self.inner.draw_path(path, style)
        }
        fn draw_circle<S: BackendStyle>(
            &mut self,
            center: BackendCoord,
            radius: u32,
            style: &S,
            fill: bool,
        ) -> BackendResult<Self::ErrorType> {
            self.inner.draw_circle(center, radius, style, fill)
        }
        fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
            &mut self,
            vert: I,
            style: &S,
        ) -> BackendResult<Self::ErrorType> {
            self.inner.fill_polygon(vert, style)
        }
        fn blit_bitmap(
            &mut self,
            pos: BackendCoord,
            size: (u32, u32),
            src: &[u8],
        ) -> BackendResult<Self::ErrorType> {
            self.inner.blit_bitmap(pos, size, src)
        }

        fn draw_text<S: BackendTextStyle>(
            &mut self,
            text: &str,
            style: &S,
            pos: BackendCoord,
        ) -> BackendResult<Self::ErrorType> {
            let color = style.color();
            if color.alpha <= 0.0 || text.is_empty() {
                return Ok(());
            }
            // The box plotters measured (and positioned by the anchor): the
            // advance width of the text by size / 1.24.
            let ((x0, y0), (x1, y1)) = style
                .layout_box(text)
                .map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
            let (width, height) = (x1 - x0, y1 - y0);
            let anchor = style.anchor();
            let dx = match anchor.h_pos {
                HPos::Left => 0,
                HPos::Center => -width / 2,
                HPos::Right => -width,
            };
            let dy = match anchor.v_pos {
                VPos::Top => 0,
                VPos::Center => -height / 2,
                VPos::Bottom => -height,
            };
            let size = style.size() as f32;
            // Capitals and digits sit centred in the box; descenders may hang
            // slightly below it.
            let baseline = (height as f32 + self.cap_ratio * size) / 2.0;
            let transform = style.transform();
            let font = self.font.as_scaled(size);

            let mut result = Ok(());
            let mut pen = 0.0f32;
            let mut previous = None;
            for c in text.chars() {
                let id = font.glyph_id(c);
                if let Some(prev) = previous {
                    pen += font.kern(prev, id);
                }
                previous = Some(id);
                let glyph = id.with_scale_and_position(size, ab_glyph::point(pen, baseline));
                pen += font.h_advance(id);
                let Some(outlined) = font.outline_glyph(glyph) else {
                    continue;
                };
                let bounds = outlined.px_bounds();
                let inner = &mut self.inner;
                outlined.draw(|gx, gy, coverage| {
                    if coverage <= 0.0 || result.is_err() {
                        return;
                    }
                    let (x, y) = transform.transform(
                        bounds.min.x as i32 + gx as i32 + dx - x0,
                        bounds.min.y as i32 + gy as i32 + dy - y0,
                    );
                    let pixel = BackendColor {
                        alpha: color.alpha * f64::from(coverage.min(1.0)),
                        rgb: color.rgb,
                    };
                    result = inner.draw_pixel((pos.0 + x, pos.1 + y), pixel);
                });
                if result.is_err() {
                    break;
                }
            }
            result
        }
    }
}

use png_canvas::PngCanvas;

/// Cleaned series, smoothed curve and axis ranges, shared by both backends.
struct Prepared {
    train: Vec<(i64, f64)>,
    smooth: Vec<(i64, f64)>,
    eval: Vec<(i64, f64)>,
    lr: Vec<(i64, f64)>,
    x: Range<i64>,
    y: Range<f64>,
    y_lr: Range<f64>,
    /// No loss (learning rate) is negative: tick labels below 0 are hidden.
    loss_non_negative: bool,
    lr_non_negative: bool,
    window: usize,
}

impl Prepared {
    fn new(h: &History) -> Self {
        let train = clean(&h.train);
        let eval = clean(&h.eval);
        let lr = clean(&h.lr);
        let (smooth, window) = smooth_curve(&train);

        let steps = train.iter().chain(&eval).chain(&lr).map(|p| p.0);
        let x = match (steps.clone().min(), steps.max()) {
            (Some(lo), Some(hi)) => {
                let pad = ((hi - lo) / 50).max(1);
                lo - pad..hi + pad
            }
            _ => 0..100,
        };

        let losses = train.iter().chain(&smooth).chain(&eval).map(|p| p.1);
        let y = match min_max(losses) {
            // 4% below, 20% above: leaves room for the legend at the top.
            Some((lo, hi)) => padded(lo, hi, 0.04, 0.20),
            None => 0.0..1.0,
        };
        let y_lr = match min_max(lr.iter().map(|p| p.1)) {
            // Start at 0 for the usual non-negative schedule; the peak sits
            // at about 70% of the height, below the legend.
            Some((lo, hi)) => padded(lo.min(0.0), hi, 0.02, 0.45),
            None => 0.0..1.0,
        };
        Prepared {
            loss_non_negative: train.iter().chain(&eval).all(|p| p.1 >= 0.0),
            lr_non_negative: lr.iter().all(|p| p.1 >= 0.0),
            train,
            smooth,
            eval,
            lr,
            x,
            y,
            y_lr,
            window,
        }
    }

    fn is_empty(&self) -> bool {
        self.train.is_empty() && self.eval.is_empty() && self.lr.is_empty()
    }
}

/// Drops unplottable points and sorts by step (stable, so logs that were
/// appended out of order still draw as one line).
fn clean(points: &[(u64, f64)]) -> Vec<(i64, f64)> {
    let mut out: Vec<(i64, f64)> = points
        .iter()
        .filter(|(s, v)| *s <= MAX_STEP && v.is_finite() && v.abs() <= MAX_ABS_VALUE)
        .map(|&(s, v)| (s as i64, v))
        .collect();
    out.sort_by_key(|p| p.0);
    out
}

/// The smoothed training curve (see the module docs) and the full window
/// length `2h + 1` used in the interior.
fn smooth_curve(points: &[(i64, f64)]) -> (Vec<(i64, f64)>, usize) {
    let n = points.len();
    let half = n / 25;
    let Some((lo, hi)) = min_max(points.iter().map(|p| p.1)) else {
        return (Vec::new(), 1);
    };
    if half == 0 {
        return (points.to_vec(), 1);
    }
    // Prefix sums of y and of j * y (j = index).
    let mut sum_y = Vec::with_capacity(n + 1);
    let mut sum_jy = Vec::with_capacity(n + 1);
    let (mut acc_y, mut acc_jy) = (0.0f64, 0.0f64);
    sum_y.push(0.0);
    sum_jy.push(0.0);
    for (j, p) in points.iter().enumerate() {
        acc_y += p.1;
        acc_jy += j as f64 * p.1;
        sum_y.push(acc_y);
        sum_jy.push(acc_jy);
    }
    let smooth = (0..n)
        .map(|i| {
            let a = i.saturating_sub(half);
            let b = (i + half).min(n - 1);
            let m = (b - a + 1) as f64;
            let y = sum_y[b + 1] - sum_y[a];
            let mean = y / m;
            let value = if b - a < 2 * half && b - a >= 2 {
                // Cut-off window: fit y = mean + slope * (j - c).
                let c = (a + b) as f64 / 2.0;
                let s_uy = (sum_jy[b + 1] - sum_jy[a]) - c * y;
                let s_uu = m * (m * m - 1.0) / 12.0;
                mean + s_uy / s_uu * (i as f64 - c)
            } else {
                mean
            };
            // Neither rounding in the prefix sums nor the end fit may push a
            // point off the axis range, which is taken from the raw data.
            let value = if value.is_finite() {
                value.clamp(lo, hi)
            } else {
                points[i].1
            };
            (points[i].0, value)
        })
        .collect();
    (smooth, 2 * half + 1)
}

/// At most [`MAX_LINE_POINTS`] (+1) of a smooth series: every k-th point and
/// the last.
fn thinned(points: &[(i64, f64)]) -> Vec<(i64, f64)> {
    if points.len() <= MAX_LINE_POINTS {
        return points.to_vec();
    }
    let stride = points.len().div_ceil(MAX_LINE_POINTS);
    let mut out: Vec<_> = points.iter().step_by(stride).copied().collect();
    if let (Some(&last), Some(&kept)) = (points.last(), out.last()) {
        if kept != last {
            out.push(last);
        }
    }
    out
}

/// The outline of the band between the minimum and maximum of each of about
/// `MAX_RAW_POINTS / 2` consecutive buckets: how a noisy series with more
/// points than pixels is drawn (a line of that many overlapping
/// semi-transparent segments would turn solid).
fn envelope(points: &[(i64, f64)]) -> Vec<(i64, f64)> {
    let per_bucket = points.len().div_ceil(MAX_RAW_POINTS / 2).max(1);
    let buckets: Vec<(i64, f64, f64)> = points
        .chunks(per_bucket)
        .filter_map(|c| {
            let (lo, hi) = min_max(c.iter().map(|p| p.1))?;
            Some((c[c.len() / 2].0, lo, hi))
        })
        .collect();
    let upper = buckets.iter().map(|b| (b.0, b.2));
    let lower = buckets.iter().rev().map(|b| (b.0, b.1));
    upper.chain(lower).collect()
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A non-empty range around `[lo, hi]`: `below`/`above` are fractions of the
/// span added on each side. A flat or nearly flat range is first widened to
/// 2% of its magnitude (to `0..1` when it is all zeros), without crossing
/// below 0 for non-negative data, so that axis ticks stay meaningful.
fn padded(lo: f64, hi: f64, below: f64, above: f64) -> Range<f64> {
    let mag = lo.abs().max(hi.abs());
    let min_span = if mag > 0.0 {
        (mag * 0.02).max(1e-12)
    } else {
        1.0
    };
    let (mut bottom, mut top) = (lo, hi);
    if top - bottom < min_span {
        let mid = lo / 2.0 + hi / 2.0;
        (bottom, top) = (mid - min_span / 2.0, mid + min_span / 2.0);
        if lo >= 0.0 && bottom < 0.0 {
            (bottom, top) = (0.0, top - bottom);
        }
    }
    let span = top - bottom;
    bottom - span * below..top + span * above
}

/// Tick labels for the loss axis: fixed decimals matched to the tick spacing
/// (at least 2 for ordinary loss values), scientific for huge or tiny ones.
/// With `hide_negative` (data that is never negative, on an axis padded a
/// little below 0) ticks below 0 get no label.
fn loss_label(range: &Range<f64>, hide_negative: bool) -> impl Fn(&f64) -> String {
    let span = range.end - range.start;
    let mag = range.start.abs().max(range.end.abs());
    let scientific = !(1e-3..1e5).contains(&mag);
    let decimals = (-(span / 20.0).log10().floor()).clamp(0.0, 8.0) as usize;
    let decimals = if mag < 100.0 {
        decimals.max(2)
    } else {
        decimals
    };
    move |v: &f64| {
        // Tick arithmetic can leave -1e-17 where 0 was meant.
        let v = if v.abs() < span * 1e-9 { 0.0 } else { *v };
        if v == 0.0 {
            "0".to_string()
        } else if v < 0.0 && hide_negative {
            String::new()
        } else if scientific {
            format!("{v:.2e}")
        } else {
            format!("{v:.decimals$}")
        }
    }
}

/// Learning-rate tick labels in scientific notation, e.g. `2.0e-3`.
fn lr_label(range: &Range<f64>, hide_negative: bool) -> impl Fn(&f64) -> String {
    let span = range.end - range.start;
    move |v: &f64| {
        let v = if v.abs() < span * 1e-9 { 0.0 } else { *v };
        if v == 0.0 {
            "0".to_string()
        } else if v < 0.0 && hide_negative {
            String::new()
        } else {
            format!("{v:.1e}")
        }
    }
}

fn step_label(v: &i64) -> String {
    // The x range is padded and may start below step 0: no label there.
    if *v < 0 {
        String::new()
    } else {
        v.to_string()
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw_chart<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, p: &Prepared) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let has_lr = !p.lr.is_empty();
    let lr_style = LR.stroke_width(2);
    let text = |size: f64| (FONT, size).into_font().color(&BLACK.mix(0.85));

    let mut chart = ChartBuilder::on(root)
        .caption("Training loss", (FONT, 22).into_font())
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(66)
        .right_y_label_area_size(if has_lr { 76 } else { 8 })
        .build_cartesian_2d(p.x.clone(), p.y.clone())?
        .set_secondary_coord(p.x.clone(), p.y_lr.clone());

    let y_fmt = loss_label(&p.y, p.loss_non_negative);
    let lr_fmt = lr_label(&p.y_lr, p.lr_non_negative);
    chart
        .configure_mesh()
        .x_desc("optimizer step")
        .y_desc("loss")
        .x_labels(10)
        .y_labels(8)
        .x_label_formatter(&step_label)
        .y_label_formatter(&y_fmt)
        .label_style(text(13.0))
        .axis_desc_style(text(15.0))
        .bold_line_style(BLACK.mix(0.10))
        .light_line_style(BLACK.mix(0.04))
        .max_light_lines(4)
        .axis_style(BLACK.mix(0.6))
        .draw()?;

    if has_lr {
        chart
            .configure_secondary_axes()
            .y_desc("learning rate")
            .y_labels(8)
            .y_label_formatter(&lr_fmt)
            .label_style(text(13.0))
            .axis_desc_style(text(15.0))
            .axis_style(BLACK.mix(0.6))
            .draw()?;
        // Drawn first so the losses stay on top; its legend entry is added last.
        chart.draw_secondary_series(DashedLineSeries::new(thinned(&p.lr), 8, 5, lr_style))?;
        if p.lr.len() == 1 {
            chart.draw_secondary_series(p.lr.iter().map(|&pt| Circle::new(pt, 3, LR.filled())))?;
        }
    }

    match p.train.len() {
        0 => {}
        1 => {
            // A one-point line is invisible and there is nothing to smooth.
            chart
                .draw_series(p.train.iter().map(|&pt| Circle::new(pt, 4, TRAIN.filled())))?
                .label("train loss")
                .legend(|(x, y)| Circle::new((x + 10, y), 4, TRAIN.filled()));
        }
        _ if p.window == 1 => {
            // Too short a run to smooth (under 25 points): one solid line.
            let line = TRAIN.stroke_width(2);
            chart
                .draw_series(LineSeries::new(p.train.iter().copied(), line))?
                .label("train loss")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 21, y)], line));
        }
        _ => {
            let raw = TRAIN.mix(0.35);
            let anno = if p.train.len() > MAX_RAW_POINTS {
                let band = Polygon::new(envelope(&p.train), raw.filled());
                chart.draw_series(std::iter::once(band))?
            } else {
                chart.draw_series(LineSeries::new(
                    p.train.iter().copied(),
                    raw.stroke_width(1),
                ))?
            };
            anno.label("train loss").legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 21, y)], TRAIN.mix(0.4).stroke_width(2))
            });
            let smooth = TRAIN.stroke_width(3);
            chart
                .draw_series(LineSeries::new(thinned(&p.smooth), smooth))?
                .label(format!("train loss, smoothed ({}-point window)", p.window))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 21, y)], smooth));
        }
    }

    if !p.eval.is_empty() {
        let line = EVAL.stroke_width(2);
        chart.draw_series(LineSeries::new(p.eval.iter().copied(), line))?;
        chart
            .draw_series(p.eval.iter().map(|&pt| Circle::new(pt, 4, EVAL.filled())))?
            .label("eval loss")
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (21, 0)], line)
                    + Circle::new((10, 0), 4, EVAL.filled())
            });
    }

    if has_lr {
        // Legend entry only (the line itself is drawn above).
        chart
            .draw_secondary_series(std::iter::empty::<PathElement<(i64, f64)>>())?
            .label("learning rate (right axis)")
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (8, 0)], lr_style)
                    + PathElement::new(vec![(13, 0), (21, 0)], lr_style)
            });
    }

    if p.is_empty() {
        let centre = (p.x.start / 2 + p.x.end / 2, p.y.start / 2.0 + p.y.end / 2.0);
        let style = text(18.0).pos(Pos::new(HPos::Center, VPos::Center));
        chart
            .plotting_area()
            .draw(&Text::new("no data logged yet", centre, style))?;
    } else {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .margin(12)
            .label_font(text(13.0))
            .background_style(WHITE.mix(0.88))
            .border_style(BLACK.mix(0.35))
            .draw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A fresh, empty scratch directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("plot-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// 200 updates of decaying noisy loss, eval every 20 steps, cosine lr
    /// with 20 warmup steps (deterministic xorshift noise).
    fn realistic() -> History {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let mut h = History::default();
        let (steps, warmup, peak) = (200u64, 20u64, 2e-3);
        for s in 1..=steps {
            let t = s as f64;
            let trend = 0.55 + 2.1 * (-t / 45.0).exp();
            h.train
                .push((s, trend + 0.35 * noise() * (0.4 + trend / 2.6)));
            let lr = if s <= warmup {
                peak * t / warmup as f64
            } else {
                let progress = (s - warmup) as f64 / (steps - warmup) as f64;
                peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            };
            h.lr.push((s, lr));
            if s % 20 == 0 {
                h.eval.push((s, trend + 0.08 + 0.03 * noise()));
            }
        }
        h
    }

    fn assert_written(stem: &Path) -> String {
        let png = fs::read(with_suffix(stem, "png")).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        let svg = fs::read_to_string(with_suffix(stem, "svg")).unwrap();
        assert!(svg.contains("<svg"), "not an SVG");
        svg
    }

    #[test]
    fn writes_png_and_svg_for_a_realistic_run() {
        let dir = scratch("realistic");
        let stem = dir.join("loss_curve");
        loss_curve(&stem, &realistic()).unwrap();
        let svg = assert_written(&stem);
        for text in ["optimizer step", "loss", "learning rate", "Training loss"] {
            assert!(svg.contains(text), "SVG lacks {text:?}");
        }
        assert!(svg.contains("eval loss"));
        assert!(svg.contains("e-3"), "lr ticks should be scientific");
        fs::remove_dir_all(dir).unwrap();
    }

    /// Edge cases: empty, single points, NaN/inf, constant, extreme values.
    fn degenerate_cases() -> Vec<(&'static str, History)> {
        vec![
            ("empty", History::default()),
            (
                "one_point",
                History {
                    train: vec![(0, 1.5)],
                    eval: vec![(0, 1.7)],
                    lr: vec![(0, 1e-4)],
                },
            ),
            (
                "nan",
                History {
                    train: vec![(1, f64::NAN), (2, 2.0), (3, f64::INFINITY), (4, 1.0)],
                    eval: vec![(2, f64::NAN)],
                    lr: vec![(1, f64::NEG_INFINITY), (2, f64::NAN)],
                },
            ),
            (
                "all_nan",
                History {
                    train: vec![(1, f64::NAN); 5],
                    ..History::default()
                },
            ),
            (
                "constant",
                History {
                    train: (0..50).map(|s| (s, 0.75)).collect(),
                    eval: vec![(10, 0.75), (20, 0.75)],
                    lr: (0..50).map(|s| (s, 3e-4)).collect(),
                },
            ),
            (
                "zeros",
                History {
                    train: (0..5).map(|s| (s, 0.0)).collect(),
                    lr: (0..5).map(|s| (s, 0.0)).collect(),
                    ..History::default()
                },
            ),
            (
                "no_eval_no_lr",
                History {
                    train: realistic().train,
                    ..History::default()
                },
            ),
            (
                "only_lr",
                History {
                    lr: realistic().lr,
                    ..History::default()
                },
            ),
            (
                "extremes",
                History {
                    train: vec![
                        (u64::MAX, 1.0),
                        (0, f64::MAX),
                        (5, 1e-300),
                        (6, -1e90),
                        (7, 1e90),
                    ],
                    eval: vec![(3, f64::MIN_POSITIVE), (4, 1.0 + f64::EPSILON), (5, 1.0)],
                    lr: vec![(1, -1.0), (2, 1e-12)],
                },
            ),
            (
                "long_run",
                History {
                    train: (0..20_000u64)
                        .map(|s| {
                            (
                                s,
                                2.0 / (1.0 + s as f64 / 2000.0) + ((s * 7919) % 97) as f64 / 300.0,
                            )
                        })
                        .collect(),
                    eval: (0..20_000)
                        .step_by(1000)
                        .map(|s| (s, 2.2 / (1.0 + s as f64 / 2000.0)))
                        .collect(),
                    lr: (0..20_000).map(|s| (s, 1e-4)).collect(),
                },
            ),
            (
                "unsorted_duplicate_steps",
                History {
                    train: vec![(5, 1.0), (1, 2.0), (5, 1.1), (3, 1.5)],
                    ..History::default()
                },
            ),
        ]
    }

    #[test]
    fn degenerate_histories_still_write_both_files() {
        let dir = scratch("degenerate");
        for (name, history) in degenerate_cases() {
            let stem = dir.join(name);
            loss_curve(&stem, &history).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_written(&stem);
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn stem_with_a_dot_keeps_it() {
        let dir = scratch("dotted");
        let stem = dir.join("run.v2");
        loss_curve(&stem, &realistic()).unwrap();
        assert!(dir.join("run.v2.png").exists() && dir.join("run.v2.svg").exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unwritable_path_is_an_error_naming_it() {
        let stem = std::env::temp_dir()
            .join(format!("plot-test-{}-missing", std::process::id()))
            .join("no/such/dir/loss_curve");
        let err = loss_curve(&stem, &realistic()).unwrap_err();
        let PlotError::Write { path, .. } = &err;
        assert_eq!(path, &with_suffix(&stem, "png"));
        assert!(err.to_string().contains("loss_curve.png"), "{err}");
    }

    #[test]
    fn smoothing_is_a_centred_mean_with_linear_ends() {
        let alternating: Vec<(i64, f64)> = (0..100).map(|s| (s, (s % 2) as f64)).collect();
        let (smooth, window) = smooth_curve(&alternating);
        assert_eq!(window, 9);
        assert!((smooth[50].1 - 4.0 / 9.0).abs() < 1e-12); // 46..=54: four odd steps
        assert!(smooth.iter().all(|p| (0.0..=1.0).contains(&p.1)));
        // A straight line survives smoothing, ends included.
        let line: Vec<(i64, f64)> = (0..100).map(|s| (s, 3.0 - 0.01 * s as f64)).collect();
        let (smooth, _) = smooth_curve(&line);
        for (raw, smoothed) in line.iter().zip(&smooth) {
            assert!((raw.1 - smoothed.1).abs() < 1e-9, "{raw:?} vs {smoothed:?}");
        }
        // Too short to smooth: unchanged.
        let short = &line[..10];
        assert_eq!(smooth_curve(short), (short.to_vec(), 1));
        assert!(smooth_curve(&[]).0.is_empty());
    }

    #[test]
    fn long_series_are_thinned_for_drawing() {
        let long: Vec<(i64, f64)> = (0..10_001).map(|s| (s, s as f64)).collect();
        let thin = thinned(&long);
        assert!(thin.len() <= MAX_LINE_POINTS + 1);
        assert_eq!((thin[0], thin[thin.len() - 1]), (long[0], long[10_000]));
        let band = envelope(&long);
        assert!(band.len() <= MAX_RAW_POINTS + 2);
        assert_eq!(thinned(&long[..5]), long[..5].to_vec());
    }

    #[test]
    fn png_text_keeps_side_bearings() {
        // Ink columns of "l" drawn at x = 10 into a white 100x60 RGB buffer.
        let font = embedded_font().unwrap();
        let mut buf = vec![255u8; 100 * 60 * 3];
        {
            let backend = BitMapBackend::with_buffer(&mut buf, (100, 60));
            let root = PngCanvas::new(backend, font).into_drawing_area();
            root.draw(&Text::new("l", (10, 10), (FONT, 40.0))).unwrap();
            root.present().unwrap();
        }
        let inked = |x: usize| (0..60).any(|y| buf[(y * 100 + x) * 3] < 128);
        let left = (0..100).find(|&x| inked(x)).unwrap();
        // DejaVu's "l" starts 0.094 em (3.2 px here) right of the pen;
        // plotters' own renderer would put its ink at x = 10.
        assert!((12..=14).contains(&left), "ink starts at {left}");
    }

    #[test]
    fn tick_labels_are_short() {
        let f = loss_label(&(0.4..2.9), true);
        assert_eq!(f(&1.5), "1.50");
        assert_eq!(f(&-1e-17), "0");
        assert_eq!(f(&-0.1), "");
        assert_eq!(loss_label(&(-1.0..2.0), false)(&-0.5), "-0.50");
        assert_eq!(loss_label(&(0.0..2e6), true)(&1e6), "1.00e6");
        let lr = lr_label(&(-5e-5..2.5e-3), true);
        assert_eq!(lr(&0.002), "2.0e-3");
        assert_eq!(lr(&0.0), "0");
        assert_eq!(lr(&-5e-5), "");
        assert_eq!(step_label(&-3), "");
    }

    /// Set PLOT_SAMPLE_DIR to write sample plots there for a visual check.
    #[test]
    fn write_samples_for_inspection() {
        let Some(dir) = std::env::var_os("PLOT_SAMPLE_DIR") else {
            return;
        };
        let dir = PathBuf::from(dir);
        loss_curve(&dir.join("sample"), &realistic()).unwrap();
        for (name, history) in degenerate_cases() {
            loss_curve(&dir.join(format!("sample_{name}")), &history).unwrap();
        }
    }
}
