//! Face tracks across video frames, so that a stream embeds a face when it appears and then only now
//! and then, and shows a name voted over recent matches instead of one that flickers.

use std::collections::VecDeque;

use facerec_types::BoundingBox;

use crate::domain::PersonId;
use crate::matching::{Recognition, Threshold};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerConfig {
    /// Box overlap needed to continue a track.
    pub min_iou: f32,
    /// A tracked face is embedded again after this many frames.
    pub reembed_every: u32,
    /// A match this close to the threshold (either side) is re-checked on the next frame.
    pub uncertainty_margin: f32,
    /// How many recent matches vote on a track's name.
    pub votes: usize,
    /// A track unseen for this many frames ends.
    pub max_missed: u32,
    /// Off: every face is embedded on every frame and named by that frame alone.
    pub enabled: bool,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            min_iou: 0.3,
            reembed_every: 10,
            uncertainty_margin: 0.05,
            votes: 5,
            max_missed: 10,
            enabled: true,
        }
    }
}

/// One frame's verdict on a track.
#[derive(Debug, Clone, PartialEq)]
struct Vote {
    person: Option<(PersonId, String)>,
    similarity: f32,
}

#[derive(Debug, Clone)]
struct Track {
    id: u64,
    bbox: BoundingBox,
    missed: u32,
    frames_since_embed: u32,
    votes: VecDeque<Vote>,
    uncertain: bool,
}

/// The identity a track currently shows.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackIdentity {
    pub person_id: PersonId,
    pub name: String,
    /// Mean similarity of the votes for this person.
    pub similarity: f32,
}

/// What the tracker decided for one detection of the current frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    pub track_id: u64,
    pub needs_embedding: bool,
}

