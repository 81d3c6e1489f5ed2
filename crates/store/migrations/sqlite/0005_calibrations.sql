-- The match threshold's calibrations (facerec_core::calibration), shared by replicas; the newest
-- is in force. facerec keeps the last 10.
CREATE TABLE calibrations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    computed_at TEXT NOT NULL,    -- RFC 3339
    faces       INTEGER NOT NULL, -- the gallery's faces when computed
    document    TEXT NOT NULL     -- JSON: the Calibration
);
