-- Case-insensitive name search folded the same way on both backends (Unicode lowercase, see
-- facerec_core::store::fold_name), computed by facerec, not by the database's collation. Existing
-- rows are filled in by facerec when it opens the database (rows with NULL here).
ALTER TABLE persons ADD COLUMN name_folded text;
CREATE INDEX persons_name_folded ON persons (name_folded);
