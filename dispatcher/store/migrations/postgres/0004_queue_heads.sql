-- Only the oldest queued deployment of a project can be claimed next (a project deploys in
-- order), so only those heads are in the claim's index: a claim skips at most the heads of
-- running projects, however many deploys wait behind them. The store keeps `queue_head` true
-- on exactly each project's oldest queued deployment (sql.SQLStore._settle_head), under the
-- claims lock.
ALTER TABLE deployments ADD COLUMN queue_head boolean NOT NULL DEFAULT false;
UPDATE deployments SET queue_head = true
WHERE status = 'queued'
  AND queue_seq = (SELECT min(q.queue_seq) FROM deployments AS q
                   WHERE q.project_id = deployments.project_id AND q.status = 'queued');
CREATE INDEX deployments_queue_heads ON deployments (queue_seq)
    WHERE status = 'queued' AND queue_head;
CREATE INDEX deployments_project_queue ON deployments (project_id, queue_seq)
    WHERE status = 'queued';
CREATE INDEX deployments_project_head ON deployments (project_id) WHERE queue_head;
