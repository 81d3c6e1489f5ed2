//! The match threshold that follows the gallery: from stranger and genuine scores measured on the
//! gallery itself, the lowest threshold at which the share of strangers named (the false positive
//! identification rate, FPIR) stays within a target with 95% confidence, never below the configured
//! floor.
//!
//! Two ways to estimate FPIR at threshold `t`:
//! - **direct**: each sampled person's faces (up to five) searched against everyone else (leave one
//!   person out), at the gallery's real size. The unit is the *person*, not the probe: a person's
//!   photos move together, and one look-alike shows in all of them. The estimate is the share of
//!   probes scoring ≥ t, each person weighing the same; the bound counts a person as named when any
//!   of their probes is. A hit is mutual when its partner was sampled too (A finds B, so B finds
//!   A): with a share q of the gallery sampled, the bound counts k / (1 + q) of n / (1 + q) (half
//!   of each with the whole gallery sampled). Used from [`DIRECT_FROM_UNITS`] such units on.
//! - **extrapolated**, with fewer: from pairs of sampled *persons* (one unit each, named when any
//!   of their faces' pairs reaches t), the rate at which one stranger resembles one person,
//!   RPP(t), to 1 − (1 − RPP(t))^C, C being the persons a search compares (a person of more than
//!   five faces counting once per five), with RPP's bound put through the same formula. It assumes
//!   different persons are independent of one another; a person's faces need not be.
//!
//! The bound is Clopper–Pearson's one-sided 95% upper bound on a binomial proportion. How often it
//! covers the true rate of held-out strangers is measured by `tests/calibration_coverage.rs`.
//!
//! **The threshold** is the lowest grid point at or above the floor whose bound meets the target.
//! When none does (`weak`), it is the lowest point at or above the floor where the evidence shows
//! the least risk it can (above every stranger score seen, as a rule) — never the floor by
//! default. That keeps the choice monotone in risk: a stricter target, more faces or more
//! look-alikes never give a lower threshold (a looser target the bound meets settles at or below
//! that point, so a stricter one the bound cannot meet must not settle lower).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use statrs::distribution::{Beta, ContinuousCDF};

use crate::{ModelId, Threshold};

/// The default target: at most 1 stranger in 100 named.
pub const DEFAULT_TARGET_FPIR: f64 = 0.01;

/// Confidence of the upper bound.
pub const CONFIDENCE: f64 = 0.95;

/// The share of a registered person's photos missed at the threshold (FNIR) above which the
/// calibration warns: past one in five, the threshold the strangers demand costs recognition
/// dearly (a gallery with look-alikes, or a strict target on a small gallery).
pub const FNIR_WARNING_LEVEL: f64 = 0.2;

/// The thresholds the curve is evaluated at: 0.00 to 1.00 in steps of 0.005 (ArcFace strangers
/// score below 0.45 on `shared/faces`; genuine pairs rarely above 0.85), so that every floor an
/// operator may set (`match_threshold` within 0..=1) is on the grid: a floor above 0.80 was
/// always weak while the grid stopped there.
const GRID_STEP_THOUSANDTHS: f32 = 5.0;
const GRID_POINTS: usize = 201;

/// Units (stranger persons, mutual hits counted once) from which FPIR is estimated directly: enough
/// for the bound to show the default target (299). It does not follow the target: a method chosen
/// by the target could settle a stricter target lower than a looser one.
pub const DIRECT_FROM_UNITS: u64 = 299;

/// A sampled person's faces compared at most (`PROBES_PER_PERSON` of the service): a person of
/// more faces gives a stranger one more chance per five.
pub const FACES_PER_CHANCE: u64 = 5;

/// Histogram bins over [-1, 1].
const BINS: usize = 100;

/// The scores a calibration is computed from.
#[derive(Debug, Clone, Default)]
pub struct Scores {
    /// Per sampled person, each of their probes' best similarity to anyone else in the gallery.
    pub strangers: Vec<Vec<f32>>,
    /// Each genuine probe's best similarity to the other faces of its own person.
    pub genuine_best: Vec<f32>,
    /// Similarities of faces of different sampled persons (the 1:1 false-match rate).
    pub impostor_pairs: Vec<f32>,
    /// For pairs of sampled persons, the best similarity of their faces' pairs (the unit of the
    /// extrapolation).
    pub person_pairs: Vec<f32>,
    /// Each sampled person's number of faces.
    pub sampled_faces: Vec<u64>,
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
    /// Share of impostor pairs (two faces of different persons) reaching this threshold: the 1:1
    /// false-match rate (`None`: no pair).
    pub fmr: Option<f64>,
}

