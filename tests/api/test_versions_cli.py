"""`socialrec versions list|prune|rollback` and `socialrec events stats|prune` (issue 14 item 4)."""

from __future__ import annotations

import json
import time

import pytest

from api.cli import main


@pytest.fixture
def home(tiny_snapshot, tmp_path, monkeypatch):
    """Five saved versions v1..v5; v3 then v4 promoted (v4 serving, v3 previous)."""
    from recsys.models.popular import PopularModel
    from recsys.versions import promote, save_version

    for key in ("SOCIALREC_NEO4J_URI", "SOCIALREC_DATASET", "SOCIALREC_QUEUE_DIR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SOCIALREC_HOME", str(tmp_path))
    monkeypatch.setenv("SOCIALREC_MODE", "test")
    model = PopularModel().fit(tiny_snapshot)
    for i in range(1, 6):
        save_version(tmp_path, tiny_snapshot, {"popular": model}, {"serving_model": "popular"}, version=f"v{i}")
    promote(tmp_path, tiny_snapshot.dataset, "v3")
    promote(tmp_path, tiny_snapshot.dataset, "v4")
    return tmp_path, tiny_snapshot.dataset


def _json(capsys, argv) -> tuple[int, dict]:
    code = main(argv + ["--json"])
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_prune_never_deletes_the_promoted_or_previous_version(home, capsys):
    root, dataset = home
    code, listed = _json(capsys, ["versions", "list", "--dataset", dataset])
    assert code == 0 and [v["version"] for v in listed["versions"]] == ["v5", "v4", "v3", "v2", "v1"]
    assert [v["version"] for v in listed["versions"] if v["promoted"]] == ["v4"]
    code, dry = _json(capsys, ["versions", "prune", "--dataset", dataset, "--keep", "0", "--dry-run"])
    assert code == 0 and sorted(dry["deleted"]) == ["v1", "v2", "v5"] and (root / "models" / dataset / "v1").exists()
    code, out = _json(capsys, ["versions", "prune", "--dataset", dataset, "--keep", "1"])
    assert code == 0 and sorted(out["deleted"]) == ["v1", "v2"] and sorted(out["kept"]) == ["v3", "v4", "v5"]
    assert sorted(p.name for p in (root / "models" / dataset).iterdir() if p.is_dir()) == ["v3", "v4", "v5"]
    assert main(["versions", "prune", "--dataset", dataset, "--keep", "-1"]) == 2


def test_rollback_promotes_the_previous_version_and_rewrites_the_store(home, capsys):
    from graph.store import EmbeddedStore
    from recsys.versions import current_version

    root, dataset = home
    code, out = _json(capsys, ["versions", "rollback", "--dataset", dataset, "--store", "embedded"])
    assert code == 0 and out["current"] == "v3" and out["was"] == "v4"
    assert current_version(root, dataset) == "v3"
    store = EmbeddedStore(root / "store", dataset)
    assert store.write_back_slot() == "vv3" and set(store.read_scores("Item")["popularity_version"]) == {"v3/popular"}
    assert main(["versions", "rollback", "--dataset", dataset, "--to", "nope"]) == 2


def test_events_prune_deletes_old_delivered_events_and_keeps_registrations(home, capsys):
    from recsys.events import EventQueue, USER_REGISTRATION_PREFIX, registration_key, user_registration_rows

    root, _ = home
    queue = EventQueue(root / "queue")
    queue.enqueue("batch-000001", [("interactions", {"user_id": "u1", "item_id": "i1", "kind": "view", "value": 1.0, "ts": 1.0})])
    reg = user_registration_rows("u9", ["u1"], None)
    queue.enqueue(registration_key(USER_REGISTRATION_PREFIX, reg), reg)
    queue.mark_delivered([s for s, _, _ in queue.pending()])
    time.sleep(0.05)
    queue.close()
    code, out = _json(capsys, ["events", "prune", "--older-than-days", "0"])
    assert code == 0 and out["deleted"] == 1 and out["delivered"] == 2  # the registration's 2 rows stay
    code, stats = _json(capsys, ["events", "stats"])
    assert code == 0 and stats["pending"] == 0 and stats["batches"] == 2
