-- Events lose their per-row foreign key: COPY checked it once per event (a lookup of the
-- deployment for every row, ~40% of the append's time). The existence it proved is proved once
-- per batch instead: append_events first bumps the deployment's last_event_id (no row: no
-- append), and the row lock that update takes holds until the batch commits. No code deletes
-- deployments, so nothing relied on the cascade.
ALTER TABLE events DROP CONSTRAINT events_deployment_id_fkey;
