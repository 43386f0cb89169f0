"""Versioned model artifacts under ``SOCIALREC_HOME/models/<dataset>/``.

Layout::

    models/<dataset>/<version>/manifest.json   what was trained, on what, with which params/metrics
    models/<dataset>/<version>/snapshot.npz    the training snapshot (id maps, seen items)
    models/<dataset>/<version>/<model>/        each model's config.json + state.pkl
    models/<dataset>/promoted.json             {"current": version, "history": [...]}

A version directory is written under a temporary name and renamed into place, and
``promoted.json`` is replaced atomically, so a killed run never leaves a half-written version
visible and the serving version is always complete.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from graph.snapshot import Snapshot
from recsys.protocol import Recommender
from recsys.registry import model_class


class VersionNotFoundError(FileNotFoundError):
    """No (promoted) model version exists for the dataset."""


class NonFiniteModelError(RuntimeError):
    """A model holds NaN/inf vectors; such a version is never saved (the CLI exits 1)."""


def nonfinite_report(models: dict[str, Recommender]) -> dict[str, dict[str, int]]:
    """Models whose user or item vectors hold NaN/inf: ``{model: {"users": n, "items": n}}``
    (rows with any non-finite entry); models without embeddings are not checked. Empty = healthy."""
    import numpy as np

    out: dict[str, dict[str, int]] = {}
    for name, model in models.items():
        counts = {}
        for what, getter in (("users", "user_embeddings"), ("items", "item_embeddings")):
            try:
                vecs = getattr(model, getter)()
            except Exception:  # noqa: BLE001 - a model without usable vectors is not checked
                vecs = None
            if vecs is None:
                continue
            vecs = np.asarray(vecs)
            if vecs.ndim == 2 and vecs.size:
                bad = int((~np.isfinite(vecs).all(axis=1)).sum())
                if bad:
                    counts[what] = bad
        if counts:
            out[name] = counts
    return out


def models_dir(home: str | os.PathLike, dataset: str) -> Path:
    """``SOCIALREC_HOME/models/<dataset>`` (dataset names with ``:``/``/`` are made path-safe)."""
    return Path(home) / "models" / dataset.replace(":", "_").replace("/", "_")


def new_version_id() -> str:
    """A sortable, unique version id: UTC time + random suffix, e.g. ``20261130T071502Z-3f9a``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:4]


@dataclass
class ModelVersion:
    """A loaded model version: the snapshot it was trained on and its fitted models.

    Attributes:
        version: version id.
        dataset: dataset name.
        manifest: the manifest dict (models, params, metrics, serving model).
        snapshot: training snapshot.
        models: name -> fitted :class:`Recommender`.
    """

    version: str
    dataset: str
    manifest: dict
    snapshot: Snapshot
    models: dict[str, Recommender]

    @property
    def serving_model(self) -> str:
        """Name of the model the API ranks with (the manifest's choice, else the first)."""
        return self.manifest.get("serving_model") or next(iter(self.models))


def save_version(
    home: str | os.PathLike,
    snapshot: Snapshot,
    models: dict[str, Recommender],
    manifest_extra: dict | None = None,
    version: str | None = None,
) -> Path:
    """Write a new version atomically (temp dir + rename). It is NOT promoted.

    Args:
        home: ``SOCIALREC_HOME``.
        snapshot: training snapshot.
        models: fitted models by name.
        manifest_extra: more manifest fields (metrics, serving_model, params, ...).
        version: id; default :func:`new_version_id`.
    Returns:
        The version directory.
    Raises:
        FileExistsError: the version id already exists.
        NonFiniteModelError: a model holds NaN/inf vectors (nothing is written; the promoted
            version keeps serving).
    """
    broken = nonfinite_report(models)
    if broken:
        raise NonFiniteModelError(f"refusing to save a version whose vectors hold NaN/inf: {broken}")
    version = version or new_version_id()
    root = models_dir(home, snapshot.dataset)
    final = root / version
    if final.exists():
        raise FileExistsError(final)
    tmp = root / f".tmp-{version}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        snapshot.save(tmp / "snapshot.npz")
        for name, model in models.items():
            model.save(tmp / name)
        manifest = {
            "version": version,
            "dataset": snapshot.dataset,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "models": {name: {"params": model.get_params()} for name, model in models.items()},
            "snapshot": snapshot.fingerprint(),
            **(manifest_extra or {}),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def promote(home: str | os.PathLike, dataset: str, version: str) -> None:
    """Make ``version`` the serving version (atomic replace of ``promoted.json``).

    Raises:
        VersionNotFoundError: the version directory does not exist.
    """
    root = models_dir(home, dataset)
    if not (root / version / "manifest.json").exists():
        raise VersionNotFoundError(f"no version {version} for {dataset}")
    state = promoted_state(home, dataset)
    history = [v for v in state.get("history", []) if v != version] + [version]
    doc = {"current": version, "history": history, "promoted_at": time.time()}
    tmp = root / f".promoted.{uuid.uuid4().hex}.json"
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, root / "promoted.json")


