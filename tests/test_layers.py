"""The layers contract (tests/layers.py) holds for the project, and catches what it must."""

from __future__ import annotations

from pathlib import Path

from tests import layers


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_it_holds_for_the_project():
    assert layers.check() == []


def test_it_reports_an_import_pointing_up_even_inside_a_function(tmp_path):
    write(tmp_path, "resilience/calls.py", "def f():\n    from health import status\n")
    write(tmp_path, "health/status.py", "from resilience import calls\n")
    assert layers.check(tmp_path) == [
        "resilience/calls.py:2: resilience imports health: up from layer 3 to 1",
        "cycle between apps: health → resilience → health",
    ]


def test_it_reports_a_cycle_between_apps_of_one_layer(tmp_path):
    write(tmp_path, "marketplace/status.py", "import health.status\n")
    write(tmp_path, "health/views.py", "from marketplace.status import notices\n")
    assert layers.check(tmp_path) == ["cycle between apps: health → marketplace → health"]


def test_migrations_and_imports_within_an_app_do_not_count(tmp_path):
    write(tmp_path, "providers/migrations/0002_x.py", "from health import models\n")
    write(tmp_path, "providers/models.py", "from providers import gscore\nimport django\n")
    assert layers.check(tmp_path) == []
