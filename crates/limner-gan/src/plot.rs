//! Dependency-free line-plot renderer for training loss and metric curves.
//!
//! [`render_line_plot`] draws into a plain RGB8 buffer (row-major, `width * height * 3`
//! bytes) that can be handed to any PNG encoder. Text uses an embedded 5x7 bitmap font.

const WHITE: [u8; 3] = [255; 3];
const INK: [u8; 3] = [30; 3];
const GRID: [u8; 3] = [228; 3];
const TICKS: i32 = 5;

/// One curve: its legend name, its `(x, y)` points (non-finite points break the line) and colour.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: &'a [(f64, f64)],
    pub color: [u8; 3],
}

/// Renders a plot (white background, axes, 5 ticks per axis with numeric labels, title at top,
/// x-axis label, legend with each series' name in its colour) into an RGB8 buffer of width*height*3.
pub fn render_line_plot(title: &str, x_label: &str, series: &[Series], width: u32, height: u32) -> Vec<u8> {
    let Layout { frame: f, scale: s, x_ticks, y_ticks, legend } = layout(series, width, height);
    let mut cv = Canvas::new(width, height);
    let line_h = 8 * s;
    for (i, (xt, yt)) in x_ticks.iter().zip(&y_ticks).enumerate() {
        let tx = f.x0 + (f.x1 - f.x0) * i as i32 / (TICKS - 1);
        let ty = f.y1 - (f.y1 - f.y0) * i as i32 / (TICKS - 1);
        cv.rect(tx, f.y0, 1, f.y1 - f.y0, GRID);
        cv.rect(f.x0, ty, f.x1 - f.x0, 1, GRID);
        cv.rect(tx, f.y1, s, 4 * s, INK);
        cv.rect(f.x0 - 4 * s, ty, 4 * s, s, INK);
        cv.text(tx - text_width(xt, s) / 2, f.y1 + 6 * s, xt, s, INK);
        cv.text(f.x0 - 6 * s - text_width(yt, s), ty - 7 * s / 2, yt, s, INK);
    }
    cv.rect(f.x0 - s + 1, f.y0, s, f.y1 - f.y0 + s, INK);
    cv.rect(f.x0, f.y1, f.x1 - f.x0 + 1, s, INK);

    for se in series {
        for run in se.points.split(|&p| !is_finite(p)) {
            let px: Vec<(i32, i32)> = run.iter().map(|&p| f.map(p)).collect();
            match px.as_slice() {
                [] => {}
                [(x, y)] => cv.rect(x - 1, y - 1, 4, 4, se.color),
                _ => px.windows(2).for_each(|w| cv.line(w[0], w[1], se.color)),
            }
        }
    }

    cv.text((width as i32 - text_width(title, s)) / 2, 4 * s, title, s, INK);
    let x_label_x = (f.x0 + f.x1 - text_width(x_label, s)) / 2;
    cv.text(x_label_x, f.y1 + 9 * s + line_h, x_label, s, INK);
    let legend_top = 8 * s + line_h;
    for (se, &(x, row)) in series.iter().zip(&legend) {
        let y = legend_top + row * (line_h + 2 * s);
        cv.rect(x, y + 3 * s, 10 * s, s + 1, se.color);
        cv.text(x + 13 * s, y, se.name, s, se.color);
    }
    cv.px
}

/// Exponential moving average of the y values: `s = alpha * y + (1 - alpha) * s`, seeded with the
/// first finite y. Non-finite points pass through unchanged (keeping line breaks) and leave the state alone.
pub fn ema_smooth(points: &[(f64, f64)], alpha: f64) -> Vec<(f64, f64)> {
    let mut state: Option<f64> = None;
    points
        .iter()
        .map(|&(x, y)| {
            if !y.is_finite() {
                return (x, y);
            }
            let s = state.map_or(y, |s| alpha * y + (1.0 - alpha) * s);
            state = Some(s);
            (x, s)
        })
        .collect()
}

fn is_finite((x, y): (f64, f64)) -> bool {
    x.is_finite() && y.is_finite()
}

/// Pixel rectangle of the plot area and the data ranges mapped onto it.
struct Frame {
    x0: i32,
    y0: i32,
    x1: i32,
    y1: i32,
    xr: (f64, f64),
    yr: (f64, f64),
}

