-- forge-dispatcher schema, PostgreSQL dialect. Keep in step with ../sqlite/0001_init.sql: same
-- tables and columns; JSON is JSONB here, deployment timestamps are timestamptz.
-- No column holds a secret: sealed values live in sealed_secrets, opaque without the key.
--
-- For a Supabase-hosted dashboard this also ships:
--   * row-level security: a user reads only the deployments (and their events) whose `owner` is
--     their user id, `owner = auth.uid()::text`. Supabase provides auth.uid(); on plain
--     PostgreSQL, where no `auth.uid()` exists, a stand-in with Supabase's definition is created
--     (it reads the `request.jwt.claim.sub` / `request.jwt.claims` settings PostgREST sets), so
--     the same policy is in force and testable everywhere. The dispatcher connects as the
--     tables' owner, which RLS does not restrict (no FORCE).
--   * every other table has RLS on and no policy: nobody but the owner reads sealed secrets.
--   * Supabase's API roles, where they exist: `anon` gets nothing, `authenticated` may only
--     SELECT deployments and events (its default ALL would include TRUNCATE, which RLS skips).
--   * the `deployments` table in the `supabase_realtime` publication (created when absent).

CREATE SEQUENCE deployments_queue_seq;

CREATE TABLE deployments (
    id               text PRIMARY KEY CHECK (id ~ '^dep_[0-9a-f]{24}$'),
    seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,  -- creation order
    queue_seq        bigint NOT NULL DEFAULT nextval('deployments_queue_seq'),  -- queue order
    project_id       text NOT NULL,
    project_name     text NOT NULL,
    build_dir        text NOT NULL,
    action           text NOT NULL DEFAULT 'deploy',
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'live', 'unhealthy', 'failed',
                                       'cancelled')),
    attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    step             text,
    app_url          text,
    repo_url         text,
    database_url     text,
    health           jsonb,
    error            text,
    exit_code        integer,
    idempotency_key  text UNIQUE,
    request_hash     text,
    owner            text,                            -- the dashboard user id (auth.uid())
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    claimed_by       text,
    last_event_id    bigint NOT NULL DEFAULT 0,       -- the events counter: O(1) appends
    CHECK ((idempotency_key IS NULL) = (request_hash IS NULL))
);
ALTER SEQUENCE deployments_queue_seq OWNED BY deployments.queue_seq;

-- Never two running deploys of one project (the claim checks it too: belt and braces).
CREATE UNIQUE INDEX deployments_one_running_per_project
    ON deployments (project_id) WHERE status = 'running';
CREATE INDEX deployments_queue ON deployments (queue_seq) WHERE status = 'queued';
CREATE INDEX deployments_running ON deployments (status) WHERE status = 'running';
CREATE INDEX deployments_project ON deployments (project_id, seq);
CREATE INDEX deployments_owner ON deployments (owner);

CREATE TABLE events (
    deployment_id text NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    id            bigint NOT NULL,                    -- rises by one per deployment
    attempt       integer NOT NULL,
    type          text NOT NULL,
    ts            text NOT NULL,                      -- as the runner wrote it
    payload       jsonb NOT NULL,
    runner_seq    bigint,
    PRIMARY KEY (deployment_id, id)
);

CREATE TABLE sealed_secrets (
    project_id text NOT NULL,
    key        text NOT NULL,
    sealed     text NOT NULL,                         -- opaque without the dispatcher's key
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, key)
);

CREATE TABLE hook_signatures (
    signature  text PRIMARY KEY,
    expires_at double precision NOT NULL              -- unix seconds
);
CREATE INDEX hook_signatures_expiry ON hook_signatures (expires_at);

-- auth.uid(): Supabase's own where it exists, else a stand-in with Supabase's definition.
DO $migration$
BEGIN
    IF to_regprocedure('auth.uid()') IS NULL THEN
        IF to_regnamespace('auth') IS NULL THEN
            CREATE SCHEMA auth;
            GRANT USAGE ON SCHEMA auth TO PUBLIC;
        END IF;
        CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $uid$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim.sub', true), ''),
                nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
            )::uuid
        $uid$;
    END IF;
END
$migration$;

ALTER TABLE deployments ENABLE ROW LEVEL SECURITY;
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE sealed_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE hook_signatures ENABLE ROW LEVEL SECURITY;
ALTER TABLE schema_migrations ENABLE ROW LEVEL SECURITY;

CREATE POLICY deployments_owner_reads ON deployments FOR SELECT
    USING (owner = (SELECT auth.uid())::text);
CREATE POLICY events_owner_reads ON events FOR SELECT
    USING (EXISTS (SELECT 1 FROM deployments d
                   WHERE d.id = events.deployment_id AND d.owner = (SELECT auth.uid())::text));

DO $migration$
BEGIN
    IF to_regrole('anon') IS NOT NULL THEN
        REVOKE ALL ON deployments, events, sealed_secrets, hook_signatures, schema_migrations
            FROM anon;
        REVOKE ALL ON SEQUENCE deployments_queue_seq FROM anon;
    END IF;
    IF to_regrole('authenticated') IS NOT NULL THEN
        REVOKE ALL ON deployments, events, sealed_secrets, hook_signatures, schema_migrations
            FROM authenticated;
        REVOKE ALL ON SEQUENCE deployments_queue_seq FROM authenticated;
        GRANT SELECT ON deployments, events TO authenticated;
    END IF;
END
$migration$;

-- Realtime: the dashboard follows status changes of its deployments.
DO $migration$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'supabase_realtime') THEN
        CREATE PUBLICATION supabase_realtime;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_publication
                   WHERE pubname = 'supabase_realtime' AND puballtables)
       AND NOT EXISTS (SELECT 1 FROM pg_publication_tables
                       WHERE pubname = 'supabase_realtime'
                         AND schemaname = current_schema() AND tablename = 'deployments') THEN
        ALTER PUBLICATION supabase_realtime ADD TABLE deployments;
    END IF;
END
$migration$;
