//! Matching: the one place where similarities become identities.

use facerec_types::Similarity;
use serde::{Deserialize, Serialize};

use crate::domain::{FaceId, PersonId};

/// Default decision threshold on cosine similarity for buffalo_s / w600k_mbf.
///
/// Chosen on `../shared/faces` (282 single-face photos of 80 people, InsightFace's own embeddings):
/// at 0.30, 0 of 543 same-person pairs are rejected and 4 of 39,078 different-person pairs are
/// accepted (0.010%; three are Serena vs Venus Williams). 0.5 would reject 15.8% of genuine pairs,
/// and the 0.7 of the original design 76%. See docs/CALIBRATION.md, "Matching threshold".
pub const DEFAULT_MATCH_THRESHOLD: f32 = 0.30;

/// A similarity threshold, within [-1, 1]: checked once where it enters (a flag, a request, a
/// collection's settings, a stored calibration), then carried as it is to every decision.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f32", into = "f32")]
pub struct Threshold(f32);

impl Threshold {
    pub fn new(value: f32) -> Result<Self, String> {
        if !(-1.0..=1.0).contains(&value) {
            return Err(format!("threshold {value} is outside [-1, 1]"));
        }
        Ok(Self(value))
    }

    /// The threshold nearest `value` within [-1, 1] (a point of a grid drawn inside it is itself).
    pub fn clamped(value: f32) -> Self {
        Self(value.clamp(-1.0, 1.0))
    }

    pub fn value(self) -> f32 {
        self.0
    }
}

impl Default for Threshold {
    fn default() -> Self {
        Self(DEFAULT_MATCH_THRESHOLD)
    }
}

impl From<Threshold> for f32 {
    fn from(threshold: Threshold) -> Self {
        threshold.0
    }
}

impl TryFrom<f32> for Threshold {
    type Error = String;
    fn try_from(value: f32) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for Threshold {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v: f32 = s
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a number"))?;
        Self::new(v)
    }
}

/// A person considered for a face.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub person_id: PersonId,
    pub face_id: FaceId,
    pub name: String,
    pub similarity: Similarity,
}

/// The verdict for one face: the best candidate if it clears the threshold, else unknown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recognition {
    pub threshold: Threshold,
    /// The best candidate when it clears the threshold; `None` means unknown.
    #[serde(rename = "match")]
    pub matched: Option<Candidate>,
    /// Every candidate considered, best first (the best and the runner-up included).
    pub candidates: Vec<Candidate>,
    /// A reviewer's "not this person" changed the answer: the best candidate was passed over
    /// because the face is closer to a capture rejected for them than to their own faces.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub overruled: bool,
}

impl Recognition {
    pub fn is_match(&self) -> bool {
        self.matched.is_some()
    }

    pub fn best(&self) -> Option<&Candidate> {
        self.candidates.first()
    }

    pub fn runner_up(&self) -> Option<&Candidate> {
        self.candidates.get(1)
    }

    /// A similarity on the compatible APIs' scale, drawn at the threshold this decision used.
    pub fn compat_score(&self, similarity: Similarity) -> f32 {
        Matcher::new(self.threshold).compat_score(similarity)
    }
}

/// Turns ranked candidates into a decision. One threshold, configured once, used everywhere.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Matcher {
    threshold: Threshold,
}

impl Matcher {
    pub fn new(threshold: Threshold) -> Self {
        Self { threshold }
    }

    pub fn threshold(&self) -> Threshold {
        self.threshold
    }

    /// A matcher for one request that asked for its own threshold.
    pub fn with_threshold(&self, threshold: Option<Threshold>) -> Self {
        Self {
            threshold: threshold.unwrap_or(self.threshold),
        }
    }

    /// Whether a similarity means "same person".
    pub fn accepts(&self, similarity: Similarity) -> bool {
        similarity.value() >= self.threshold.value()
    }

    /// Ranks candidates (best first) and decides.
    pub fn decide(&self, mut candidates: Vec<Candidate>) -> Recognition {
        candidates.sort_by(|a, b| b.similarity.value().total_cmp(&a.similarity.value()));
        let matched = candidates
            .first()
            .filter(|c| self.accepts(c.similarity))
            .cloned();
        Recognition {
            threshold: self.threshold,
            matched,
            candidates,
            overruled: false,
        }
    }

