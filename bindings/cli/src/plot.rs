//! `scdeep plot`: PNG figures from a run directory — loss curves (history.json), a 2-D
//! view of the embedding coloured by cluster and by ground truth, and a cluster x truth
//! confusion heatmap. Drawn on a small RGB canvas: text with ab_glyph and the bundled
//! DejaVu Sans (so no system fonts are needed in a container), PNG encoding with `png`.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use scdeep_core::io::write;
use scdeep_core::results;
use scdeep_core::{Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

type Rgb = [u8; 3];
const BLACK: Rgb = [20, 20, 20];
const GREY: Rgb = [120, 120, 120];
const LIGHT: Rgb = [225, 225, 225];
const WHITE: Rgb = [255, 255, 255];

/// Tableau's 20 colours (matplotlib's tab20 order: dark then light of each hue).
const PALETTE: [Rgb; 20] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
    [174, 199, 232],
    [255, 187, 120],
    [152, 223, 138],
    [255, 152, 150],
    [197, 176, 213],
    [196, 156, 148],
    [247, 182, 210],
    [199, 199, 199],
    [219, 219, 141],
    [158, 218, 229],
];

#[derive(Clone, Copy, PartialEq)]
pub enum Anchor {
    Left,
    Center,
    Right,
}

pub struct Canvas {
    pub w: usize,
    pub h: usize,
    px: Vec<u8>,
    font: FontRef<'static>,
}

impl Canvas {
    pub fn new(w: usize, h: usize) -> Canvas {
        Canvas { w, h, px: vec![255; w * h * 3], font: FontRef::try_from_slice(FONT).expect("bundled font") }
    }

    fn blend(&mut self, x: i64, y: i64, c: Rgb, a: f32) {
        if x < 0 || y < 0 || x >= self.w as i64 || y >= self.h as i64 || a <= 0.0 {
            return;
        }
        let i = (y as usize * self.w + x as usize) * 3;
        let a = a.min(1.0);
        for (p, &ck) in self.px[i..i + 3].iter_mut().zip(c.iter()) {
            *p = (*p as f32 * (1.0 - a) + ck as f32 * a).round() as u8;
        }
    }

