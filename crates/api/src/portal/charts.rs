//! The home page's three charts (attempts, success rate, p95 latency), drawn
//! from the activity buckets as SVG shapes in a 600×160 viewBox.
use super::ops::{Activity, Bucket};
use serde::Serialize;
use time::OffsetDateTime;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;
/// The plot's top and bottom (a margin for the dots).
const TOP: f64 = 10.0;
const BOTTOM: f64 = 150.0;

#[derive(Serialize)]
pub struct Chart {
    id: &'static str,
    title: &'static str,
    summary: String,
    y_max_label: String,
    bars: Vec<Bar>,
    /// An SVG polyline's points; empty for a bar chart.
    line: String,
    dots: Vec<Dot>,
    width: f64,
    height: f64,
    x_start_label: String,
    x_end_label: &'static str,
}

#[derive(Serialize)]
struct Bar {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    title: String,
}

#[derive(Serialize)]
struct Dot {
    x: f64,
    y: f64,
    title: String,
}

/// Where a bucket goes, and how it is named.
struct Axes {
    /// A bucket's width.
    bw: f64,
    /// Buckets of an hour or more are named by date and hour.
    hourly: bool,
}

impl Axes {
    fn x_mid(&self, i: usize) -> f64 {
        self.bw * i as f64 + self.bw / 2.0
    }

    /// The height of a fraction of the plot (0 at the bottom, 1 at the top).
    fn y_of(frac: f64) -> f64 {
        BOTTOM - frac.clamp(0.0, 1.0) * (BOTTOM - TOP)
    }

    fn label(&self, t: OffsetDateTime) -> String {
        if self.hourly {
            format!(
                "{:04}-{:02}-{:02} {:02}:00 UTC",
                t.year(),
                t.month() as u8,
                t.day(),
                t.hour()
            )
        } else {
            format!("{:02}:{:02} UTC", t.hour(), t.minute())
        }
    }

    /// Attempts per bucket, as bars scaled to the busiest bucket.
    fn bars(&self, buckets: &[Bucket], max_attempts: i64) -> Vec<Bar> {
        let bars = buckets.iter().enumerate().filter(|(_, b)| b.attempts > 0);
        bars.map(|(i, b)| {
            let y = Self::y_of(b.attempts as f64 / max_attempts as f64);
            Bar {
                x: self.bw * i as f64 + 1.0,
                y,
                w: (self.bw - 2.0).max(1.0),
                h: BOTTOM - y,
                title: format!(
                    "{}: {} attempts, {} failed",
                    self.label(b.start),
                    b.attempts,
                    b.failed
                ),
            }
        })
        .collect()
    }

    /// A line through the buckets `f` gives a point for (a fraction of the
    /// plot's height, and its text), and a dot at each point.
    fn series(
        &self,
        buckets: &[Bucket],
        f: impl Fn(&Bucket) -> Option<(f64, String)>,
    ) -> (String, Vec<Dot>) {
        let dots: Vec<Dot> = buckets
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                f(b).map(|(frac, t)| Dot {
                    x: self.x_mid(i),
                    y: Self::y_of(frac),
                    title: format!("{}: {t}", self.label(b.start)),
                })
            })
            .collect();
        let line = dots
            .iter()
            .map(|d| format!("{:.1},{:.1}", d.x, d.y))
            .collect::<Vec<_>>()
            .join(" ");
        (line, dots)
    }
}

