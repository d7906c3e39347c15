"""docker-compose.yml (issue 10): valid for compose, and the production shape.

Validated offline by ``docker-compose config`` (the Debian package docker-compose, v1.29, which make test
installs; the compose v2 plugin when that is all there is): no Docker engine is needed. It prints the
file resolved (anchors merged, variables substituted), which the shape test reads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.plugins.services import _missing

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
# Throw-away values for the variables compose requires (${VAR:?...}).
SECRETS = {
    "POSTGRES_PASSWORD": "owner-pw",
    "APP_DB_PASSWORD": "app-pw",
    "SECRET_KEY": "throwaway-secret-key",
    "FIELD_ENCRYPTION_KEYS": "throwaway-fernet-key",
}
APP_SERVICES = ("migrate", "web", "worker", "worker-sync", "beat")


def _compose() -> list[str]:
    exe = shutil.which("docker-compose")
    if exe:
        return [exe]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:  # noqa: S603
        return [docker, "compose"]
    _missing("docker-compose", "docker-compose")
    raise AssertionError("unreachable")


def _config(tmp_path: Path, values: dict[str, str], *args: str, path: Path = COMPOSE_FILE):
    """``docker-compose config`` of ``path`` with only ``values`` as its variables (an env file of their
    own: neither this shell's environment nor a developer's .env leaks in)."""
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    return subprocess.run(  # noqa: S603 - the compose binary and fixed arguments
        [*_compose(), "--env-file", str(env_file), "-f", str(path), "config", *args],
        capture_output=True, text=True, env=env, cwd=path.parent, timeout=60,
    )  # fmt: skip


@pytest.fixture
def resolved(tmp_path) -> dict:
    done = _config(tmp_path, SECRETS)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def _queues(command: list[str]) -> list[str]:
    assert "-Q" in command, command
    return command[command.index("-Q") + 1].split(",")


def test_compose_file_is_valid(tmp_path):
    done = _config(tmp_path, SECRETS, "-q")
    assert done.returncode == 0, done.stderr


def test_compose_runs_the_production_shape(resolved):
    services = resolved["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "worker-sync", "beat"}

    # One image for every application service, in production mode, as the row-level-security role
    # (migrate alone as the owner, handing crm_app its password).
    for name in APP_SERVICES:
        service = services[name]
        assert service["image"] == "crm:latest"
        assert service["environment"]["DJANGO_ENV"] == "production"
        expected_user = "crm" if name == "migrate" else "crm_app"
        assert service["environment"]["DATABASE_URL"].startswith(f"postgres://{expected_user}:"), name
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert services["migrate"]["environment"]["DATABASE_APP_PASSWORD"] == SECRETS["APP_DB_PASSWORD"]

    # Migrations are a one-off that everything else waits for.
    migrate = services["migrate"]
    assert migrate["command"][:3] == ["python", "manage.py", "migrate"]
    assert migrate["restart"] == "no"
    assert "ports" not in migrate and "healthcheck" not in migrate
    for name in ("web", "worker", "worker-sync", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"] == {"condition": "service_healthy"}, name
        assert depends["redis"] == {"condition": "service_healthy"}, name

    # A production WSGI server (static files by WhiteNoise inside the app), published on 8000.
    web = services["web"]
    assert web["command"][0] in ("gunicorn", "granian")
    assert "crm.wsgi" in web["command"]
    assert any(str(port).endswith("8000") or port.get("target") == 8000 for port in web["ports"])

    # Health checks: web (readiness), postgres, redis, and every worker and beat.
    assert "/readyz" in " ".join(web["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "ping" in " ".join(services["redis"]["healthcheck"]["test"])
    for name in ("worker", "worker-sync", "beat"):
        assert services[name]["healthcheck"]["test"], name

    # A worker per queue group: syncs on their own, every queue of crm/settings.py consumed by exactly
    # one service, and the names the workers consume are the names the application publishes to.
    workers = {
        name: s
        for name, s in services.items()
        if s.get("command", [])[:4] == ["celery", "-A", "crm", "worker"]
    }
    assert set(workers) == {"worker", "worker-sync"}
    assert _queues(workers["worker-sync"]["command"]) == ["sync"]
    consumed = [queue for worker in workers.values() for queue in _queues(worker["command"])]
    assert sorted(consumed) == ["default", "mail", "sync"]
    published = {
        services["web"]["environment"][f"CELERY_{kind.upper()}_QUEUE"] for kind in ("default", "sync", "mail")
    }
    assert published == set(consumed)

    # Exactly one beat (a second would schedule every periodic task twice).
    beats = [
        name for name, s in services.items() if s.get("command", [])[:4] == ["celery", "-A", "crm", "beat"]
    ]
    assert beats == ["beat"]
    assert "deploy" not in services["beat"] and "scale" not in services["beat"]

    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]


def test_queue_names_and_concurrency_come_from_the_env_file(tmp_path):
    """Renamed queues (e.g. two deployments on one Redis) stay consistent between publishers and workers."""
    values = {**SECRETS, "CELERY_SYNC_QUEUE": "prod-sync", "CELERY_MAIL_QUEUE": "prod-mail"}
    values.update(CELERY_DEFAULT_QUEUE="prod-default", SYNC_WORKER_CONCURRENCY="8")
    done = _config(tmp_path, values)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]

    sync_command = services["worker-sync"]["command"]
    assert _queues(sync_command) == ["prod-sync"]
    assert sync_command[sync_command.index("--concurrency") + 1] == "8"
    assert _queues(services["worker"]["command"]) == ["prod-default", "prod-mail"]
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert environment["CELERY_SYNC_QUEUE"] == "prod-sync", name
        assert environment["CELERY_MAIL_QUEUE"] == "prod-mail", name
        assert environment["CELERY_DEFAULT_QUEUE"] == "prod-default", name


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_a_missing_secret_is_refused_with_its_name(tmp_path, secret):
    done = _config(tmp_path, {key: value for key, value in SECRETS.items() if key != secret}, "-q")

    assert done.returncode != 0
    assert f"set {secret} in .env" in done.stderr


@pytest.mark.parametrize(
    ("original", "broken", "named"),
    [
        # an unknown value of an enumerated field
        ("condition: service_completed_successfully", "condition: service_finished", "service_finished"),
        # an unknown service key
        ("  beat:\n    <<: *app\n", "  beat:\n    <<: *app\n    replicas_count: 2\n", "replicas_count"),
        # a dependency on a service that does not exist
        (
            "    redis:\n      condition: service_healthy",
            "    cache:\n      condition: service_healthy",
            "cache",
        ),
        # not YAML
        ("services:\n", "services:\n  - [\n", "line"),
    ],
    ids=["bad-condition", "unknown-key", "missing-dependency", "not-yaml"],
)
def test_an_invalid_compose_file_fails_the_check(tmp_path, original, broken, named):
    """The check can fail: the same file with one defect is rejected, and the error names the defect."""
    text = COMPOSE_FILE.read_text()
    assert original in text
    copy = tmp_path / "docker-compose.yml"
    copy.write_text(text.replace(original, broken, 1))

    done = _config(tmp_path, SECRETS, "-q", path=copy)

    assert done.returncode != 0, f"accepted:\n{copy.read_text()}"
    assert named in done.stderr