/// Score histograms over [-1, 1] in `bins` equal bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    pub bins: usize,
    pub genuine: Vec<u32>,
    pub stranger: Vec<u32>,
}

/// What a calibration is made for: two calibrations of one gallery for different bases are not
/// interchangeable (replicas adopt only one made for theirs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Basis {
    /// The lowest threshold it may settle on.
    pub floor: Threshold,
    /// The share of strangers it allows to be named.
    pub target_fpir: f64,
    /// The model whose faces were measured.
    pub model: ModelId,
}

/// What the calibration settles on, and the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub effective_threshold: Threshold,
    pub floor_threshold: Threshold,
    pub target_fpir: f64,
    pub model: ModelId,
    /// At the effective threshold.
    pub estimated_fpir: f64,
    pub estimated_fpir_upper: f64,
    /// Share of genuine probes missed at the effective threshold (`None`: no person has two faces).
    pub estimated_fnir: Option<f64>,
    /// The bound cannot reach the target at any threshold: the threshold is where the evidence
    /// shows the least risk (see the module's notes).
    pub weak: bool,
    pub method: Method,
    /// Persons in the gallery.
    pub persons: u64,
    /// Faces in the gallery when computed.
    pub faces: u64,
    pub persons_sampled: u64,
    /// Sampled persons searched as strangers (the unit of the direct bound).
    pub stranger_persons: u64,
    pub stranger_probes: u64,
    pub genuine_probes: u64,
    pub impostor_pairs: u64,
    /// Pairs of sampled persons compared (the unit of the extrapolated bound).
    pub person_pairs: u64,
    /// The persons a search compares, a person of more than five faces counting once per five:
    /// the extrapolation's exponent.
    pub search_chances: u64,
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

/// The units (persons, or pairs) needed for the bound to reach `target` when none is a false
/// match.
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

fn histogram(scores: impl IntoIterator<Item = f32>) -> Vec<u32> {
    let mut bins = vec![0u32; BINS];
    for s in scores {
        let at = (((s.clamp(-1.0, 1.0) + 1.0) / 2.0) * BINS as f32) as usize;
        bins[at.min(BINS - 1)] += 1;
    }
    bins
}

/// The extrapolation of a rate at which one stranger resembles one person to `chances` persons.
fn at_gallery_size(rate: f64, chances: u64) -> f64 {
    1.0 - (1.0 - rate).powf(chances as f64)
}

/// The grid's thresholds, lowest first.
fn grid() -> impl Iterator<Item = f32> {
    // i × 5 / 1000 is the f32 nearest each grid value (0.4 is 0.4, not 0.40000004).
    (0..GRID_POINTS).map(|i| (i as f32 * GRID_STEP_THOUSANDTHS) / 1000.0)
}

/// One stranger person's probes, sorted (ascending).
struct StrangerPerson(Vec<f32>);

impl StrangerPerson {
    /// Whether any probe reaches `t` (the unit of the bound).
    fn named(&self, t: f32) -> bool {
        self.0.last().is_some_and(|&best| best >= t)
    }

    /// The share of the probes that reach `t`.
    fn share(&self, t: f32) -> f64 {
        at_least(&self.0, t) as f64 / self.0.len() as f64
    }
}

/// The sorted scores and the method the curve is estimated by.
struct Evidence {
    strangers: Vec<StrangerPerson>,
    genuine: Vec<f32>,
    pairs: Vec<f32>,
    person_pairs: Vec<f32>,
    method: Method,
    /// The share of the gallery's persons sampled (how often a hit is mutual).
    sampled_share: f64,
    /// The persons a search compares (what extrapolation extrapolates to).
    chances: u64,
}

/// The risk counted at one threshold: `k` of `n` units (persons, or pairs of persons) named.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Count {
    k: u64,
    n: u64,
}

