create table public.notes (
  id bigint generated always as identity primary key,
  body text not null check (length(body) <= 2000),
  created_at timestamptz not null default now()
);

-- Who may do what through the Data API. A new Supabase project grants a new table to no API
-- role, so the app's own reads (supabase-js with the publishable key, role `anon`; signed-in
-- users, role `authenticated`) need this GRANT; RLS then decides which rows they see.
alter table public.notes enable row level security;
create policy "everyone reads the notes" on public.notes
  for select to anon, authenticated using (true);
grant select on table public.notes to anon, authenticated;
-- Server code with the secret key (role `service_role`, which bypasses RLS) writes them.
grant select, insert, update, delete on table public.notes to service_role;
