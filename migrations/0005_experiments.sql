-- A/B experiments (docs/experiments.md) and a general audit log.

-- Who did what, when, to which subject. Any feature may write here; experiments record every
-- state change (and guardrail trips, with actor 'guardrail').
CREATE TABLE audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    actor      text NOT NULL,
    action     text NOT NULL,
    subject    text NOT NULL,
    details    jsonb NOT NULL DEFAULT '{}'::jsonb,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id DESC);
CREATE INDEX audit_log_subject_idx ON audit_log (tenant_id, subject, id DESC);

-- One experiment on one plugin. seed = key for phase 1, key:phase afterwards (a new phase
-- reassigns visitors). sticky_source: the gateway's visitor cookie or a named request header.
-- exclusion_*: the claimed [start, end) range of an exclusion group (GrowthBook namespace).
CREATE TABLE experiments (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    namespace_id       uuid NOT NULL REFERENCES namespaces (id) ON DELETE CASCADE,
    plugin_id          uuid NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
    key                text NOT NULL,
    state              text NOT NULL CHECK (state IN ('draft', 'running', 'paused', 'stopped')),
    phase              integer NOT NULL DEFAULT 1,
    seed               text NOT NULL,
    coverage           double precision NOT NULL CHECK (coverage > 0 AND coverage <= 1),
    sticky_source      text NOT NULL CHECK (sticky_source IN ('cookie', 'header')),
    sticky_name        text NOT NULL,
    exclusion_group    text,
    exclusion_start    double precision,
    exclusion_end      double precision,
    guardrail          jsonb,
    winner             text,
    status_reason      text,
    guardrail_trip     jsonb,
    phase_started_at   timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (namespace_id, key),
    CHECK ((exclusion_group IS NULL) = (exclusion_start IS NULL)
           AND (exclusion_group IS NULL) = (exclusion_end IS NULL)),
    CHECK (exclusion_start IS NULL OR (0 <= exclusion_start AND exclusion_start < exclusion_end
                                       AND exclusion_end <= 1))
);
CREATE INDEX experiments_tenant_idx ON experiments (tenant_id);
-- At most one live (running or paused) experiment per plugin.
CREATE UNIQUE INDEX experiments_one_live_idx ON experiments (plugin_id) WHERE state IN ('running', 'paused');

-- Variants in order (position 0 is the control). weight is normalised to sum to 1.
CREATE TABLE experiment_variants (
    experiment_id  uuid NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    position       integer NOT NULL,
    name           text NOT NULL,
    version_id     uuid NOT NULL REFERENCES plugin_versions (id) ON DELETE CASCADE,
    weight         double precision NOT NULL CHECK (weight > 0 AND weight <= 1),
    PRIMARY KEY (experiment_id, position),
    UNIQUE (experiment_id, name)
);

-- Per-namespace holdout: this share of visitors is kept out of every experiment of the namespace.
CREATE TABLE experiment_holdouts (
    namespace_id  uuid PRIMARY KEY REFERENCES namespaces (id) ON DELETE CASCADE,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    share         double precision NOT NULL CHECK (share >= 0 AND share < 1),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- What gateways report about experiment traffic (docs/experiments.md, "Results"), keyed by the
-- names the gateway knows. Batches are stored once (a replayed batch id changes nothing).
CREATE TABLE experiment_batches (
    batch_id     uuid PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX experiment_batches_received_idx ON experiment_batches (received_at);

-- Distinct visitors per variant and phase: a 53-bit hash of the visitor key (unique visitors
-- are approximate only through hash collisions).
CREATE TABLE experiment_visitors (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    namespace   text NOT NULL,
    plugin      text NOT NULL,
    experiment  text NOT NULL,
    phase       integer NOT NULL,
    variant     text NOT NULL,
    visitor     bigint NOT NULL,
    PRIMARY KEY (tenant_id, namespace, plugin, experiment, phase, variant, visitor)
);

-- Conversion events plugins emit (env.PLUGYARD.track(name)) per variant and phase.
CREATE TABLE experiment_conversions (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    namespace   text NOT NULL,
    plugin      text NOT NULL,
    experiment  text NOT NULL,
    phase       integer NOT NULL,
    variant     text NOT NULL,
    event       text NOT NULL,
    count       bigint NOT NULL,
    PRIMARY KEY (tenant_id, namespace, plugin, experiment, phase, variant, event)
);