#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            config,
            tracks: Vec::new(),
            next_id: 1,
        }
    }

    /// Continues tracks with this frame's boxes (greedy, best overlap first), starts new tracks, ages and
    /// ends the others. Returns one assignment per box, in the boxes' order.
    pub fn update(&mut self, boxes: &[BoundingBox]) -> Vec<Assignment> {
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (d, b) in boxes.iter().enumerate() {
            for (t, track) in self.tracks.iter().enumerate() {
                let iou = b.iou(&track.bbox);
                if iou >= self.config.min_iou {
                    pairs.push((iou, d, t));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut track_of: Vec<Option<usize>> = vec![None; boxes.len()];
        let mut taken = vec![false; self.tracks.len()];
        for (_, d, t) in pairs {
            if track_of[d].is_none() && !taken[t] {
                track_of[d] = Some(t);
                taken[t] = true;
            }
        }
        for (track, seen) in self.tracks.iter_mut().zip(&taken) {
            if !seen {
                track.missed += 1;
            }
        }
        let mut assignments = Vec::with_capacity(boxes.len());
        for (d, b) in boxes.iter().enumerate() {
            let index = match track_of[d] {
                Some(t) => t,
                None => {
                    self.tracks.push(Track {
                        id: self.next_id,
                        bbox: *b,
                        missed: 0,
                        frames_since_embed: 0,
                        votes: VecDeque::new(),
                        uncertain: false,
                    });
                    self.next_id += 1;
                    self.tracks.len() - 1
                }
            };
            let track = &mut self.tracks[index];
            track.bbox = *b;
            track.missed = 0;
            track.frames_since_embed += 1;
            let needs_embedding = !self.config.enabled
                || track.votes.is_empty()
                || track.uncertain
                || track.frames_since_embed >= self.config.reembed_every;
            assignments.push(Assignment {
                track_id: track.id,
                needs_embedding,
            });
        }
        let max_missed = self.config.max_missed;
        self.tracks.retain(|t| t.missed <= max_missed);
        assignments
    }

    /// Records a track's recognition on this frame.
    pub fn record(&mut self, track_id: u64, recognition: &Recognition) {
        let margin = self.config.uncertainty_margin;
        let votes = if self.config.enabled {
            self.config.votes.max(1)
        } else {
            1
        };
        let Some(track) = self.tracks.iter_mut().find(|t| t.id == track_id) else {
            return;
        };
        let best = recognition.best();
        let similarity = best.map_or(-1.0, |c| c.similarity.value());
        let threshold: Threshold = recognition.threshold;
        track.uncertain = best.is_some() && (similarity - threshold.value()).abs() < margin;
        track.frames_since_embed = 0;
        track.votes.push_back(Vote {
            person: recognition
                .matched
                .as_ref()
                .map(|m| (m.person_id, m.name.clone())),
            similarity,
        });
        while track.votes.len() > votes {
            track.votes.pop_front();
        }
    }

    /// The name a track shows: the person with the most recent votes, if they hold a majority of them
    /// (so one stray frame neither names nor un-names a face).
    pub fn identity(&self, track_id: u64) -> Option<TrackIdentity> {
        let track = self.tracks.iter().find(|t| t.id == track_id)?;
        let mut tally: Vec<(PersonId, &str, usize, f32)> = Vec::new();
        for vote in &track.votes {
            if let Some((id, name)) = &vote.person {
                match tally.iter_mut().find(|(p, ..)| p == id) {
                    Some(entry) => {
                        entry.2 += 1;
                        entry.3 += vote.similarity;
                    }
                    None => tally.push((*id, name, 1, vote.similarity)),
                }
            }
        }
        let (person_id, name, count, sum) = tally.into_iter().max_by_key(|t| t.2)?;
        (2 * count > track.votes.len()).then(|| TrackIdentity {
            person_id,
            name: name.to_owned(),
            similarity: sum / count as f32,
        })
    }

    /// Whether the track is still followed (seen lately, or missed for fewer than `max_missed`
    /// frames).
    pub fn is_tracked(&self, track_id: u64) -> bool {
        self.tracks.iter().any(|t| t.id == track_id)
    }

    /// How many recognitions a track's name rests on (its votes, at most the window).
    pub fn votes(&self, track_id: u64) -> usize {
        self.tracks
            .iter()
            .find(|t| t.id == track_id)
            .map_or(0, |t| t.votes.len())
    }

    pub fn active_tracks(&self) -> usize {
        self.tracks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FaceId;
    use crate::matching::{Candidate, Matcher};
    use facerec_types::Similarity;

    fn bbox(x: f32) -> BoundingBox {
        BoundingBox {
            x1: x,
            y1: 0.0,
            x2: x + 100.0,
            y2: 100.0,
        }
    }

    fn recognition(person: PersonId, similarity: f32) -> Recognition {
        Matcher::default().decide(vec![Candidate {
            person_id: person,
            face_id: FaceId::new(),
            name: "Ada".into(),
            similarity: Similarity::new(similarity),
        }])
    }

    #[test]
    fn a_moving_face_keeps_its_track_and_is_embedded_only_now_and_then() {
        let mut tracker = Tracker::new(TrackerConfig::default());
        let ada = PersonId::new();
        let first = tracker.update(&[bbox(0.0)]);
        assert!(first[0].needs_embedding, "new tracks are embedded");
        tracker.record(first[0].track_id, &recognition(ada, 0.6));
        let mut embeds = 0;
        for frame in 1..30 {
            let a = tracker.update(&[bbox(frame as f32 * 3.0)]);
            assert_eq!(a[0].track_id, first[0].track_id, "frame {frame}");
            if a[0].needs_embedding {
                embeds += 1;
                tracker.record(a[0].track_id, &recognition(ada, 0.6));
            }
        }
        assert_eq!(embeds, 2, "every 10 frames");
        assert_eq!(tracker.identity(first[0].track_id).unwrap().name, "Ada");
    }

    #[test]
    fn uncertain_matches_are_rechecked_and_names_are_voted() {
        let mut tracker = Tracker::new(TrackerConfig::default());
        let (ada, bob) = (PersonId::new(), PersonId::new());
        let t = tracker.update(&[bbox(0.0)])[0].track_id;
        tracker.record(t, &recognition(ada, 0.32));
        assert!(
            tracker.update(&[bbox(0.0)])[0].needs_embedding,
            "0.32 is within 0.05 of 0.30"
        );
        tracker.record(t, &recognition(ada, 0.6));
        tracker.record(t, &recognition(ada, 0.6));
        tracker.record(t, &recognition(bob, 0.9));
        assert_eq!(
            tracker.identity(t).unwrap().person_id,
            ada,
            "one stray frame does not rename"
        );
        tracker.record(t, &recognition(bob, 0.9));
        tracker.record(t, &recognition(bob, 0.9));
        assert_eq!(
            tracker.identity(t).unwrap().person_id,
            bob,
            "a majority does"
        );
    }

    #[test]
    fn tracks_end_when_unseen_and_new_faces_get_new_tracks() {
        let mut tracker = Tracker::new(TrackerConfig {
            max_missed: 2,
            ..Default::default()
        });
        let a = tracker.update(&[bbox(0.0), bbox(500.0)]);
        assert_ne!(a[0].track_id, a[1].track_id);
        for _ in 0..3 {
            tracker.update(&[bbox(0.0)]);
        }
        assert_eq!(tracker.active_tracks(), 1);
        let back = tracker.update(&[bbox(0.0), bbox(500.0)]);
        assert_eq!(back[0].track_id, a[0].track_id);
        assert!(
            back[1].track_id > a[1].track_id,
            "an ended track does not come back"
        );
    }

    #[test]
    fn disabled_tracking_embeds_every_frame() {
        let mut tracker = Tracker::new(TrackerConfig {
            enabled: false,
            ..Default::default()
        });
        let t = tracker.update(&[bbox(0.0)])[0].track_id;
        tracker.record(t, &recognition(PersonId::new(), 0.9));
        assert!(tracker.update(&[bbox(0.0)])[0].needs_embedding);
    }
}
