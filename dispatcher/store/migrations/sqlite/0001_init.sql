-- forge-dispatcher schema, SQLite dialect. Keep in step with ../postgres/0001_init.sql: same
-- tables and columns; JSON is TEXT here, timestamps are ISO 8601 UTC text ending in Z.
-- No column holds a secret: sealed values live in sealed_secrets, opaque without the key.

CREATE TABLE deployments (
    id               TEXT PRIMARY KEY CHECK (length(id) = 28 AND id GLOB 'dep_*'),
    seq              INTEGER NOT NULL UNIQUE,        -- creation order (newest first lists)
    queue_seq        INTEGER NOT NULL,               -- queue order; renewed by requeue
    project_id       TEXT NOT NULL,
    project_name     TEXT NOT NULL,
    build_dir        TEXT NOT NULL,
    action           TEXT NOT NULL DEFAULT 'deploy',
    status           TEXT NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'live', 'unhealthy', 'failed',
                                       'cancelled')),
    attempt          INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    step             TEXT,
    app_url          TEXT,
    repo_url         TEXT,
    database_url     TEXT,
    health           TEXT CHECK (health IS NULL OR json_valid(health)),
    error            TEXT,
    exit_code        INTEGER,
    idempotency_key  TEXT UNIQUE,
    request_hash     TEXT,
    owner            TEXT,                           -- the dashboard user id
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    claimed_by       TEXT,
    last_event_id    INTEGER NOT NULL DEFAULT 0,     -- the events counter: O(1) appends
    CHECK ((idempotency_key IS NULL) = (request_hash IS NULL))
);

-- Never two running deploys of one project (the claim checks it too: belt and braces).
CREATE UNIQUE INDEX deployments_one_running_per_project
    ON deployments (project_id) WHERE status = 'running';
CREATE INDEX deployments_queue ON deployments (queue_seq) WHERE status = 'queued';
CREATE INDEX deployments_queue_seq ON deployments (queue_seq);
CREATE INDEX deployments_running ON deployments (status) WHERE status = 'running';
CREATE INDEX deployments_project ON deployments (project_id, seq);
CREATE INDEX deployments_owner ON deployments (owner);

CREATE TABLE events (
    deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    id            INTEGER NOT NULL,                  -- rises by one per deployment
    attempt       INTEGER NOT NULL,
    type          TEXT NOT NULL,
    ts            TEXT NOT NULL,                     -- as the runner wrote it
    payload       TEXT NOT NULL,
    runner_seq    INTEGER,
    PRIMARY KEY (deployment_id, id)
) WITHOUT ROWID;

CREATE TABLE sealed_secrets (
    project_id TEXT NOT NULL,
    key        TEXT NOT NULL,
    sealed     TEXT NOT NULL,                        -- opaque without the dispatcher's key
    updated_at TEXT NOT NULL,
    PRIMARY KEY (project_id, key)
);

CREATE TABLE hook_signatures (
    signature  TEXT PRIMARY KEY,
    expires_at REAL NOT NULL                         -- unix seconds
);
CREATE INDEX hook_signatures_expiry ON hook_signatures (expires_at);
