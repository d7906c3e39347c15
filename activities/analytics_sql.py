# ruff: noqa: E501 - SQL text
"""Daily aggregates for communication analytics, kept exact by PostgreSQL triggers.

Every insert, update and delete of ``crm_activities`` and ``closed_interactions`` (whatever the code
path: services, bulk loads, admin, raw SQL) adjusts the aggregates in the same transaction, so they
always agree with the raw rows. A row counts while it is in ``activity_feed`` (activities not deleted;
closed interactions that did not log an activity of their own). Days are UTC days.

Writes only append to ``*_delta`` tables (buffered increments, like Sentry's counters): upserting the
same aggregate row over and over inside one import transaction grows a chain of row versions and made
every activity insert four times slower. Readers use the ``*_all`` views (base + pending deltas), so
figures are exact at every instant; ``analytics_fold()`` (Celery beat, every minute) moves the deltas into
the base tables.

Tables (all keyed tenant-first; 0 stands for "none" in team/agent/contact/account columns):
- analytics_daily: counts per (day, team, agent, type, source, direction): volume, channel mix, teams.
- analytics_team_daily: counts per (day, team, type, direction), with the handled / logged parts: volume,
  channel mix, the team table (far fewer rows than analytics_daily, whose agent dimension barely
  compresses a busy tenant's days).
- analytics_agent_daily: handled / logged per (day, team, agent): the agent table.
- analytics_contact_daily: counts per (contact, day, account, team, agent, type): engagement, per-contact.
- analytics_contact_summary: per contact n / first / last occurrence: recency and rhythm ("going quiet").
- analytics_interaction_response: per interaction first inbound and first agent reply after it.
- analytics_email_response: per inbound email with a contact, the previous email's time when that one was
  inbound too (the run goes on) and the next outbound email to the contact (the reply). A change to a
  contact's email only marks the contact in analytics_email_dirty (append-only, like the deltas); the fold
  recomputes marked contacts and readers compute marked contacts from the raw rows meanwhile.
"""

