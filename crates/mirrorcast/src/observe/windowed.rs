//! Kafka's sampled statistics, which MM2's metrics are (and so what its users' dashboards
//! read): a value's min, max, average and a rate over the last two 30-second samples. Pure:
//! the caller passes the time.
//!
//! Invariant: a sample older than the two windows never counts; with nothing recorded there,
//! there is no min, max or average (not 0, which would read as "fast").

/// Kafka's `metrics.sample.window.ms` and `metrics.num.samples` defaults, which MM2 keeps.
pub const WINDOW_MS: i64 = 30_000;
const SAMPLES: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    started_ms: i64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Sample {
    fn fresh(started_ms: i64) -> Self {
        Sample {
            started_ms,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

/// One measured value (a latency, an age; or 1 per record, or bytes, for a rate).
#[derive(Debug, Clone, PartialEq)]
pub struct Windowed {
    samples: [Sample; SAMPLES],
    current: usize,
}

impl Windowed {
    pub fn new(now_ms: i64) -> Self {
        Windowed {
            samples: [Sample::fresh(now_ms), Sample::fresh(now_ms - WINDOW_MS)],
            current: 0,
        }
    }

    pub fn record(&mut self, value: f64, now_ms: i64) {
        if now_ms - self.samples[self.current].started_ms >= WINDOW_MS {
            self.current = (self.current + 1) % SAMPLES;
            self.samples[self.current] = Sample::fresh(now_ms);
        }
        let sample = &mut self.samples[self.current];
        sample.count += 1;
        sample.sum += value;
        sample.min = sample.min.min(value);
        sample.max = sample.max.max(value);
    }

    fn live(&self, now_ms: i64) -> impl Iterator<Item = &Sample> {
        self.samples
            .iter()
            .filter(move |s| s.count > 0 && now_ms - s.started_ms < SAMPLES as i64 * WINDOW_MS)
    }

    pub fn min(&self, now_ms: i64) -> Option<f64> {
        self.live(now_ms).map(|s| s.min).reduce(f64::min)
    }

    pub fn max(&self, now_ms: i64) -> Option<f64> {
        self.live(now_ms).map(|s| s.max).reduce(f64::max)
    }

    pub fn avg(&self, now_ms: i64) -> Option<f64> {
        let (count, sum) = self
            .live(now_ms)
            .fold((0, 0.0), |(c, t), s| (c + s.count, t + s.sum));
        (count > 0).then(|| sum / count as f64)
    }

    /// The sum of the live samples per second, over the time they span (at least one window
    /// less a sample, as Kafka's `Rate`, so a fresh start does not read as a burst).
    pub fn rate(&self, now_ms: i64) -> f64 {
        let live: Vec<&Sample> = self.live(now_ms).collect();
        let Some(oldest) = live.iter().map(|s| s.started_ms).min() else {
            return 0.0;
        };
        let span_ms = (now_ms - oldest)
            .max((SAMPLES as i64 - 1) * WINDOW_MS)
            .max(1);
        live.iter().map(|s| s.sum).sum::<f64>() * 1000.0 / span_ms as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_avg_cover_the_last_two_windows_only() {
        let mut latency = Windowed::new(0);
        assert_eq!(
            (latency.min(0), latency.max(0), latency.avg(0)),
            (None, None, None)
        );
        latency.record(10.0, 1_000);
        latency.record(30.0, 2_000);
        latency.record(20.0, 31_000); // the second window
        assert_eq!(latency.min(31_000), Some(10.0));
        assert_eq!(latency.max(31_000), Some(30.0));
        assert_eq!(latency.avg(31_000), Some(20.0));
        // The first window has aged out; the second still counts.
        assert_eq!(latency.avg(60_500), Some(20.0));
        latency.record(5.0, 61_000); // a third window replaces the first
        assert_eq!(latency.min(61_000), Some(5.0));
        assert_eq!(latency.max(61_000), Some(20.0));
        assert_eq!(
            latency.max(200_000),
            None,
            "nothing recorded for two windows"
        );
    }

    #[test]
    fn a_rate_is_per_second_over_what_the_samples_span() {
        let mut records = Windowed::new(0);
        for second in 0..60 {
            records.record(100.0, second * 1_000);
        }
        let rate = records.rate(60_000);
        assert!((rate - 100.0).abs() < 5.0, "{rate}");
        // A first burst is not taken for a rate over less than a window.
        let mut fresh = Windowed::new(0);
        fresh.record(300.0, 1_000);
        assert_eq!(fresh.rate(1_000), 10.0);
        assert_eq!(fresh.rate(500_000), 0.0);
    }
}
