-- Targets, jobs, attempts and the job event log (DESIGN §4).
--
-- Conventions used throughout:
-- * Every timestamp defaults to now(): time comes from the database, never from a host clock, so
--   several scheduler replicas on machines with skewed clocks still agree on order and leases.
--   now() is the transaction's start time, so every row written by one statement shares it.
-- * States and kinds are text with a CHECK rather than PostgreSQL enums: a CHECK can be replaced in
--   one later migration inside a transaction, while ALTER TYPE ... ADD VALUE cannot be used in the
--   transaction that adds it. Free-form reasons (failure_reason, end_reason, job_events.reason) get
--   no CHECK at all: new FailureReason cases must not need a migration, and rows written by a newer
--   Tern must stay readable by an older one.
-- * labels are flat JSON objects of string values, checked here so every reader can decode them
--   as [String: String] without a failure path.

-- Keeps updated_at honest without every writer having to remember it.
CREATE FUNCTION tern_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- targets: where attempts run. Rows come from the user's targets files (`tern targets apply`);
-- secrets never land here (credentials come from the environment or the file a target names in
-- credentials_file, read when needed), only what an executor needs to find its cluster or account.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE targets (
    name        text        PRIMARY KEY CHECK (name <> ''),
    -- A new kind needs new executor code anyway, so it may as well need a migration too.
    kind        text        NOT NULL CHECK (kind IN ('local', 'slurm', 'kubernetes', 'aws-batch', 'gcp-batch', 'azure-batch')),
    -- The executor's settings (queue, partition, endpoint ...): queryable on their own.
    settings    jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    -- Every target keeps checkpoints somewhere (file://, s3://, gs://, az://).
    storage_url text        NOT NULL CHECK (storage_url <> ''),
    -- Nullable: local and Slurm targets have no cloud region.
    region      text,
    labels      jsonb       NOT NULL DEFAULT '{}'
                CHECK (jsonb_typeof(labels) = 'object' AND NOT jsonb_path_exists(labels, '$.* ? (@.type() != "string")')),
    -- Hash of the target's canonical configuration: `apply` rewrites a row only when it changed,
    -- so re-applying the same file is a no-op that leaves updated_at alone.
    config_hash text        NOT NULL,
    -- The whole definition as applied (canonical JSON of TernModel's TargetDefinition: shapes,
    -- max nodes, spot, ...), from which the scheduler and `tern submit` rebuild it. The columns
    -- above repeat the parts queried on their own; config_hash is the hash of this text.
    definition  jsonb       NOT NULL CHECK (jsonb_typeof(definition) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER targets_updated_at BEFORE UPDATE ON targets
    FOR EACH ROW EXECUTE FUNCTION tern_set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- jobs: one row per submitted job; the scheduler replicas claim and fence on it.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE jobs (
    -- Made by the database (built into PostgreSQL 13+), so ids are never a client's choice.
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Names are not unique: the same spec is submitted again and again. Jobs are found by id,
    -- id prefix or name prefix (see JobRepository.resolve).
    name             text        NOT NULL CHECK (name <> ''),
    -- The normalised spec. jsonb, not the client's text: jsonb reorders keys, so spec_hash (over the
    -- canonical JSON text the client sent) is the identity to compare, not this column's text.
    spec             jsonb       NOT NULL CHECK (jsonb_typeof(spec) = 'object'),
    spec_hash        text        NOT NULL CHECK (spec_hash ~ '^[0-9a-f]{64}$'),
    state            text        NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'starting', 'running', 'recovering', 'migrating', 'cancelling',
                                      'succeeded', 'failed', 'cancelled')),
    -- Set for failed jobs, and also while a job waits (no_resources) so users see why; no CHECK
    -- (see the top of this file).
    failure_reason   text,
    priority         integer     NOT NULL DEFAULT 0,
    labels           jsonb       NOT NULL DEFAULT '{}'
                     CHECK (jsonb_typeof(labels) = 'object' AND NOT jsonb_path_exists(labels, '$.* ? (@.type() != "string")')),
    -- An idempotency key the client may give: a retried submission (timeout, crash after COMMIT)
    -- finds the stored job instead of making a second one. UNIQUE allows any number of NULLs, so
    -- jobs without a key are unaffected; INSERT ... ON CONFLICT (submit_key) DO NOTHING relies on it.
    submit_key       text        UNIQUE CHECK (submit_key <> ''),
    -- Submission order. created_at is the transaction time, shared by every job of one batch; this
    -- breaks those ties so a batch is listed and claimed in the order it was given (FIFO within a
    -- priority), and so pages of a listing are stable.
    submit_seq       bigint      GENERATED ALWAYS AS IDENTITY,
    -- Lease of the scheduler replica driving the job (DESIGN §4): a claim bumps lease_epoch, and
    -- every later write of that replica carries AND lease_epoch = $mine, so a replica whose lease
    -- was taken over touches no row and gives the job up (fencing).
    lease_owner      text,
    lease_epoch      bigint      NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    restarts         integer     NOT NULL DEFAULT 0 CHECK (restarts >= 0),
    preemptions      integer     NOT NULL DEFAULT 0 CHECK (preemptions >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    -- A job has finished exactly when it is terminal: no writer can forget finished_at, and no
    -- live job can carry one (which would hide it from "running for N hours" views).
    CONSTRAINT jobs_finished_at_iff_terminal
        CHECK ((finished_at IS NOT NULL) = (state IN ('succeeded', 'failed', 'cancelled')))
);

CREATE TRIGGER jobs_updated_at BEFORE UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION tern_set_updated_at();

-- The claim query: SELECT ... WHERE state = 'pending' ORDER BY priority DESC, created_at
-- FOR UPDATE SKIP LOCKED LIMIT n. Partial, so it holds only the queue (small even when millions
-- of jobs have finished) and an index scan in claim order stops after n rows.
CREATE INDEX jobs_claim_idx ON jobs (priority DESC, created_at, submit_seq) WHERE state = 'pending';

-- `tern jobs`: newest first, stable within one batch.
CREATE INDEX jobs_listing_idx ON jobs (created_at DESC, submit_seq DESC);

-- Name-prefix lookup (`tern show llama3`): text_pattern_ops lets LIKE 'prefix%' use a btree
-- whatever the database's collation (the default operator class only does so under "C").
CREATE INDEX jobs_name_idx ON jobs (name text_pattern_ops);

-- `labels @> '{"team":"nlp"}'`. jsonb_path_ops is smaller and faster than the default GIN class
-- and supports exactly @>, the only label operator used.
CREATE INDEX jobs_labels_idx ON jobs USING gin (labels jsonb_path_ops);

-- ---------------------------------------------------------------------------------------------
-- attempts: one row per placement of a job on a target. Written, with its idempotency key,
-- *before* the cloud is called (DESIGN §4), so a replica that takes over a lease can look the
-- cloud resource up by key and adopt it rather than launch twice.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE attempts (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id            uuid        NOT NULL REFERENCES jobs (id),
    number            integer     NOT NULL CHECK (number >= 1),
    -- Passed to the cloud (ClientToken, request_id, resource name, Slurm job name) and tagged on
    -- the resource. Globally unique, since clouds scope these per account, not per job.
    idempotency_key   text        NOT NULL UNIQUE CHECK (idempotency_key <> ''),
    -- A target that ran attempts cannot be deleted: the history would lose its meaning.
    target            text        NOT NULL REFERENCES targets (name),
    region            text,
    offer             text,
    -- numeric, not float: prices are summed into costs and compared with max_hourly_cost.
    hourly_price      numeric(14, 6) CHECK (hourly_price >= 0),
    -- The cloud's or cluster's handle (AWS job id, Slurm job id, ...), known once launched.
    external_id       text,
    state             text        NOT NULL DEFAULT 'launching'
                      CHECK (state IN ('launching', 'queued', 'running', 'succeeded', 'failed', 'preempted', 'lost', 'cancelled')),
    end_reason        text,
    exit_code         integer,
    -- The checkpoint id (manifest digest) this attempt resumed from; NULL for a fresh start.
    resume_checkpoint text,
    heartbeat_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    ended_at          timestamptz,
    -- Attempt numbers are 1, 2, ... per job (TERN_ATTEMPT); two replicas racing to place the same
    -- job cannot both write attempt n. Also the index for "latest attempt of a job".
    CONSTRAINT attempts_job_number_key UNIQUE (job_id, number),
    -- Target of job_events' composite foreign key (an event's attempt belongs to its job).
    CONSTRAINT attempts_job_id_key UNIQUE (job_id, id),
    CONSTRAINT attempts_ended_at_iff_terminal
        CHECK ((ended_at IS NOT NULL) = (state IN ('succeeded', 'failed', 'preempted', 'lost', 'cancelled')))
);