impl Evidence {
    fn new(scores: &Scores, gallery: Gallery) -> Self {
        let strangers: Vec<StrangerPerson> = scores
            .strangers
            .iter()
            .filter(|probes| !probes.is_empty())
            .map(|probes| StrangerPerson(sorted(probes)))
            .collect();
        let sampled_share = if gallery.persons == 0 {
            1.0
        } else {
            (gallery.persons_sampled as f64 / gallery.persons as f64).min(1.0)
        };
        let direct_units = (strangers.len() as f64 / (1.0 + sampled_share)).floor() as u64;
        let method = if direct_units >= DIRECT_FROM_UNITS {
            Method::Direct
        } else {
            Method::Extrapolated
        };
        Self {
            strangers,
            genuine: sorted(&scores.genuine_best),
            pairs: sorted(&scores.impostor_pairs),
            person_pairs: sorted(&scores.person_pairs),
            method,
            sampled_share,
            chances: search_chances(&scores.sampled_faces, gallery),
        }
    }

    /// The units the bound counts at `t`.
    fn count(&self, t: f32) -> Count {
        match self.method {
            Method::Direct => {
                let named = self.strangers.iter().filter(|p| p.named(t)).count();
                // Mutual hits once: k / (1 + q) of n / (1 + q), rounded to the safe side.
                let per_unit = 1.0 + self.sampled_share;
                Count {
                    k: (named as f64 / per_unit).ceil() as u64,
                    n: (self.strangers.len() as f64 / per_unit).floor() as u64,
                }
            }
            Method::Extrapolated => Count {
                k: at_least(&self.person_pairs, t),
                n: self.person_pairs.len() as u64,
            },
        }
    }

    /// The estimate at one threshold, and the risk counted there.
    fn point(&self, threshold: f32) -> (CurvePoint, Count) {
        let count = self.count(threshold);
        let (fpir, fpir_upper) = match self.method {
            Method::Direct => {
                let shares: f64 = self.strangers.iter().map(|p| p.share(threshold)).sum();
                let estimate = shares / self.strangers.len() as f64;
                (estimate, upper_bound(count.k, count.n))
            }
            // No pair to learn from: no evidence, whatever the size.
            Method::Extrapolated if count.n == 0 => (1.0, 1.0),
            Method::Extrapolated => (
                at_gallery_size(count.k as f64 / count.n as f64, self.chances),
                at_gallery_size(upper_bound(count.k, count.n), self.chances),
            ),
        };
        let share_below = |sorted: &[f32]| {
            (!sorted.is_empty()).then(|| {
                (sorted.len() as u64 - at_least(sorted, threshold)) as f64 / sorted.len() as f64
            })
        };
        let point = CurvePoint {
            threshold,
            fpir,
            fpir_upper,
            fnir: share_below(&self.genuine),
            fmr: share_below(&self.pairs).map(|below| 1.0 - below),
        };
        (point, count)
    }
}

/// The persons a search compares, a person of more than [`FACES_PER_CHANCE`] faces counting once
/// per five: measured on the sample, scaled to the gallery (at least its persons).
fn search_chances(sampled_faces: &[u64], gallery: Gallery) -> u64 {
    let sampled: u64 = sampled_faces
        .iter()
        .map(|&faces| faces.div_ceil(FACES_PER_CHANCE).max(1))
        .sum();
    // At least the persons sampled (a gallery counted before its first persons were sampled).
    let persons = gallery.persons.max(sampled_faces.len() as u64).max(1);
    if sampled_faces.is_empty() {
        return persons;
    }
    let scaled = sampled as f64 * persons as f64 / sampled_faces.len() as f64;
    (scaled.ceil() as u64).max(persons)
}

/// The highest threshold the calibration settles on (unless the floor is higher). Two records
/// scoring above it are one photo twice, not two persons: the same photo scores 1.00 with itself
/// (0.99999994 or 1.0000001, as its floats round), a re-encoded or re-cropped copy above 0.95,
/// while different photos of one person rarely pass 0.85 and different persons stay below 0.5 on
/// `shared/faces` (docs/CALIBRATION.md, "Matching threshold"). A threshold above it would miss nearly every
/// registered person for the sake of a pair no useful threshold excludes (a registration made
/// twice), so the choice does not try.
const HIGHEST_CHOICE: f32 = 0.9;