INSTALL = r"""
CREATE TABLE IF NOT EXISTS analytics_daily (
    tenant_id bigint NOT NULL,
    day date NOT NULL,
    team_id bigint NOT NULL DEFAULT 0,
    agent_id integer NOT NULL DEFAULT 0,
    type varchar(20) NOT NULL,
    source varchar(16) NOT NULL,
    direction varchar(10) NOT NULL,
    n integer NOT NULL,
    PRIMARY KEY (tenant_id, day, team_id, agent_id, type, source, direction)
);

CREATE TABLE IF NOT EXISTS analytics_contact_daily (
    tenant_id bigint NOT NULL,
    contact_id bigint NOT NULL,
    day date NOT NULL,
    account_id bigint NOT NULL DEFAULT 0,
    team_id bigint NOT NULL DEFAULT 0,
    agent_id integer NOT NULL DEFAULT 0,
    type varchar(20) NOT NULL,
    n integer NOT NULL,
    PRIMARY KEY (tenant_id, contact_id, day, account_id, team_id, agent_id, type)
);
CREATE INDEX IF NOT EXISTS analytics_contact_daily_day ON analytics_contact_daily (tenant_id, day);
-- Per-contact period totals of the engagement rankings as index-only scans (the table is in day order).
CREATE INDEX IF NOT EXISTS analytics_contact_daily_totals
    ON analytics_contact_daily (tenant_id, contact_id, day) INCLUDE (team_id, agent_id, n);
-- The account rankings read a period's account rows as one index-only range.
CREATE INDEX IF NOT EXISTS analytics_contact_daily_account_day
    ON analytics_contact_daily (tenant_id, day, account_id) INCLUDE (team_id, agent_id, n) WHERE account_id <> 0;
CREATE INDEX IF NOT EXISTS analytics_contact_daily_account
    ON analytics_contact_daily (tenant_id, account_id, day) WHERE account_id <> 0;

CREATE TABLE IF NOT EXISTS analytics_contact_summary (
    tenant_id bigint NOT NULL,
    contact_id bigint NOT NULL,
    n integer NOT NULL,
    first_at timestamptz NOT NULL,
    last_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, contact_id)
);
-- "Going quiet" examines contacts by the power of two of their usual gap (seconds), oldest silence first.
CREATE OR REPLACE FUNCTION analytics_gap_bucket(p_first timestamptz, p_last timestamptz, p_n integer)
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT GREATEST(floor(ln(GREATEST(date_part('epoch', p_last - p_first) / NULLIF(p_n - 1, 0), 1.0)) / ln(2.0)), 0)::integer $$;
-- A stored column, not an expression index: under row-level security only leakproof conditions become
-- index conditions, and ln() / date_part() are not.
ALTER TABLE analytics_contact_summary ADD COLUMN IF NOT EXISTS gap_bucket integer
    GENERATED ALWAYS AS (analytics_gap_bucket(first_at, last_at, n)) STORED;
CREATE INDEX IF NOT EXISTS analytics_contact_summary_quiet
    ON analytics_contact_summary (tenant_id, gap_bucket, last_at) WHERE n >= 3;
-- The most-engaged ranking examines contacts in descending all-time count (activities/analytics.py).
CREATE INDEX IF NOT EXISTS analytics_contact_summary_rank ON analytics_contact_summary (tenant_id, n DESC, contact_id);

CREATE TABLE IF NOT EXISTS analytics_interaction_response (
    interaction_id bigint PRIMARY KEY,
    tenant_id bigint NOT NULL,
    channel varchar(16) NOT NULL,
    team_id bigint NOT NULL DEFAULT 0,
    agent_id integer NOT NULL DEFAULT 0,
    contact_id bigint NOT NULL DEFAULT 0,
    first_in timestamptz,
    first_out timestamptz
);
CREATE INDEX IF NOT EXISTS analytics_interaction_response_day
    ON analytics_interaction_response (tenant_id, first_in) WHERE first_in IS NOT NULL;

CREATE TABLE IF NOT EXISTS analytics_email_response (
    activity_id bigint PRIMARY KEY,
    tenant_id bigint NOT NULL,
    contact_id bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    team_id bigint NOT NULL DEFAULT 0,
    agent_id integer NOT NULL DEFAULT 0,
    prev_in_at timestamptz,   -- the contact's previous email, when it was inbound too
    next_out_at timestamptz   -- the contact's first outbound email after this one; NULL: no reply yet
);
-- A period's samples as one index-only range.
CREATE INDEX IF NOT EXISTS analytics_email_response_day ON analytics_email_response (tenant_id, occurred_at)
    INCLUDE (team_id, agent_id, contact_id, prev_in_at, next_out_at);
CREATE INDEX IF NOT EXISTS analytics_email_response_contact
    ON analytics_email_response (tenant_id, contact_id, occurred_at);
CREATE TABLE IF NOT EXISTS analytics_email_dirty (tenant_id bigint NOT NULL, contact_id bigint NOT NULL);
CREATE INDEX IF NOT EXISTS analytics_email_dirty_tenant ON analytics_email_dirty (tenant_id, contact_id);

-- Per team (no agent, no source): volume, channel mix and the team table; a busy tenant's day is a few
-- hundred rows instead of thousands. handled / logged: the rows the team and agent tables count
-- (source 'interaction' of an interaction channel; source 'manual'). Keep the channel list in step with
-- activities.analytics.INTERACTION_TYPES.
CREATE TABLE IF NOT EXISTS analytics_team_daily (
    tenant_id bigint NOT NULL,
    day date NOT NULL,
    team_id bigint NOT NULL DEFAULT 0,
    type varchar(20) NOT NULL,
    direction varchar(10) NOT NULL,
    n integer NOT NULL,
    handled integer NOT NULL,
    logged integer NOT NULL,
    PRIMARY KEY (tenant_id, day, team_id, type, direction)
);
-- Per agent, only the handled / logged counts (rows with neither are not kept).
CREATE TABLE IF NOT EXISTS analytics_agent_daily (
    tenant_id bigint NOT NULL,
    day date NOT NULL,
    team_id bigint NOT NULL DEFAULT 0,
    agent_id integer NOT NULL DEFAULT 0,
    handled integer NOT NULL,
    logged integer NOT NULL,
    PRIMARY KEY (tenant_id, day, team_id, agent_id)
);
-- A manager's own rows outside their teams are read from analytics_daily by agent.
CREATE INDEX IF NOT EXISTS analytics_daily_agent ON analytics_daily (tenant_id, agent_id, day);
CREATE TABLE IF NOT EXISTS analytics_team_daily_delta (
    tenant_id bigint NOT NULL, day date NOT NULL, team_id bigint NOT NULL, type varchar(20) NOT NULL,
    direction varchar(10) NOT NULL, n integer NOT NULL, handled integer NOT NULL, logged integer NOT NULL
);
CREATE INDEX IF NOT EXISTS analytics_team_daily_delta_day ON analytics_team_daily_delta (tenant_id, day);
CREATE TABLE IF NOT EXISTS analytics_agent_daily_delta (
    tenant_id bigint NOT NULL, day date NOT NULL, team_id bigint NOT NULL, agent_id integer NOT NULL,
    handled integer NOT NULL, logged integer NOT NULL
);
CREATE INDEX IF NOT EXISTS analytics_agent_daily_delta_day ON analytics_agent_daily_delta (tenant_id, day);

CREATE TABLE IF NOT EXISTS analytics_daily_delta (
    tenant_id bigint NOT NULL, day date NOT NULL, team_id bigint NOT NULL, agent_id integer NOT NULL,
    type varchar(20) NOT NULL, source varchar(16) NOT NULL, direction varchar(10) NOT NULL, n integer NOT NULL
);
CREATE INDEX IF NOT EXISTS analytics_daily_delta_day ON analytics_daily_delta (tenant_id, day);
CREATE TABLE IF NOT EXISTS analytics_contact_daily_delta (
    tenant_id bigint NOT NULL, contact_id bigint NOT NULL, day date NOT NULL, account_id bigint NOT NULL,
    team_id bigint NOT NULL, agent_id integer NOT NULL, type varchar(20) NOT NULL, n integer NOT NULL
);
CREATE INDEX IF NOT EXISTS analytics_contact_daily_delta_contact ON analytics_contact_daily_delta (tenant_id, contact_id);
CREATE INDEX IF NOT EXISTS analytics_contact_daily_delta_day ON analytics_contact_daily_delta (tenant_id, day);
CREATE TABLE IF NOT EXISTS analytics_contact_summary_delta (
    tenant_id bigint NOT NULL, contact_id bigint NOT NULL, n integer NOT NULL,
    first_at timestamptz NOT NULL, last_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS analytics_contact_summary_delta_contact ON analytics_contact_summary_delta (tenant_id, contact_id);

CREATE OR REPLACE VIEW analytics_daily_all AS
SELECT tenant_id, day, team_id, agent_id, type, source, direction, n FROM analytics_daily
UNION ALL
SELECT tenant_id, day, team_id, agent_id, type, source, direction, n FROM analytics_daily_delta;

CREATE OR REPLACE VIEW analytics_team_daily_all AS
SELECT tenant_id, day, team_id, type, direction, n, handled, logged FROM analytics_team_daily
UNION ALL
SELECT tenant_id, day, team_id, type, direction, n, handled, logged FROM analytics_team_daily_delta;

CREATE OR REPLACE VIEW analytics_agent_daily_all AS
SELECT tenant_id, day, team_id, agent_id, handled, logged FROM analytics_agent_daily
UNION ALL
SELECT tenant_id, day, team_id, agent_id, handled, logged FROM analytics_agent_daily_delta;

CREATE OR REPLACE VIEW analytics_contact_daily_all AS
SELECT tenant_id, contact_id, day, account_id, team_id, agent_id, type, n FROM analytics_contact_daily
UNION ALL
SELECT tenant_id, contact_id, day, account_id, team_id, agent_id, type, n FROM analytics_contact_daily_delta;

CREATE OR REPLACE VIEW analytics_contact_summary_all AS
WITH pending AS (
    SELECT tenant_id, contact_id, sum(n)::integer AS n, min(first_at) AS first_at, max(last_at) AS last_at
      FROM analytics_contact_summary_delta GROUP BY 1, 2
)
SELECT s.tenant_id, s.contact_id, s.n + COALESCE(p.n, 0) AS n,
       LEAST(s.first_at, p.first_at) AS first_at, GREATEST(s.last_at, p.last_at) AS last_at
  FROM analytics_contact_summary s
  LEFT JOIN pending p ON p.tenant_id = s.tenant_id AND p.contact_id = s.contact_id
UNION ALL
SELECT p.tenant_id, p.contact_id, p.n, p.first_at, p.last_at
  FROM pending p
 WHERE NOT EXISTS (SELECT 1 FROM analytics_contact_summary s
                    WHERE s.tenant_id = p.tenant_id AND s.contact_id = p.contact_id);

-- Adjust the aggregates for one feed row by delta (+1 when it enters the feed, -1 when it leaves).
CREATE OR REPLACE FUNCTION analytics_apply(
    p_tenant bigint, p_at timestamptz, p_team bigint, p_agent integer, p_contact bigint, p_account bigint,
    p_type varchar, p_source varchar, p_direction varchar, p_delta integer, p_summary boolean
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_day date := (p_at AT TIME ZONE 'UTC')::date;
    v_handled integer := CASE WHEN p_source = 'interaction' AND p_type IN ('call', 'sms', 'whatsapp', 'chat')
                              THEN p_delta ELSE 0 END;
    v_logged integer := CASE WHEN p_source = 'manual' THEN p_delta ELSE 0 END;
BEGIN
    INSERT INTO analytics_daily_delta (tenant_id, day, team_id, agent_id, type, source, direction, n)
    VALUES (p_tenant, v_day, COALESCE(p_team, 0), COALESCE(p_agent, 0), p_type, p_source, p_direction, p_delta);
    INSERT INTO analytics_team_daily_delta (tenant_id, day, team_id, type, direction, n, handled, logged)
    VALUES (p_tenant, v_day, COALESCE(p_team, 0), p_type, p_direction, p_delta, v_handled, v_logged);
    IF v_handled <> 0 OR v_logged <> 0 THEN
        INSERT INTO analytics_agent_daily_delta (tenant_id, day, team_id, agent_id, handled, logged)
        VALUES (p_tenant, v_day, COALESCE(p_team, 0), COALESCE(p_agent, 0), v_handled, v_logged);
    END IF;
    IF p_contact IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO analytics_contact_daily_delta (tenant_id, contact_id, day, account_id, team_id, agent_id, type, n)
    VALUES (p_tenant, p_contact, v_day, COALESCE(p_account, 0), COALESCE(p_team, 0), COALESCE(p_agent, 0), p_type, p_delta);
    -- Inserts extend the summary incrementally (the ingestion fast path); updates and deletes recount
    -- the affected contacts exactly afterwards (analytics_recount_contact), so nothing is counted twice.
    IF p_delta > 0 AND p_summary THEN
        INSERT INTO analytics_contact_summary_delta (tenant_id, contact_id, n, first_at, last_at)
        VALUES (p_tenant, p_contact, p_delta, p_at, p_at);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION analytics_recount_contact(p_tenant bigint, p_contact bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_contact IS NULL THEN
        RETURN;
    END IF;
    -- Shared with other writers, exclusive with analytics_fold(): a fold never adds deltas onto a row
    -- that a recount has just replaced.
    PERFORM pg_advisory_xact_lock_shared(hashtext('analytics_fold'));
    DELETE FROM analytics_contact_summary WHERE tenant_id = p_tenant AND contact_id = p_contact;
    DELETE FROM analytics_contact_summary_delta WHERE tenant_id = p_tenant AND contact_id = p_contact;
    INSERT INTO analytics_contact_summary (tenant_id, contact_id, n, first_at, last_at)
    SELECT p_tenant, p_contact, count(*), min(f.occurred_at), max(f.occurred_at)
      FROM activity_feed f
     WHERE f.tenant_id = p_tenant AND f.contact_id = p_contact
    HAVING count(*) > 0;
END;
$$;

-- Move pending deltas into the base tables (exactly once each; deltas of transactions still running
-- stay for the next fold).
CREATE OR REPLACE FUNCTION analytics_fold() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('analytics_fold'));
    WITH moved AS (DELETE FROM analytics_daily_delta RETURNING *)
    INSERT INTO analytics_daily AS d (tenant_id, day, team_id, agent_id, type, source, direction, n)
    SELECT tenant_id, day, team_id, agent_id, type, source, direction, sum(n) FROM moved GROUP BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (tenant_id, day, team_id, agent_id, type, source, direction) DO UPDATE SET n = d.n + EXCLUDED.n;
    WITH moved AS (DELETE FROM analytics_team_daily_delta RETURNING *)
    INSERT INTO analytics_team_daily AS d (tenant_id, day, team_id, type, direction, n, handled, logged)
    SELECT tenant_id, day, team_id, type, direction, sum(n), sum(handled), sum(logged) FROM moved GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (tenant_id, day, team_id, type, direction) DO UPDATE
       SET n = d.n + EXCLUDED.n, handled = d.handled + EXCLUDED.handled, logged = d.logged + EXCLUDED.logged;
    WITH moved AS (DELETE FROM analytics_agent_daily_delta RETURNING *)
    INSERT INTO analytics_agent_daily AS d (tenant_id, day, team_id, agent_id, handled, logged)
    SELECT tenant_id, day, team_id, agent_id, sum(handled), sum(logged) FROM moved GROUP BY 1, 2, 3, 4
    ON CONFLICT (tenant_id, day, team_id, agent_id) DO UPDATE
       SET handled = d.handled + EXCLUDED.handled, logged = d.logged + EXCLUDED.logged;
    WITH moved AS (DELETE FROM analytics_contact_daily_delta RETURNING *)
    INSERT INTO analytics_contact_daily AS c (tenant_id, contact_id, day, account_id, team_id, agent_id, type, n)
    SELECT tenant_id, contact_id, day, account_id, team_id, agent_id, type, sum(n) FROM moved GROUP BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (tenant_id, contact_id, day, account_id, team_id, agent_id, type) DO UPDATE SET n = c.n + EXCLUDED.n;
    WITH moved AS (DELETE FROM analytics_contact_summary_delta RETURNING *)
    INSERT INTO analytics_contact_summary AS s (tenant_id, contact_id, n, first_at, last_at)
    SELECT tenant_id, contact_id, sum(n), min(first_at), max(last_at) FROM moved GROUP BY 1, 2
    ON CONFLICT (tenant_id, contact_id) DO UPDATE
       SET n = s.n + EXCLUDED.n, first_at = LEAST(s.first_at, EXCLUDED.first_at),
           last_at = GREATEST(s.last_at, EXCLUDED.last_at);
    PERFORM analytics_email_fold();
END;
$$;

CREATE OR REPLACE FUNCTION analytics_activity_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS NOT NULL THEN
        RETURN NULL;  -- stays out of the feed
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.deleted_at IS NULL THEN
        IF TG_OP = 'DELETE' OR NEW.deleted_at IS NOT NULL OR (OLD.occurred_at, OLD.team_id, OLD.user_id,
                OLD.contact_id, OLD.account_id, OLD.type, OLD.source, OLD.direction)
                IS DISTINCT FROM (NEW.occurred_at, NEW.team_id, NEW.user_id, NEW.contact_id, NEW.account_id,
                NEW.type, NEW.source, NEW.direction) THEN
            PERFORM analytics_apply(OLD.tenant_id, OLD.occurred_at, OLD.team_id, OLD.user_id, OLD.contact_id,
                OLD.account_id, OLD.type, OLD.source, OLD.direction, -1, false);
        ELSE
            RETURN NULL;  -- nothing the aggregates depend on changed
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.deleted_at IS NULL THEN
        PERFORM analytics_apply(NEW.tenant_id, NEW.occurred_at, NEW.team_id, NEW.user_id, NEW.contact_id,
            NEW.account_id, NEW.type, NEW.source, NEW.direction, 1, TG_OP = 'INSERT');
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM analytics_recount_contact(OLD.tenant_id, OLD.contact_id);
        IF TG_OP = 'UPDATE' AND NEW.contact_id IS DISTINCT FROM OLD.contact_id THEN
            PERFORM analytics_recount_contact(NEW.tenant_id, NEW.contact_id);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION analytics_closed_interaction_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND NOT OLD.activity_logged THEN
        IF TG_OP = 'DELETE' OR NEW.activity_logged OR (OLD.started_at, OLD.team_id, OLD.agent_id,
                OLD.contact_id, OLD.account_id, OLD.type, OLD.direction)
                IS DISTINCT FROM (NEW.started_at, NEW.team_id, NEW.agent_id, NEW.contact_id, NEW.account_id,
                NEW.type, NEW.direction) THEN
            PERFORM analytics_apply(OLD.tenant_id, OLD.started_at, OLD.team_id, OLD.agent_id, OLD.contact_id,
                OLD.account_id, OLD.type, 'interaction', OLD.direction, -1, false);
        ELSE
            RETURN NULL;
        END IF;
    ELSIF TG_OP = 'UPDATE' AND NEW.activity_logged THEN
        RETURN NULL;  -- stays out of the feed
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NOT NEW.activity_logged THEN
        PERFORM analytics_apply(NEW.tenant_id, NEW.started_at, NEW.team_id, NEW.agent_id, NEW.contact_id,
            NEW.account_id, NEW.type, 'interaction', NEW.direction, 1, TG_OP = 'INSERT');
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM analytics_recount_contact(OLD.tenant_id, OLD.contact_id);
        IF TG_OP = 'UPDATE' AND NEW.contact_id IS DISTINCT FROM OLD.contact_id THEN
            PERFORM analytics_recount_contact(NEW.tenant_id, NEW.contact_id);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

-- First inbound message and the first agent reply after it, per interaction, kept exact as messages
-- arrive in any order.
CREATE OR REPLACE FUNCTION analytics_refresh_response(p_interaction bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_in timestamptz;
    v_out timestamptz;
BEGIN
    SELECT min(sent_at) INTO v_in FROM contactcenter_interactionmessage
     WHERE interaction_id = p_interaction AND kind = 'message' AND direction = 'inbound';
    IF v_in IS NOT NULL THEN
        SELECT min(sent_at) INTO v_out FROM contactcenter_interactionmessage
         WHERE interaction_id = p_interaction AND kind = 'message' AND direction = 'outbound' AND sent_at >= v_in;
    END IF;
    INSERT INTO analytics_interaction_response AS r
           (interaction_id, tenant_id, channel, team_id, agent_id, contact_id, first_in, first_out)
    SELECT i.id, i.tenant_id, i.channel, COALESCE(i.team_id, 0), COALESCE(i.agent_id, 0), COALESCE(i.contact_id, 0),
           v_in, v_out
      FROM contactcenter_interaction i WHERE i.id = p_interaction
    ON CONFLICT (interaction_id) DO UPDATE
       SET first_in = EXCLUDED.first_in, first_out = EXCLUDED.first_out, team_id = EXCLUDED.team_id,
           agent_id = EXCLUDED.agent_id, contact_id = EXCLUDED.contact_id, channel = EXCLUDED.channel;
END;
$$;

CREATE OR REPLACE FUNCTION analytics_message_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM analytics_refresh_response(OLD.interaction_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND (TG_OP = 'INSERT' OR NEW.interaction_id <> OLD.interaction_id) THEN
        PERFORM analytics_refresh_response(NEW.interaction_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION analytics_interaction_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE analytics_interaction_response
       SET team_id = COALESCE(NEW.team_id, 0), agent_id = COALESCE(NEW.agent_id, 0),
           contact_id = COALESCE(NEW.contact_id, 0), channel = NEW.channel
     WHERE interaction_id = NEW.id;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS analytics_activity ON crm_activities;
CREATE TRIGGER analytics_activity AFTER INSERT OR UPDATE OR DELETE ON crm_activities
    FOR EACH ROW EXECUTE FUNCTION analytics_activity_trigger();
DROP TRIGGER IF EXISTS analytics_closed_interaction ON closed_interactions;
CREATE TRIGGER analytics_closed_interaction AFTER INSERT OR UPDATE OR DELETE ON closed_interactions
    FOR EACH ROW EXECUTE FUNCTION analytics_closed_interaction_trigger();
DROP TRIGGER IF EXISTS analytics_message ON contactcenter_interactionmessage;
CREATE TRIGGER analytics_message AFTER INSERT OR UPDATE OR DELETE ON contactcenter_interactionmessage
    FOR EACH ROW EXECUTE FUNCTION analytics_message_trigger();
DROP TRIGGER IF EXISTS analytics_interaction ON contactcenter_interaction;
CREATE TRIGGER analytics_interaction AFTER UPDATE OF team_id, agent_id, contact_id, channel
    ON contactcenter_interaction FOR EACH ROW EXECUTE FUNCTION analytics_interaction_trigger();

-- Recompute analytics_email_response for the given (tenant, contact) pairs, or for every contact when
-- both arrays are NULL: one ordered pass over each contact's emails (lag for the previous email; the first
-- outbound after a row as a running min in reverse order).
CREATE OR REPLACE FUNCTION analytics_email_fill(p_tenants bigint[], p_contacts bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    -- Two statements, not one with "p_tenants IS NULL OR ...": a cached generic plan of the latter could
    -- not use the contact index and would read every email on each fold.
    v_only text := '';
BEGIN
    IF p_tenants IS NULL THEN
        TRUNCATE analytics_email_response;
    ELSE
        DELETE FROM analytics_email_response r USING unnest(p_tenants, p_contacts) AS d(t, c)
         WHERE r.tenant_id = d.t AND r.contact_id = d.c;
        v_only := 'JOIN (SELECT DISTINCT t, c FROM unnest($1, $2) AS d(t, c)) d
                      ON a.tenant_id = d.t AND a.contact_id = d.c';
    END IF;
    EXECUTE format($sql$
    INSERT INTO analytics_email_response
           (activity_id, tenant_id, contact_id, occurred_at, team_id, agent_id, prev_in_at, next_out_at)
    SELECT id, tenant_id, contact_id, occurred_at, team_id, agent_id, prev_in_at, next_out_at
      FROM (SELECT a.id, a.tenant_id, a.contact_id, a.occurred_at, a.direction,
                   COALESCE(a.team_id, 0) AS team_id, COALESCE(a.user_id, 0) AS agent_id,
                   CASE WHEN lag(a.direction) OVER w = 'inbound' THEN lag(a.occurred_at) OVER w END AS prev_in_at,
                   min(a.occurred_at) FILTER (WHERE a.direction = 'outbound') OVER (
                       PARTITION BY a.tenant_id, a.contact_id ORDER BY a.occurred_at DESC, a.id DESC
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS next_out_at
              FROM crm_activities a %s
             WHERE a.type = 'email' AND a.deleted_at IS NULL AND a.contact_id IS NOT NULL
            WINDOW w AS (PARTITION BY a.tenant_id, a.contact_id ORDER BY a.occurred_at, a.id)) e
     WHERE direction = 'inbound'
     ORDER BY tenant_id, occurred_at$sql$, v_only) USING p_tenants, p_contacts;
END;
$$;

-- Recompute the contacts whose email changed (called by analytics_fold, under its lock). Marks of
-- transactions still running are not seen and stay for the next fold.
CREATE OR REPLACE FUNCTION analytics_email_fold() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_tenants bigint[];
    v_contacts bigint[];
BEGIN
    WITH moved AS (DELETE FROM analytics_email_dirty RETURNING tenant_id, contact_id),
         pairs AS (SELECT DISTINCT tenant_id, contact_id FROM moved)
    SELECT array_agg(tenant_id), array_agg(contact_id) INTO v_tenants, v_contacts FROM pairs;
    IF v_tenants IS NOT NULL THEN
        PERFORM analytics_email_fill(v_tenants, v_contacts);
    END IF;
END;
$$;

-- An email with a contact was written: mark its contact (before and after) for recomputation.
CREATE OR REPLACE FUNCTION analytics_email_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.type = 'email' AND OLD.contact_id IS NOT NULL THEN
        INSERT INTO analytics_email_dirty (tenant_id, contact_id) VALUES (OLD.tenant_id, OLD.contact_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.type = 'email' AND NEW.contact_id IS NOT NULL
       AND (TG_OP = 'INSERT' OR OLD.type <> 'email' OR NEW.contact_id IS DISTINCT FROM OLD.contact_id) THEN
        INSERT INTO analytics_email_dirty (tenant_id, contact_id) VALUES (NEW.tenant_id, NEW.contact_id);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS analytics_email_insert ON crm_activities;
CREATE TRIGGER analytics_email_insert AFTER INSERT ON crm_activities FOR EACH ROW
    WHEN (NEW.type = 'email' AND NEW.contact_id IS NOT NULL) EXECUTE FUNCTION analytics_email_trigger();
DROP TRIGGER IF EXISTS analytics_email_delete ON crm_activities;
CREATE TRIGGER analytics_email_delete AFTER DELETE ON crm_activities FOR EACH ROW
    WHEN (OLD.type = 'email' AND OLD.contact_id IS NOT NULL) EXECUTE FUNCTION analytics_email_trigger();
DROP TRIGGER IF EXISTS analytics_email_update ON crm_activities;
CREATE TRIGGER analytics_email_update AFTER UPDATE ON crm_activities FOR EACH ROW
    WHEN ((OLD.type = 'email' AND OLD.contact_id IS NOT NULL OR NEW.type = 'email' AND NEW.contact_id IS NOT NULL)
          AND (OLD.occurred_at, OLD.contact_id, OLD.type, OLD.direction, OLD.team_id, OLD.user_id, OLD.deleted_at)
              IS DISTINCT FROM
              (NEW.occurred_at, NEW.contact_id, NEW.type, NEW.direction, NEW.team_id, NEW.user_id, NEW.deleted_at))
    EXECUTE FUNCTION analytics_email_trigger();

-- A TRUNCATE of a source table (test flushes, maintenance) is not seen by row triggers: rebuild.
CREATE OR REPLACE FUNCTION analytics_truncate_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM analytics_rebuild();
    RETURN NULL;
END;
$$;

-- Rebuild every aggregate from the raw rows (after a bulk load with triggers disabled). Rows are written
-- in (tenant, day) order: a period's rows then sit on few pages (unordered, a 90-day read touched one page
-- per four rows); the fold appends new days in order afterwards.
CREATE OR REPLACE FUNCTION analytics_rebuild() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE analytics_daily, analytics_contact_daily, analytics_contact_summary, analytics_interaction_response,
             analytics_daily_delta, analytics_contact_daily_delta, analytics_contact_summary_delta,
             analytics_team_daily, analytics_team_daily_delta, analytics_agent_daily, analytics_agent_daily_delta,
             analytics_email_dirty;
    PERFORM analytics_email_fill(NULL, NULL);
    INSERT INTO analytics_daily (tenant_id, day, team_id, agent_id, type, source, direction, n)
    SELECT tenant_id, (occurred_at AT TIME ZONE 'UTC')::date, COALESCE(team_id, 0), COALESCE(agent_id, 0),
           type, source, direction, count(*)
      FROM activity_feed GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2;
    INSERT INTO analytics_team_daily (tenant_id, day, team_id, type, direction, n, handled, logged)
    SELECT tenant_id, day, team_id, type, direction, sum(n),
           COALESCE(sum(n) FILTER (WHERE source = 'interaction' AND type IN ('call', 'sms', 'whatsapp', 'chat')), 0),
           COALESCE(sum(n) FILTER (WHERE source = 'manual'), 0)
      FROM analytics_daily GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2;
    INSERT INTO analytics_agent_daily (tenant_id, day, team_id, agent_id, handled, logged)
    SELECT * FROM (
        SELECT tenant_id, day, team_id, agent_id,
               COALESCE(sum(n) FILTER (WHERE source = 'interaction' AND type IN ('call', 'sms', 'whatsapp', 'chat')), 0) AS handled,
               COALESCE(sum(n) FILTER (WHERE source = 'manual'), 0) AS logged
          FROM analytics_daily GROUP BY 1, 2, 3, 4) a
     WHERE handled <> 0 OR logged <> 0 ORDER BY 1, 2;
    INSERT INTO analytics_contact_daily (tenant_id, contact_id, day, account_id, team_id, agent_id, type, n)
    SELECT tenant_id, contact_id, (occurred_at AT TIME ZONE 'UTC')::date, COALESCE(account_id, 0),
           COALESCE(team_id, 0), COALESCE(agent_id, 0), type, count(*)
      FROM activity_feed WHERE contact_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 3;
    INSERT INTO analytics_contact_summary (tenant_id, contact_id, n, first_at, last_at)
    SELECT tenant_id, contact_id, count(*), min(occurred_at), max(occurred_at)
      FROM activity_feed WHERE contact_id IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2;
    INSERT INTO analytics_interaction_response
           (interaction_id, tenant_id, channel, team_id, agent_id, contact_id, first_in, first_out)
    SELECT i.id, i.tenant_id, i.channel, COALESCE(i.team_id, 0), COALESCE(i.agent_id, 0), COALESCE(i.contact_id, 0),
           fi.first_in,
           (SELECT min(m.sent_at) FROM contactcenter_interactionmessage m
             WHERE m.interaction_id = i.id AND m.kind = 'message' AND m.direction = 'outbound'
               AND m.sent_at >= fi.first_in)
      FROM contactcenter_interaction i
      JOIN (SELECT interaction_id, min(sent_at) AS first_in FROM contactcenter_interactionmessage
             WHERE kind = 'message' AND direction = 'inbound' GROUP BY 1) fi ON fi.interaction_id = i.id;
END;
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['crm_activities', 'closed_interactions', 'contactcenter_interactionmessage',
                             'contactcenter_interaction'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS analytics_truncate ON %I', t);
        EXECUTE format('CREATE TRIGGER analytics_truncate AFTER TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION analytics_truncate_trigger()', t);
    END LOOP;
END;
$$;
"""