-- At most one live attempt per job, enforced by the database: two attempts of one job must never
-- run (and write checkpoints) at once. A move or a restart ends the old attempt's row first.
CREATE UNIQUE INDEX attempts_one_live_per_job ON attempts (job_id)
    WHERE state IN ('launching', 'queued', 'running');

-- Live attempts per target: the scheduler's status polling and capacity accounting.
CREATE INDEX attempts_live_by_target_idx ON attempts (target)
    WHERE state IN ('launching', 'queued', 'running');

-- ---------------------------------------------------------------------------------------------
-- job_events: append-only log of everything that happened to a job, every transition with its
-- reason (`tern events JOB`).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE job_events (
    -- bigserial gives the order of events within a job (ties in `at` are common: now() is per
    -- transaction). Gaps are harmless.
    id         bigserial   PRIMARY KEY,
    job_id     uuid        NOT NULL REFERENCES jobs (id),
    attempt_id uuid,
    at         timestamptz NOT NULL DEFAULT now(),
    -- snake_case event name: 'submitted', or JobEvent.name ('cancel_requested', ...).
    kind       text        NOT NULL CHECK (kind <> ''),
    -- No CHECK on the states: an event about an attempt may record attempt states.
    from_state text,
    to_state   text,
    reason     text,
    message    text,
    details    jsonb,
    -- The attempt an event names must be one of the event's job (MATCH SIMPLE: a NULL attempt_id
    -- is not checked).
    CONSTRAINT job_events_attempt_fkey FOREIGN KEY (job_id, attempt_id) REFERENCES attempts (job_id, id)
);

-- `tern events JOB`: a job's events in order.
CREATE INDEX job_events_job_idx ON job_events (job_id, id);

-- History is evidence (why a job moved, who cancelled it): refuse to rewrite it. Row triggers do
-- not fire for TRUNCATE, hence the statement trigger as well. (Retention, when it comes, will be a
-- deliberate operation by the owner, e.g. with the trigger disabled.)
CREATE FUNCTION tern_job_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'job_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'record what happened as a new event instead';
END
$$;

CREATE TRIGGER job_events_append_only BEFORE UPDATE OR DELETE ON job_events
    FOR EACH ROW EXECUTE FUNCTION tern_job_events_append_only();

CREATE TRIGGER job_events_no_truncate BEFORE TRUNCATE ON job_events
    FOR EACH STATEMENT EXECUTE FUNCTION tern_job_events_append_only();
