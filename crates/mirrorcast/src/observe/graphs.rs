//! The page's graphs, drawn as SVG from the [`super::history`] by `plotters`: one chart per
//! measure (throughput, lag in records, lag in seconds), one line per flow, time running to
//! now on the right. Pure: the same history and time give the same SVG.

use std::collections::BTreeMap;

use plotters::prelude::*;

use super::history::{Sample, KEPT, SAMPLE_EVERY};

/// What a chart shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Throughput,
    LagRecords,
    LagSeconds,
}

impl Measure {
    pub const ALL: [Measure; 3] = [
        Measure::Throughput,
        Measure::LagRecords,
        Measure::LagSeconds,
    ];

    /// The key the page and the API name it by.
    pub fn key(self) -> &'static str {
        match self {
            Measure::Throughput => "throughput",
            Measure::LagRecords => "lag_records",
            Measure::LagSeconds => "lag_seconds",
        }
    }

    fn caption(self) -> &'static str {
        match self {
            Measure::Throughput => "records copied per second",
            Measure::LagRecords => "lag (records)",
            Measure::LagSeconds => "lag (seconds)",
        }
    }

    fn value(self, sample: &Sample) -> Option<f64> {
        match self {
            Measure::Throughput => sample.records_per_second,
            Measure::LagRecords => Some(sample.lag_records as f64),
            Measure::LagSeconds => Some(sample.lag_seconds),
        }
    }
}

/// Colours of the flows' lines, in the flows' order (then again).
const LINE_COLOURS: [RGBColor; 6] = [
    RGBColor(11, 87, 208),
    RGBColor(214, 90, 0),
    RGBColor(27, 94, 32),
    RGBColor(179, 38, 30),
    RGBColor(106, 27, 154),
    RGBColor(0, 121, 140),
];

const WIDTH: u32 = 460;
const HEIGHT: u32 = 220;

/// The shortest time a chart spans, so the first samples do not fill it edge to edge.
const SHORTEST_WINDOW_S: f64 = 60.0;

/// The chart of `measure` from the oldest sample kept (at least a minute ago) to `now_ms`,
/// as an SVG document.
pub fn svg(measure: Measure, series: &BTreeMap<String, Vec<Sample>>, now_ms: i64) -> String {
    let kept_s = (SAMPLE_EVERY.as_secs() * KEPT as u64) as f64;
    let oldest_s = series
        .values()
        .filter_map(|samples| samples.first())
        .map(|s| (now_ms - s.at_ms) as f64 / 1000.0)
        .fold(0.0, f64::max);
    let window_s = oldest_s.clamp(SHORTEST_WINDOW_S, kept_s);
    let points: Vec<(&String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(flow, samples)| {
            let line = samples
                .iter()
                .filter_map(|s| {
                    let ago = (s.at_ms - now_ms) as f64 / 1000.0;
                    Some((ago.max(-window_s), measure.value(s)?))
                })
                .collect();
            (flow, line)
        })
        .collect();
    let top = points
        .iter()
        .flat_map(|(_, line)| line.iter().map(|(_, y)| *y))
        .fold(0.0, f64::max);
    // Headroom, and a scale even when everything is 0.
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    let mut text = String::new();
    // Drawing into a string fails only on a font or layout error, which SVG text has none of;
    // the chart is then left incomplete rather than the page without one.
    let _ = draw(&mut text, measure, &points, window_s, top);
    text
}

fn draw(
    text: &mut String,
    measure: Measure,
    points: &[(&String, Vec<(f64, f64)>)],
    window_s: f64,
    top: f64,
) -> Option<()> {
    let root = SVGBackend::with_string(text, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).ok()?;
    let mut chart = ChartBuilder::on(&root)
        .caption(measure.caption(), ("sans-serif", 14))
        .margin(8)
        .x_label_area_size(22)
        .y_label_area_size(52)
        .build_cartesian_2d(-window_s..0.0, 0.0..top)
        .ok()?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(236, 238, 242))
        .x_labels(6)
        .y_labels(5)
        .x_label_formatter(&|s| {
            if *s >= 0.0 {
                "now".to_string()
            } else if window_s <= 180.0 {
                format!("{:.0} s", s)
            } else {
                format!("{:.0} min", s / 60.0)
            }
        })
        .y_label_formatter(&|v| short_number(*v))
        .draw()
        .ok()?;
    for (i, (flow, line)) in points.iter().enumerate() {
        let colour = LINE_COLOURS[i % LINE_COLOURS.len()];
        chart
            .draw_series(LineSeries::new(
                line.iter().copied(),
                colour.stroke_width(2),
            ))
            .ok()?
            .label(flow.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
            });
    }
    if !points.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(RGBColor(200, 200, 200))
            .draw()
            .ok()?;
    }
    root.present().ok()?;
    Some(())
}

/// 1234567 as 1.2M, for an axis.
fn short_number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if magnitude >= 1e4 {
        format!("{:.0}k", value / 1e3)
    } else if magnitude >= 100.0 || value == value.trunc() {
        format!("{value:.0}")
    } else if magnitude >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: i64, rate: Option<f64>, lag: i64) -> Sample {
        Sample {
            at_ms,
            records_per_second: rate,
            lag_records: lag,
            lag_seconds: lag as f64 / 10.0,
        }
    }

    #[test]
    fn one_line_per_flow_with_its_name_in_the_legend() {
        let now = 1_000_000;
        let series = BTreeMap::from([
            (
                "europe->northamerica".to_string(),
                vec![
                    sample(now - 10_000, None, 50),
                    sample(now - 5_000, Some(200.0), 20),
                    sample(now, Some(300.0), 0),
                ],
            ),
            (
                "europe-><south>".to_string(),
                vec![
                    sample(now - 5_000, Some(10.0), 5),
                    sample(now, Some(12.0), 1),
                ],
            ),
        ]);
        for measure in Measure::ALL {
            let svg = svg(measure, &series, now);
            assert!(svg.starts_with("<svg"), "{svg}");
            assert!(svg.contains(measure.caption()), "{measure:?}");
            assert!(svg.contains("europe-&gt;northamerica"), "{svg}");
            assert!(!svg.contains("<south>"), "a name is text, never markup");
            // A line per flow (and one per legend mark).
            assert!(svg.matches("<polyline").count() >= 2, "{svg}");
        }
        let empty = svg(Measure::Throughput, &BTreeMap::new(), now);
        assert!(empty.starts_with("<svg") && empty.contains("now"));
        assert!(empty.contains("-60 s"), "a minute at least: {empty}");
    }

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(short_number(2_500_000.0), "2.5M");
        assert_eq!(short_number(25_000.0), "25k");
        assert_eq!(short_number(350.0), "350");
        assert_eq!(short_number(2.25), "2.2");
        assert_eq!(short_number(3.0), "3");
        assert_eq!(short_number(0.05), "0.05");
    }
}