    /// Decides as [`Matcher::decide`], passing over the candidates a reviewer's feedback rules
    /// out for this face (`ruled_out`: the face is closer to a capture rejected for them than to
    /// their own faces): the next candidate that clears the threshold is named, else nobody.
    pub fn decide_heeding(
        &self,
        candidates: Vec<Candidate>,
        ruled_out: impl Fn(&Candidate) -> bool,
    ) -> Recognition {
        let mut recognition = self.decide(candidates);
        if recognition.matched.as_ref().is_some_and(&ruled_out) {
            recognition.overruled = true;
            recognition.matched = recognition
                .candidates
                .iter()
                .skip(1)
                .find(|c| self.accepts(c.similarity) && !ruled_out(c))
                .cloned();
        }
        recognition
    }
}

/// The lowest number the CompreFace- and DeepStack-compatible APIs report for a match.
///
/// Their clients compare what they get with cut-offs of their own: Double Take counts a subject as
/// a match from 0.60 and as unknown below 0.40, DeepStack's `min_confidence` defaults to 0.67 and
/// the `deepstack-python` library sends 0.45. A raw cosine (matches from 0.30) would fail them all,
/// so those APIs report [`Matcher::compat_score`]: a match never below 0.67, a non-match always
/// below [`COMPAT_NON_MATCH_BELOW`], and nothing in between. Every client cut-off in
/// [0.39, 0.67] then decides exactly as this matcher does.
pub const COMPAT_MATCH_FROM: f32 = 0.67;

/// Every non-match is reported below this (0.39, not 0.40, so that clients that round to two
/// decimals still see it under a 0.40 cut-off).
pub const COMPAT_NON_MATCH_BELOW: f32 = 0.39;

impl Matcher {
    /// The similarity reported by the compatible APIs: monotone in the cosine, linear on each side
    /// of the threshold — [-1, threshold) onto [0, 0.39), [threshold, 1] onto [0.67, 1].
    pub fn compat_score(&self, similarity: Similarity) -> f32 {
        let (c, t) = (similarity.value(), self.threshold.value());
        let score = if c >= t {
            if t >= 1.0 {
                1.0
            } else {
                COMPAT_MATCH_FROM + (1.0 - COMPAT_MATCH_FROM) * (c - t) / (1.0 - t)
            }
        } else {
            // Strictly below, whatever the rounding just under the threshold.
            (COMPAT_NON_MATCH_BELOW * (c + 1.0) / (t + 1.0))
                .min(COMPAT_NON_MATCH_BELOW - f32::EPSILON)
        };
        score.clamp(0.0, 1.0)
    }
}

/// Detection scores as the compatible APIs report them. Their clients filter faces by a
/// probability against cut-offs near 0.8 (CompreFace defaults to 0.8–0.85, Double Take sends 0.8),
/// on the scale of detectors that give clear faces scores near 1.0; SCRFD's raw score is below 0.8
/// for 29% of the clear, frontal single-face photos of `shared/faces` (median 0.82). So a score at
/// or above the detector's own threshold `t` (every face facerec itself uses) is reported on
/// [0.9, 1], and one below it (seen only when the operator lowers `--det-threshold`) below 0.8 —
/// monotone, and linear on each side of `t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectionScale {
    threshold: f32,
}

/// Every face facerec uses is reported from here up.
pub const COMPAT_DETECTED_FROM: f32 = 0.9;

/// A detection below the detector's threshold is reported below this.
pub const COMPAT_WEAK_BELOW: f32 = 0.8;

impl DetectionScale {
    /// For a detector that keeps faces scoring at least `threshold` (in (0, 1)).
    pub fn new(threshold: f32) -> Self {
        Self {
            threshold: threshold.clamp(f32::EPSILON, 1.0 - f32::EPSILON),
        }
    }

    /// The probability reported for a raw detector score.
    pub fn probability(&self, score: f32) -> f32 {
        let (s, t) = (score.clamp(0.0, 1.0), self.threshold);
        if s >= t {
            COMPAT_DETECTED_FROM + (1.0 - COMPAT_DETECTED_FROM) * (s - t) / (1.0 - t)
        } else {
            COMPAT_WEAK_BELOW * s / t
        }
    }
}