    pub fn fill_rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, c: Rgb) {
        let (xa, xb) = (x0.min(x1).round() as i64, x0.max(x1).round() as i64);
        let (ya, yb) = (y0.min(y1).round() as i64, y0.max(y1).round() as i64);
        for y in ya..yb.max(ya + 1) {
            for x in xa..xb.max(xa + 1) {
                self.blend(x, y, c, 1.0);
            }
        }
    }

    /// A filled disc with a soft edge.
    pub fn disc(&mut self, cx: f32, cy: f32, r: f32, c: Rgb, alpha: f32) {
        let (x0, x1) = ((cx - r - 1.0).floor() as i64, (cx + r + 1.0).ceil() as i64);
        let (y0, y1) = ((cy - r - 1.0).floor() as i64, (cy + r + 1.0).ceil() as i64);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
                let cov = (r + 0.5 - d).clamp(0.0, 1.0);
                self.blend(x, y, c, cov * alpha);
            }
        }
    }

    pub fn line(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, width: f32, c: Rgb) {
        let len = ((x1 - x0).powi(2) + (y1 - y0).powi(2)).sqrt();
        let n = (len * 2.0).ceil().max(1.0) as usize;
        let r = width / 2.0;
        // Stamp opaque discs along the segment; re-blending the same colour is harmless.
        for i in 0..=n {
            let t = i as f32 / n as f32;
            let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
            if r <= 0.75 {
                self.blend(x.round() as i64, y.round() as i64, c, 1.0);
            } else {
                self.disc(x, y, r, c, 1.0);
            }
        }
    }

    /// The outline of the rectangle (x0, y0)-(x1, y1).
    pub fn outline(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, width: f32, c: Rgb) {
        for (a, b, d, e) in [(x0, y0, x1, y0), (x0, y1, x1, y1), (x0, y0, x0, y1), (x1, y0, x1, y1)] {
            self.line(a, b, d, e, width, c);
        }
    }

    /// Each glyph of `s` with its pen position (kerning applied), and the total advance.
    fn layout(&self, s: &str, size: f32) -> (Vec<(ab_glyph::GlyphId, f32)>, f32) {
        let f = self.font.as_scaled(PxScale::from(size));
        let mut pen = 0.0;
        let mut prev = None;
        let mut out = Vec::new();
        for ch in s.chars() {
            let g = f.glyph_id(ch);
            if let Some(p) = prev {
                pen += f.kern(p, g);
            }
            out.push((g, pen));
            pen += f.h_advance(g);
            prev = Some(g);
        }
        (out, pen)
    }

    /// Text with its baseline's vertical middle at `y` (so `y` is the visual centre);
    /// `vertical` draws it rotated 90 degrees counter-clockwise, centred on (x, y).
    #[allow(clippy::too_many_arguments)]
    pub fn text(&mut self, s: &str, x: f32, y: f32, size: f32, c: Rgb, anchor: Anchor, vertical: bool) {
        let f = self.font.as_scaled(PxScale::from(size));
        let (glyphs, advance) = self.layout(s, size);
        let w = advance.ceil() as usize + 2;
        let h = (f.ascent() - f.descent()).ceil() as usize + 2;
        let mut cov = vec![0f32; w * h];
        for (gid, pen) in glyphs {
            let pen = pen + 1.0;
            let glyph = gid.with_scale_and_position(PxScale::from(size), ab_glyph::point(pen, 1.0 + f.ascent()));
            if let Some(o) = self.font.outline_glyph(glyph) {
                let b = o.px_bounds();
                o.draw(|gx, gy, v| {
                    let (px, py) = (b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64);
                    if px >= 0 && py >= 0 && (px as usize) < w && (py as usize) < h {
                        let k = py as usize * w + px as usize;
                        cov[k] = (cov[k] + v).min(1.0);
                    }
                });
            }
        }
        let tw = advance + 2.0;
        let shift = match anchor {
            Anchor::Left => 0.0,
            Anchor::Center => tw / 2.0,
            Anchor::Right => tw,
        };
        for ty in 0..h {
            for tx in 0..w {
                let v = cov[ty * w + tx];
                if v <= 0.0 {
                    continue;
                }
                let (dx, dy) = (tx as f32 - shift, ty as f32 - h as f32 / 2.0);
                let (px, py) = if vertical { (x + dy, y - dx) } else { (x + dx, y + dy) };
                self.blend(px.round() as i64, py.round() as i64, c, v);
            }
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        write::AtomicFile::write_with(path, |w| {
            let mut enc = png::Encoder::new(w, self.w as u32, self.h as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut wr = enc.write_header().map_err(std::io::Error::other)?;
            wr.write_image_data(&self.px).map_err(std::io::Error::other)
        })
    }
}

/// "Nice" tick positions covering [lo, hi].
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).abs().max(1e-12);
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|&s| s >= raw).unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut v = Vec::new();
    while t <= hi + step * 1e-9 {
        v.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    v
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e4).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A plotting area in pixels with data ranges.
struct Axes {
    x0: f32,
    y0: f32,
    x1: f32,
    y1: f32,
    xr: (f64, f64),
    yr: (f64, f64),
}

impl Axes {
    fn px(&self, x: f64) -> f32 {
        self.x0 + ((x - self.xr.0) / (self.xr.1 - self.xr.0).max(1e-12)) as f32 * (self.x1 - self.x0)
    }
    fn py(&self, y: f64) -> f32 {
        self.y1 - ((y - self.yr.0) / (self.yr.1 - self.yr.0).max(1e-12)) as f32 * (self.y1 - self.y0)
    }

