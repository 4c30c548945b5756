-- A pending run remembers the next step by id (so `next` may jump or loop), the run's id
-- (`{{run_id}}`), and the keys of the fields its last prompt asked for.
ALTER TABLE pending_runs ADD COLUMN next_step_id TEXT NOT NULL DEFAULT '';
ALTER TABLE pending_runs ADD COLUMN run_id TEXT NOT NULL DEFAULT '';
ALTER TABLE pending_runs ADD COLUMN awaiting TEXT NOT NULL DEFAULT '[]';
