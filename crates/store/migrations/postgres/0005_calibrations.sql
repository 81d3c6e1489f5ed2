-- The match threshold's calibrations (facerec_core::calibration), shared by replicas; the newest
-- is in force. facerec keeps the last 10.
CREATE TABLE calibrations (
    id          bigserial PRIMARY KEY,
    computed_at timestamptz NOT NULL,
    faces       bigint NOT NULL,
    document    jsonb NOT NULL
);
