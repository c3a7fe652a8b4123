"""Run ids become store directories one to one: no run id can be made to share another run's directory."""
from __future__ import annotations

import hashlib

import pytest

from cerebro_ops.core.errors import StoreError
from cerebro_ops.store import safe_run_id


def test_a_run_id_with_airflow_characters_maps_to_its_full_hash():
    rid = "manual__2026-01-01T00:00:00+00:00"
    assert safe_run_id(rid) == "manual__2026-01-01T00_00_00_00_00-" + hashlib.sha256(rid.encode()).hexdigest()
    assert safe_run_id("cli-20260101T000000-abc123") == "cli-20260101T000000-abc123"  # safe ids stay as they are


def test_no_run_id_poses_as_another_runs_mapped_name():
    victim = "scheduled__2026-01-01T00:00:00+00:00"
    mapped = safe_run_id(victim)
    # the attacker triggers a run whose id is the victim's directory name, or the old 8-digit form of it
    old_form = mapped.rsplit("-", 1)[0] + "-" + hashlib.sha256(victim.encode()).hexdigest()[:8]
    for posing in (mapped, old_form):
        assert safe_run_id(posing) != mapped
    # two ids differing only in characters that map to '_' stay apart
    assert safe_run_id("a:b") != safe_run_id("a+b") != safe_run_id("a_b")


def test_mapped_names_stay_short_enough_for_a_file_name():
    assert len(safe_run_id("x" * 300 + ":")) <= 255


@pytest.mark.parametrize("rid", ["", ".", ".."])
def test_unusable_run_ids_are_refused(rid):
    with pytest.raises(StoreError):
        safe_run_id(rid)