    /// Frame, grid, ticks, tick labels, axis labels and title.
    fn draw(&self, c: &mut Canvas, title: &str, xlabel: &str, ylabel: &str, tick_labels: bool) {
        let tx = ticks(self.xr.0, self.xr.1, 6);
        let ty = ticks(self.yr.0, self.yr.1, 6);
        for &t in &tx {
            let x = self.px(t);
            c.line(x, self.y0, x, self.y1, 1.0, LIGHT);
            if tick_labels {
                c.line(x, self.y1, x, self.y1 + 5.0, 1.0, BLACK);
                c.text(&fmt_tick(t), x, self.y1 + 16.0, 13.0, BLACK, Anchor::Center, false);
            }
        }
        for &t in &ty {
            let y = self.py(t);
            c.line(self.x0, y, self.x1, y, 1.0, LIGHT);
            if tick_labels {
                c.line(self.x0 - 5.0, y, self.x0, y, 1.0, BLACK);
                c.text(&fmt_tick(t), self.x0 - 8.0, y, 13.0, BLACK, Anchor::Right, false);
            }
        }
        c.outline(self.x0, self.y0, self.x1, self.y1, 1.2, BLACK);
        c.text(title, (self.x0 + self.x1) / 2.0, self.y0 - 22.0, 18.0, BLACK, Anchor::Center, false);
        c.text(xlabel, (self.x0 + self.x1) / 2.0, self.y1 + 40.0, 15.0, BLACK, Anchor::Center, false);
        c.text(ylabel, self.x0 - 62.0, (self.y0 + self.y1) / 2.0, 15.0, BLACK, Anchor::Center, true);
    }
}