/// The threshold, and whether it is weak: the lowest grid point at or above the floor (up to
/// [`HIGHEST_CHOICE`]) whose bound meets the target; else the lowest one there where the least
/// risk is counted (the bound is a function of that count, so that is where it is least). A floor
/// above [`HIGHEST_CHOICE`] is kept as it is.
fn choose(curve: &[(CurvePoint, Count)], floor: Threshold, target_fpir: f64) -> (Threshold, bool) {
    let candidates = || {
        curve.iter().filter(|(p, _)| {
            p.threshold >= floor.value() && p.threshold <= HIGHEST_CHOICE.max(floor.value())
        })
    };
    if let Some((p, _)) = candidates().find(|(p, _)| p.fpir_upper <= target_fpir) {
        return (Threshold::clamped(p.threshold), false);
    }
    let least = candidates().map(|(_, count)| count.k).min();
    let threshold = candidates()
        .find(|(_, count)| Some(count.k) == least)
        .map_or(floor, |(p, _)| Threshold::clamped(p.threshold));
    (threshold, true)
}

impl Calibration {
    /// The curve, the threshold and the estimate, from the scores.
    pub fn compute(
        scores: &Scores,
        gallery: Gallery,
        basis: &Basis,
        computed_at: DateTime<Utc>,
    ) -> Self {
        let evidence = Evidence::new(scores, gallery);
        let counted: Vec<(CurvePoint, Count)> = grid().map(|t| evidence.point(t)).collect();
        let (effective, weak) = choose(&counted, basis.floor, basis.target_fpir);
        let (at_effective, _) = evidence.point(effective.value());
        let curve = counted.into_iter().map(|(point, _)| point).collect();
        Self {
            effective_threshold: effective,
            floor_threshold: basis.floor,
            target_fpir: basis.target_fpir,
            model: basis.model.clone(),
            estimated_fpir: at_effective.fpir,
            estimated_fpir_upper: at_effective.fpir_upper,
            estimated_fnir: at_effective.fnir,
            weak,
            method: evidence.method,
            persons: gallery.persons,
            faces: gallery.faces,
            persons_sampled: gallery.persons_sampled,
            stranger_persons: evidence.strangers.len() as u64,
            stranger_probes: evidence.strangers.iter().map(|p| p.0.len() as u64).sum(),
            genuine_probes: evidence.genuine.len() as u64,
            impostor_pairs: evidence.pairs.len() as u64,
            person_pairs: evidence.person_pairs.len() as u64,
            search_chances: evidence.chances,
            computed_at,
            curve,
            histograms: Histograms {
                bins: BINS,
                genuine: histogram(evidence.genuine.iter().copied()),
                stranger: histogram(evidence.strangers.iter().flat_map(|p| p.0.iter().copied())),
            },
        }
    }

    /// What a calibration of an empty gallery says: the floor, weak.
    pub fn floor_only(basis: &Basis) -> Self {
        let empty = Gallery {
            persons: 0,
            faces: 0,
            persons_sampled: 0,
        };
        Self::compute(&Scores::default(), empty, basis, Utc::now())
    }

    /// What it was made for.
    pub fn basis(&self) -> Basis {
        Basis {
            floor: self.floor_threshold,
            target_fpir: self.target_fpir,
            model: self.model.clone(),
        }
    }

    /// Whether it was made for this basis (a changed floor, target or model needs a new one).
    pub fn fits(&self, basis: &Basis) -> bool {
        self.floor_threshold == basis.floor
            && self.target_fpir == basis.target_fpir
            && self.model == basis.model
    }

    pub fn threshold(&self) -> Threshold {
        self.effective_threshold
    }

    /// Whether the miss rate at the threshold passes [`FNIR_WARNING_LEVEL`].
    pub fn misses_too_many(&self) -> bool {
        self.estimated_fnir
            .is_some_and(|fnir| fnir > FNIR_WARNING_LEVEL)
    }

    /// The curve's point at or just below `similarity` (never an underestimate on the grid).
    fn point_at(&self, similarity: f32) -> Option<&CurvePoint> {
        let below = self
            .curve
            .iter()
            .take_while(|p| p.threshold <= similarity)
            .last();
        below.or(self.curve.first())
    }

    /// The estimated share of strangers scoring at least `similarity` at this gallery size.
    pub fn estimated_fpir(&self, similarity: f32) -> f64 {
        self.point_at(similarity).map_or(1.0, |p| p.fpir)
    }

    /// Its 95% upper bound.
    pub fn estimated_fpir_upper(&self, similarity: f32) -> f64 {
        self.point_at(similarity).map_or(1.0, |p| p.fpir_upper)
    }

