"""import_gc.importing(): no full collections while libraries import, then their objects frozen."""
from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
import threading

from cerebro_ops import import_gc

# In a new process: the test process's own collector is left as it is.
PROBE = textwrap.dedent("""
    import gc, json
    from cerebro_ops.import_gc import NO_FULL_COLLECTIONS, importing

    full = []
    gc.callbacks.append(lambda phase, info: full.append(1) if phase == "stop" and info["generation"] == 2 else None)
    before = gc.get_threshold()
    with importing():
        during = gc.get_threshold()
        kept = [[i] for i in range(400_000)]  # long-lived containers, as a library's import leaves them
        full_inside = len(full)
    after = gc.get_threshold()
    frozen = gc.get_freeze_count()
    more = [[i] for i in range(400_000)]  # the same outside: full collections run again
    print(json.dumps({"before": before, "during": during, "after": after, "full_inside": full_inside,
                      "full_after": len(full) - full_inside, "frozen": frozen,
                      "deferred": during[2] == NO_FULL_COLLECTIONS}))
""")


def test_no_full_collection_runs_inside_and_what_the_block_made_is_frozen():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["deferred"] and r["during"][:2] == r["before"][:2]
    assert r["full_inside"] == 0
    assert r["full_after"] > 0  # the control: the same allocations outside the block do trigger them
    assert r["after"] == r["before"]
    assert r["frozen"] >= 400_000


def test_full_collections_resume_only_when_the_last_overlapping_thread_leaves(monkeypatch):
    freezes = []
    monkeypatch.setattr(import_gc.gc, "freeze", lambda: freezes.append(gc.get_threshold()))
    before = gc.get_threshold()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with import_gc.importing():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second():
        first_in.wait(5)
        with import_gc.importing():
            second_in.set()
            first_out.wait(5)
            seen["after_first_left"] = (gc.get_threshold(), len(freezes))

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    finally:
        gc.set_threshold(*before)
    assert seen["after_first_left"] == ((*before[:2], import_gc.NO_FULL_COLLECTIONS), 0)
    assert freezes == [(*before[:2], import_gc.NO_FULL_COLLECTIONS)]  # once, before the threshold comes back
    assert gc.get_threshold() == before and import_gc._inside == 0


def test_a_failing_import_still_restores_the_threshold(monkeypatch):
    monkeypatch.setattr(import_gc.gc, "freeze", lambda: None)
    before = gc.get_threshold()
    try:
        with import_gc.importing():
            import cerebro_ops_no_such_module  # noqa: F401
    except ImportError:
        pass
    assert gc.get_threshold() == before and import_gc._inside == 0
