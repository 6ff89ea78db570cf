//! The method's quality score (method §4), as pure functions of the descriptors,
//! the robust statistics and a cluster score, so it can be checked on its own.

/// Robust centre and scale of one descriptor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Robust {
    /// Median.
    pub center: f64,
    /// max(Q75 - Q25, 1e-6) / 1.349.
    pub scale: f64,
}

impl Robust {
    /// z(x) = (x - centre) / max(scale, 1e-6).
    pub fn z(&self, x: f64) -> f64 {
        (x - self.center) / self.scale.max(1e-6)
    }
}

/// Robust statistics of the five normalised descriptors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RobustStats {
    pub vds: Robust,
    pub ppl: Robust,
    pub amm: Robust,
    pub frame_div: Robust,
    /// Over rows with SC >= 0 only; centre 0.5, scale 0.2 when there is none.
    pub self_consistency: Robust,
}

/// The descriptors one quality score is made of (SC after the fallback).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityInputs {
    pub vds: f64,
    pub frame_diversity: f64,
    pub ppl: f64,
    pub amm: f64,
    pub tnc_score: f64,
    pub self_consistency: f64,
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// SC where it was not computed (SC < 0): sigmoid(0.6*z(vds) - 0.2*|z(ppl)|), i.e.
/// answers are presumed consistent when the frames help and the loss is typical.
pub fn sc_fallback(stats: &RobustStats, vds: f64, ppl: f64) -> f64 {
    sigmoid(0.6 * stats.vds.z(vds) - 0.2 * stats.ppl.z(ppl).abs())
}

/// SC as merged: the computed value, or the fallback when it is negative.
pub fn self_consistency_or_fallback(stats: &RobustStats, sc: f64, vds: f64, ppl: f64) -> f64 {
    if sc < 0.0 { sc_fallback(stats, vds, ppl) } else { sc }
}

/// quality_score = 0.28*sigmoid(z(vds) + z(fd)) + 0.18*SC + 0.14*exp(-|z(ppl)|) +
/// 0.12*exp(-|z(amm)|) + 0.12*tnc + 0.10*rep + 0.06*(1 - rep), with rep the
/// cluster score. Terms are summed in this order (the reference's), so results agree
/// to the last bits given the same statistics.
pub fn quality_score(stats: &RobustStats, d: &QualityInputs, cluster_score: f64) -> f64 {
    let rep = cluster_score;
    0.28 * sigmoid(stats.vds.z(d.vds) + stats.frame_div.z(d.frame_diversity))
        + 0.18 * d.self_consistency
        + 0.14 * (-stats.ppl.z(d.ppl).abs()).exp()
        + 0.12 * (-stats.amm.z(d.amm).abs()).exp()
        + 0.12 * d.tnc_score
        + 0.10 * rep
        + 0.06 * (1.0 - rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> RobustStats {
        let r = Robust { center: 1.0, scale: 2.0 };
        RobustStats { vds: r, ppl: r, amm: r, frame_div: r, self_consistency: Robust { center: 0.5, scale: 0.2 } }
    }

    #[test]
    fn z_floors_the_scale() {
        let r = Robust { center: 0.0, scale: 0.0 };
        assert_eq!(r.z(1e-6), 1.0);
        assert_eq!(stats().vds.z(5.0), 2.0);
    }

    #[test]
    fn score_at_the_centre() {
        // Every z is 0: 0.28*0.5 + 0.18*sc + 0.14 + 0.12 + 0.12*tnc + 0.10*rep + 0.06*(1-rep).
        let d =
            QualityInputs { vds: 1.0, frame_diversity: 1.0, ppl: 1.0, amm: 1.0, tnc_score: 1.0, self_consistency: 0.5 };
        let q = quality_score(&stats(), &d, 1.0);
        assert!((q - (0.14 + 0.09 + 0.14 + 0.12 + 0.12 + 0.10)).abs() < 1e-15, "{q}");
        let q0 = quality_score(&stats(), &d, 0.0);
        assert!((q - q0 - 0.04).abs() < 1e-15);
    }

    #[test]
    fn fallback_only_below_zero() {
        let s = stats();
        assert_eq!(self_consistency_or_fallback(&s, 0.0, 1.0, 1.0), 0.0);
        assert_eq!(self_consistency_or_fallback(&s, -1.0, 1.0, 1.0), 0.5);
        // Higher vds raises the fallback, atypical ppl lowers it.
        assert!(sc_fallback(&s, 3.0, 1.0) > 0.5);
        assert!(sc_fallback(&s, 1.0, 9.0) < 0.5);
    }
}
