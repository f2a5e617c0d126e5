-- ForgeBoard: one row per deploy click, written by forge-deploy's status mirror.
--
-- The dashboard's server action (deploy.ts) inserts the row as the signed-in user; from then on
-- only forge-deploy (service role) writes it: status, step, per-step state, URLs, health and a
-- masked log tail. `version` rises with every change the dispatcher makes, and the mirror's
-- update only applies to a row whose version is lower, so an older change never overwrites a
-- newer one. No column holds a secret: keys, tokens and passwords never leave forge-deploy.

create table public.deployments (
  id uuid primary key default gen_random_uuid(),
  -- The click's id (made once per rendered button): a double submit finds the same row.
  request_id text not null check (char_length(request_id) between 1 and 200),
  project_id text not null check (char_length(project_id) between 1 and 128),
  owner_id uuid not null default auth.uid(),
  dispatcher_id text check (dispatcher_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  status text not null default 'queued'
    check (status in ('queued', 'running', 'live', 'unhealthy', 'failed', 'cancelled')),
  step text,
  -- [{"step", "state": running|done|skipped|failed, "started_at", "finished_at", "error"}]
  steps jsonb not null default '[]'::jsonb check (jsonb_typeof(steps) = 'array'),
  app_url text,
  repo_url text,
  database_url text,
  health jsonb,
  error text check (char_length(error) <= 4000),
  log_tail text[] not null default '{}' check (cardinality(log_tail) <= 200),
  version bigint not null default 0 check (version >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (owner_id, request_id)
);

create index deployments_owner_project_created
  on public.deployments (owner_id, project_id, created_at desc);

alter table public.deployments enable row level security;

-- A user reads the deployments of their own projects, and nobody else's.
create policy "owners read their deployments" on public.deployments
  for select to authenticated
  using (owner_id = (select auth.uid()));

-- A user queues a deployment of their own: a fresh row, nothing forge-deploy writes preset.
create policy "owners queue deployments" on public.deployments
  for insert to authenticated
  with check (
    owner_id = (select auth.uid())
    and status = 'queued' and version = 0 and dispatcher_id is null
    and steps = '[]'::jsonb and cardinality(log_tail) = 0
  );

-- Who reaches the table through the Data API. A Supabase project made since 2026-05-30 (every
-- project since 2026-10-30) grants a new table to no API role, so each grant the kit relies on
-- is written here; on an older project the revokes take back what was granted automatically.
-- Signed-in users (the panel, deploy.ts; `authenticated`, under the RLS policies above) read
-- and queue; forge-deploy's status mirror (`service_role`, the secret key: past RLS) reads the
-- row and writes its progress; the publishable key alone (`anon`) reaches nothing.
revoke all on public.deployments from anon;
revoke update, delete, truncate on public.deployments from authenticated;
grant select, insert on public.deployments to authenticated;
revoke delete, truncate on public.deployments from service_role;
grant select, insert, update on public.deployments to service_role;

-- The deploy panel follows its row through Supabase realtime.
alter publication supabase_realtime add table public.deployments;
