-- Placement and shifting work between targets (docs/placement.md).
--
-- The conventions of 0002_jobs.sql hold: time from now(), text with CHECKs rather than enums.

-- Offers a target refused for lack of capacity, blocked for a while so every job learns from one
-- refusal instead of trying the same full offer again. An offer is what placement chose on a
-- target: a catalogue instance type (p5.48xlarge) or the target's kind for unpriced targets.
CREATE TABLE capacity_blocks (
    target        text        NOT NULL REFERENCES targets (name) ON DELETE CASCADE,
    -- The target's region when it has one ('' otherwise), so a key never holds a NULL.
    region        text        NOT NULL DEFAULT '',
    offer         text        NOT NULL CHECK (offer <> ''),
    blocked_until timestamptz NOT NULL,
    -- What the executor said (never a credential: executor errors carry none).
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target, region, offer)
);

-- How long the running attempt gets to checkpoint and stop when the job is moved
-- (`tern migrate --graceful D`, 0 for `--now`); NULL: the scheduler's own grace period.
ALTER TABLE jobs ADD COLUMN stop_grace_seconds double precision CHECK (stop_grace_seconds IS NULL OR stop_grace_seconds >= 0);
