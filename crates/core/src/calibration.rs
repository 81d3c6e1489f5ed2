//! The match threshold that follows the gallery: from stranger and genuine scores measured on the
//! gallery itself, the lowest threshold at which the share of strangers named (the false positive
//! identification rate, FPIR) stays within a target with 95% confidence, never below the configured
//! floor.
//!
//! Two ways to estimate FPIR at threshold `t` for a gallery of `N` persons:
//! - **direct**: each sampled person's faces searched against everyone else (leave one person out),
//!   at the gallery's real size: FPIR(t) = share of those stranger probes whose best score is ≥ t;
//! - **extrapolated**, when there are too few stranger probes for the bound to reach the target:
//!   from the pairwise impostor distribution (faces of different sampled persons), the standard
//!   1 − (1 − FMR(t))^N, with FMR's bound put through the same formula.
//!
//! The bound is Clopper–Pearson's one-sided 95% upper bound on a binomial proportion. It treats the
//! probes (or pairs) as independent, which several faces of one person are not quite: the bound is
//! a little optimistic for galleries with many faces per person.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use statrs::distribution::{Beta, ContinuousCDF};

use crate::Threshold;

/// The default target: at most 1 stranger in 100 named.
pub const DEFAULT_TARGET_FPIR: f64 = 0.01;

/// Confidence of the upper bound.
pub const CONFIDENCE: f64 = 0.95;

/// The thresholds the curve is evaluated at: 0.00 to 1.00 in steps of 0.005 (ArcFace strangers
/// score below 0.45 on `shared/faces`; genuine pairs rarely above 0.85), so that every floor an
/// operator may set (`match_threshold` within 0..=1) is on the grid: a floor above 0.80 was
/// always weak while the grid stopped there.
const GRID_STEP_THOUSANDTHS: f32 = 5.0;
const GRID_POINTS: usize = 201;

/// Histogram bins over [-1, 1].
const BINS: usize = 100;

/// The scores a calibration is computed from.
#[derive(Debug, Clone, Default)]
pub struct Scores {
    /// Each stranger probe's best similarity to anyone else in the gallery.
    pub stranger_best: Vec<f32>,
    /// Each genuine probe's best similarity to the other faces of its own person.
    pub genuine_best: Vec<f32>,
    /// Similarities of faces of different sampled persons.
    pub impostor_pairs: Vec<f32>,
}

/// How FPIR was estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Direct,
    Extrapolated,
}

/// One point of the curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub threshold: f32,
    /// Estimated share of strangers named at this threshold.
    pub fpir: f64,
    /// Its 95% upper bound.
    pub fpir_upper: f64,
    /// Share of genuine probes not reaching this threshold (`None`: no person has two faces).
    pub fnir: Option<f64>,
}

/// Score histograms over [-1, 1] in `bins` equal bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    pub bins: usize,
    pub genuine: Vec<u32>,
    pub stranger: Vec<u32>,
}

/// What the calibration settles on, and the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub effective_threshold: Threshold,
    pub floor_threshold: Threshold,
    pub target_fpir: f64,
    /// At the effective threshold.
    pub estimated_fpir: f64,
    pub estimated_fpir_upper: f64,
    /// The bound cannot reach the target at any threshold: the floor is kept.
    pub weak: bool,
    pub method: Method,
    /// Persons in the gallery.
    pub persons: u64,
    /// Faces in the gallery when computed.
    pub faces: u64,
    pub persons_sampled: u64,
    pub stranger_probes: u64,
    pub genuine_probes: u64,
    pub impostor_pairs: u64,
    pub computed_at: DateTime<Utc>,
    pub curve: Vec<CurvePoint>,
    pub histograms: Histograms,
}

/// What a calibration starts from besides the scores.
#[derive(Debug, Clone, Copy)]
pub struct Gallery {
    pub persons: u64,
    pub faces: u64,
    pub persons_sampled: u64,
}

/// Clopper–Pearson's one-sided upper bound (at [`CONFIDENCE`]) on a proportion seen `k` times in `n`.
pub fn upper_bound(k: u64, n: u64) -> f64 {
    if n == 0 || k >= n {
        return 1.0;
    }
    Beta::new((k + 1) as f64, (n - k) as f64)
        .map(|beta| beta.inverse_cdf(CONFIDENCE))
        .unwrap_or(1.0)
}

/// The probes needed for the bound to reach `target` when none of them is a false match.
pub fn probes_needed(target: f64) -> u64 {
    ((1.0 - CONFIDENCE).ln() / (1.0 - target).ln()).ceil() as u64
}