impl Frame {
    fn map(&self, (x, y): (f64, f64)) -> (i32, i32) {
        let fx = (x - self.xr.0) / (self.xr.1 - self.xr.0);
        let fy = (y - self.yr.0) / (self.yr.1 - self.yr.0);
        let px = self.x0 + (fx * (self.x1 - self.x0) as f64).round() as i32;
        let py = self.y1 - (fy * (self.y1 - self.y0) as f64).round() as i32;
        (px, py)
    }
}

struct Layout {
    frame: Frame,
    scale: i32,
    x_ticks: Vec<String>,
    y_ticks: Vec<String>,
    /// Per series: legend entry's x pixel and row index.
    legend: Vec<(i32, i32)>,
}

fn layout(series: &[Series], width: u32, height: u32) -> Layout {
    let s = if width.min(height) < 240 { 1 } else { 2 };
    let finite: Vec<(f64, f64)> = series.iter().flat_map(|se| se.points.iter().copied()).filter(|&p| is_finite(p)).collect();
    let xr = padded_range(finite.iter().map(|p| p.0));
    let yr = padded_range(finite.iter().map(|p| p.1));
    let (x_ticks, y_ticks) = (tick_labels(xr), tick_labels(yr));
    let widest_y = y_ticks.iter().map(|t| text_width(t, s)).max().unwrap_or(0);
    let half_x = |t: &String| text_width(t, s) / 2;
    let x0 = (widest_y + 10 * s).max(half_x(&x_ticks[0]) + 2 * s);
    let x1 = width as i32 - (half_x(&x_ticks[TICKS as usize - 1]) + 2 * s).max(6 * s);
    let legend = legend_layout(series, s, x0, x1);
    let rows = legend.last().map_or(0, |&(_, row)| row + 1);
    let y0 = 10 * s + 8 * s + rows * 10 * s;
    let y1 = height as i32 - (12 * s + 16 * s);
    Layout { frame: Frame { x0, y0, x1, y1, xr, yr }, scale: s, x_ticks, y_ticks, legend }
}

/// Lays legend entries out left to right from `x0`, wrapping to a new row past `x1`.
fn legend_layout(series: &[Series], s: i32, x0: i32, x1: i32) -> Vec<(i32, i32)> {
    let (mut x, mut row) = (x0, 0);
    series
        .iter()
        .map(|se| {
            let w = 13 * s + text_width(se.name, s);
            if x > x0 && x + w > x1 {
                (x, row) = (x0, row + 1);
            }
            let entry = (x, row);
            x += w + 8 * s;
            entry
        })
        .collect()
}

/// Min..max of the values (0..1 if none, ±1 if all equal), widened by 5% on each side.
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo > hi { (0.0, 1.0) } else if lo == hi { (lo - 1.0, hi + 1.0) } else { (lo, hi) };
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}

fn tick_labels((lo, hi): (f64, f64)) -> Vec<String> {
    (0..TICKS)
        .map(|i| {
            let v = lo + (hi - lo) * i as f64 / (TICKS - 1) as f64;
            fmt_tick(if v.abs() < (hi - lo) * 1e-9 { 0.0 } else { v })
        })
        .collect()
}

/// Compact number with about 3 significant digits: `0.25`, `12.3`, `1.5k`, `1e-3`, `2.5e6`.
fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || !a.is_finite() {
        return format!("{v}");
    }
    if !(1e-2..1e6).contains(&a) {
        let sci = format!("{v:.1e}");
        let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
        return format!("{}e{exp}", trim_zeros(mantissa));
    }
    if a >= 1e3 {
        return format!("{}k", fmt_tick(v / 1e3));
    }
    let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}")).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s }
}