impl Default for Matcher {
    fn default() -> Self {
        Self::new(Threshold::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detections_facerec_uses_clear_the_clients_cut_offs_and_weak_ones_do_not() {
        let scale = DetectionScale::new(0.5);
        assert_eq!(scale.probability(0.5), 0.9);
        assert_eq!(scale.probability(1.0), 1.0);
        assert!((scale.probability(0.75) - 0.95).abs() < 1e-6);
        assert!(scale.probability(0.4999) < 0.8);
        assert_eq!(scale.probability(0.0), 0.0);
        let mut last = -1.0;
        for i in 0..=1000 {
            let p = scale.probability(i as f32 / 1000.0);
            assert!(p >= last, "monotone at {i}");
            assert!((0.0..=1.0).contains(&p));
            last = p;
        }
    }

    fn candidate(name: &str, similarity: f32) -> Candidate {
        Candidate {
            person_id: PersonId::new(),
            face_id: FaceId::new(),
            name: name.into(),
            similarity: Similarity::new(similarity),
        }
    }

    #[test]
    fn best_candidate_above_threshold_matches_with_runner_up_reported() {
        let r = Matcher::default().decide(vec![candidate("b", 0.2), candidate("a", 0.61)]);
        assert_eq!(r.matched.as_ref().unwrap().name, "a");
        assert_eq!(r.runner_up().unwrap().name, "b");
        assert_eq!(r.threshold.value(), DEFAULT_MATCH_THRESHOLD);
    }

    #[test]
    fn below_threshold_or_nothing_is_unknown() {
        assert!(!Matcher::default()
            .decide(vec![candidate("a", 0.29)])
            .is_match());
        assert!(!Matcher::default().decide(vec![]).is_match());
        let heeded = Matcher::default()
            .decide_heeding(vec![candidate("a", 0.61), candidate("b", 0.5)], |c| {
                c.name == "a"
            });
        assert!(heeded.overruled);
        assert_eq!(heeded.matched.map(|c| c.name), Some("b".to_owned()));
        let heeded = Matcher::default()
            .decide_heeding(vec![candidate("a", 0.61), candidate("b", 0.2)], |c| {
                c.name == "a"
            });
        assert!(heeded.overruled && heeded.matched.is_none());
        let strict = Matcher::default().with_threshold(Some(Threshold::new(0.7).unwrap()));
        assert!(!strict.decide(vec![candidate("a", 0.61)]).is_match());
        assert!(
            strict.accepts(Similarity::new(0.7)),
            "the threshold itself matches"
        );
    }

    #[test]
    fn compat_scores_keep_the_decision_at_any_cut_off_in_the_gap() {
        let matcher = Matcher::default();
        let score = |c: f32| matcher.compat_score(Similarity::new(c));
        assert_eq!(score(DEFAULT_MATCH_THRESHOLD), COMPAT_MATCH_FROM);
        assert_eq!(score(1.0), 1.0);
        assert_eq!(score(-1.0), 0.0);
        let mut previous = -1.0;
        for i in 0..=2000 {
            let c = -1.0 + i as f32 / 1000.0;
            let s = score(c);
            assert!(s >= previous, "monotone at {c}");
            previous = s;
            let matched = matcher.accepts(Similarity::new(c));
            for cut_off in [0.39, 0.40, 0.45, 0.60, 0.67] {
                assert_eq!(
                    s >= cut_off,
                    matched,
                    "cosine {c} at client cut-off {cut_off}"
                );
            }
        }
        let strict = Matcher::new(Threshold::new(1.0).unwrap());
        assert_eq!(strict.compat_score(Similarity::new(1.0)), 1.0);
        assert!(strict.compat_score(Similarity::new(0.99)) < COMPAT_NON_MATCH_BELOW);
    }

    #[test]
    fn thresholds_outside_the_cosine_range_are_refused() {
        assert!(Threshold::new(1.5).is_err());
        assert!("abc".parse::<Threshold>().is_err());
        assert_eq!("0.4".parse::<Threshold>().unwrap().value(), 0.4);
    }
}
