//! The numbers a caller may choose, each with its bounds and default, shared by `/v1` (which refuses
//! a number outside them), the compatible APIs (which clamp where their protocol has no such error)
//! and the command line.

/// A caller's number: at least `min`, at most `max`, `default` when none is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub min: u64,
    pub default: u64,
    pub max: u64,
}

/// A number outside its range; says the range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{name}' must be from {min} to {max}, not {value}")]
pub struct OutOfRange {
    pub name: &'static str,
    pub value: u64,
    pub min: u64,
    pub max: u64,
}

impl Range {
    /// The value, or the default; out of bounds is an error.
    pub fn check(self, name: &'static str, value: Option<u64>) -> Result<u64, OutOfRange> {
        match value {
            None => Ok(self.default),
            Some(v) if (self.min..=self.max).contains(&v) => Ok(v),
            Some(value) => Err(OutOfRange {
                name,
                value,
                min: self.min,
                max: self.max,
            }),
        }
    }

    /// The value brought within bounds, or the default.
    pub fn clamp(self, value: Option<u64>) -> u64 {
        value.map_or(self.default, |v| v.clamp(self.min, self.max))
    }
}

/// Candidates reported per face.
pub const TOP_K: Range = Range {
    min: 1,
    default: 3,
    max: 20,
};

/// Faces embedded per photo, strongest detections first (each costs ~10 ms on CPU).
pub const MAX_FACES: Range = Range {
    min: 1,
    default: 100,
    max: 100,
};

/// Persons, faces, captures or clusters per page of a listing.
pub const PAGE_SIZE: Range = Range {
    min: 1,
    default: 50,
    max: 500,
};

/// Audit events per page.
pub const AUDIT_PAGE: Range = Range {
    min: 1,
    default: 100,
    max: 1_000,
};

/// A webhook's deliveries per page (its log holds at most as many).
pub const DELIVERIES_PAGE: Range = Range {
    min: 1,
    default: 100,
    max: facerec_core::events::DELIVERY_LOG_MAX as u64,
};

/// How deep a listing goes (a larger offset is a client's mistake, not a page).
pub const OFFSET: Range = Range {
    min: 0,
    default: 0,
    max: 1_000_000_000,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_and_clamps() {
        assert_eq!(TOP_K.check("top_k", None), Ok(3));
        assert_eq!(TOP_K.check("top_k", Some(20)), Ok(20));
        let err = TOP_K.check("top_k", Some(21)).unwrap_err();
        assert_eq!(err.to_string(), "'top_k' must be from 1 to 20, not 21");
        assert_eq!(TOP_K.clamp(Some(0)), 1);
        assert_eq!(MAX_FACES.clamp(Some(1_000)), 100);
        assert_eq!(PAGE_SIZE.clamp(None), 50);
    }
}