def promoted_state(home: str | os.PathLike, dataset: str) -> dict:
    """Contents of ``promoted.json`` (``{}`` when nothing was promoted)."""
    path = models_dir(home, dataset) / "promoted.json"
    return json.loads(path.read_text()) if path.exists() else {}


def current_version(home: str | os.PathLike, dataset: str) -> str:
    """The promoted version id. Raises VersionNotFoundError when none is promoted."""
    state = promoted_state(home, dataset)
    if not state.get("current"):
        raise VersionNotFoundError(f"no promoted model version for {dataset!r}; run `socialrec train --dataset {dataset}`")
    return state["current"]


def promoted_datasets(home: str | os.PathLike) -> list[tuple[float, str]]:
    """``[(promoted_at, dataset), ...]`` newest first, for every dataset with a promoted version."""
    out = []
    for path in (Path(home) / "models").glob("*/promoted.json"):
        doc = json.loads(path.read_text())
        out.append((float(doc.get("promoted_at", 0)), path.parent.name))
    return sorted(out, reverse=True)


def load_version(home: str | os.PathLike, dataset: str, version: str | None = None) -> ModelVersion:
    """Load a version (default: the promoted one) with all its models.

    Raises:
        VersionNotFoundError: nothing promoted / no such version.
    """
    version = version or current_version(home, dataset)
    root = models_dir(home, dataset) / version
    if not (root / "manifest.json").exists():
        raise VersionNotFoundError(f"no version {version} for {dataset}")
    manifest = json.loads((root / "manifest.json").read_text())
    snapshot = Snapshot.load(root / "snapshot.npz")
    models = {name: model_class(name).load(root / name, snapshot) for name in manifest["models"]}
    return ModelVersion(version, manifest.get("dataset", dataset), manifest, snapshot, models)


# ============================================================================ retention / rollback
#: Versions ``prune`` keeps by default besides the promoted and the previous one (newest first).
DEFAULT_KEEP = 3


def list_versions(home: str | os.PathLike, dataset: str) -> list[dict]:
    """Every saved version of a dataset, newest first.

    Returns:
        ``[{"version", "created_at", "made_by", "serving_model", "promoted", "previous", "bytes"}]``;
        ``promoted`` marks the serving version, ``previous`` the one promoted before it (what
        ``rollback`` returns to).
    """
    root = models_dir(home, dataset)
    state = promoted_state(home, dataset)
    history = state.get("history", [])
    current = state.get("current")
    previous = _previous_of(history, current)
    out = []
    if not root.is_dir():
        return out
    for path in root.iterdir():
        if not path.is_dir() or path.name.startswith(".") or not (path / "manifest.json").exists():
            continue
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except (OSError, ValueError):
            manifest = {}
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        out.append({"version": path.name, "created_at": manifest.get("created_at"), "made_by": manifest.get("made_by"),
                    "serving_model": manifest.get("serving_model"), "promoted": path.name == current,
                    "previous": path.name == previous, "bytes": int(size)})
    return sorted(out, key=lambda v: v["version"], reverse=True)


def _previous_of(history: list[str], current: str | None) -> str | None:
    older = [v for v in history if v != current]
    return older[-1] if older else None


def prune_versions(home: str | os.PathLike, dataset: str, keep: int = DEFAULT_KEEP, dry_run: bool = False) -> dict:
    """Delete old versions: keep the promoted one, the previous one and the ``keep`` newest.

    Run it under the retrain lock (the CLI does) so a version being written is never touched.

    Args:
        keep: newest versions kept besides promoted/previous, >= 0.
        dry_run: report only.
    Returns:
        ``{"kept": [...], "deleted": [...], "freed_bytes": n, "dry_run": bool}``.
    Raises:
        ValueError: negative ``keep``.
    """
    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep}")
    versions = list_versions(home, dataset)
    protected = {v["version"] for v in versions if v["promoted"] or v["previous"]}
    newest = [v["version"] for v in versions if v["version"] not in protected][:keep]
    kept = protected | set(newest)
    deleted, freed = [], 0
    for v in versions:
        if v["version"] in kept:
            continue
        deleted.append(v["version"])
        freed += v["bytes"]
        if not dry_run:
            shutil.rmtree(models_dir(home, dataset) / v["version"], ignore_errors=True)
    return {"kept": sorted(kept, reverse=True), "deleted": deleted, "freed_bytes": freed, "dry_run": dry_run}


def rollback(home: str | os.PathLike, dataset: str, to: str | None = None) -> dict:
    """Promote an earlier version again (default: the previous one).

    Returns:
        ``{"current": version, "was": version}``.
    Raises:
        VersionNotFoundError: nothing promoted, no previous version, or ``to`` does not exist.
    """
    state = promoted_state(home, dataset)
    was = state.get("current")
    target = to or _previous_of(state.get("history", []), was)
    if not target:
        raise VersionNotFoundError(f"no previous version of {dataset!r} to roll back to")
    promote(home, dataset, target)
    return {"current": target, "was": was}
