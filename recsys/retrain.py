"""The nightly retrain: snapshot → train → holdout evaluation → quality gate → save → write back → promote.

``socialrec retrain --json`` runs :func:`run_retrain`. Guarantees:

* **One run at a time**: an exclusive, non-blocking ``fcntl.flock`` on
  ``SOCIALREC_HOME/retrain/retrain.lock``; a second run fails fast with :class:`RetrainLocked`.
  The kernel drops the lock when the process dies, so a killed run never blocks the next one.
* **A killed run changes nothing that serves**: the new version is written under a temporary
  name and renamed into place (:func:`recsys.versions.save_version`), and it only becomes the
  serving version by the atomic replace of ``promoted.json`` in the very last step. Until then
  the API keeps serving the promoted version; half-written temporary folders of a killed run are
  removed by the next run.
* **Quality gate**: the candidate's serving model is evaluated on a temporal holdout (protocol
  ``temporal``; ``random-80-10-10`` when the data has no timestamps) and promoted only if no
  tracked metric is below the production version's recorded value by more than ``tolerance``
  (relative: 0.05 = 5 %). The holdout metrics are recorded in the new version's manifest, so the
  next run compares against them. A production version without recorded holdout metrics under
  the same protocol (e.g. one made by ``socialrec train``) cannot be compared: the gate passes and
  says so.

Progress is written to ``SOCIALREC_HOME/retrain/status.json`` (atomically) at every step, which
``GET /v1/admin/retrain`` reads; finished runs are appended to ``retrain/history.jsonl``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

log = logging.getLogger(__name__)

STEPS = ("lock", "snapshot", "train", "evaluate", "gate", "save", "write_back", "promote", "flip", "done")
TRACKED_METRICS = ("ndcg@10", "recall@10", "precision@10")


class RetrainLocked(RuntimeError):
    """Another retrain holds the lock."""


def retrain_dir(home: str | os.PathLike) -> Path:
    """``SOCIALREC_HOME/retrain`` (created)."""
    path = Path(home) / "retrain"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def retrain_lock(home: str | os.PathLike) -> Iterator[None]:
    """Hold the exclusive retrain lock for the ``with`` block.

    Raises:
        RetrainLocked: another process (or another open of the lock file) holds it.
    """
    path = retrain_dir(home) / "retrain.lock"
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RetrainLocked(f"another retrain is running (lock {path})") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_locked(home: str | os.PathLike) -> bool:
    """True while a retrain holds the lock."""
    try:
        with retrain_lock(home):
            return False
    except RetrainLocked:
        return True


def _write_json_atomic(path: Path, doc: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    os.replace(tmp, path)


def read_status(home: str | os.PathLike) -> dict:
    """The last run's status (``{}`` when none ran). A ``running`` status whose process is gone
    and whose lock is free is reported as ``interrupted``."""
    path = Path(home) / "retrain" / "status.json"
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if doc.get("state") == "running" and not is_locked(home) and not _pid_alive(doc.get("pid")):
        # the owner died (its lock went with it): say so in the file too, once
        doc.update(state="interrupted", interrupted_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   interrupted_step=doc.get("step"))
        try:
            _write_json_atomic(path, doc)
        except OSError:
            pass
    return doc


def _pid_alive(pid) -> bool:
    """True when a process with this id exists on this machine (and is not a zombie we own)."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed child not reaped yet) is dead for our purpose
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _recover_interrupted(home, dataset: str, status_path: Path) -> dict | None:
    """Under the lock: if the last run died mid-way, mark it ``interrupted`` in the history and
    delete the version folder it saved but never promoted. Returns what was done, or None."""
    from recsys.versions import models_dir, promoted_state

    if not status_path.exists():
        return None
    try:
        doc = json.loads(status_path.read_text())
    except (OSError, ValueError):
        return None
    if doc.get("state") not in ("running", "interrupted") or doc.get("dataset") != dataset:
        return None
    out = {"pid": doc.get("pid"), "step": doc.get("interrupted_step") or doc.get("step"), "removed_version": None}
    version = doc.get("version")
    state = promoted_state(home, dataset)
    if version and version != state.get("current") and version not in state.get("history", []):
        folder = models_dir(home, dataset) / version
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            out["removed_version"] = version
    doc.update(state="interrupted", recovered_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    with open(retrain_dir(home) / "history.jsonl", "a") as fh:
        fh.write(json.dumps(doc, default=str) + "\n")
    log.warning("retrain %s: the previous run (pid %s) died at step %s; marked interrupted, cleaned up",
                dataset, out["pid"], out["step"])
    return out


def quality_gate(candidate: dict, production: dict | None, tolerance: float, metrics=TRACKED_METRICS) -> dict:
    """Compare a candidate's holdout metrics with production's.

    Args:
        candidate: ``{"protocol", "model", "metrics": {metric: value}}`` of the new version.
        production: the same for the serving version, or None when it has none recorded.
        tolerance: allowed relative drop, >= 0 (0.05 = a metric may be up to 5 % lower).
        metrics: the tracked metric names.
    Returns:
        ``{"passed", "tolerance", "reason", "compared": {metric: {"candidate", "production",
        "min_allowed", "ok"}}}``.
    Raises:
        ValueError: negative tolerance.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    out = {"passed": True, "tolerance": tolerance, "compared": {}}
    broken = [m for m, v in (candidate.get("metrics") or {}).items() if not np.isfinite(float(v))]
    if broken or candidate.get("nonfinite"):
        out.update(passed=False, reason=f"the candidate is not finite (metrics {broken}, vectors {candidate.get('nonfinite') or {}})")
        return out
    if not production or not production.get("metrics"):
        out["reason"] = "no production holdout metrics recorded: nothing to compare against"
        return out
    if production.get("protocol") != candidate.get("protocol"):
        out["reason"] = f"production metrics were measured under {production.get('protocol')!r}, not {candidate.get('protocol')!r}"
        return out
    failed = []
    for m in metrics:
        if m not in production["metrics"] or m not in candidate["metrics"]:
            continue
        prod, cand = float(production["metrics"][m]), float(candidate["metrics"][m])
        floor = prod * (1.0 - tolerance)
        ok = cand >= floor - 1e-12
        out["compared"][m] = {"candidate": cand, "production": prod, "min_allowed": floor, "ok": ok}
        if not ok:
            failed.append(m)
    out["passed"] = not failed
    out["reason"] = (f"regressed beyond {tolerance:.1%}: {', '.join(failed)}" if failed
                     else f"no tracked metric regressed beyond {tolerance:.1%}")
    return out


def _clean_stale_temporaries(models_root: Path) -> list[str]:
    """Remove ``.tmp-*`` version folders a killed run left behind (call under the lock)."""
    removed = []
    if models_root.is_dir():
        for tmp in models_root.glob(".tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp.name)
        for tmp in models_root.glob(".promoted.*.json"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp.name)
    return removed


def write_back_models(store, snapshot, models: dict, serving_model: str, version_tag: str, k: int = 10) -> dict:
    """Write embeddings and scores of a version back to the store, under the version's own
    write-back slot (readers keep seeing the current slot until :func:`activate_write_back`).

    Writes ``<model>_embedding`` vectors for users and items of every model that has them,
    per-item ``popularity`` and per-user ``top_items`` (a list property: the serving model's top-k
    item ids, best first, seen filtered) as scores; each as ``<name>__<slot>`` in batches
    (:func:`graph.store.version_slot` of the version id, the part of ``version_tag`` before ``/``).
    Users whose vector is not finite are a bug upstream: the store refuses NaN (ValueError).

    Returns:
        ``{"slot", "vectors": {name: n_nodes}, "scores": {"Item": n, "User": n}}``.
    """
    from graph.store import slot_name, version_slot

    version = version_tag.split("/")[0]
    slot = version_slot(version)
    store.stage_write_back(slot, version, complete=False)
    out: dict = {"slot": slot, "vectors": {}, "scores": {}}
    for name, model in models.items():
        for label, vecs, ids in (("User", model.user_embeddings(), snapshot.user_ids), ("Item", model.item_embeddings(), snapshot.item_ids)):
            if vecs is not None and len(ids):
                out["vectors"][f"{label}.{name}_embedding"] = store.write_vectors(
                    label, ids, vecs, slot_name(f"{name}_embedding", slot), version_tag)
    popularity = np.diff(snapshot.interactions.tocsc().indptr).astype(np.float64)
    out["scores"]["Item"] = store.write_scores("Item", snapshot.item_ids, {slot_name("popularity", slot): popularity}, version_tag)
    if snapshot.n_users:
        idx, _ = models[serving_model].recommend(np.arange(snapshot.n_users), k=k, exclude_seen=True)
        tops = np.empty(len(idx), dtype=object)  # one list per user (a Neo4j list property), never 2-D
        for u, row in enumerate(idx):
            tops[u] = [str(snapshot.item_ids[j]) for j in row if j >= 0]
        out["scores"]["User"] = store.write_scores("User", snapshot.user_ids, {slot_name("top_items", slot): tops}, version_tag)
    store.stage_write_back(slot, version, complete=True)
    return out


def activate_write_back(store, version: str) -> dict:
    """After ``version`` was promoted: flip the store's readers to its slot (one small write),
    then delete every other slot (batched).

    Returns:
        ``{"current": slot, "dropped": [slots]}``.
    Raises:
        ValueError: the version's write-back is not complete (nothing flipped).
    """
    from graph.store import version_slot

    slot = version_slot(version)
    store.flip_write_back(slot)
    return {"current": slot, "dropped": store.drop_write_back_slots({slot})}


def repair_write_back(store, promoted: str | None) -> dict:
    """Make the store's write-back agree with the promoted version after a crash.

    A run killed after promoting but before flipping is finished (flip to the promoted
    version's slot when it is completely written); half-written slots of killed runs and
    slots of versions that lost are deleted. Idempotent.

    Returns:
        ``{"current", "flipped": bool, "dropped": [slots]}``.
    """
    from graph.store import version_slot

    state = store.write_back_state()
    flipped = False
    if promoted is not None:
        target = version_slot(promoted)
        staged = state.get("staged", {}).get(target, {})
        if state.get("current") != target and staged.get("complete"):
            store.flip_write_back(target)
            flipped = True
    current = store.write_back_slot()
    dropped = store.drop_write_back_slots({current} if current else set())
    return {"current": current, "flipped": flipped, "dropped": dropped}


def _holdout_of_manifest(snapshot, manifest: dict, protocol: str, seed: int) -> dict | None:
    """Holdout metrics of a version's serving configuration (its model name and saved params),
    refitted on ``snapshot`` under ``protocol``; None when the manifest names no usable model."""
    from recsys.evaluation import evaluate

    name = manifest.get("serving_model")
    params = (manifest.get("models") or {}).get(name, {}).get("params")
    if not name or params is None:
        return None
    held = evaluate(snapshot, protocol, [name], ks=(10, 20), seed=seed, tune_params=False, params={name: params})
    return {"protocol": protocol, "model": name,
            "metrics": {k: float(v) for k, v in held["models"][name].items() if "@" in k},
            "measured_by": "retrain (production version recorded no holdout)"}


def run_retrain(
    home: str | os.PathLike,
    dataset: str,
    open_store: Callable[[], object],
    models: list[str] | tuple[str, ...] = ("popular", "als", "itemcf"),
    tolerance: float = 0.05,
    tune_params: bool = True,
    with_value: bool = True,
    seed: int = 0,
    prepare_store: Callable[[object], object] | None = None,
    pause_at: str | None = None,
    manifest_extra: dict | None = None,
) -> dict:
    """Run the nightly retrain once (see the module docstring for the guarantees).

    Args:
        home: ``SOCIALREC_HOME``.
        dataset: the dataset namespace to retrain.
        open_store: () -> :class:`graph.store.GraphStore` of the dataset.
        models: model names to train (``popular`` is always added).
        tolerance: quality-gate tolerance (relative drop allowed per tracked metric).
        tune_params: tune hyper-parameters on a validation holdout.
        with_value: also recompute customer value and segments and write them back
            (:func:`recsys.value.pipeline.run_value_job`, when installed); a failure there is
            reported and does not stop the promotion.
        seed: split/model seed.
        prepare_store: optional callback on the open store before the snapshot (e.g. run the ETL
            when it is empty).
        manifest_extra: more manifest fields (e.g. ``pseudonym_key_id``).
        pause_at: testing aid: sleep for an hour once this step starts (so a test can kill the
            run at a known point).
    Returns:
        The JSON report: ``{"dataset", "state": "promoted"|"rejected", "version", "previous",
        "promoted", "protocol", "holdout", "gate", "write_back", "value", "seconds", "steps"}``.
    Raises:
        RetrainLocked: another run holds the lock. Exception: any step's failure (nothing was
        promoted; the status file says ``failed``).
    """
    from recsys.evaluation import evaluate
    from recsys.training import train_models
    from recsys.versions import VersionNotFoundError, current_version, models_dir, promote, save_version

    t0 = time.perf_counter()
    status_path = retrain_dir(home) / "status.json"
    report: dict = {"dataset": dataset, "pid": os.getpid(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "steps": {}}

    def step(name: str) -> None:
        report["step"] = name
        report["steps"][name] = round(time.perf_counter() - t0, 3)
        _write_json_atomic(status_path, {**report, "state": "running"})
        log.info("retrain %s: %s", dataset, name)
        if pause_at == name:
            time.sleep(3600)

    with retrain_lock(home):
        try:
            recovered = _recover_interrupted(home, dataset, status_path)
            step("lock")
            report["cleaned"] = _clean_stale_temporaries(models_dir(home, dataset))
            if recovered is not None:
                report["recovered"] = recovered
            try:
                previous = current_version(home, dataset)
            except VersionNotFoundError:
                previous = None
            report["previous"] = previous

            step("snapshot")
            store = open_store()
            try:
                if prepare_store is not None:
                    prepare_store(store)
                # a run killed between promote and flip, or during write-back: repair first
                report["write_back_repair"] = repair_write_back(store, previous)
                snapshot = store.snapshot()
            finally:
                store.close()
            if snapshot.interactions.nnz == 0:
                raise ValueError(f"the store holds no interactions for {dataset!r}")
            report["snapshot"] = snapshot.fingerprint()

            step("train")
            trained = train_models(snapshot, list(models), seed=seed, tune_params=tune_params)

            step("evaluate")
            protocol = "temporal" if snapshot.has_timestamps else "random-80-10-10"
            serving = trained.serving_model
            held = evaluate(snapshot, protocol, [serving], ks=(10, 20), seed=seed, tune_params=False,
                            params={serving: trained.params[serving]})
            metrics = {k: float(v) for k, v in held["models"][serving].items() if "@" in k}
            candidate = {"protocol": protocol, "model": serving, "metrics": metrics}
            from recsys.versions import nonfinite_report

            broken = nonfinite_report(trained.models)
            if broken:
                candidate["nonfinite"] = broken
            report["protocol"], report["holdout"] = protocol, candidate

            step("gate")
            production = None
            if previous is not None:
                manifest = json.loads((models_dir(home, dataset) / previous / "manifest.json").read_text())
                production = manifest.get("holdout")
                if production is None or production.get("protocol") != protocol:
                    # e.g. a version made by `socialrec train`, which records no holdout: measure the
                    # production configuration on the same holdout, so the gate still compares
                    production = _holdout_of_manifest(snapshot, manifest, protocol, seed)
                    report["production_holdout_measured"] = production is not None
            gate = quality_gate(candidate, production, tolerance)
            report["gate"] = gate
            if not gate["passed"]:
                report.update(state="rejected", promoted=False, version=None, seconds=round(time.perf_counter() - t0, 2))
                log.warning("retrain %s: quality gate rejected the candidate (%s); %s keeps serving", dataset, gate["reason"], previous)
                return _finish(home, status_path, report)

            step("save")
            path = save_version(home, snapshot, trained.models, {
                "serving_model": serving, "validation": trained.validation, "fit_seconds": trained.fit_seconds,
                "holdout": candidate, "gate": gate, "made_by": "retrain", "previous": previous,
                **(manifest_extra or {}),
            })
            version = path.name
            report["version"] = version

            step("write_back")
            store = open_store()
            try:
                report["write_back"] = write_back_models(store, snapshot, trained.models, serving, f"{version}/{serving}")
                if with_value:
                    report["value"] = _value_job(snapshot, store, home, f"{version}/{serving}")
            finally:
                store.close()

            step("promote")
            promote(home, dataset, version)
            step("flip")
            store = open_store()
            try:
                report["write_back"]["activated"] = activate_write_back(store, version)
            finally:
                store.close()
            report.update(state="promoted", promoted=True, seconds=round(time.perf_counter() - t0, 2))
            step("done")
            return _finish(home, status_path, report)
        except BaseException as exc:
            report.update(state="failed", promoted=False, error=f"{type(exc).__name__}: {exc}", seconds=round(time.perf_counter() - t0, 2))
            _finish(home, status_path, report)
            raise


def _value_job(snapshot, store, home, version_tag: str) -> dict:
    """Customer value + segments written back, when the value pipeline is installed."""
    try:
        from recsys.value.pipeline import run_value_job
    except ImportError:
        return {"skipped": "recsys.value.pipeline is not installed"}
    try:
        out = run_value_job(snapshot, store, home, version_tag)
        return {"written": out.get("written"), "result_dir": out.get("result_dir")}
    except Exception as exc:  # noqa: BLE001 - value is reported, it does not block the model
        log.warning("retrain: customer value step failed: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
        return {"error": f"{type(exc).__name__}: {exc}"}


def _finish(home, status_path: Path, report: dict) -> dict:
    report["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _write_json_atomic(status_path, report)
    with open(retrain_dir(home) / "history.jsonl", "a") as fh:
        fh.write(json.dumps(report, default=str) + "\n")
    return report


def retrain_metrics_text(home: str | os.PathLike) -> str:
    """Prometheus exposition lines for the nightly retrain, from ``retrain/history.jsonl``:
    ``socialrec_retrain_runs_total{outcome}`` (promoted / rejected / failed / interrupted) and
    ``socialrec_retrain_last_outcome{outcome}`` (1 for the last run's outcome), so a rejected
    nightly is visible to whoever watches the server. Empty string when no run is recorded."""
    path = Path(home) / "retrain" / "history.jsonl"
    if not path.exists():
        return ""
    counts: dict[str, int] = {}
    last = None
    for line in path.read_text().splitlines():
        try:
            state = str(json.loads(line).get("state", "unknown"))
        except ValueError:
            continue
        counts[state] = counts.get(state, 0) + 1
        last = state
    lines = ["# HELP socialrec_retrain_runs_total Nightly retrain runs by outcome (retrain/history.jsonl).",
             "# TYPE socialrec_retrain_runs_total counter"]
    lines += [f'socialrec_retrain_runs_total{{outcome="{k}"}} {v}' for k, v in sorted(counts.items())]
    lines += ["# HELP socialrec_retrain_last_outcome 1 for the outcome of the last nightly retrain.",
              "# TYPE socialrec_retrain_last_outcome gauge"]
    lines += [f'socialrec_retrain_last_outcome{{outcome="{k}"}} {int(k == last)}' for k in sorted(counts)]
    return "\n".join(lines) + "\n"
