//! Two small SVG charts the bench writes beside its table (`--charts DIR`): grouped bars (a ratio
//! per endpoint and backend, with the target as a line) and lines (peak memory against bundle
//! size). Hand-written SVG: a plotting crate would cost more build time than the charts are worth.

use std::fmt::Write;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 90.0;
const COLOURS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];

/// One named series of values, one per category (bars) or per x (lines).
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

fn header(out: &mut String, title: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ =
        write!(out, r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#, WIDTH / 2.0, escape(title));
}

fn legend(out: &mut String, names: &[&str]) {
    for (i, name) in names.iter().enumerate() {
        let x = LEFT + 10.0 + i as f64 * 170.0;
        let y = HEIGHT - 18.0;
        let _ = write!(out, r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/>"#, y - 10.0, COLOURS[i % 4]);
        let _ = write!(out, r#"<text x="{}" y="{y}">{}</text>"#, x + 16.0, escape(name));
    }
}

/// A y axis from 0 to `max` with five ticks and its label.
fn y_axis(out: &mut String, max: f64, label: &str) {
    let plot_h = HEIGHT - TOP - BOTTOM;
    for i in 0..=5 {
        let v = max * i as f64 / 5.0;
        let y = TOP + plot_h - plot_h * i as f64 / 5.0;
        let _ = write!(out, r##"<line x1="{LEFT}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/>"##, WIDTH - RIGHT);
        let _ = write!(out, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, LEFT - 6.0, y + 4.0, tick(v));
    }
    let _ = write!(
        out,
        r#"<text transform="translate(14 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        escape(label)
    );
}

/// Grouped bars: `categories` along x, one bar per series in each; `target` draws a dashed line.
pub fn bars(title: &str, y_label: &str, categories: &[String], series: &[Series], target: Option<f64>) -> String {
    let mut out = String::new();
    header(&mut out, title);
    let max =
        series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).chain(target).fold(0.0_f64, f64::max).max(1e-9) * 1.15;
    y_axis(&mut out, max, y_label);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let group = plot_w / categories.len().max(1) as f64;
    let bar = (group * 0.8) / series.len().max(1) as f64;
    for (c, category) in categories.iter().enumerate() {
        let gx = LEFT + group * c as f64 + group * 0.1;
        for (s, one) in series.iter().enumerate() {
            let Some(&(_, v)) = one.points.iter().find(|p| p.0 as usize == c) else { continue };
            let h = plot_h * v / max;
            let x = gx + bar * s as f64;
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {v:.2}</title></rect>"#,
                TOP + plot_h - h,
                bar * 0.92,
                COLOURS[s % 4],
                escape(&one.name)
            );
        }
        let _ = write!(
            out,
            r#"<text transform="translate({:.1} {}) rotate(30)" text-anchor="start">{}</text>"#,
            gx + group * 0.3,
            TOP + plot_h + 14.0,
            escape(category)
        );
    }
    if let Some(t) = target {
        let y = TOP + plot_h - plot_h * t / max;
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#000" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" text-anchor="end">target {t}</text>"##,
            WIDTH - RIGHT,
            WIDTH - RIGHT,
            y - 4.0
        );
    }
    legend(&mut out, &series.iter().map(|s| s.name.as_str()).collect::<Vec<_>>());
    out.push_str("</svg>\n");
    out
}

/// Lines through each series' (x, y) points, on linear axes from 0.
pub fn lines(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let mut out = String::new();
    header(&mut out, title);
    let max_x = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).fold(0.0_f64, f64::max).max(1e-9) * 1.05;
    let max_y = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0_f64, f64::max).max(1e-9) * 1.25;
    y_axis(&mut out, max_y, y_label);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let at = |x: f64, y: f64| (LEFT + plot_w * x / max_x, TOP + plot_h - plot_h * y / max_y);
    for i in 0..=4 {
        let v = max_x * i as f64 / 4.0;
        let (x, _) = at(v, 0.0);
        let _ = write!(out, r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#, TOP + plot_h + 16.0, tick(v));
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        TOP + plot_h + 36.0,
        escape(x_label)
    );
    for (s, one) in series.iter().enumerate() {
        let path: Vec<String> = one
            .points
            .iter()
            .map(|&(x, y)| {
                let (px, py) = at(x, y);
                format!("{px:.1},{py:.1}")
            })
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            COLOURS[s % 4],
            path.join(" ")
        );
        for &(x, y) in &one.points {
            let (px, py) = at(x, y);
            let _ = write!(
                out,
                r#"<circle cx="{px:.1}" cy="{py:.1}" r="4" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                COLOURS[s % 4],
                px + 6.0,
                py - 6.0,
                tick(y)
            );
        }
    }
    legend(&mut out, &series.iter().map(|s| s.name.as_str()).collect::<Vec<_>>());
    out.push_str("</svg>\n");
    out
}

fn tick(v: f64) -> String {
    if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_draw_one_rect_per_value_and_the_target() {
        let cats = vec!["save".to_owned(), "load".to_owned()];
        let series = vec![
            Series { name: "SQLite".into(), points: vec![(0.0, 1.2), (1.0, 1.1)] },
            Series { name: "DynamoDB <moto>".into(), points: vec![(0.0, 1.01)] },
        ];
        let svg = bars("Handler / raw", "ratio", &cats, &series, Some(1.15));
        assert_eq!(svg.matches("<rect x=").count(), 3 + 2, "{svg}"); // 3 bars + 2 legend swatches
        assert!(svg.contains("target 1.15") && svg.contains("DynamoDB &lt;moto&gt;"), "{svg}");
    }

    #[test]
    fn lines_place_the_largest_point_inside_the_plot() {
        let series = vec![Series { name: "import".into(), points: vec![(10.0, 25.0), (500.0, 58.0)] }];
        let svg = lines("Peak RSS", "bundle MB", "MB", &series);
        let ys: Vec<f64> =
            svg.split("cy=\"").skip(1).filter_map(|s| s.split('"').next().and_then(|v| v.parse().ok())).collect();
        assert_eq!(ys.len(), 2);
        assert!(ys.iter().all(|&y| (TOP..=HEIGHT - BOTTOM).contains(&y)), "{ys:?}");
        assert!(ys[1] < ys[0], "the larger value is drawn higher: {ys:?}");
    }
}
