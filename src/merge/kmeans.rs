//! Mini-batch k-means over the 27 clustering features, streaming and seeded.
//!
//! Rows arrive one at a time; memory is one init buffer (max(batch, k) rows) plus the
//! centres. The first buffer is seeded with k-means++ and refined with Lloyd
//! iterations; every later batch moves each centre towards its rows with a per-centre
//! learning rate 1/count (Sculley's mini-batch update). When all rows fit in the first
//! buffer (fewer than max(batch, k) rows) this is plain k-means to convergence.
//! Assignments run in parallel, updates in row order, so a seed gives one result.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::input::FEATURE_DIM;

/// One row's clustering features.
pub type Point = [f64; FEATURE_DIM];

/// Lloyd iterations on the first buffer (fewer when assignments stop changing).
const LLOYD_MAX_ITER: usize = 30;

/// The last five features (tnc, amm, frame_diversity, ppl, vds) are unbounded and
/// carry most of the spread (the feature lists are normalised), so distances sum them
/// first: a partial sum over them already rules out most centres in [`nearest`].
const TAIL: usize = FEATURE_DIM - 5;

fn tail_sq_dist(a: &Point, b: &Point) -> f64 {
    let mut s = 0.0;
    for i in TAIL..FEATURE_DIM {
        let d = a[i] - b[i];
        s += d * d;
    }
    s
}

fn add_head_sq_dist(mut s: f64, a: &Point, b: &Point) -> f64 {
    for i in 0..TAIL {
        let d = a[i] - b[i];
        s += d * d;
    }
    s
}

/// Squared Euclidean distance, summed tail first (the one order used everywhere).
pub fn sq_dist(a: &Point, b: &Point) -> f64 {
    add_head_sq_dist(tail_sq_dist(a, b), a, b)
}

/// Index of the nearest centre (the lowest on ties) and the squared distance to it.
/// A centre whose partial sum already reaches the best distance is skipped: the sum
/// only grows, so the result is exactly the full search's.
pub fn nearest(x: &Point, centres: &[Point]) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (i, c) in centres.iter().enumerate() {
        let partial = tail_sq_dist(x, c);
        if partial >= best.1 {
            continue;
        }
        let d = add_head_sq_dist(partial, x, c);
        if d < best.1 {
            best = (i, d);
        }
    }
    best
}

/// Fitted centres.
#[derive(Debug, Clone, PartialEq)]
pub struct Centres {
    pub centres: Vec<Point>,
}

impl Centres {
    pub fn k(&self) -> usize {
        self.centres.len()
    }

    /// Nearest centre and Euclidean distance of each point, in parallel.
    pub fn assign_all(&self, xs: &[Point]) -> Vec<(usize, f64)> {
        xs.par_iter()
            .map(|x| {
                let (i, d2) = nearest(x, &self.centres);
                (i, d2.sqrt())
            })
            .collect()
    }
}

/// The streaming fitter.
pub struct MiniBatchKMeans {
    k_requested: usize,
    batch_size: usize,
    init_size: usize,
    rng: ChaCha8Rng,
    buffer: Vec<Point>,
    centres: Vec<Point>,
    counts: Vec<f64>,
    rows: u64,
}