    /// The estimated share of pairs of faces of two different persons scoring at least
    /// `similarity`: what a 1:1 comparison risks (`None`: no pair measured).
    pub fn estimated_fmr(&self, similarity: f32) -> Option<f64> {
        self.point_at(similarity).and_then(|p| p.fmr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basis(floor: f32, target_fpir: f64) -> Basis {
        Basis {
            floor: Threshold::new(floor).unwrap(),
            target_fpir,
            model: ModelId {
                name: "test".into(),
                sha256: "0".into(),
            },
        }
    }

    fn gallery(persons: u64, faces: u64) -> Gallery {
        Gallery {
            persons,
            faces,
            persons_sampled: persons,
        }
    }

    /// A small deterministic generator (splitmix64) for the property tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> f32 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
        }
    }

    /// A gallery's scores: `persons` persons of `faces` faces; strangers score around 0.15, a few
    /// higher.
    fn random_scores(rng: &mut Rng, persons: usize, faces: usize) -> Scores {
        let mut score = |spread: f32| 0.05 + spread * rng.next() * rng.next();
        Scores {
            strangers: (0..persons)
                .map(|_| (0..faces).map(|_| score(0.5)).collect())
                .collect(),
            genuine_best: (0..persons * faces).map(|_| 0.4 + score(0.5)).collect(),
            impostor_pairs: (0..persons * faces * 4).map(|_| score(0.45)).collect(),
            person_pairs: (0..persons * 4).map(|_| score(0.5)).collect(),
            sampled_faces: vec![faces as u64; persons],
        }
    }

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
        assert_eq!(probes_needed(DEFAULT_TARGET_FPIR), DIRECT_FROM_UNITS);
    }

    #[test]
    fn a_floor_above_the_old_grid_can_be_shown() {
        // 1,000 stranger persons, all far below: any floor is safe, 0.85 included.
        let scores = Scores {
            strangers: vec![vec![0.1]; 1000],
            genuine_best: vec![0.9; 50],
            ..Scores::default()
        };
        let basis = basis(0.85, DEFAULT_TARGET_FPIR);
        let c = Calibration::compute(&scores, gallery(1000, 1000), &basis, Utc::now());
        assert!(!c.weak, "{c:?}");
        assert_eq!(c.effective_threshold, basis.floor);
        assert_eq!(c.curve.last().map(|p| p.threshold), Some(1.0));
    }

    #[test]
    fn a_gallery_without_evidence_keeps_the_floor_and_says_so() {
        let basis = basis(0.3, DEFAULT_TARGET_FPIR);
        let calibration = Calibration::floor_only(&basis);
        assert!(calibration.weak);
        assert_eq!(calibration.effective_threshold, basis.floor);
        assert!(calibration.fits(&basis));
        assert!(!calibration.fits(&Basis {
            model: ModelId {
                name: "another".into(),
                sha256: "1".into(),
            },
            ..basis
        }));
    }

    #[test]
    fn strangers_scoring_higher_raise_the_threshold() {
        // 1,000 stranger persons: 10% score 0.40, the rest 0.10.
        let strangers = (0..1000)
            .map(|i| vec![if i % 10 == 0 { 0.40 } else { 0.10 }])
            .collect();
        let scores = Scores {
            strangers,
            genuine_best: vec![0.6; 50],
            ..Scores::default()
        };
        let calibration =
            Calibration::compute(&scores, gallery(1000, 1000), &basis(0.2, 0.01), Utc::now());
        assert_eq!(calibration.method, Method::Direct);
        assert!(!calibration.weak);
        // Above 0.40 no stranger is named; at 0.40 a tenth is. The whole gallery is sampled, so
        // a hit counts half (its partner finds it too): 0 of 500 units shows 1%.
        assert_eq!(calibration.effective_threshold.value(), 0.405);
        assert_eq!(calibration.estimated_fpir, 0.0);
        assert_eq!(calibration.estimated_fnir, Some(0.0));
        let at = |t: f32| calibration.curve.iter().find(|p| p.threshold == t).unwrap();
        assert_eq!(at(0.4).fpir, 0.1);
        assert_eq!(
            calibration.estimated_fpir(0.39),
            calibration.estimated_fpir(0.385)
        );
    }

    #[test]
    fn the_direct_bound_counts_persons_and_the_estimate_weighs_them_alike() {
        // 400 persons of 5 probes sampled from 4,000; 8 of them have one probe of five at 0.5
        // (a look-alike seen once), one has all five there.
        let mut strangers = vec![vec![0.1f32; 5]; 400];
        for person in strangers.iter_mut().take(8) {
            person[0] = 0.5;
        }
        strangers[8] = vec![0.5; 5];
        let scores = Scores {
            strangers,
            ..Scores::default()
        };
        let gallery = Gallery {
            persons: 4000,
            faces: 20_000,
            persons_sampled: 400,
        };
        let c = Calibration::compute(&scores, gallery, &basis(0.3, 0.05), Utc::now());
        assert_eq!(c.method, Method::Direct);
        let at_half = c.curve.iter().find(|p| p.threshold == 0.5).unwrap();
        // 9 persons named of 400, not 13 probes of 2,000; a tenth of the gallery sampled, so
        // 9 / 1.1 (rounded up) of 400 / 1.1 (rounded down) units.
        assert_eq!(at_half.fpir_upper, upper_bound(9, 363));
        assert!((at_half.fpir - (8.0 * 0.2 + 1.0) / 400.0).abs() < 1e-12);
        assert_eq!(c.stranger_persons, 400);
        assert_eq!(c.stranger_probes, 2000);
    }

    #[test]
    fn with_the_whole_gallery_sampled_a_hit_counts_once_for_both_persons() {
        // 700 single-face persons, all sampled: 6 of them in 3 look-alike pairs (each finds the
        // other). That is 3 events in 350 units, not 6 in 700.
        let mut strangers = vec![vec![0.1f32]; 700];
        for person in strangers.iter_mut().take(6) {
            person[0] = 0.6;
        }
        let scores = Scores {
            strangers,
            ..Scores::default()
        };
        let c = Calibration::compute(&scores, gallery(700, 700), &basis(0.3, 0.05), Utc::now());
        assert_eq!(c.method, Method::Direct);
        let at = c.curve.iter().find(|p| p.threshold == 0.6).unwrap();
        assert_eq!(at.fpir_upper, upper_bound(3, 350));
        // 500 persons sampled whole are 250 units: too few for the direct bound.
        let scores = Scores {
            strangers: vec![vec![0.1]; 500],
            ..Scores::default()
        };
        let c = Calibration::compute(&scores, gallery(500, 500), &basis(0.3, 0.01), Utc::now());
        assert_eq!(c.method, Method::Extrapolated);
    }

    #[test]
    fn extrapolation_counts_persons_as_units_and_the_chances_a_search_gives() {
        // The review's case: 50 persons of 5 faces, no pair of them above 0.2. Over 30,625 face
        // pairs and 50 persons the bound was 0.0049 (it met 0.01); but a person's faces move
        // together: over the 1,225 pairs of persons it is 0.114.
        let scores = Scores {
            strangers: vec![vec![0.1; 5]; 50],
            genuine_best: vec![0.7; 250],
            impostor_pairs: vec![0.1; 30_625],
            person_pairs: vec![0.1; 1225],
            sampled_faces: vec![5; 50],
        };
        let c = Calibration::compute(&scores, gallery(50, 250), &basis(0.3, 0.01), Utc::now());
        assert_eq!(c.method, Method::Extrapolated);
        assert_eq!(c.search_chances, 50);
        let expected = 1.0 - (1.0 - upper_bound(0, 1225)).powi(50);
        assert!((c.estimated_fpir_upper - expected).abs() < 1e-12, "{c:?}");
        assert!(c.weak);
        // No pair of persons reaches the floor: the floor is where the least risk is counted.
        assert_eq!(c.effective_threshold.value(), 0.3);
        // A person of twelve faces gives a stranger three chances.
        let mut more = scores.clone();
        more.sampled_faces[0] = 12;
        let c = Calibration::compute(&more, gallery(50, 257), &basis(0.3, 0.01), Utc::now());
        assert_eq!(c.search_chances, 52);
    }

    #[test]
    fn a_duplicate_record_never_lowers_the_threshold() {
        // The review's case: one person's photos registered again as another person (similarity
        // about 1) in a gallery of 300 single-face persons. No threshold short of naming nobody
        // excludes that pair; the old rule then fell back to the floor, this one settles above
        // every other pair.
        let mut rng = Rng(7);
        let scores = random_scores(&mut rng, 300, 1);
        let basis = basis(0.3, 0.01);
        let before = Calibration::compute(&scores, gallery(300, 300), &basis, Utc::now());
        let twice = |similarity: f32| {
            let mut scores = scores.clone();
            scores.strangers.push(vec![similarity]);
            scores.strangers[0] = vec![similarity];
            scores.impostor_pairs.push(similarity);
            scores.person_pairs.push(similarity);
            scores.sampled_faces.push(1);
            Calibration::compute(&scores, gallery(301, 301), &basis, Utc::now())
        };
        // The same photo's embedding against itself rounds either way.
        let (below, above) = (twice(0.999_999_94), twice(1.000_000_1));
        assert_eq!(below.effective_threshold, above.effective_threshold);
        // A re-encoded copy (0.97) is the same photo twice too.
        assert_eq!(twice(0.97).effective_threshold, below.effective_threshold);
        assert!(
            below.effective_threshold >= before.effective_threshold,
            "{} < {}",
            below.effective_threshold,
            before.effective_threshold
        );
        assert!(
            below.effective_threshold.value() < 0.99,
            "it still names people"
        );
        assert!(below.weak);
    }

    #[test]
    fn more_risk_never_lowers_the_threshold() {
        let targets = [0.05, 0.01, 0.005, 0.001, 0.0005];
        for seed in 0..40 {
            let mut rng = Rng(seed);
            let persons = [20, 60, 150, 320, 450][seed as usize % 5];
            let faces = 1 + seed as usize % 3;
            let scores = random_scores(&mut rng, persons, faces);
            let (p, f) = (persons as u64, (persons * faces) as u64);
            let threshold = |scores: &Scores, gallery: Gallery, target: f64| {
                Calibration::compute(scores, gallery, &basis(0.3, target), Utc::now())
                    .effective_threshold
            };
            // A stricter target.
            let by_target: Vec<Threshold> = targets
                .iter()
                .map(|&t| threshold(&scores, gallery(p, f), t))
                .collect();
            assert!(
                by_target.windows(2).all(|w| w[0] <= w[1]),
                "seed {seed}: {by_target:?}"
            );
            for &target in &targets {
                let base = threshold(&scores, gallery(p, f), target);
                // More faces in the gallery, on the same evidence.
                assert!(
                    threshold(&scores, gallery(p, f * 2), target) >= base,
                    "seed {seed}"
                );
                // A look-alike pair more.
                let mut more = scores.clone();
                more.strangers[0].push(0.6);
                more.strangers[1].push(0.6);
                more.impostor_pairs.push(0.6);
                more.person_pairs.push(0.6);
                assert!(
                    threshold(&more, gallery(p, f), target) >= base,
                    "seed {seed}"
                );
            }
        }
    }

    #[test]
    fn the_weak_threshold_is_above_the_stranger_evidence_not_the_floor() {
        // 40 single-face persons (extrapolated, too few to show 0.01): one pair at 0.45.
        let mut pairs = vec![0.1f32; 780];
        pairs[0] = 0.45;
        let scores = Scores {
            strangers: vec![vec![0.1]; 40],
            genuine_best: vec![],
            impostor_pairs: pairs.clone(),
            person_pairs: pairs,
            sampled_faces: vec![1; 40],
        };
        let c = Calibration::compute(&scores, gallery(40, 40), &basis(0.3, 0.01), Utc::now());
        assert!(c.weak);
        assert_eq!(c.effective_threshold.value(), 0.455);
        assert_eq!(c.estimated_fnir, None);
        assert!(!c.misses_too_many());
    }

    #[test]
    fn verify_reads_the_pairwise_rate() {
        let scores = Scores {
            impostor_pairs: (0..100).map(|i| i as f32 / 200.0).collect(),
            ..Scores::default()
        };
        let c = Calibration::compute(&scores, gallery(20, 20), &basis(0.3, 0.01), Utc::now());
        // Pairs 0.00, 0.005, …, 0.495: 40 of 100 at or above 0.3.
        assert_eq!(c.estimated_fmr(0.3), Some(0.4));
        assert_eq!(c.estimated_fmr(0.6), Some(0.0));
        assert_eq!(
            Calibration::floor_only(&basis(0.3, 0.01)).estimated_fmr(0.5),
            None
        );
    }
}
