-- The dashboard's own table of projects (ForgeBoard has it before the kit): what deploy.ts
-- reads to check that the signed-in user owns the project and to find its build.
create table public.projects (
  id text primary key,
  owner_id uuid not null,
  name text not null,
  build_dir text not null
);
alter table public.projects enable row level security;
create policy "owners read their projects" on public.projects
  for select to authenticated using (owner_id = (select auth.uid()));
revoke all on public.projects from anon;
grant select on public.projects to authenticated;
grant select, insert on public.projects to service_role;
