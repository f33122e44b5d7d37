//! Entropy calibration for `nnc quantize --method entropy`: the clipping threshold of a tensor's
//! magnitudes that loses the least information when quantized, as the KL divergence between the
//! histogram of its magnitudes (values beyond the threshold counted in the last kept bin) and the
//! same histogram after rounding to the levels quantization keeps (TensorRT's calibration, and
//! ONNX Runtime's `entropy` method).
//!
//! One guard of nnc's own: a threshold may clip at most [`MAX_CLIPPED`] of the values. The
//! divergence alone cannot see how far clipped values move, only that they pile up in one bin,
//! so for a tensor whose values sit away from 0 (an average pool's output in [0.41, 1.30]) it
//! would clip them all to the lowest value (a spike is cheap to match); tensors whose
//! histograms fall from 0, which the method was made for, lose only their tails either way.

/// Bins of a magnitude histogram.
pub const BINS: usize = 2048;

/// The largest share of the values a threshold may clip.
pub const MAX_CLIPPED: f64 = 1e-3;

/// A histogram of `|x|` over `[0, max]` in [`BINS`] bins.
#[derive(Clone, Debug)]
pub struct Magnitudes {
    pub max: f64,
    pub counts: Vec<f64>,
}

impl Magnitudes {
    pub fn new(max: f64) -> Magnitudes {
        Magnitudes { max, counts: vec![0.0; BINS] }
    }

    /// Counts every finite value (those beyond `max` in the last bin).
    pub fn add(&mut self, values: impl IntoIterator<Item = f64>) {
        if self.max <= 0.0 {
            return;
        }
        let scale = BINS as f64 / self.max;
        for v in values.into_iter().filter(|v| v.is_finite()) {
            let bin = ((v.abs() * scale) as usize).min(BINS - 1);
            self.counts[bin] += 1.0;
        }
    }

    /// The magnitude to clip at when quantizing to `levels` steps (`max` where no value was
    /// counted).
    pub fn threshold(&self, levels: usize) -> f64 {
        if self.max <= 0.0 || self.counts.iter().all(|&c| c == 0.0) {
            return self.max;
        }
        let kept = kept_bins(&self.counts, levels);
        self.max * kept as f64 / BINS as f64
    }
}

/// How many of `hist`'s first bins to keep so that quantizing them to `levels` steps diverges
/// least from the whole histogram (at least `levels`, at most all, clipping at most
/// [`MAX_CLIPPED`] of the counts).
pub fn kept_bins(hist: &[f64], levels: usize) -> usize {
    let n = hist.len();
    let levels = levels.clamp(1, n);
    let total: f64 = hist.iter().sum();
    let mut best = (f64::INFINITY, n);
    let mut outliers: f64 = hist[levels..].iter().sum();
    for kept in levels..=n {
        if kept > levels {
            outliers -= hist[kept - 1];
        }
        if outliers > MAX_CLIPPED * total {
            continue;
        }
        let mut reference = hist[..kept].to_vec();
        reference[kept - 1] += outliers.max(0.0);
        let quantized = quantized_like(&hist[..kept], levels);
        let divergence = kl_divergence(&reference, &quantized);
        if divergence < best.0 {
            best = (divergence, kept);
        }
    }
    best.1
}

/// `hist` merged into `levels` groups of bins, each group's count spread evenly over its
/// non-empty bins (empty bins stay empty: quantization cannot put values where there were none).
fn quantized_like(hist: &[f64], levels: usize) -> Vec<f64> {
    let n = hist.len();
    let mut out = vec![0.0; n];
    for level in 0..levels {
        let (start, end) = (level * n / levels, ((level + 1) * n / levels).max(level * n / levels + 1).min(n));
        let group = &hist[start..end];
        let total: f64 = group.iter().sum();
        let nonempty = group.iter().filter(|&&c| c > 0.0).count();
        if nonempty > 0 {
            for (o, &c) in out[start..end].iter_mut().zip(group) {
                if c > 0.0 {
                    *o = total / nonempty as f64;
                }
            }
        }
    }
    out
}

/// KL(p ‖ q) of two histograms, each normalized; where q is empty but p is not, q counts as a
/// small probability (smoothing, so that the divergence stays finite and large).
fn kl_divergence(p: &[f64], q: &[f64]) -> f64 {
    const SMOOTH: f64 = 1e-10;
    let (sum_p, sum_q): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if sum_p <= 0.0 || sum_q <= 0.0 {
        return f64::INFINITY;
    }
    p.iter()
        .zip(q)
        .filter(|(&a, _)| a > 0.0)
        .map(|(&a, &b)| {
            let (pa, qb) = (a / sum_p, (b / sum_q).max(SMOOTH));
            pa * (pa / qb).ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_sparse_tail_is_clipped_and_a_dense_range_is_kept() {
        // Most values in [0, 1), a handful of outliers out to 100: the threshold keeps the bulk
        // and clips the farthest outliers.
        let mut tail = Magnitudes::new(100.0);
        let bulk = (0..100_000).map(|i| (i % 1000) as f64 / 1000.0);
        tail.add(bulk.chain([50.0, 75.0, 100.0, -99.0]));
        let t = tail.threshold(128);
        assert!((1.0..99.0).contains(&t), "{t}");
        // Values spread evenly over the whole range: nothing to clip.
        let mut even = Magnitudes::new(1.0);
        even.add((0..100_000).map(|i| i as f64 / 100_000.0));
        assert!(even.threshold(128) > 0.95, "{}", even.threshold(128));
    }

    #[test]
    fn values_away_from_zero_are_not_clipped_to_a_spike() {
        // An average pool's output: everything in [0.4, 1.3], nothing near 0.
        let mut pooled = Magnitudes::new(1.3);
        pooled.add((0..10_000).map(|i| 0.4 + 0.9 * (i as f64 / 10_000.0)));
        let t = pooled.threshold(255);
        assert!(t > 1.29, "{t}");
    }

    #[test]
    fn empty_and_degenerate_histograms_keep_their_range() {
        assert_eq!(Magnitudes::new(0.0).threshold(128), 0.0);
        assert_eq!(Magnitudes::new(3.0).threshold(128), 3.0);
        assert_eq!(kept_bins(&[5.0; 16], 16), 16);
        let quantized = quantized_like(&[1.0, 0.0, 3.0, 0.0], 2);
        assert_eq!(quantized, [1.0, 0.0, 3.0, 0.0]);
        assert_eq!(quantized_like(&[1.0, 3.0, 0.0, 0.0], 1), [2.0, 2.0, 0.0, 0.0]);
    }
}
