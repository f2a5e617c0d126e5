-- Granted, but RLS is off: anyone holding the publishable key reads and writes every row.
create table public.guestbook (
  id bigint generated always as identity primary key,
  name text not null,
  message text not null
);
grant select, insert on table public.guestbook to anon, authenticated;