/// How many of the sorted (ascending) scores are at least `t`.
fn at_least(sorted: &[f32], t: f32) -> u64 {
    (sorted.len() - sorted.partition_point(|&s| s < t)) as u64
}

fn sorted(scores: &[f32]) -> Vec<f32> {
    let mut sorted = scores.to_vec();
    sorted.sort_by(f32::total_cmp);
    sorted
}

fn histogram(scores: &[f32]) -> Vec<u32> {
    let mut bins = vec![0u32; BINS];
    for &s in scores {
        let at = (((s.clamp(-1.0, 1.0) + 1.0) / 2.0) * BINS as f32) as usize;
        bins[at.min(BINS - 1)] += 1;
    }
    bins
}

/// The extrapolation to `persons` persons of a pairwise false-match rate.
fn at_gallery_size(fmr: f64, persons: u64) -> f64 {
    1.0 - (1.0 - fmr).powf(persons as f64)
}

/// The sorted scores and the method the curve is estimated by.
struct Evidence {
    strangers: Vec<f32>,
    genuine: Vec<f32>,
    pairs: Vec<f32>,
    method: Method,
    /// Persons in the gallery (what extrapolation extrapolates to).
    persons: u64,
}

impl Evidence {
    fn new(scores: &Scores, persons: u64, target_fpir: f64) -> Self {
        let strangers = sorted(&scores.stranger_best);
        let method = if strangers.len() as u64 >= probes_needed(target_fpir) {
            Method::Direct
        } else {
            Method::Extrapolated
        };
        Self {
            strangers,
            genuine: sorted(&scores.genuine_best),
            pairs: sorted(&scores.impostor_pairs),
            method,
            persons,
        }
    }

    /// The estimate at one threshold.
    fn point(&self, threshold: f32) -> CurvePoint {
        let (fpir, fpir_upper) = match self.method {
            Method::Direct => {
                let (k, n) = (
                    at_least(&self.strangers, threshold),
                    self.strangers.len() as u64,
                );
                (k as f64 / n as f64, upper_bound(k, n))
            }
            // No pair to learn from: no evidence, whatever the size.
            Method::Extrapolated if self.pairs.is_empty() => (1.0, 1.0),
            Method::Extrapolated => {
                let (k, n) = (at_least(&self.pairs, threshold), self.pairs.len() as u64);
                (
                    at_gallery_size(k as f64 / n as f64, self.persons),
                    at_gallery_size(upper_bound(k, n), self.persons),
                )
            }
        };
        let genuine = &self.genuine;
        let fnir = (!genuine.is_empty()).then(|| {
            let below = genuine.len() as u64 - at_least(genuine, threshold);
            below as f64 / genuine.len() as f64
        });
        CurvePoint {
            threshold,
            fpir,
            fpir_upper,
            fnir,
        }
    }

    /// The estimate at every point of the grid.
    fn curve(&self) -> Vec<CurvePoint> {
        (0..GRID_POINTS)
            // i × 5 / 1000 is the f32 nearest each grid value (0.4 is 0.4, not 0.40000004).
            .map(|i| self.point((i as f32 * GRID_STEP_THOUSANDTHS) / 1000.0))
            .collect()
    }
}

impl Calibration {
    /// The curve, the threshold and the estimate, from the scores.
    pub fn compute(
        scores: &Scores,
        gallery: Gallery,
        target_fpir: f64,
        floor: Threshold,
        computed_at: DateTime<Utc>,
    ) -> Self {
        let evidence = Evidence::new(scores, gallery.persons, target_fpir);
        let curve = evidence.curve();
        let reached = curve
            .iter()
            .find(|p| p.threshold >= floor.value() && p.fpir_upper <= target_fpir);
        let (effective, weak) = match reached {
            Some(p) => (Threshold::clamped(p.threshold), false),
            None => (floor, true),
        };
        let at_effective = evidence.point(effective.value());
        Self {
            effective_threshold: effective,
            floor_threshold: floor,
            target_fpir,
            estimated_fpir: at_effective.fpir,
            estimated_fpir_upper: at_effective.fpir_upper,
            weak,
            method: evidence.method,
            persons: gallery.persons,
            faces: gallery.faces,
            persons_sampled: gallery.persons_sampled,
            stranger_probes: evidence.strangers.len() as u64,
            genuine_probes: evidence.genuine.len() as u64,
            impostor_pairs: evidence.pairs.len() as u64,
            computed_at,
            curve,
            histograms: Histograms {
                bins: BINS,
                genuine: histogram(&evidence.genuine),
                stranger: histogram(&evidence.strangers),
            },
        }
    }

