-- Copies of checkpoints on stores (DESIGN §5, docs/stores.md): one `replicas` row per checkpoint
-- on one store, and one `replica_objects` row per object of it that the replicator has stored or
-- is uploading in parts. This is the replicator's journal: after a crash the next run reads it,
-- checks recorded objects by version instead of sending them again, and continues a half-sent
-- large upload from its last part.
--
-- A store is named by its URL (`s3://bucket/prefix`, …), which holds no credential by
-- construction (TernStorage.StoreURL refuses user info and query strings); the target, when the
-- copy was made for one, is kept beside it.
--
-- Conventions of 0002_jobs.sql: time from now(), text with CHECKs rather than enums.

CREATE TABLE replicas (
    checkpoint_id    text        COLLATE "C" NOT NULL REFERENCES checkpoints (id) ON DELETE CASCADE,
    store_url        text        COLLATE "C" NOT NULL CHECK (store_url ~ '^(file|s3|gs|az)://' AND store_url !~ '[?#@]'),
    -- The target this copy serves, when it was made for one (`--to TARGET`); NULL for an ad-hoc URL.
    target_name      text,
    -- pending → uploading → verifying → committed; corrupt when a check fails (never resumed from).
    state            text        NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'uploading', 'verifying', 'committed', 'corrupt')),
    -- L1: sizes, versions and store-validated checksums; L2: every byte read back. Set with committed.
    level            text        CHECK (level IN ('L1', 'L2')),
    -- The replicator working on this replica, and until when its claim holds. A second replicator
    -- waits for the claim to lapse (a crashed one's does) instead of working beside it.
    claimed_by       text,
    claim_expires_at timestamptz,
    -- Why the last run failed or the replica was demoted (never a credential: store errors carry none).
    error            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    committed_at     timestamptz,
    verified_at      timestamptz,
    PRIMARY KEY (checkpoint_id, store_url),
    CHECK ((state = 'committed') = (level IS NOT NULL))
);

-- "Where is this checkpoint consistent?" and `tern checkpoint status`: by store.
CREATE INDEX replicas_store_idx ON replicas (store_url, state);

CREATE TABLE replica_objects (
    checkpoint_id text        COLLATE "C" NOT NULL,
    store_url     text        COLLATE "C" NOT NULL,
    -- The object's key under the store's prefix (blobs/<root>, …).
    key           text        COLLATE "C" NOT NULL CHECK (key <> '' AND left(key, 1) <> '/' AND key !~ '(^|/)\.\.?(/|$)'),
    -- Set once stored: what the store reported, so a later change behind Tern's back is caught.
    size          bigint      CHECK (size >= 0),
    crc32c        bigint      CHECK (crc32c BETWEEN 0 AND 4294967295),
    version       text,
    -- A large upload under way (TernStorage.LargeUpload as JSON): upload id and accepted parts.
    upload        jsonb,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (checkpoint_id, store_url, key),
    FOREIGN KEY (checkpoint_id, store_url) REFERENCES replicas (checkpoint_id, store_url) ON DELETE CASCADE,
    CHECK (size IS NOT NULL OR upload IS NOT NULL)
);
