# ruff: noqa: E501 - long COPY column lists and row templates read better on one line
"""Load the benchmark dataset fast (COPY) into the bench database.

Shape at BENCH_SCALE=10m (``1m`` divides every count by ten):
- 20 tenants, 10,000,000 feed rows in all; the largest tenant has 3,000,000 activities and 1,000,000
  closed interactions (each with its Interaction row) and 200,000 contacts; the others follow a
  Zipf-like size curve;
- contacts are skewed: ten "heavy" contacts per tenant take 5 % of its rows (tens of thousands each at
  10m), the rest follow a power curve (most have a handful);
- summaries draw from a vocabulary of common words plus rare ones (``RARE_WORD`` about 1 row in 20,000);
- rows arrive in time order over three years (ids from the shared feed sequence, interleaved).

Indexes of the two big tables are dropped before the load and rebuilt after it, then ANALYZE. A marker
table ``bench_meta`` records the scale; a second run at the same scale reuses the data.

Usage: ``python -m bench.generate [--force]``
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg

from .db import SCALES, admin_url, bench_url, conninfo, db_name, scale_name, setup_django

TENANTS = 20
COMMON_WORDS = (
    "call invoice renewal meeting follow up demo pricing contract support ticket order delivery quote "
    "question feedback upgrade onboarding training billing refund complaint account password shipping "
    "schedule review proposal discount trial license integration report"
).split()
RARE_WORD = "zephyrine"  # ~1 in 20,000 summaries
MID_WORD = "quokka"  # ~1 in 500
FIRST = "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara Richard Susan".split()
LAST = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark"
).split()
RARE_SURNAME = "Quillfeather"  # a handful of contacts per tenant
ACT_TYPES = (
    ["email"] * 30
    + ["call"] * 20
    + ["note"] * 15
    + ["sms"] * 10
    + ["meeting"] * 8
    + ["task"] * 8
    + ["whatsapp"] * 5
    + ["contact_update"] * 3
    + ["lead_conversion"] * 1
)
ACT_SOURCES = ["manual"] * 50 + ["external"] * 30 + ["campaign"] * 10 + ["interaction"] * 10
DIRECTIONS = ["inbound", "outbound", "none"]
CHANNELS = [("webchat", "chat"), ("voice", "call"), ("whatsapp", "whatsapp"), ("sms", "sms")]
START = datetime(2023, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 3 * 365 * 24 * 3600


def tenant_sizes(total: int) -> list[tuple[int, int]]:
    """(activities, closed interactions) per tenant; tenant 0 is the largest (30 % + 10 %)."""
    sizes = [(total * 3 // 10, total // 10)]
    rest = total - sum(sizes[0])
    weights = [1 / (i + 1) ** 1.1 for i in range(TENANTS - 1)]
    norm = sum(weights)
    for w in weights:
        n = int(rest * w / norm)
        sizes.append((n * 3 // 4, n - n * 3 // 4))
    return sizes


def _ts(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat()


def _summary(rng: random.Random) -> str:
    words = rng.sample(COMMON_WORDS, 5)
    r = rng.random()
    if r < 1 / 20000:
        words[2] = RARE_WORD
    elif r < 1 / 500:
        words[2] = MID_WORD
    return " ".join(words) + f" #{rng.randrange(10**7)}"


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\t", " ").replace("\n", " ")


def _contact_picker(rng: random.Random, ids: list[int]):
    heavy = ids[:10]
    rest = ids[10:] or ids

    def pick():
        r = rng.random()
        if r < 0.10:
            return None
        if r < 0.15:
            return rng.choice(heavy)
        return rest[int(len(rest) * rng.random() ** 2.5)]

    return pick


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(conninfo(url), autocommit=True)


def loaded_scale(url: str) -> str | None:
    try:
        with connect(url) as conn:
            row = conn.execute("SELECT scale FROM bench_meta LIMIT 1").fetchone()
            return row[0] if row else None
    except psycopg.Error:
        return None


def recreate_database(url: str) -> None:
    name = db_name(url)
    with connect(admin_url(url)) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    scale = scale_name()
    url = bench_url()
    if loaded_scale(url) == scale and "--force" not in argv:
        print(f"bench data at scale {scale} already loaded in {db_name(url)}; reusing it (--force reloads)")
        setup_django()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)  # newer migrations (e.g. analytics aggregates) apply to the data
        return
    t0 = time.monotonic()
    print(f"creating {db_name(url)} and migrating ...", flush=True)
    recreate_database(url)
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    load(url, SCALES[scale], scale)
    print(f"loaded in {time.monotonic() - t0:.0f} s", flush=True)


def load(url: str, total: int, scale: str) -> None:
    from django.contrib.auth.hashers import make_password

    rng = random.Random(42)  # nosec B311  # reproducible synthetic data, not a secret
    password = make_password("bench")
    now = datetime.now(UTC).isoformat()
    sizes = tenant_sizes(total)
    contacts_top = total // 50  # 200k at 10m
    with connect(url) as conn:
        conn.execute("SET session_replication_role = replica")  # skip FK triggers during the bulk load
        conn.execute("SET maintenance_work_mem = '1GB'")
        idx = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN "
            "('crm_activities','closed_interactions','contactcenter_interaction') "
            "AND indexname NOT LIKE '%%pkey' AND indexdef NOT LIKE 'CREATE UNIQUE%%'"
        ).fetchall()
        for name, _ in idx:
            conn.execute(f'DROP INDEX "{name}"')

        tenant_ids, users, teams, contacts, leads, accounts = [], {}, {}, {}, {}, {}
        uid = 1000
        for t in range(TENANTS):
            tid = conn.execute(
                "INSERT INTO crm_tenant (created_at, updated_at, name, slug, is_active) "
                "VALUES (now(), now(), %s, %s, true) RETURNING id",
                [f"Bench {t}", f"bench-{t}"],
            ).fetchone()[0]
            tenant_ids.append(tid)
            team_ids = [
                conn.execute(
                    "INSERT INTO crm_team (created_at, updated_at, name, tenant_id) "
                    "VALUES (now(), now(), %s, %s) RETURNING id",
                    [f"Team {k}", tid],
                ).fetchone()[0]
                for k in range(5)
            ]
            teams[tid] = team_ids
            n_agents = 50 if t == 0 else 10
            users[tid] = []
            for k in range(n_agents):
                uid += 1
                role = "admin" if k == 0 else ("manager" if k == 1 else "agent")
                email = f"{role}{k}@bench{t}.test" if k > 1 else f"{role}@bench{t}.test"
                conn.execute(
                    "INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, "
                    "email, is_staff, is_active, date_joined) VALUES (%s,%s,false,%s,%s,%s,%s,false,true,now())",
                    [uid, password, email, rng.choice(FIRST), rng.choice(LAST), email],
                )
                mid = conn.execute(
                    "INSERT INTO crm_membership (created_at, updated_at, role, can_manage_email, is_active, "
                    "time_zone, user_id, tenant_id) VALUES (now(), now(), %s, %s, true, 'UTC', %s, %s) "
                    "RETURNING id",
                    [role, k < 2, uid, tid],
                ).fetchone()[0]
                team = team_ids[k % 5]
                conn.execute(
                    "INSERT INTO crm_membership_teams (membership_id, team_id) VALUES (%s, %s)", [mid, team]
                )
                users[tid].append((uid, team))
        conn.execute("SELECT setval(pg_get_serial_sequence('auth_user','id'), %s)", [uid + 1])

        # Entities: contacts, leads, accounts (COPY with explicit ids).
        next_id = {"c": 1, "l": 1, "a": 1}
        with conn.cursor() as cur:
            for t, tid in enumerate(tenant_ids):
                share = sum(sizes[t]) / sum(sizes[0])
                n_contacts = max(500, int(contacts_top * share))
                n_accounts, n_leads = max(50, n_contacts // 20), max(100, n_contacts // 4)
                accounts[tid] = list(range(next_id["a"], next_id["a"] + n_accounts))
                next_id["a"] += n_accounts
                with cur.copy(
                    "COPY crm_account (id, created_at, updated_at, name, domain, tenant_id) FROM STDIN"
                ) as cp:
                    cp.write(
                        "".join(
                            f"{i}\t{now}\t{now}\tAccount {i} {rng.choice(LAST)} Ltd\t\t{tid}\n"
                            for i in accounts[tid]
                        )
                    )
                contacts[tid] = list(range(next_id["c"], next_id["c"] + n_contacts))
                next_id["c"] += n_contacts
                lines = []
                for n, i in enumerate(contacts[tid]):
                    last = RARE_SURNAME if n % 5000 == 17 else rng.choice(LAST)
                    lines.append(
                        f"{i}\t{now}\t{now}\t{rng.choice(FIRST)} {last} {i}\t{{c{i}@bench.test}}\t{{}}\tcustomer\t"
                        f"{rng.choice(accounts[tid])}\t{tid}\n"
                    )
                with cur.copy(
                    "COPY crm_contact (id, created_at, updated_at, name, emails, phones, status, account_id, tenant_id) "
                    "FROM STDIN"
                ) as cp:
                    cp.write("".join(lines))
                leads[tid] = list(range(next_id["l"], next_id["l"] + n_leads))
                next_id["l"] += n_leads
                with cur.copy(
                    "COPY crm_lead (id, created_at, updated_at, name, email, phone, company, status, tenant_id) FROM STDIN"
                ) as cp:
                    cp.write(
                        "".join(
                            f"{i}\t{now}\t{now}\tLead {rng.choice(FIRST)} {rng.choice(LAST)} {i}\t\t\t\tnew\t{tid}\n"
                            for i in leads[tid]
                        )
                    )
        for table, key in (("crm_contact", "c"), ("crm_lead", "l"), ("crm_account", "a")):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}','id'), %s)", [next_id[key]])
        print(f"entities loaded: {sum(map(len, contacts.values()))} contacts", flush=True)

        # The feed: activities + closed interactions (+ their Interaction rows), in time order.
        feed_id = 0
        inter_id = 0
        t_load = time.monotonic()
        act_cols = (
            "id, type, source, direction, summary, body, first_message, done, changes, occurred_at, created_at, "
            "updated_at, account_id, contact_id, lead_id, team_id, tenant_id, user_id"
        )
        ci_cols = (
            "id, channel, type, direction, summary, first_message, message_count, started_at, closed_at, "
            "duration_seconds, activity_logged, account_id, agent_id, contact_id, lead_id, team_id, tenant_id, "
            "interaction_id"
        )
        it_cols = (
            "id, created_at, updated_at, external_id, channel, direction, status, started_at, account_id, agent_id, "
            "contact_id, lead_id, team_id, tenant_id"
        )
        chunk = 50_000
        with conn.cursor() as cur:
            for t, tid in enumerate(tenant_ids):
                n_act, n_ci = sizes[t]
                n = n_act + n_ci
                p_ci = n_ci / n if n else 0
                pick_contact = _contact_picker(rng, contacts[tid])
                agents = users[tid]
                acc, lds = accounts[tid], leads[tid]
                step = SPAN_SECONDS / max(n, 1)
                done = 0
                while done < n:
                    m = min(chunk, n - done)
                    a_lines, c_lines, i_lines = [], [], []
                    for k in range(done, done + m):
                        feed_id += 1
                        when = _ts(k * step + rng.random() * step)
                        agent, team = agents[int(len(agents) * rng.random() ** 1.5)]
                        contact = pick_contact()
                        cid = "\\N" if contact is None else contact
                        account = rng.choice(acc) if rng.random() < 0.3 else "\\N"
                        lead = rng.choice(lds) if rng.random() < 0.1 else "\\N"
                        summary = _summary(rng)
                        if rng.random() < p_ci:
                            inter_id += 1
                            channel, typ = rng.choice(CHANNELS)
                            direction = "inbound" if rng.random() < 0.7 else "outbound"
                            first = f"Hello, I have a question about my {rng.choice(COMMON_WORDS)}"
                            i_lines.append(
                                f"{inter_id}\t{now}\t{now}\tb{inter_id}\t{channel}\t{direction}\tclosed\t{when}\t"
                                f"{account}\t{agent}\t{cid}\t{lead}\t{team}\t{tid}\n"
                            )
                            c_lines.append(
                                f"{feed_id}\t{channel}\t{typ}\t{direction}\t{summary}\t{first}\t5\t{when}\t{when}\t"
                                f"120\tf\t{account}\t{agent}\t{cid}\t{lead}\t{team}\t{tid}\t{inter_id}\n"
                            )
                        else:
                            typ = rng.choice(ACT_TYPES)
                            source = rng.choice(ACT_SOURCES)
                            direction = rng.choice(DIRECTIONS)
                            first = (
                                f"Hi, following up on the {rng.choice(COMMON_WORDS)}"
                                if source == "interaction"
                                else ""
                            )
                            if rng.random() < 0.0005:
                                summary = '=HYPERLINK("http://x.test") ' + summary  # formula-looking text
                            a_lines.append(
                                f"{feed_id}\t{typ}\t{source}\t{direction}\t{_esc(summary)}\t\t{first}\tf\t{{}}\t{when}\t"
                                f"{when}\t{when}\t{account}\t{cid}\t{lead}\t{team}\t{tid}\t{agent}\n"
                            )
                    if a_lines:
                        with cur.copy(f"COPY crm_activities ({act_cols}) FROM STDIN") as cp:
                            cp.write("".join(a_lines))
                    if i_lines:
                        with cur.copy(f"COPY contactcenter_interaction ({it_cols}) FROM STDIN") as cp:
                            cp.write("".join(i_lines))
                        with cur.copy(f"COPY closed_interactions ({ci_cols}) FROM STDIN") as cp:
                            cp.write("".join(c_lines))
                    done += m
                rate = feed_id / max(time.monotonic() - t_load, 1e-9)
                print(
                    f"tenant {t}: {n_act} activities + {n_ci} closed interactions ({rate:,.0f} rows/s)",
                    flush=True,
                )
        conn.execute("SELECT setval('activity_feed_id_seq', %s)", [feed_id + 1])
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('contactcenter_interaction','id'), %s)", [inter_id + 1]
        )
        print("rebuilding indexes ...", flush=True)
        t_idx = time.monotonic()
        for _, ddl in idx:
            conn.execute(ddl)
        print(f"indexes rebuilt in {time.monotonic() - t_idx:.0f} s; analytics aggregates ...", flush=True)
        # Triggers were off for the load (replication role): build the analytics aggregates once.
        t_agg = time.monotonic()
        conn.execute("SELECT analytics_rebuild()")
        print(f"aggregates built in {time.monotonic() - t_agg:.0f} s; analyzing ...", flush=True)
        conn.execute("VACUUM ANALYZE")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_meta (scale text, feed_rows bigint, loaded_at timestamptz)"
        )
        conn.execute("DELETE FROM bench_meta")
        conn.execute("INSERT INTO bench_meta VALUES (%s, %s, now())", [scale, feed_id])


if __name__ == "__main__":
    main()
