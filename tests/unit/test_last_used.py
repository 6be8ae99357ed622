"""When a request writes its token's last-used time (plugyard.tenants.service.LastUsedClock)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from plugyard.tenants.schemas import LiveToken
from plugyard.tenants.service import LastUsedClock

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _token(last_used_at: datetime | None = None) -> LiveToken:
    return LiveToken(id=uuid.uuid4(), tenant_id=uuid.uuid4(), last_used_at=last_used_at)


def test_a_token_never_used_is_written_once_then_not_again_within_the_minute() -> None:
    clock = LastUsedClock()
    token = _token()
    assert clock.due(token, NOW)
    # Concurrent requests still see the old stored value: this process already wrote it.
    assert not clock.due(token, NOW)
    assert not clock.due(token, NOW + timedelta(seconds=30))


def test_a_recent_stored_time_means_no_write_an_old_one_means_a_write() -> None:
    clock = LastUsedClock()
    assert not clock.due(_token(NOW - timedelta(seconds=59)), NOW)
    assert clock.due(_token(NOW - timedelta(seconds=61)), NOW)


def test_the_map_stays_bounded_and_keeps_deciding() -> None:
    clock = LastUsedClock(max_tokens=3)
    tokens = [_token() for _ in range(10)]
    assert all(clock.due(t, NOW) for t in tokens)
    assert len(clock._written) <= 3
    assert not clock.due(tokens[-1], NOW)
