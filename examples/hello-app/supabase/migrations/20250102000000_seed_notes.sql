insert into public.notes (body) values ('Deployed by forge-deploy.');
