//! One SVG picture of a run, written by hand: latency of every operation (dots, by outcome)
//! and throughput (acknowledged operations per second) over time, fault windows shaded.

use super::history::{pairs, Event, Kind, F};
use super::nemesis::schedule::Window;
use std::fmt::Write as _;

const W: f64 = 1000.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const PANEL: f64 = 220.0;
const TOP1: f64 = 40.0;
const TOP2: f64 = TOP1 + PANEL + 50.0;
const H: f64 = TOP2 + PANEL + 60.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn render(history: &[Event], windows: &[Window], title: &str) -> String {
    let ops: Vec<(f64, f64, Kind, F)> = pairs(history)
        .into_iter()
        .filter_map(|(i, c)| {
            c.map(|c| {
                (
                    i.t_us as f64 / 1e6,
                    (c.t_us.saturating_sub(i.t_us)) as f64 / 1e3,
                    c.kind,
                    i.f,
                )
            })
        })
        .collect();
    let end_s = history
        .iter()
        .map(|e| e.t_us as f64 / 1e6)
        .fold(1.0f64, f64::max)
        .ceil();
    let max_lat = ops.iter().map(|o| o.1).fold(10.0f64, f64::max);
    // log10 scale from 0.1 ms to the slowest operation.
    let lat_top = max_lat.log10().ceil().max(1.0);
    let lat_bottom = -1.0;
    let x = |t: f64| LEFT + (t / end_s) * (W - LEFT - RIGHT);
    let ylat = |ms: f64| {
        let l = ms.max(0.1).log10();
        TOP1 + PANEL - (l - lat_bottom) / (lat_top - lat_bottom) * PANEL
    };
    let buckets = end_s as usize + 1;
    let mut per_sec = vec![0u32; buckets];
    for o in ops.iter().filter(|o| o.2 == Kind::Ok) {
        let b = ((o.0 + o.1 / 1e3) as usize).min(buckets - 1);
        per_sec[b] += 1;
    }
    let max_tp = f64::from(per_sec.iter().copied().max().unwrap_or(1).max(1));
    let ytp = |n: f64| TOP2 + PANEL - n / max_tp * PANEL;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="20" font-size="14">{}</text>"#,
        esc(title)
    );
    // Fault windows across both panels.
    for w in windows {
        let (a, b) = (x(w.start_ms as f64 / 1e3), x(w.end_ms as f64 / 1e3));
        let _ = writeln!(
            s,
            r##"<rect x="{a:.1}" y="{TOP1}" width="{:.1}" height="{:.1}" fill="#f4a261" fill-opacity="0.25"><title>{}</title></rect>"##,
            (b - a).max(1.0),
            TOP2 + PANEL - TOP1,
            esc(&w.details.join("; "))
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#a0522d">{}</text>"##,
            a + 2.0,
            TOP1 + 10.0,
            esc(&w.names.join("+"))
        );
    }
    for (top, label) in [
        (TOP1, "latency (ms, log scale)"),
        (TOP2, "acknowledged operations / s"),
    ] {
        let _ = writeln!(
            s,
            r#"<rect x="{LEFT}" y="{top}" width="{:.1}" height="{PANEL}" fill="none" stroke="black"/>"#,
            W - LEFT - RIGHT
        );
        let _ = writeln!(s, r#"<text x="{LEFT}" y="{:.1}">{label}</text>"#, top - 5.0);
    }
    for p in (lat_bottom as i32)..=(lat_top as i32) {
        let ms = 10f64.powi(p);
        let y = ylat(ms);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{ms}</text>"##,
            W - RIGHT,
            LEFT - 4.0,
            y + 4.0
        );
    }
    // One path per outcome, a dot per distinct whole pixel: a 30-minute run has some 100,000
    // operations, which as one circle each made a 2.6 MB picture; the dots that coincide on
    // screen are drawn once, each as a zero-length round-capped stroke.
    for (kind, color) in [
        (Some(Kind::Ok), "#2a9d8f"),
        (Some(Kind::Fail), "#e63946"),
        (None, "#8d5fd3"),
    ] {
        let mut seen = std::collections::HashSet::new();
        let mut d = String::new();
        for o in &ops {
            let this = match o.2 {
                Kind::Ok | Kind::Fail => Some(o.2),
                _ => None,
            };
            if this != kind {
                continue;
            }
            let (px, py) = (x(o.0).round() as i32, ylat(o.1).round() as i32);
            if seen.insert((px, py)) {
                let _ = write!(d, "M{px} {py}h0");
            }
        }
        if !d.is_empty() {
            let _ = writeln!(
                s,
                r#"<path d="{d}" stroke="{color}" stroke-width="3.2" stroke-linecap="round"/>"#
            );
        }
    }
    let mut path = String::new();
    for (i, n) in per_sec.iter().enumerate() {
        let _ = write!(
            path,
            "{}{:.1},{:.1} ",
            if i == 0 { "M" } else { "L" },
            x((i as f64 + 0.5).min(end_s)),
            ytp(f64::from(*n))
        );
    }
    let _ = writeln!(
        s,
        r##"<path d="{path}" fill="none" stroke="#264653" stroke-width="1.5"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{max_tp}</text>"#,
        LEFT - 4.0,
        TOP2 + 8.0
    );
    let step = (end_s / 10.0).ceil().max(1.0);
    let mut t = 0.0;
    while t <= end_s {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{t}s</text>"#,
            x(t),
            TOP2 + PANEL + 15.0
        );
        t += step;
    }
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{:.1}"><tspan fill="#2a9d8f">● ok</tspan>  <tspan fill="#e63946">● fail</tspan>  <tspan fill="#8d5fd3">● unknown</tspan>  <tspan fill="#f4a261">■ fault window</tspan></text>"##,
        H - 15.0
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::history::Event;

    fn op(process: u64, t_ms: u64, lat_ms: u64, ok: bool) -> [Event; 2] {
        let inv: Event = serde_json::from_str(&format!(
            r#"{{"t_us":{},"process":{process},"kind":"invoke","f":"append","msgid":"m{process}-{t_ms}"}}"#,
            t_ms * 1000
        ))
        .unwrap();
        let done: Event = serde_json::from_str(&format!(
            r#"{{"t_us":{},"process":{process},"kind":"{}","f":"append","msgid":"m{process}-{t_ms}"}}"#,
            (t_ms + lat_ms) * 1000,
            if ok { "ok" } else { "fail" }
        ))
        .unwrap();
        [inv, done]
    }

    #[test]
    fn a_long_run_gives_a_small_picture_with_every_outcome() {
        // 100,000 operations over 30 minutes, as a long run records.
        let mut h = Vec::new();
        for i in 0..100_000u64 {
            let [a, b] = op(i % 8, i * 18, 1 + (i * 7919) % 400, i % 13 != 0);
            h.push(a);
            h.push(b);
        }
        h.sort_by_key(|e| e.t_us);
        let svg = render(&h, &[], "test");
        assert!(svg.len() < 600_000, "{} bytes", svg.len());
        assert!(svg.contains("#2a9d8f") && svg.contains("#e63946"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
}