struct Canvas {
    w: i32,
    h: i32,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: u32, h: u32) -> Self {
        Canvas { w: w as i32, h: h as i32, px: WHITE.repeat(w as usize * h as usize) }
    }

    /// Fills a rectangle, clipped to the canvas.
    fn rect(&mut self, x: i32, y: i32, w: i32, h: i32, c: [u8; 3]) {
        for yy in y.max(0)..(y + h).min(self.h) {
            for xx in x.max(0)..(x + w).min(self.w) {
                let i = (yy as usize * self.w as usize + xx as usize) * 3;
                self.px[i..i + 3].copy_from_slice(&c);
            }
        }
    }

    /// Bresenham line stamped with a 2x2 brush (2px wide).
    fn line(&mut self, (mut x, mut y): (i32, i32), (x1, y1): (i32, i32), c: [u8; 3]) {
        let (dx, dy) = ((x1 - x).abs(), -(y1 - y).abs());
        let (sx, sy) = ((x1 - x).signum(), (y1 - y).signum());
        let mut err = dx + dy;
        loop {
            self.rect(x, y, 2, 2, c);
            if (x, y) == (x1, y1) {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Draws `text` with its top-left corner at (x, y), each font pixel `scale` pixels square.
    fn text(&mut self, x: i32, y: i32, text: &str, scale: i32, c: [u8; 3]) {
        for (i, ch) in text.chars().enumerate() {
            for (row, bits) in glyph(ch).iter().enumerate() {
                for col in 0..5 {
                    if bits >> (4 - col) & 1 == 1 {
                        let gx = x + (i as i32 * 6 + col) * scale;
                        self.rect(gx, y + row as i32 * scale, scale, scale, c);
                    }
                }
            }
        }
    }
}

fn text_width(text: &str, scale: i32) -> i32 {
    (text.chars().count() as i32 * 6 - 1).max(0) * scale
}

/// Glyph for `c`; lowercase shares the uppercase glyphs, anything outside ASCII 32..=126 shows as `?`.
fn glyph(c: char) -> &'static [u8; 7] {
    let index = match c as u32 {
        n @ 32..=95 => n - 32,
        n @ 97..=122 => n - 64,
        96 => 64,
        n @ 123..=126 => n - 58,
        _ => 31,
    };
    &FONT[index as usize]
}

/// 5x7 font, one byte per row (top first), bit 4 = leftmost column.
/// Entries: ASCII 32..=95 (space to `_`), then `` ` ``, `{`, `|`, `}`, `~`.
#[rustfmt::skip]
const FONT: [[u8; 7]; 69] = [
    [0x00,0x00,0x00,0x00,0x00,0x00,0x00], [0x04,0x04,0x04,0x04,0x04,0x00,0x04], // space !
    [0x0A,0x0A,0x00,0x00,0x00,0x00,0x00], [0x0A,0x0A,0x1F,0x0A,0x1F,0x0A,0x0A], // " #
    [0x04,0x0F,0x14,0x0E,0x05,0x1E,0x04], [0x18,0x19,0x02,0x04,0x08,0x13,0x03], // $ %
    [0x0C,0x12,0x14,0x08,0x15,0x12,0x0D], [0x04,0x04,0x00,0x00,0x00,0x00,0x00], // & '
    [0x02,0x04,0x08,0x08,0x08,0x04,0x02], [0x08,0x04,0x02,0x02,0x02,0x04,0x08], // ( )
    [0x00,0x04,0x15,0x0E,0x15,0x04,0x00], [0x00,0x04,0x04,0x1F,0x04,0x04,0x00], // * +
    [0x00,0x00,0x00,0x00,0x0C,0x04,0x08], [0x00,0x00,0x00,0x1F,0x00,0x00,0x00], // , -
    [0x00,0x00,0x00,0x00,0x00,0x0C,0x0C], [0x00,0x01,0x02,0x04,0x08,0x10,0x00], // . /
    [0x0E,0x11,0x13,0x15,0x19,0x11,0x0E], [0x04,0x0C,0x04,0x04,0x04,0x04,0x0E], // 0 1
    [0x0E,0x11,0x01,0x02,0x04,0x08,0x1F], [0x1F,0x02,0x04,0x02,0x01,0x11,0x0E], // 2 3
    [0x02,0x06,0x0A,0x12,0x1F,0x02,0x02], [0x1F,0x10,0x1E,0x01,0x01,0x11,0x0E], // 4 5
    [0x06,0x08,0x10,0x1E,0x11,0x11,0x0E], [0x1F,0x01,0x02,0x04,0x08,0x08,0x08], // 6 7
    [0x0E,0x11,0x11,0x0E,0x11,0x11,0x0E], [0x0E,0x11,0x11,0x0F,0x01,0x02,0x0C], // 8 9
    [0x00,0x0C,0x0C,0x00,0x0C,0x0C,0x00], [0x00,0x0C,0x0C,0x00,0x0C,0x04,0x08], // : ;
    [0x02,0x04,0x08,0x10,0x08,0x04,0x02], [0x00,0x00,0x1F,0x00,0x1F,0x00,0x00], // < =
    [0x08,0x04,0x02,0x01,0x02,0x04,0x08], [0x0E,0x11,0x01,0x02,0x04,0x00,0x04], // > ?
    [0x0E,0x11,0x01,0x0D,0x15,0x15,0x0E], [0x0E,0x11,0x11,0x11,0x1F,0x11,0x11], // @ A
    [0x1E,0x11,0x11,0x1E,0x11,0x11,0x1E], [0x0E,0x11,0x10,0x10,0x10,0x11,0x0E], // B C
    [0x1C,0x12,0x11,0x11,0x11,0x12,0x1C], [0x1F,0x10,0x10,0x1E,0x10,0x10,0x1F], // D E
    [0x1F,0x10,0x10,0x1E,0x10,0x10,0x10], [0x0E,0x11,0x10,0x17,0x11,0x11,0x0F], // F G
    [0x11,0x11,0x11,0x1F,0x11,0x11,0x11], [0x0E,0x04,0x04,0x04,0x04,0x04,0x0E], // H I
    [0x07,0x02,0x02,0x02,0x02,0x12,0x0C], [0x11,0x12,0x14,0x18,0x14,0x12,0x11], // J K
    [0x10,0x10,0x10,0x10,0x10,0x10,0x1F], [0x11,0x1B,0x15,0x15,0x11,0x11,0x11], // L M
    [0x11,0x11,0x19,0x15,0x13,0x11,0x11], [0x0E,0x11,0x11,0x11,0x11,0x11,0x0E], // N O
    [0x1E,0x11,0x11,0x1E,0x10,0x10,0x10], [0x0E,0x11,0x11,0x11,0x15,0x12,0x0D], // P Q
    [0x1E,0x11,0x11,0x1E,0x14,0x12,0x11], [0x0F,0x10,0x10,0x0E,0x01,0x01,0x1E], // R S
    [0x1F,0x04,0x04,0x04,0x04,0x04,0x04], [0x11,0x11,0x11,0x11,0x11,0x11,0x0E], // T U
    [0x11,0x11,0x11,0x11,0x11,0x0A,0x04], [0x11,0x11,0x11,0x15,0x15,0x15,0x0A], // V W
    [0x11,0x11,0x0A,0x04,0x0A,0x11,0x11], [0x11,0x11,0x11,0x0A,0x04,0x04,0x04], // X Y
    [0x1F,0x01,0x02,0x04,0x08,0x10,0x1F], [0x0E,0x08,0x08,0x08,0x08,0x08,0x0E], // Z [
    [0x00,0x10,0x08,0x04,0x02,0x01,0x00], [0x0E,0x02,0x02,0x02,0x02,0x02,0x0E], // \ ]
    [0x04,0x0A,0x11,0x00,0x00,0x00,0x00], [0x00,0x00,0x00,0x00,0x00,0x00,0x1F], // ^ _
    [0x08,0x04,0x00,0x00,0x00,0x00,0x00], [0x02,0x04,0x04,0x08,0x04,0x04,0x02], // ` {
    [0x04,0x04,0x04,0x04,0x04,0x04,0x04], [0x08,0x04,0x04,0x02,0x04,0x04,0x08], // | }
    [0x00,0x00,0x08,0x15,0x02,0x00,0x00],                                        // ~
];

#[cfg(test)]
mod tests {
    use super::*;

    const RED: [u8; 3] = [220, 20, 20];
    const W: u32 = 400;
    const H: u32 = 300;

    /// Whether any pixel with colour `c` lies in the inclusive box (x0..=x1, y0..=y1).
    fn has_color(buf: &[u8], (x0, y0): (i32, i32), (x1, y1): (i32, i32), c: [u8; 3]) -> bool {
        (y0.max(0)..=y1.min(H as i32 - 1))
            .any(|y| (x0.max(0)..=x1.min(W as i32 - 1)).any(|x| buf[(y as usize * W as usize + x as usize) * 3..][..3] == c))
    }

    fn near(buf: &[u8], (x, y): (i32, i32), c: [u8; 3]) -> bool {
        has_color(buf, (x - 3, y - 3), (x + 3, y + 3), c)
    }

    #[test]
    fn buffer_has_right_size() {
        let pts = [(0.0, 1.0), (1.0, 2.0)];
        let one = [Series { name: "loss", points: &pts, color: RED }];
        assert_eq!(render_line_plot("t", "x", &one, W, H).len(), (W * H * 3) as usize);
        assert_eq!(render_line_plot("", "", &[], 123, 45).len(), 123 * 45 * 3);
        assert_eq!(render_line_plot("tiny", "x", &one, 10, 7).len(), 10 * 7 * 3);
    }

    #[test]
    fn diagonal_lands_bottom_left_to_top_right() {
        let pts = [(0.0, 0.0), (1.0, 1.0)];
        let series = [Series { name: "diag", points: &pts, color: RED }];
        let buf = render_line_plot("Diagonal", "step", &series, W, H);
        let f = layout(&series, W, H).frame;
        let ((ax, ay), (bx, by)) = (f.map((0.0, 0.0)), f.map((1.0, 1.0)));
        assert!(ax - f.x0 < 30 && f.y1 - ay < 30 && f.x1 - bx < 30 && by - f.y0 < 30);
        assert!(near(&buf, (ax, ay), RED) && near(&buf, (bx, by), RED) && near(&buf, f.map((0.5, 0.5)), RED));
        let (mx, my) = ((f.x0 + f.x1) / 2, (f.y0 + f.y1) / 2);
        assert!(!has_color(&buf, (f.x0 + 2, f.y0 + 2), (mx - 20, my - 20), RED), "red above the diagonal");
        assert!(!has_color(&buf, (mx + 20, my + 20), (f.x1 - 2, f.y1 - 2), RED), "red below the diagonal");
    }

    #[test]
    fn non_finite_points_break_lines_without_panicking() {
        let pts = [(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0), (f64::NAN, 4.0), (3.0, f64::INFINITY), (4.0, 2.0)];
        let all_nan = [(f64::NAN, f64::NAN)];
        let series = [
            Series { name: "gaps", points: &pts, color: RED },
            Series { name: "nan", points: &all_nan, color: [0, 0, 200] },
            Series { name: "empty", points: &[], color: [0, 150, 0] },
        ];
        let buf = render_line_plot("NaN", "step", &series, W, H);
        let f = layout(&series, W, H).frame;
        // Isolated points become dots; nothing is drawn between (2, 3) and (4, 2) across the gap.
        assert!(near(&buf, f.map((2.0, 3.0)), RED) && near(&buf, f.map((4.0, 2.0)), RED));
        assert!(!near(&buf, f.map((3.0, 2.5)), RED));
    }

    #[test]
    fn constant_series_is_centred() {
        let pts = [(0.0, 5.0), (10.0, 5.0)];
        let series = [Series { name: "flat", points: &pts, color: RED }];
        let buf = render_line_plot("flat", "x", &series, W, H);
        let f = layout(&series, W, H).frame;
        assert!((f.map((5.0, 5.0)).1 - (f.y0 + f.y1) / 2).abs() <= 1);
        assert!(near(&buf, f.map((5.0, 5.0)), RED));
    }

    #[test]
    fn title_and_legend_text_render() {
        let pts = [(0.0, 1.0), (1.0, 0.5)];
        let series = [Series { name: "g_loss", points: &pts, color: RED }];
        let f = layout(&series, W, H).frame;
        let title_band = ((0, 0), (W as i32 - 1, 20));
        let non_white = |buf: &[u8]| (0..=title_band.1 .1).any(|y| (0..W as i32).any(|x| !has_color(buf, (x, y), (x, y), WHITE)));
        assert!(non_white(&render_line_plot("Losses (ema=0.9)", "step", &series, W, H)));
        assert!(!non_white(&render_line_plot("", "step", &series, W, H)));
        let legend = render_line_plot("", "", &series, W, H);
        assert!(has_color(&legend, (f.x0, 20), (f.x1, f.y0 - 1), RED), "legend name in series colour");
    }

    #[test]
    fn tick_labels_are_compact() {
        let cases = [(0.25, "0.25"), (1500.0, "1.5k"), (0.001, "1e-3"), (0.0, "0"), (-2.5, "-2.5"), (12.345, "12.3"), (2.5e6, "2.5e6")];
        for (v, want) in cases {
            assert_eq!(fmt_tick(v), want);
        }
        assert_eq!(tick_labels((-1.0, 1.0)), ["-1", "-0.5", "0", "0.5", "1"]);
    }

    #[test]
    fn ema_smooths_and_keeps_gaps() {
        let out = ema_smooth(&[(0.0, 1.0), (1.0, 3.0), (2.0, f64::NAN), (3.0, 3.0)], 0.5);
        assert_eq!(&out[..2], [(0.0, 1.0), (1.0, 2.0)]);
        assert!(out[2].1.is_nan());
        assert_eq!(out[3], (3.0, 2.5));
    }
}