fn range(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for x in v.filter(|x| x.is_finite()) {
        lo = lo.min(x);
        hi = hi.max(x);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// A legend box: coloured markers and names, at most `max` rows (then "+N more").
fn legend(c: &mut Canvas, x: f32, y: f32, items: &[(String, Rgb)], max: usize, line: bool) {
    for (i, (name, col)) in items.iter().take(max).enumerate() {
        let yy = y + i as f32 * 20.0;
        if line {
            c.line(x, yy, x + 22.0, yy, 3.0, *col);
        } else {
            c.disc(x + 8.0, yy, 6.0, *col, 1.0);
        }
        c.text(&truncate(name, 22), x + 30.0, yy, 13.0, BLACK, Anchor::Left, false);
    }
    if items.len() > max {
        c.text(&format!("+{} more", items.len() - max), x + 30.0, y + max as f32 * 20.0, 13.0, GREY, Anchor::Left, false);
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// Loss curves: every `loss*` term per epoch (the first, `loss`, is the one minimised).
pub fn loss_plot(history: &[Value], method: &str, path: &Path) -> Result<()> {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (i, h) in history.iter().enumerate() {
        let ep = h.get("epoch").and_then(Value::as_f64).unwrap_or(i as f64 + 1.0);
        if let Some(o) = h.as_object() {
            for (k, v) in o {
                if k.starts_with("loss") {
                    if let Some(v) = v.as_f64() {
                        series.entry(k.clone()).or_default().push((ep, v));
                    }
                }
            }
        }
    }
    let mut c = Canvas::new(1000, 640);
    let ax = Axes {
        x0: 95.0,
        y0: 60.0,
        x1: 760.0,
        y1: 570.0,
        xr: range(series.values().flatten().map(|p| p.0)),
        yr: range(series.values().flatten().map(|p| p.1)),
    };
    ax.draw(&mut c, &format!("{method}: training losses"), "epoch", "loss (mean over the epoch)", true);
    let mut items = Vec::new();
    for (i, (name, pts)) in series.iter().enumerate() {
        let col = PALETTE[(2 * i) % 20];
        for w in pts.windows(2) {
            c.line(ax.px(w[0].0), ax.py(w[0].1), ax.px(w[1].0), ax.py(w[1].1), 2.5, col);
        }
        if pts.len() == 1 {
            c.disc(ax.px(pts[0].0), ax.py(pts[0].1), 4.0, col, 1.0);
        }
        items.push((name.clone(), col));
    }
    legend(&mut c, 785.0, 80.0, &items, 20, true);
    c.save(path)
}

/// The first two principal components of a cells x dims matrix (power iteration on the
/// covariance, deterministic start), and the variance fraction each explains.
pub fn pca2(x: &[f32], n: usize, d: usize) -> (Vec<[f64; 2]>, [f64; 2]) {
    let mut mean = vec![0f64; d];
    for r in x.chunks(d) {
        for (m, &v) in mean.iter_mut().zip(r) {
            *m += v as f64 / n as f64;
        }
    }
    let mut cov = vec![0f64; d * d];
    for r in x.chunks(d) {
        let c: Vec<f64> = r.iter().zip(&mean).map(|(&v, m)| v as f64 - m).collect();
        for i in 0..d {
            for j in i..d {
                cov[i * d + j] += c[i] * c[j];
            }
        }
    }
    for i in 0..d {
        for j in 0..i {
            cov[i * d + j] = cov[j * d + i];
        }
    }
    let total: f64 = (0..d).map(|i| cov[i * d + i]).sum::<f64>().max(1e-300);
    let mut comps: Vec<Vec<f64>> = Vec::new();
    let mut vars = [0f64; 2];
    for (k, var) in vars.iter_mut().enumerate() {
        let mut v: Vec<f64> = (0..d).map(|i| 1.0 + ((i * 7 + k * 3) % 11) as f64 / 11.0).collect();
        let mut lambda = 0.0;
        for _ in 0..300 {
            let mut w: Vec<f64> = (0..d).map(|i| (0..d).map(|j| cov[i * d + j] * v[j]).sum()).collect();
            for p in &comps {
                let dot: f64 = w.iter().zip(p).map(|(a, b)| a * b).sum();
                for (wi, pi) in w.iter_mut().zip(p) {
                    *wi -= dot * pi;
                }
            }
            let norm = w.iter().map(|a| a * a).sum::<f64>().sqrt();
            if norm < 1e-300 {
                break;
            }
            w.iter_mut().for_each(|a| *a /= norm);
            let delta: f64 = w.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
            v = w;
            lambda = norm;
            if delta < 1e-10 {
                break;
            }
        }
        *var = lambda / total;
        comps.push(v);
    }
    let pts = x
        .chunks(d)
        .map(|r| {
            let c: Vec<f64> = r.iter().zip(&mean).map(|(&v, m)| v as f64 - m).collect();
            [0, 1].map(|k| c.iter().zip(&comps[k]).map(|(a, b)| a * b).sum())
        })
        .collect();
    (pts, vars)
}

/// Category names in a stable order (numeric when they all parse) and each cell's index.
fn categories(labels: &[String]) -> (Vec<String>, Vec<usize>) {
    let mut cats: Vec<String> = labels.to_vec();
    cats.sort();
    cats.dedup();
    if cats.iter().all(|c| c.parse::<i64>().is_ok()) {
        cats.sort_by_key(|c| c.parse::<i64>().unwrap());
    }
    let idx = labels.iter().map(|l| cats.iter().position(|c| c == l).unwrap()).collect();
    (cats, idx)
}

fn colour(i: usize, n: usize) -> Rgb {
    if n <= 10 {
        PALETTE[i % 10]
    } else {
        PALETTE[(i % 10) + if (i / 10) % 2 == 1 { 10 } else { 0 }]
    }
}

/// One scatter panel of the 2-D view.
fn scatter_panel(c: &mut Canvas, x0: f32, pts: &[[f64; 2]], vars: [f64; 2], labels: &[String], title: &str) {
    let (cats, idx) = categories(labels);
    let ax = Axes { x0, y0: 60.0, x1: x0 + 460.0, y1: 560.0, xr: range(pts.iter().map(|p| p[0])), yr: range(pts.iter().map(|p| p[1])) };
    ax.draw(c, title, &format!("PC1 ({:.0}% of variance)", vars[0] * 100.0), &format!("PC2 ({:.0}% of variance)", vars[1] * 100.0), false);
    let r = if pts.len() > 20_000 {
        1.2
    } else if pts.len() > 3000 {
        2.0
    } else {
        3.0
    };
    for (p, &k) in pts.iter().zip(&idx) {
        c.disc(ax.px(p[0]), ax.py(p[1]), r, colour(k, cats.len()), 0.7);
    }
    let items: Vec<(String, Rgb)> = cats.iter().enumerate().map(|(i, n)| (n.clone(), colour(i, cats.len()))).collect();
    legend(c, x0 + 475.0, 75.0, &items, 24, false);
}

pub fn embedding_plot(
    pts: &[[f64; 2]],
    vars: [f64; 2],
    clusters: &[String],
    truth: Option<&[String]>,
    method: &str,
    path: &Path,
) -> Result<()> {
    let w = if truth.is_some() { 1500 } else { 760 };
    let mut c = Canvas::new(w, 620);
    scatter_panel(&mut c, 90.0, pts, vars, clusters, &format!("{method} embedding: clusters"));
    if let Some(t) = truth {
        scatter_panel(&mut c, 830.0, pts, vars, t, &format!("{method} embedding: ground truth"));
    }
    c.text(
        &format!("{} cells; first two principal components of the {method} embedding", pts.len()),
        w as f32 / 2.0,
        603.0,
        13.0,
        GREY,
        Anchor::Center,
        false,
    );
    c.save(path)
}

/// Cluster x truth counts, each row coloured by the fraction of the cluster in each class.
pub fn confusion_plot(clusters: &[String], truth: &[String], method: &str, scores: Option<&Value>, path: &Path) -> Result<()> {
    let (rows, ri) = categories(clusters);
    let (cols, ci) = categories(truth);
    let mut m = vec![0usize; rows.len() * cols.len()];
    for (&r, &k) in ri.iter().zip(&ci) {
        m[r * cols.len() + k] += 1;
    }
    let cell = (560.0 / rows.len().max(cols.len()) as f32).clamp(14.0, 60.0);
    let (x0, y0) = (130.0f32, 70.0f32);
    let (gw, gh) = (cell * cols.len() as f32, cell * rows.len() as f32);
    let w = (x0 + gw + 200.0).max(640.0) as usize;
    let h = (y0 + gh + 190.0) as usize;
    let mut c = Canvas::new(w, h);
    let title = match scores.and_then(|s| Some((s.get("ari")?.as_f64()?, s.get("nmi")?.as_f64()?))) {
        Some((ari, nmi)) => format!("{method}: clusters vs ground truth (ARI {ari:.3}, NMI {nmi:.3})"),
        None => format!("{method}: clusters vs ground truth"),
    };
    c.text(&title, w as f32 / 2.0, 30.0, 18.0, BLACK, Anchor::Center, false);
    for r in 0..rows.len() {
        let total: usize = m[r * cols.len()..(r + 1) * cols.len()].iter().sum();
        for k in 0..cols.len() {
            let n = m[r * cols.len() + k];
            let f = if total > 0 { n as f32 / total as f32 } else { 0.0 };
            let col = [(255.0 - f * (255.0 - 8.0)) as u8, (255.0 - f * (255.0 - 69.0)) as u8, (255.0 - f * (255.0 - 148.0)) as u8];
            let (x, y) = (x0 + k as f32 * cell, y0 + r as f32 * cell);
            c.fill_rect(x, y, x + cell, y + cell, col);
            if cell >= 26.0 && n > 0 {
                let tc = if f > 0.5 { WHITE } else { BLACK };
                c.text(&n.to_string(), x + cell / 2.0, y + cell / 2.0, (cell * 0.32).min(14.0), tc, Anchor::Center, false);
            }
        }
        c.text(&truncate(&rows[r], 14), x0 - 8.0, y0 + (r as f32 + 0.5) * cell, 12.0, BLACK, Anchor::Right, false);
    }
    for (k, name) in cols.iter().enumerate() {
        c.text(&truncate(name, 16), x0 + (k as f32 + 0.5) * cell, y0 + gh + 8.0, 12.0, BLACK, Anchor::Right, true);
    }
    c.outline(x0, y0, x0 + gw, y0 + gh, 1.0, BLACK);
    c.text("ground-truth class", x0 + gw / 2.0, y0 + gh + 150.0, 15.0, BLACK, Anchor::Center, false);
    c.text(&format!("{method} cluster"), x0 - 95.0, y0 + gh / 2.0, 15.0, BLACK, Anchor::Center, true);
    // colour bar
    let bx = x0 + gw + 40.0;
    for i in 0..200 {
        let f = 1.0 - i as f32 / 199.0;
        let col = [(255.0 - f * 247.0) as u8, (255.0 - f * 186.0) as u8, (255.0 - f * 107.0) as u8];
        c.fill_rect(bx, y0 + i as f32, bx + 18.0, y0 + i as f32 + 1.0, col);
    }
    c.text("1", bx + 24.0, y0, 12.0, BLACK, Anchor::Left, false);
    c.text("0", bx + 24.0, y0 + 200.0, 12.0, BLACK, Anchor::Left, false);
    c.text("fraction of the cluster", bx + 56.0, y0 + 100.0, 12.0, BLACK, Anchor::Center, true);
    c.save(path)
}

pub struct PlotArgs {
    pub run: PathBuf,
    pub out: Option<PathBuf>,
    pub truth: Option<PathBuf>,
}

/// Every figure the run directory allows; returns the files written.
pub fn plot_run(a: &PlotArgs) -> Result<Vec<PathBuf>> {
    let run = &a.run;
    if !run.is_dir() {
        return Err(Error::io(run, "not a run directory (the --out folder of `scdeep run`)"));
    }
    let out = a.out.clone().unwrap_or_else(|| run.clone());
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let info: Value = write::read_json(&run.join(results::RUN_JSON))?;
    let method = info.pointer("/config/method").and_then(Value::as_str).unwrap_or("scdeep").to_string();
    let mut written = Vec::new();

    let hist_path = run.join(results::HISTORY_JSON);
    if hist_path.exists() {
        let hist = write::read_json(&hist_path)?;
        let h = hist.as_array().ok_or_else(|| Error::format(&hist_path, "expected a JSON array of epochs"))?;
        if !h.is_empty() {
            let p = out.join("loss.png");
            loss_plot(h, &method, &p)?;
            written.push(p);
        }
    }

    let labels = scdeep_core::io::read_labels_tsv(&run.join(results::LABELS_TSV))?;
    let (emb, shape) = write::read_npy_f32(&run.join(results::EMBEDDING_NPY))?;
    if shape.len() != 2 || shape[0] != labels.len() {
        return Err(Error::format(
            &run.join(results::EMBEDDING_NPY),
            format!("shape {shape:?} does not match the {} cells of labels.tsv", labels.len()),
        ));
    }
    let truth_file = a.truth.clone().or_else(|| Some(run.join(results::TRUTH_TSV)).filter(|p| p.exists()));
    let truth: Option<Vec<String>> = match &truth_file {
        Some(p) => {
            let t: std::collections::HashMap<String, String> = scdeep_core::io::read_labels_tsv(p)?.into_iter().collect();
            let v: Vec<String> = labels
                .iter()
                .map(|(cell, _)| t.get(cell).cloned().ok_or_else(|| Error::data(format!("{}: no label for cell '{cell}'", p.display()))))
                .collect::<Result<_>>()?;
            Some(v)
        }
        None => None,
    };
    let clusters: Vec<String> = labels.iter().map(|(_, l)| l.clone()).collect();
    let (pts, vars) = pca2(&emb, shape[0], shape[1]);
    let p = out.join("embedding.png");
    embedding_plot(&pts, vars, &clusters, truth.as_deref(), &method, &p)?;
    written.push(p);
    if let Some(t) = &truth {
        let scores = write::read_json(&run.join(results::METRICS_JSON)).ok();
        let p = out.join("confusion.png");
        confusion_plot(&clusters, t, &method, scores.as_ref(), &p)?;
        written.push(p);
    }
    Ok(written)
}

/// A metrics table (TSV with a header holding `method` and metric columns such as `ari`,
/// `nmi`; one row per run) as one panel per metric: each run a point, the median a bar.
pub fn summary_plot(table: &Path, out: &Path) -> Result<()> {
    let text = std::fs::read_to_string(table).map_err(|e| Error::io(table, e))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().ok_or_else(|| Error::format(table, "empty table"))?.split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let mcol = col("method").ok_or_else(|| Error::format(table, format!("no `method` column (header: {})", header.join(", "))))?;
    let metrics: Vec<(&str, usize)> = ["ari", "nmi", "ami", "acc"].iter().filter_map(|m| col(m).map(|i| (*m, i))).take(2).collect();
    if metrics.is_empty() {
        return Err(Error::format(table, "no `ari` or `nmi` column"));
    }
    let mut methods: Vec<String> = Vec::new();
    let mut rows: Vec<(usize, Vec<f64>)> = Vec::new();
    for (n, l) in lines.enumerate() {
        let f: Vec<&str> = l.split('\t').collect();
        let m = f.get(mcol).ok_or_else(|| Error::format(table, format!("line {}: too few columns", n + 2)))?.to_string();
        let k = methods.iter().position(|x| *x == m).unwrap_or_else(|| {
            methods.push(m.clone());
            methods.len() - 1
        });
        let vals = metrics
            .iter()
            .map(|(name, i)| {
                f.get(*i)
                    .and_then(|v| v.parse::<f64>().ok())
                    .ok_or_else(|| Error::format(table, format!("line {}: `{name}` is not a number", n + 2)))
            })
            .collect::<Result<Vec<f64>>>()?;
        rows.push((k, vals));
    }
    let panel_w = (120.0 * methods.len() as f32).clamp(320.0, 900.0);
    let w = (90.0 + metrics.len() as f32 * (panel_w + 110.0)) as usize;
    let mut c = Canvas::new(w, 560);
    for (p, (name, _)) in metrics.iter().enumerate() {
        let x0 = 90.0 + p as f32 * (panel_w + 110.0);
        let lo = rows.iter().map(|r| r.1[p]).fold(0.0f64, f64::min);
        let ax = Axes { x0, y0: 60.0, x1: x0 + panel_w, y1: 470.0, xr: (-0.5, methods.len() as f64 - 0.5), yr: (lo.min(0.0), 1.0) };
        // y grid and labels only; methods label the x axis
        for t in ticks(ax.yr.0, ax.yr.1, 5) {
            let y = ax.py(t);
            c.line(ax.x0, y, ax.x1, y, 1.0, LIGHT);
            c.text(&fmt_tick(t), ax.x0 - 8.0, y, 13.0, BLACK, Anchor::Right, false);
        }
        c.outline(ax.x0, ax.y0, ax.x1, ax.y1, 1.2, BLACK);
        for (k, m) in methods.iter().enumerate() {
            let mut v: Vec<f64> = rows.iter().filter(|r| r.0 == k).map(|r| r.1[p]).collect();
            for (j, &y) in v.iter().enumerate() {
                let jitter = ((j * 37) % 11) as f64 / 11.0 * 0.3 - 0.15;
                c.disc(ax.px(k as f64 + jitter), ax.py(y), 5.0, PALETTE[k % 10], 0.8);
            }
            v.sort_by(|a, b| a.total_cmp(b));
            if !v.is_empty() {
                let med = if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 };
                c.line(ax.px(k as f64 - 0.3), ax.py(med), ax.px(k as f64 + 0.3), ax.py(med), 3.0, BLACK);
                c.text(&format!("{med:.3}"), ax.px(k as f64 + 0.32), ax.py(med), 12.0, BLACK, Anchor::Left, false);
            }
            c.text(&truncate(m, 16), ax.px(k as f64), ax.y1 + 18.0, 14.0, BLACK, Anchor::Center, false);
        }
        let label = name.to_uppercase();
        c.text(
            &format!("{label} per run (bar: median over {} runs)", rows.len()),
            (ax.x0 + ax.x1) / 2.0,
            30.0,
            16.0,
            BLACK,
            Anchor::Center,
            false,
        );
        c.text("method", (ax.x0 + ax.x1) / 2.0, ax.y1 + 48.0, 15.0, BLACK, Anchor::Center, false);
        c.text(&label, ax.x0 - 55.0, (ax.y0 + ax.y1) / 2.0, 15.0, BLACK, Anchor::Center, true);
    }
    c.save(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers_covering_the_range() {
        let t = ticks(0.0, 1.0, 5);
        let want = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
        assert_eq!(t.len(), want.len());
        assert!(t.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12), "{t:?}");
        let t = ticks(-3.2, 17.9, 6);
        assert!(t[0] >= -3.2 && *t.last().unwrap() <= 17.9 && t.len() >= 4);
    }

    #[test]
    fn pca2_finds_the_main_axis() {
        // points along (1, 1, 0) with small noise in the third coordinate
        let x: Vec<f32> = (0..50).flat_map(|i| [i as f32, i as f32, (i % 3) as f32 * 0.01]).collect();
        let (pts, vars) = pca2(&x, 50, 3);
        assert!(vars[0] > 0.99, "{vars:?}");
        assert!((pts[49][0] - pts[0][0]).abs() > 60.0);
    }

    #[test]
    fn text_is_drawn() {
        let mut c = Canvas::new(200, 50);
        c.text("scdeep", 100.0, 25.0, 20.0, BLACK, Anchor::Center, false);
        let dark = c.px.chunks(3).filter(|p| p[0] < 128).count();
        assert!(dark > 50, "{dark}");
    }
}
