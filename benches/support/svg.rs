//! Line charts as SVG, written by hand: no plotting crate, no fonts (the
//! text is SVG `<text>` in a generic `sans-serif`, laid out by whoever
//! shows the picture), output that is the same for the same figures.

use std::fmt::Write;

/// One line: its points (x, y), drawn in order, each with a dot (unless
/// there are many); a point whose y is NaN breaks the line (no data there).
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64)>,
    /// Dashed rather than solid.
    pub dashed: bool,
}

/// A vertical line at `x`, labelled.
pub struct Marker {
    pub x: f64,
    pub label: String,
}

/// A chart: axes, lines, markers and shaded spans of x.
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// A logarithmic x axis (every x must be positive).
    pub log_x: bool,
    /// The x ticks, with their labels; `None`: round values over the range.
    pub x_ticks: Option<Vec<(f64, String)>>,
    pub series: Vec<Series>,
    pub markers: Vec<Marker>,
    /// Spans of x shaded grey, labelled.
    pub spans: Vec<(f64, f64, String)>,
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

/// Round ticks from `lo` to `hi`: about `n` of them, steps of 1, 2 or 5
/// times a power of ten.
fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let raw = span / n as f64;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power);
    let mut ticks = Vec::new();
    let mut t = (lo / step).ceil() * step;
    while t <= hi + step * 1e-9 {
        ticks.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    ticks
}

/// A number as a tick label: no more digits than needed.
fn label(v: f64) -> String {
    if v == v.round() && v.abs() < 1e7 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Escapes text for SVG.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Chart {
    /// The chart as an SVG document.
    pub fn render(&self) -> String {
        let points = self.series.iter().flat_map(|s| s.points.iter());
        let xs: Vec<f64> = points
            .clone()
            .map(|p| p.0)
            .chain(self.markers.iter().map(|m| m.x))
            .chain(self.spans.iter().flat_map(|s| [s.0, s.1]))
            .collect();
        let fx = |x: f64| if self.log_x { x.log10() } else { x };
        let (mut x0, mut x1) = xs.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| {
            (a.min(fx(x)), b.max(fx(x)))
        });
        if x0 >= x1 {
            (x0, x1) = (x0 - 1.0, x0 + 1.0);
        }
        // A little room on either side of a logarithmic axis, for the dots.
        if self.log_x {
            let pad = (x1 - x0) * 0.04;
            (x0, x1) = (x0 - pad, x1 + pad);
        }
        let y_max = points.map(|p| p.1).fold(0.0, f64::max);
        // Some room above the highest point.
        let y_ticks = nice_ticks(0.0, if y_max > 0.0 { y_max * 1.08 } else { 1.0 }, 6);
        let y1 = y_ticks.last().copied().unwrap_or(1.0).max(y_max * 1.08);
        let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let px = |x: f64| LEFT + (fx(x) - x0) / (x1 - x0) * pw;
        let py = |y: f64| TOP + ph - y / y1 * ph;

        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            svg,
            r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
            WIDTH / 2.0,
            esc(&self.title)
        );
        for (a, b, text) in &self.spans {
            let (l, r) = (px(*a), px(*b).max(px(*a) + 1.0));
            let _ = writeln!(
                svg,
                r##"<rect x="{l:.1}" y="{TOP}" width="{:.1}" height="{ph}" fill="#dddddd"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#555555">{}</text>"##,
                r - l,
                r + 3.0,
                TOP + 12.0,
                esc(text)
            );
        }
        // Grid and y ticks.
        for &t in &y_ticks {
            let y = py(t);
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0,
                label(t)
            );
        }
        let x_ticks: Vec<(f64, String)> = match &self.x_ticks {
            Some(ticks) => ticks.clone(),
            None if self.log_x => nice_ticks(x0, x1, 5)
                .into_iter()
                .map(|e| (10f64.powf(e), label(10f64.powf(e))))
                .collect(),
            None => nice_ticks(x0, x1, 8)
                .into_iter()
                .map(|x| (x, label(x)))
                .collect(),
        };
        for (t, text) in &x_ticks {
            let x = px(*t);
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#e4e4e4"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                TOP + ph,
                TOP + ph + 18.0,
                esc(text)
            );
        }
        let _ = writeln!(
            svg,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333333"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            HEIGHT - 22.0,
            esc(&self.x_label)
        );
        let _ = writeln!(
            svg,
            r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + ph / 2.0,
            esc(&self.y_label)
        );
        for (i, m) in self.markers.iter().enumerate() {
            let x = px(m.x);
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#cc0000" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#cc0000">{}</text>"##,
                TOP + ph,
                x + 3.0,
                TOP + ph - 6.0 - 14.0 * i as f64,
                esc(&m.label)
            );
        }
        for s in &self.series {
            let dash = if s.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            for segment in s.points.split(|p| p.1.is_nan()) {
                let path: Vec<String> = segment
                    .iter()
                    .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                    .collect();
                if let [(x, y)] = segment {
                    // Alone between gaps: a dot, whatever the count.
                    let _ = writeln!(
                        svg,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{}"/>"#,
                        px(*x),
                        py(*y),
                        s.color
                    );
                    continue;
                }
                let _ = writeln!(
                    svg,
                    r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.6"{dash}/>"#,
                    path.join(" "),
                    s.color
                );
            }
            if s.points.len() <= 40 {
                for &(x, y) in s.points.iter().filter(|p| !p.1.is_nan()) {
                    let _ = writeln!(
                        svg,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                        px(x),
                        py(y),
                        s.color
                    );
                }
            }
        }
        // The legend, top left inside the plot.
        for (i, s) in self.series.iter().enumerate() {
            let y = TOP + 16.0 + 16.0 * i as f64;
            let _ = writeln!(
                svg,
                r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                LEFT + 10.0,
                y - 4.0,
                LEFT + 34.0,
                y - 4.0,
                s.color,
                LEFT + 40.0,
                y,
                esc(&s.name)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}