/// The attempts, success-rate and latency charts of `activity`.
pub fn charts(activity: &Activity) -> Vec<Chart> {
    let buckets = &activity.buckets;
    let axes = Axes {
        bw: WIDTH / buckets.len().max(1) as f64,
        hourly: activity.bucket_seconds >= 3600,
    };
    let x_start = buckets.first().map(|b| axes.label(b.start));
    let chart = |id, title, summary, y_max_label, bars, (line, dots)| Chart {
        id,
        title,
        summary,
        y_max_label,
        bars,
        line,
        dots,
        width: WIDTH,
        height: HEIGHT,
        x_start_label: x_start.clone().unwrap_or_default(),
        x_end_label: "now",
    };
    let total: i64 = buckets.iter().map(|b| b.attempts).sum();
    let ok: i64 = buckets.iter().map(|b| b.succeeded).sum();
    let max_attempts = buckets.iter().map(|b| b.attempts).max().unwrap_or(0).max(1);
    let rate = axes.series(buckets, |b| {
        (b.attempts > 0).then(|| {
            let r = b.succeeded as f64 / b.attempts as f64;
            (r, format!("{:.1}% succeeded", r * 100.0))
        })
    });
    let max_p95 = buckets
        .iter()
        .filter_map(|b| b.latency_ms_p95)
        .fold(0.0f64, f64::max);
    let latency = axes.series(buckets, |b| {
        b.latency_ms_p95.map(|p| {
            let frac = if max_p95 > 0.0 { p / max_p95 } else { 0.0 };
            (frac, format!("p95 {p:.0} ms"))
        })
    });
    let none = || "no attempts".to_owned();
    let success = if total > 0 {
        format!("{:.1}% succeeded", ok as f64 * 100.0 / total as f64)
    } else {
        none()
    };
    let highest = if max_p95 > 0.0 {
        format!("highest {max_p95:.0} ms")
    } else {
        none()
    };
    vec![
        chart(
            "deliveries",
            "Delivery attempts",
            format!("{total} attempts"),
            format!("{max_attempts} per {} min", activity.bucket_seconds / 60),
            axes.bars(buckets, max_attempts),
            (String::new(), vec![]),
        ),
        chart(
            "success",
            "Success rate",
            success,
            "100%".into(),
            vec![],
            rate,
        ),
        chart(
            "latency",
            "p95 latency",
            highest,
            format!("{max_p95:.0} ms"),
            vec![],
            latency,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(minute: i64, attempts: i64, succeeded: i64, p95: Option<f64>) -> Bucket {
        Bucket {
            start: OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(minute),
            attempts,
            succeeded,
            failed: attempts - succeeded,
            latency_ms_p95: p95,
        }
    }

    #[test]
    fn charts_scale_to_the_busiest_bucket_and_name_empty_ranges() {
        let empty = Activity {
            range: "hour".into(),
            bucket_seconds: 60,
            buckets: vec![bucket(0, 0, 0, None), bucket(1, 0, 0, None)],
        };
        let c = charts(&empty);
        assert_eq!(c[0].summary, "0 attempts");
        assert_eq!(c[0].y_max_label, "1 per 1 min");
        assert_eq!(
            (c[1].summary.as_str(), c[2].summary.as_str()),
            ("no attempts", "no attempts")
        );
        assert!(c
            .iter()
            .all(|c| c.bars.is_empty() && c.line.is_empty() && c.dots.is_empty()));
        assert_eq!(c[0].x_start_label, "00:00 UTC");

        let busy = Activity {
            range: "hour".into(),
            bucket_seconds: 60,
            buckets: vec![bucket(0, 4, 3, Some(200.0)), bucket(1, 2, 2, Some(100.0))],
        };
        let c = charts(&busy);
        assert_eq!(c[0].summary, "6 attempts");
        assert_eq!((c[0].bars[0].y, c[0].bars[0].h), (TOP, BOTTOM - TOP));
        assert_eq!(c[0].bars[1].title, "00:01 UTC: 2 attempts, 0 failed");
        assert_eq!(c[1].summary, "83.3% succeeded");
        assert_eq!(c[1].line, "150.0,45.0 450.0,10.0");
        assert_eq!(c[1].dots[0].title, "00:00 UTC: 75.0% succeeded");
        assert_eq!(
            (c[2].summary.as_str(), c[2].y_max_label.as_str()),
            ("highest 200 ms", "200 ms")
        );
        assert_eq!(c[2].line, "150.0,10.0 450.0,80.0");
    }
}
