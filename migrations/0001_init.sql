-- The installation: one row naming this Tern database, so tools and logs can tell databases apart.
CREATE TABLE installation (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    singleton   boolean     NOT NULL DEFAULT true UNIQUE CHECK (singleton),
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO installation DEFAULT VALUES;
