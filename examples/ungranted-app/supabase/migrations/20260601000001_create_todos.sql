-- No GRANT: on a project created since 2026-05-30 (every project since 2026-10-30) the Data API
-- roles cannot touch this table, and every query of the app answers 42501.
create table public.todos (
  id bigint generated always as identity primary key,
  title text not null,
  done boolean not null default false
);
alter table public.todos enable row level security;
create policy "everyone manages todos" on public.todos
  for all to anon, authenticated using (true) with check (true);