UNINSTALL = r"""
DROP TRIGGER IF EXISTS analytics_email_insert ON crm_activities;
DROP TRIGGER IF EXISTS analytics_email_delete ON crm_activities;
DROP TRIGGER IF EXISTS analytics_email_update ON crm_activities;
DROP FUNCTION IF EXISTS analytics_email_trigger();
DROP FUNCTION IF EXISTS analytics_email_fold();
DROP FUNCTION IF EXISTS analytics_email_fill(bigint[], bigint[]);
DROP TABLE IF EXISTS analytics_email_response, analytics_email_dirty;
DROP TRIGGER IF EXISTS analytics_truncate ON crm_activities;
DROP TRIGGER IF EXISTS analytics_truncate ON closed_interactions;
DROP TRIGGER IF EXISTS analytics_truncate ON contactcenter_interactionmessage;
DROP TRIGGER IF EXISTS analytics_truncate ON contactcenter_interaction;
DROP FUNCTION IF EXISTS analytics_truncate_trigger();
DROP TRIGGER IF EXISTS analytics_activity ON crm_activities;
DROP TRIGGER IF EXISTS analytics_closed_interaction ON closed_interactions;
DROP TRIGGER IF EXISTS analytics_message ON contactcenter_interactionmessage;
DROP TRIGGER IF EXISTS analytics_interaction ON contactcenter_interaction;
DROP FUNCTION IF EXISTS analytics_rebuild();
DROP FUNCTION IF EXISTS analytics_interaction_trigger();
DROP FUNCTION IF EXISTS analytics_message_trigger();
DROP FUNCTION IF EXISTS analytics_refresh_response(bigint);
DROP FUNCTION IF EXISTS analytics_closed_interaction_trigger();
DROP FUNCTION IF EXISTS analytics_activity_trigger();
DROP FUNCTION IF EXISTS analytics_apply(bigint, timestamptz, bigint, integer, bigint, bigint, varchar, varchar,
                                        varchar, integer, boolean);
DROP FUNCTION IF EXISTS analytics_recount_contact(bigint, bigint);
DROP FUNCTION IF EXISTS analytics_fold();
DROP VIEW IF EXISTS analytics_daily_all, analytics_contact_daily_all, analytics_contact_summary_all,
                   analytics_team_daily_all, analytics_agent_daily_all;
DROP TABLE IF EXISTS analytics_team_daily, analytics_team_daily_delta, analytics_agent_daily,
                     analytics_agent_daily_delta;
DROP TABLE IF EXISTS analytics_daily_delta, analytics_contact_daily_delta, analytics_contact_summary_delta;
DROP TABLE IF EXISTS analytics_interaction_response, analytics_contact_summary, analytics_contact_daily,
                     analytics_daily;
DROP FUNCTION IF EXISTS analytics_gap_bucket(timestamptz, timestamptz, integer);
"""