    /// What a calibration of an empty gallery says: the floor, weak.
    pub fn floor_only(floor: Threshold, target_fpir: f64) -> Self {
        Self::compute(
            &Scores::default(),
            Gallery {
                persons: 0,
                faces: 0,
                persons_sampled: 0,
            },
            target_fpir,
            floor,
            Utc::now(),
        )
    }

    /// Whether it was made for these settings (a changed floor or target needs a new one).
    pub fn fits(&self, floor: Threshold, target_fpir: f64) -> bool {
        self.floor_threshold == floor && self.target_fpir == target_fpir
    }

    pub fn threshold(&self) -> Threshold {
        self.effective_threshold
    }

    /// The estimated share of strangers scoring at least `similarity` at this gallery size (the
    /// curve's point at or just below it: never an underestimate on the grid).
    pub fn estimated_fpir(&self, similarity: f32) -> f64 {
        let below = self
            .curve
            .iter()
            .take_while(|p| p.threshold <= similarity)
            .last();
        below.or(self.curve.first()).map_or(1.0, |p| p.fpir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_matches_known_values() {
        // No event in n: 1 - 0.05^(1/n) (the "rule of three" for large n).
        for n in [10u64, 100, 1000] {
            let exact = 1.0 - 0.05f64.powf(1.0 / n as f64);
            assert!((upper_bound(0, n) - exact).abs() < 1e-6, "{n}");
        }
        // k = 5 of 100: 0.1023 (Clopper–Pearson, one-sided 95%).
        assert!((upper_bound(5, 100) - 0.1023).abs() < 5e-4);
        assert_eq!(upper_bound(3, 3), 1.0);
        assert_eq!(probes_needed(0.01), 299);
    }

    #[test]
    fn a_floor_above_the_old_grid_can_be_shown() {
        // 1,000 stranger probes, all far below: any floor is safe, 0.85 included.
        let scores = Scores {
            stranger_best: vec![0.1; 1000],
            genuine_best: vec![0.9; 50],
            impostor_pairs: vec![],
        };
        let gallery = Gallery {
            persons: 1000,
            faces: 1000,
            persons_sampled: 1000,
        };
        let floor = Threshold::new(0.85).unwrap();
        let c = Calibration::compute(&scores, gallery, DEFAULT_TARGET_FPIR, floor, Utc::now());
        assert!(!c.weak, "{c:?}");
        assert_eq!(c.effective_threshold, floor);
        assert_eq!(c.curve.last().map(|p| p.threshold), Some(1.0));
    }

    #[test]
    fn a_gallery_too_small_keeps_the_floor_and_says_so() {
        let floor = Threshold::default();
        let calibration = Calibration::floor_only(floor, DEFAULT_TARGET_FPIR);
        assert!(calibration.weak);
        assert_eq!(calibration.effective_threshold, floor);
    }

    #[test]
    fn strangers_scoring_higher_raise_the_threshold() {
        let floor = Threshold::new(0.2).unwrap();
        // 1,000 stranger probes: 10% score 0.40, the rest 0.10.
        let stranger_best: Vec<f32> = (0..1000)
            .map(|i| if i % 10 == 0 { 0.40 } else { 0.10 })
            .collect();
        let scores = Scores {
            stranger_best,
            genuine_best: vec![0.6; 50],
            impostor_pairs: vec![],
        };
        let gallery = Gallery {
            persons: 1000,
            faces: 1000,
            persons_sampled: 1000,
        };
        let calibration = Calibration::compute(&scores, gallery, 0.01, floor, Utc::now());
        assert_eq!(calibration.method, Method::Direct);
        assert!(!calibration.weak);
        // Above 0.40 no stranger is named; at 0.40 a tenth is.
        assert!(
            (calibration.effective_threshold.value() - 0.405).abs() < 1e-6,
            "{}",
            calibration.effective_threshold
        );
        assert_eq!(calibration.estimated_fpir, 0.0);
        assert_eq!(
            calibration
                .curve
                .iter()
                .find(|p| p.threshold == 0.4)
                .unwrap()
                .fpir,
            0.1
        );
        assert_eq!(
            calibration.estimated_fpir(0.39),
            calibration.estimated_fpir(0.385)
        );
    }
}
