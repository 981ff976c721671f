-- Sealed checkpoints, their files, and the jobs that wrote them (DESIGN §5, docs/checkpoints.md).
--
-- A checkpoint row is a fact about bytes, not about a job: its id is the SHA-256 of its manifest,
-- and the manifest holds only what the bytes are (paths, sizes, hashes), never a host, a time or a
-- store. So the same bytes sealed twice, by one job, by two jobs, or with no job at all (`tern
-- checkpoint seal DIR`, used like sha256sum) are one row; which jobs wrote them, at which step,
-- lives in job_checkpoints.
--
-- Where copies of a checkpoint are (replicas per target: state, verification level, pinned
-- ETag/version/generation) comes in a later migration with the stores; nothing here says where
-- bytes are, only what they are.
--
-- The conventions of 0002_jobs.sql hold: time from now(), text with CHECKs rather than enums.

-- ---------------------------------------------------------------------------------------------
-- checkpoints: one row per distinct manifest.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE checkpoints (
    -- Lower-case hex SHA-256 of `manifest`. COLLATE "C": ids are compared and looked up by prefix
    -- (`tern checkpoint show 3f5a9c`) as byte strings, whatever the database's collation.
    id         text        COLLATE "C" PRIMARY KEY CHECK (id ~ '^[0-9a-f]{64}$'),
    -- The manifest's exact canonical bytes (tern-manifest/v1), not jsonb: jsonb reorders keys and
    -- adds spaces, and the id is the hash of these bytes, so they must come back unchanged.
    manifest   text        NOT NULL,
    -- The chunk sidecar the manifest names (TERNCHK1 + the 32-byte SHA-256 of every 64 MiB chunk):
    -- what lets a verifier name the exact byte ranges of a damaged file. Small (32 bytes per
    -- 64 MiB, so 512 KiB for a 1 TiB checkpoint), and always written with the manifest.
    sidecar    bytea       NOT NULL,
    -- The framework whose completion signal the sealer found (never 'auto': that is a request,
    -- not an answer). A checkpoint of a new format needs new sealing code, so it may need a
    -- migration too.
    format     text        NOT NULL CHECK (format IN ('marker', 'torch-dcp', 'orbax', 'megatron', 'deepspeed')),
    -- Repeated from the manifest for listings, so `tern checkpoints JOB` never parses manifests.
    bytes      bigint      NOT NULL CHECK (bytes >= 0),
    files      integer     NOT NULL CHECK (files >= 0),
    -- When these bytes were first sealed; sealing them again changes nothing.
    created_at timestamptz NOT NULL DEFAULT now(),
    -- The database re-checks what the id promises, so no writer (or hand-edited row) can store a
    -- manifest under another's id, or a sidecar that is not the one its manifest names.
    -- convert_to gives the text's UTF-8 bytes whatever the server encoding.
    CONSTRAINT checkpoints_id_is_manifest_hash
        CHECK (id = encode(sha256(convert_to(manifest, 'UTF8')), 'hex')),
    CONSTRAINT checkpoints_sidecar_matches_manifest
        CHECK (encode(sha256(sidecar), 'hex') = (manifest::jsonb #>> '{chunks,sha256}')
               AND octet_length(sidecar) = (manifest::jsonb #>> '{chunks,size}')::bigint)
);

-- ---------------------------------------------------------------------------------------------
-- checkpoint_files: the manifest's files as rows, for questions across checkpoints ("which
-- stored checkpoints already hold a file with this root?") that the manifest text cannot answer
-- with an index. Written in the same transaction as the checkpoint row, from the same manifest.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE checkpoint_files (
    -- Files are part of their checkpoint: collecting a checkpoint collects its rows.
    checkpoint_id text    COLLATE "C" NOT NULL REFERENCES checkpoints (id) ON DELETE CASCADE,
    -- Relative, '/'-separated, NFC (TernCheckpoints.CheckpointPath); checked there in full. Here
    -- only what would make a row dangerous to act on: empty, absolute, or a '.'/'..' component.
    -- COLLATE "C": ordered by bytes, as in the manifest.
    path          text    COLLATE "C" NOT NULL
                  CHECK (path <> '' AND left(path, 1) <> '/' AND path !~ '(^|/)\.\.?(/|$)'),
    size          bigint  NOT NULL CHECK (size >= 0),
    -- SHA-256 over the file's chunk digests, domain-separated (TernCheckpoints.FileRoot): equal
    -- roots mean equal bytes, under any name, in any checkpoint.
    root          text    COLLATE "C" NOT NULL CHECK (root ~ '^[0-9a-f]{64}$'),
    -- Whole-file CRC32C, as stores (GCS, S3) compute it.
    crc32c        text    NOT NULL CHECK (crc32c ~ '^[0-9a-f]{8}$'),
    -- data files are committed first, framework markers last; pointers live beside the step directory.
    role          text    NOT NULL CHECK (role IN ('data', 'marker', 'pointer')),
    PRIMARY KEY (checkpoint_id, path)
);

-- Whole-file dedup (DESIGN §5): a file whose root is already stored somewhere need not be sent
-- again. Frozen base weights in a LoRA run share one root across every step.
CREATE INDEX checkpoint_files_root_idx ON checkpoint_files (root);

-- ---------------------------------------------------------------------------------------------
-- job_checkpoints: which job wrote which checkpoint, at which step. The same bytes sealed for two
-- jobs are one checkpoints row and two rows here.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE job_checkpoints (
    job_id        uuid        NOT NULL REFERENCES jobs (id),
    -- No cascade: a checkpoint a job refers to is removed deliberately (link first).
    checkpoint_id text        COLLATE "C" NOT NULL REFERENCES checkpoints (id),
    -- The training step the job says the checkpoint holds (from the directory name or --step).
    step          bigint      NOT NULL CHECK (step >= 0),
    -- The attempt that wrote it, when known (the agent knows it; an ad-hoc `tern checkpoint seal
    -- --job` does not).
    attempt_id    uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Recording the same bytes for the same job again changes nothing (the first step stays).
    PRIMARY KEY (job_id, checkpoint_id),
    -- The attempt must be one of this job's (MATCH SIMPLE: a NULL attempt_id is not checked).
    CONSTRAINT job_checkpoints_attempt_fkey FOREIGN KEY (job_id, attempt_id) REFERENCES attempts (job_id, id)
);

-- `tern checkpoints JOB` and "the newest checkpoint of this job": newest step first.
CREATE INDEX job_checkpoints_step_idx ON job_checkpoints (job_id, step DESC, created_at DESC);

-- Which jobs wrote a checkpoint (`tern checkpoint show`), and the foreign key's check when a
-- checkpoint is collected.
CREATE INDEX job_checkpoints_checkpoint_idx ON job_checkpoints (checkpoint_id);
