-- The scheduler, the executors and the node agent (docs/scheduler.md).
--
-- The conventions of 0002_jobs.sql hold: time from now(), text with CHECKs rather than enums.

-- Where a job's relative `workdir` is resolved: the absolute directory `tern submit` ran in, so a
-- local or Slurm attempt starts where the user submitted from (SkyPilot's workdir is relative to
-- the launch directory too). Not part of the spec: the same spec submitted from two checkouts is
-- the same spec (same hash) run in two places. NULL for jobs submitted before this migration and
-- for submissions that gave none; the executor then uses its target's root.
ALTER TABLE jobs ADD COLUMN workdir_base text CHECK (workdir_base IS NULL OR left(workdir_base, 1) = '/');

-- Backoff: no new attempt is placed for a recovering job before this time (database clock).
ALTER TABLE jobs ADD COLUMN next_attempt_at timestamptz;

-- Where a move (`tern migrate JOB --to TARGET`) is to take the job; cleared when the new attempt
-- is placed. NULL while no move is asked for.
ALTER TABLE jobs ADD COLUMN migrate_to text;

-- When the job's first attempt started running: the spec's `timeout` counts from here.
ALTER TABLE jobs ADD COLUMN started_at timestamptz;

-- Why the latest attempt was placed where it was, and what the placement saw (target, resume
-- checkpoint, candidates), for `tern show`. Free-form JSON written by the scheduler.
ALTER TABLE attempts ADD COLUMN placement jsonb CHECK (placement IS NULL OR jsonb_typeof(placement) = 'object');

-- The replica that wrote the attempt row, for `tern show` and for people reading logs.
ALTER TABLE attempts ADD COLUMN scheduler text;

-- Orphan takeover: live jobs by lease expiry. The partial index holds only live jobs, so scanning
-- it for expired or unowned leases stays cheap however many jobs have finished.
CREATE INDEX jobs_live_lease_idx ON jobs (lease_expires_at NULLS FIRST)
    WHERE state NOT IN ('succeeded', 'failed', 'cancelled');

-- The agent's heartbeat and the scheduler's polling look attempts up by id; stale heartbeats are
-- found per job through the live-attempt index, so no new index is needed for them.
