-- Consent that runs out: the retention sweep deletes a person once it has (NULL: until withdrawn).
ALTER TABLE persons ADD COLUMN consent_expires_at timestamptz;
CREATE INDEX persons_consent_expires_at ON persons (consent_expires_at)
    WHERE consent_expires_at IS NOT NULL;
