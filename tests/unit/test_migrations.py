from pathlib import Path

import pytest

from plugyard import db
from plugyard.settings import PROJECT_ROOT


def test_project_migrations_are_numbered_in_order() -> None:
    found = db.discover(PROJECT_ROOT / "migrations")
    assert [m.version for m in found] == sorted({m.version for m in found})
    assert found[0].name.startswith("0001_")


def test_bad_migration_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "init.sql").write_text("SELECT 1")
    with pytest.raises(ValueError, match="NNNN_description"):
        db.discover(tmp_path)


def test_duplicate_numbers_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1")
    (tmp_path / "001_b.sql").write_text("SELECT 1")
    with pytest.raises(ValueError, match="share number 1"):
        db.discover(tmp_path)
