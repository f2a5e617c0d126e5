-- A deploy request may set the exposure policy its runner applies (FORGE_EXPOSURE_POLICY):
-- kept with the deployment, so a retry runs under the same one. NULL: the runner's default.
ALTER TABLE deployments ADD COLUMN exposure_policy text CHECK (exposure_policy IN ('warn', 'fail'));
