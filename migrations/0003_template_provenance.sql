-- Where a version came from when it was rendered from a plugin template: the template's name,
-- the SHA-256 of its folder and the parameters (defaults applied). NULL for plain uploads.
ALTER TABLE plugin_versions ADD COLUMN provenance jsonb;