impl MiniBatchKMeans {
    /// k = min(max(2, k_requested), rows), fixed once the rows are known.
    pub fn new(k_requested: usize, batch_size: usize, seed: u64) -> Self {
        let batch_size = batch_size.max(1);
        Self {
            k_requested: k_requested.max(2),
            batch_size,
            init_size: batch_size.max(k_requested.max(2)),
            rng: ChaCha8Rng::seed_from_u64(seed),
            buffer: Vec::new(),
            centres: Vec::new(),
            counts: Vec::new(),
            rows: 0,
        }
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn push(&mut self, x: Point) {
        self.rows += 1;
        self.buffer.push(x);
        if self.centres.is_empty() {
            if self.buffer.len() >= self.init_size {
                self.initialise();
            }
        } else if self.buffer.len() >= self.batch_size {
            self.step();
        }
    }

    /// The centres; None when no row was pushed.
    pub fn finish(mut self) -> Option<Centres> {
        if self.centres.is_empty() {
            if self.buffer.is_empty() {
                return None;
            }
            self.initialise();
        } else if !self.buffer.is_empty() {
            self.step();
        }
        Some(Centres { centres: self.centres })
    }

    fn initialise(&mut self) {
        let k = self.k_requested.min(self.buffer.len());
        let mut centres = kmeans_plus_plus(&self.buffer, k, &mut self.rng);
        self.counts = lloyd(&self.buffer, &mut centres, LLOYD_MAX_ITER);
        self.centres = centres;
        self.buffer.clear();
    }

    fn step(&mut self) {
        let centres = &self.centres;
        let assigned: Vec<usize> = self.buffer.par_iter().map(|x| nearest(x, centres).0).collect();
        for (x, c) in self.buffer.iter().zip(assigned) {
            self.counts[c] += 1.0;
            let eta = 1.0 / self.counts[c];
            let centre = &mut self.centres[c];
            for d in 0..FEATURE_DIM {
                centre[d] += eta * (x[d] - centre[d]);
            }
        }
        self.buffer.clear();
    }
}

/// k-means++ seeding: the first centre uniformly, each next one with probability
/// proportional to the squared distance to the nearest centre chosen so far.
fn kmeans_plus_plus(xs: &[Point], k: usize, rng: &mut ChaCha8Rng) -> Vec<Point> {
    let n = xs.len();
    let mut centres = Vec::with_capacity(k);
    let first = xs[rng.random_range(0..n)];
    centres.push(first);
    let mut d2: Vec<f64> = xs.par_iter().map(|x| sq_dist(x, &first)).collect();
    while centres.len() < k {
        let total: f64 = d2.iter().sum();
        let pick = if total > 0.0 && total.is_finite() {
            let mut r = rng.random::<f64>() * total;
            let mut pick = None;
            let mut last_positive = 0;
            for (i, d) in d2.iter().enumerate() {
                if *d > 0.0 {
                    last_positive = i;
                    if r < *d {
                        pick = Some(i);
                        break;
                    }
                    r -= d;
                }
            }
            // Rounding can run past the end: take the last candidate.
            pick.unwrap_or(last_positive)
        } else {
            // Every row coincides with a centre: any row will do.
            rng.random_range(0..n)
        };
        let c = xs[pick];
        centres.push(c);
        d2.par_iter_mut().zip(xs.par_iter()).for_each(|(d, x)| {
            let v = sq_dist(x, &c);
            if v < *d {
                *d = v;
            }
        });
    }
    centres
}

/// Lloyd iterations until assignments stop changing; returns the final cluster sizes.
/// A centre that loses all its rows stays where it is.
fn lloyd(xs: &[Point], centres: &mut [Point], max_iter: usize) -> Vec<f64> {
    let k = centres.len();
    let assign = |centres: &[Point]| -> Vec<usize> { xs.par_iter().map(|x| nearest(x, centres).0).collect() };
    let mut assigned = assign(centres);
    for _ in 0..max_iter {
        let mut sums = vec![[0.0; FEATURE_DIM]; k];
        let mut counts = vec![0usize; k];
        for (x, &c) in xs.iter().zip(&assigned) {
            counts[c] += 1;
            for d in 0..FEATURE_DIM {
                sums[c][d] += x[d];
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                for d in 0..FEATURE_DIM {
                    centres[c][d] = sums[c][d] / counts[c] as f64;
                }
            }
        }
        let next = assign(centres);
        let changed = next != assigned;
        assigned = next;
        if !changed {
            break;
        }
    }
    let mut counts = vec![0.0; k];
    for &c in &assigned {
        counts[c] += 1.0;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(a: f64, b: f64) -> Point {
        let mut p = [0.0; FEATURE_DIM];
        p[0] = a;
        p[1] = b;
        p
    }

    fn blobs(n: usize) -> Vec<Point> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let centres = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)];
        (0..n)
            .map(|i| {
                let (a, b) = centres[i % 3];
                point(a + rng.random::<f64>() - 0.5, b + rng.random::<f64>() - 0.5)
            })
            .collect()
    }

    fn fit(xs: &[Point], k: usize, batch: usize, seed: u64) -> Centres {
        let mut km = MiniBatchKMeans::new(k, batch, seed);
        for x in xs {
            km.push(*x);
        }
        km.finish().unwrap()
    }

    fn mean_dist(xs: &[Point], c: &Centres) -> f64 {
        c.assign_all(xs).iter().map(|(_, d)| d).sum::<f64>() / xs.len() as f64
    }

    #[test]
    fn finds_separated_blobs_in_memory_and_streaming() {
        let xs = blobs(3000);
        for batch in [8192, 100] {
            let c = fit(&xs, 3, batch, 42);
            assert_eq!(c.k(), 3);
            // Each point within its blob's half-width (0.5*sqrt 2) of its centre.
            assert!(mean_dist(&xs, &c) < 0.71, "batch {batch}: {}", mean_dist(&xs, &c));
        }
    }

    #[test]
    fn pruned_search_equals_full_search() {
        // Random points over every dimension, tail ones wider (as in real descriptors).
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let xs: Vec<Point> = (0..300)
            .map(|_| std::array::from_fn(|d| rng.random::<f64>() * if d >= TAIL { 5.0 } else { 1.0 }))
            .collect();
        let centres: Vec<Point> = xs[..40].to_vec();
        for x in &xs {
            let full = centres
                .iter()
                .enumerate()
                .map(|(i, c)| (i, sq_dist(x, c)))
                .fold((0, f64::INFINITY), |b, (i, d)| if d < b.1 { (i, d) } else { b });
            assert_eq!(nearest(x, &centres), full);
        }
    }

    #[test]
    fn deterministic_for_a_seed_and_k_capped_by_rows() {
        let xs = blobs(500);
        assert_eq!(fit(&xs, 16, 64, 1), fit(&xs, 16, 64, 1));
        assert_ne!(fit(&xs, 16, 64, 1), fit(&xs, 16, 64, 2));
        assert_eq!(fit(&xs[..5], 4096, 8192, 1).k(), 5);
        assert_eq!(fit(&xs[..1], 0, 8192, 1).k(), 1);
        assert!(MiniBatchKMeans::new(4, 8, 1).finish().is_none());
        // Identical rows: k-means++ still fills k centres without dividing by zero.
        let same = vec![point(1.0, 1.0); 10];
        let c = fit(&same, 4, 8192, 3);
        assert_eq!(c.k(), 4);
        assert_eq!(mean_dist(&same, &c), 0.0);
    }
}
