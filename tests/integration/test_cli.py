"""The `plugyard` command as an operator runs it: migrate, serve (admin bootstrap), JSON logs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from tests.conftest import OUTPUT, ControlPlane, free_port


@pytest.fixture
async def empty_database(server_url: str, unique: str) -> AsyncIterator[str]:
    admin = await asyncpg.connect(server_url)
    name = f"plugyard_cli_{unique}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(urlsplit(server_url)._replace(path="/" + name))
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def _env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGYARD_")}
    return {**env, "DATABASE_URL": database_url, **extra}


def test_migrate_command_applies_then_reports_up_to_date(empty_database: str) -> None:
    cmd = [sys.executable, "-m", "plugyard", "migrate"]
    first = subprocess.run(cmd, env=_env(empty_database), capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert re.search(r"applied [1-9]\d* migration\(s\): 0001_initial", first.stdout)
    again = subprocess.run(cmd, env=_env(empty_database), capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "applied 0 migration(s) (up to date)" in again.stdout


def test_migrate_without_database_url_is_a_readable_error() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "plugyard", "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "DATABASE_URL is not set" in result.stderr
    assert "Traceback" not in result.stderr


def _serve_once(database_url: str, log_path: Path) -> tuple[str, ControlPlane]:
    # Without --no-migrate: serve migrates first, then bootstraps the admin token.
    cp = ControlPlane(_env(database_url, PLUGYARD_LOG_FORMAT="json"), free_port(), log_path, migrate=True)
    cp.start()
    return log_path.read_text(), cp


def test_first_start_prints_an_admin_token_once_and_logs_json(empty_database: str, unique: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    first_log = OUTPUT / f"serve-first-{unique}.log"
    output, cp = _serve_once(empty_database, first_log)
    try:
        match = re.search(r"admin token \(shown once, store it now\): (pyd_\S+)", output)
        assert match, output
        token = match.group(1)
        created = httpx.post(
            cp.url + "/v1/tenants",
            json={"slug": f"boot-{unique}", "name": "Boot"},
            headers={"authorization": f"Bearer {token}", "x-request-id": f"req-{unique}-0001"},
        )
        assert created.status_code == 201, created.text
    finally:
        cp.stop()
    log_text = first_log.read_text()
    # The token is printed once on the terminal but never appears in a log event.
    events = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    assert all(token not in json.dumps(e) for e in events)
    completed = [
        e
        for e in events
        if e.get("event") == "request_completed" and e.get("request_id") == f"req-{unique}-0001"
    ]
    assert len(completed) == 1
    assert completed[0]["status"] == 201
    assert completed[0]["method"] == "POST"
    assert any(
        e.get("event") == "tenant_created" and e.get("request_id") == f"req-{unique}-0001" for e in events
    )

    second_output, cp2 = _serve_once(empty_database, OUTPUT / f"serve-second-{unique}.log")
    cp2.stop()
    assert "admin token" not in second_output
