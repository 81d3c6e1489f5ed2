-- Case-insensitive name search in any script: the name folded by facerec (Unicode lowercase, see
-- facerec_core::store::fold_name) beside it. SQLite's lower() folds ASCII only. Existing rows are
-- filled in by facerec when it opens the database (rows with NULL here).
ALTER TABLE persons ADD COLUMN name_folded TEXT;
CREATE INDEX persons_name_folded ON persons (name_folded);
