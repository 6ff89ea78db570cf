//! Robust centre and scale (method §4): median and interquartile range over a
//! seeded reservoir sample of at most 800,000 values (exact below that).
//!
//! Like the reference, values are stored as float32 and the quantiles are interpolated
//! in float32 arithmetic (numpy's linear method); on the fixture this reproduces the
//! reference's centres and scales bit for bit, and it agrees with a float64
//! computation to about 1e-7 relative.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::input::DescriptorRow;
use super::quality::{Robust, RobustStats};

/// Largest sample the statistics are estimated on.
pub const STATS_SAMPLE_SIZE: usize = 800_000;

/// A seeded sample of values for the robust statistics (not the selection reservoir
/// of method §5.6, [`crate::ops::goal::Reservoir`]): Algorithm R over float32 copies of
/// the values: uniform, seeded, and exact (every
/// value kept) while fewer than `cap` values were seen.
#[derive(Debug, Clone)]
pub struct ValueSample {
    cap: usize,
    seen: u64,
    values: Vec<f32>,
    rng: ChaCha8Rng,
}

impl ValueSample {
    pub fn new(cap: usize, seed: u64) -> Self {
        Self { cap: cap.max(1), seen: 0, values: Vec::new(), rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    pub fn push(&mut self, v: f64) {
        let v = v as f32;
        if self.values.len() < self.cap {
            self.values.push(v);
        } else {
            let j = self.rng.random_range(0..=self.seen);
            if (j as usize) < self.cap {
                self.values[j as usize] = v;
            }
        }
        self.seen += 1;
    }

    /// Values pushed so far (not only those kept).
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Centre and scale of the sample, None when it is empty.
    pub fn robust(&self) -> Option<Robust> {
        robust_of(&self.values)
    }
}

/// Median and (Q75 - Q25 floored at 1e-6)/1.349 of float32 values.
pub fn robust_of(values: &[f32]) -> Option<Robust> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f32::total_cmp);
    let q25 = quantile_sorted(&sorted, 0.25);
    let q75 = quantile_sorted(&sorted, 0.75);
    // The quantiles are float32, their difference is taken in float64 (as the reference).
    Some(Robust { center: median_sorted(&sorted) as f64, scale: (q75 as f64 - q25 as f64).max(1e-6) / 1.349 })
}

/// numpy's median of a float32 array: the middle value, or the float32 mean of the two.
fn median_sorted(s: &[f32]) -> f32 {
    let n = s.len();
    if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 }
}

/// numpy's "linear" quantile in float32: position q*(n-1), lerp between neighbours
/// (from the upper neighbour when the fraction is >= 0.5, as numpy does).
fn quantile_sorted(s: &[f32], q: f64) -> f32 {
    let pos = q * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(s.len() - 1);
    let t = (pos - lo as f64) as f32;
    let (a, b) = (s[lo], s[hi]);
    let diff = b - a;
    if t >= 0.5 { b - diff * (1.0 - t) } else { a + diff * t }
}

/// The five reservoirs of a merge run.
#[derive(Debug, Clone)]
pub struct StatsAccumulator {
    vds: ValueSample,
    ppl: ValueSample,
    amm: ValueSample,
    frame_div: ValueSample,
    self_consistency: ValueSample,
}

impl StatsAccumulator {
    pub fn new(seed: u64) -> Self {
        // Each descriptor gets its own stream so adding one cannot shift the others.
        let r = |i: u64| ValueSample::new(STATS_SAMPLE_SIZE, seed ^ 0x5eed_0000_0000_0000u64.wrapping_add(i));
        Self { vds: r(1), ppl: r(2), amm: r(3), frame_div: r(4), self_consistency: r(5) }
    }

    pub fn push(&mut self, row: &DescriptorRow) {
        self.vds.push(row.vds);
        self.ppl.push(row.ppl);
        self.amm.push(row.amm);
        self.frame_div.push(row.frame_diversity);
        if row.self_consistency >= 0.0 {
            self.self_consistency.push(row.self_consistency);
        }
    }

    /// Rows with a computed SC (>= 0).
    pub fn self_consistency_rows(&self) -> u64 {
        self.self_consistency.seen()
    }

    /// The statistics; a descriptor without any value gets centre 0, scale 1e-6/1.349
    /// (what an all-zero column gives), SC without any value centre 0.5, scale 0.2.
    pub fn finish(&self) -> RobustStats {
        let empty = Robust { center: 0.0, scale: 1e-6 / 1.349 };
        RobustStats {
            vds: self.vds.robust().unwrap_or(empty),
            ppl: self.ppl.robust().unwrap_or(empty),
            amm: self.amm.robust().unwrap_or(empty),
            frame_div: self.frame_div.robust().unwrap_or(empty),
            self_consistency: self.self_consistency.robust().unwrap_or(Robust { center: 0.5, scale: 0.2 }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_linearly() {
        let v: Vec<f32> = (1..=8).map(|i| i as f32).collect();
        let r = robust_of(&v).unwrap();
        assert_eq!(r.center, 4.5);
        // Q25 = 2.75, Q75 = 6.25
        assert!((r.scale - 3.5 / 1.349).abs() < 1e-12);
        let r = robust_of(&[7.0]).unwrap();
        assert_eq!(r.center, 7.0);
        assert!((r.scale - 1e-6 / 1.349).abs() < 1e-18);
        assert!(robust_of(&[]).is_none());
    }

    #[test]
    fn reservoir_is_exact_below_cap_and_bounded_above() {
        let mut r = ValueSample::new(10, 1);
        for i in 0..10 {
            r.push(i as f64);
        }
        assert_eq!(r.robust().unwrap().center, 4.5);
        for i in 10..1000 {
            r.push(i as f64);
        }
        assert_eq!(r.values.len(), 10);
        assert_eq!(r.seen(), 1000);
        // Same seed, same sample.
        let mut r2 = ValueSample::new(10, 1);
        for i in 0..1000 {
            r2.push(i as f64);
        }
        assert_eq!(r.values, r2.values);
        // A uniform sample of 0..1000 has its median far from the first values.
        assert!(r.robust().unwrap().center > 100.0);
    }
}
