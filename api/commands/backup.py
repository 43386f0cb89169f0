"""``socialrec backup`` / ``socialrec restore``: SOCIALREC_HOME (model versions, the SQLite event
journal, reports, value results) and the local Neo4j database, in one folder.

What a backup holds (``<to>/socialrec-backup-<UTC time>/``)::

    manifest.json        format, time, SHA-256 of every file, the journal files, the Neo4j dump
    home/...             SOCIALREC_HOME's files (without the Neo4j server's own folder)
    neo4j/neo4j.dump     ``neo4j-admin database dump neo4j`` of the local server (optional)

Online safety: SQLite files (``*.sqlite3``, ``*.sqlite``, ``*.db``; the event journal under
``queue/``) are copied with SQLite's online backup API (``sqlite3.Connection.backup``), which gives
a consistent snapshot while the API keeps appending; their ``-wal``/``-shm`` side files and lock
files are not copied. Other files are copied as they are; model versions are written by an
atomic rename, and half-written temporary folders (``.tmp*``, ``.promoted.*``) are skipped.

Neo4j: the Community edition dumps and loads only a stopped database. The local server of
``--neo4j-home`` (default: SOCIALREC_HOME when it has one) is dumped when stopped; when it is
running, ``--stop-neo4j`` stops it for the dump and starts it again with the same ports and
memory (a short outage: the API's event journal keeps every event meanwhile), otherwise the
command refuses (exit 1). ``--no-neo4j`` skips the database (e.g. a remote Neo4j with its own
backups). ``restore`` verifies every checksum first, then puts the files back (each by an atomic
replace; SQLite files through the backup API), then loads the dump (``neo4j-admin database load
--overwrite-destination``) with the same stop/start rule. Files that exist now but not in the
backup (e.g. newer model versions) are left in place; ``promoted.json`` comes back from the
backup, so the backed-up versions serve.

Exit codes: 0; 1 failure (server running without ``--stop-neo4j``, checksum mismatch, dump/load
failed); 2 bad input (no such backup folder).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

log = logging.getLogger("socialrec.backup")
SQLITE_SUFFIXES = (".sqlite3", ".sqlite", ".db")
SKIP_SUFFIXES = ("-wal", "-shm", "-journal", ".lock", ".pid")
FORMAT = 1


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _home_files(home: Path) -> list[Path]:
    """Files of SOCIALREC_HOME to back up (relative paths), without the Neo4j server's folder."""
    out = []
    for root, dirs, files in os.walk(home):
        rel_root = Path(root).relative_to(home)
        dirs[:] = sorted(d for d in dirs if not (rel_root == Path(".") and d == "neo4j")
                         and not d.startswith((".tmp", "tmp-")))
        for name in sorted(files):
            if name.endswith(SKIP_SUFFIXES) or name.startswith((".promoted.", ".tmp")):
                continue
            out.append(rel_root / name)
    return out


def sqlite_copy(src: Path, dst: Path) -> None:
    """Consistent copy of a live SQLite database with the online backup API (atomic at ``dst``)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp-restore")
    tmp.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(tmp)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    os.replace(tmp, dst)
    for side in ("-wal", "-shm"):  # stale side files of the replaced database would be replayed
        Path(str(dst) + side).unlink(missing_ok=True)


def _copy_atomic(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.restore-tmp")
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)


class _Neo4jPause:
    """Stop the local server of ``home`` for a dump/load and start it again afterwards (only when it
    was running and ``allowed``); raises when it runs and stopping is not allowed."""

    def __init__(self, home: Path, allowed: bool, password: str | None):
        self.home, self.allowed, self.password = home, allowed, password
        self.record: dict | None = None

    def __enter__(self):
        from graph import neo4j_server

        info = neo4j_server.status(self.home)
        if info["running"]:
            if not self.allowed:
                raise RuntimeError("the Neo4j server is running and Community dumps/loads only a stopped "
                                   "database: pass --stop-neo4j (a short outage) or stop it first")
            if not self.password:
                raise RuntimeError("set SOCIALREC_NEO4J_PASSWORD: the server is restarted after the dump")
            pid_file = Path(info["home"]) / "neo4j.pid"
            self.record = json.loads(pid_file.read_text())
            log.info("stopping Neo4j for the dump/load (it is started again afterwards)")
            neo4j_server.stop(self.home)
        return self

    def __exit__(self, *exc):
        from graph import neo4j_server

        if self.record:
            r = self.record
            neo4j_server.start(self.home, self.password, bolt_port=int(r["bolt_port"]), heap=r.get("heap", "2g"),
                               pagecache=r.get("pagecache", "512m"), http_port=r.get("http_port"))
            log.info("Neo4j is running again at %s", r["uri"])


def _neo4j_home(args, settings) -> Path | None:
    if args.no_neo4j:
        return None
    home = Path(args.neo4j_home) if args.neo4j_home else Path(settings.home)
    return home if (home / "neo4j" / "conf" / "neo4j.conf").exists() else None


def backup(home: Path, to: Path, neo4j_home: Path | None, stop_neo4j: bool = False, password: str | None = None) -> dict:
    """Back up ``home`` (and the local Neo4j of ``neo4j_home``) into a new folder under ``to``.

    Returns:
        The manifest (also written as ``manifest.json``), plus ``"path"``.
    Raises:
        RuntimeError: the server runs and ``stop_neo4j`` is False. graph.neo4j_server.Neo4jServerError:
        the dump failed. Nothing half-written is left under a final name: the folder is built as
        ``.partial-…`` and renamed at the end.
    """
    home, to = Path(home).resolve(), Path(to).resolve()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    final = to / f"socialrec-backup-{stamp}"
    n = 1
    while final.exists():
        n += 1
        final = to / f"socialrec-backup-{stamp}-{n}"
    work = to / f".partial-{final.name}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "home").mkdir(parents=True)
    files, journals = {}, []
    for rel in _home_files(home) if home.exists() else []:
        src, dst = home / rel, work / "home" / rel
        if rel.suffix in SQLITE_SUFFIXES:
            sqlite_copy(src, dst)
            journals.append(str(rel))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        files[str(rel)] = _sha256(dst)
    dump = None
    if neo4j_home is not None:
        from graph import neo4j_server

        with _Neo4jPause(neo4j_home, stop_neo4j, password):
            path = neo4j_server.dump(neo4j_home, work / "neo4j", "neo4j")
        dump = {"file": str(path.relative_to(work)), "database": "neo4j", "sha256": _sha256(path),
                "versions": neo4j_server.versions()}
    manifest = {"format": FORMAT, "created_at": stamp, "home": str(home), "files": files, "sqlite": journals,
                "neo4j": dump}
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2))
    os.replace(work, final)
    return {**manifest, "path": str(final)}


def restore(backup_dir: Path, home: Path, neo4j_home: Path | None, stop_neo4j: bool = False,
            password: str | None = None) -> dict:
    """Restore a :func:`backup` folder into ``home`` (and the database of ``neo4j_home``).

    Raises:
        FileNotFoundError: no manifest. ValueError: a checksum differs (nothing was restored).
        RuntimeError: the server runs and ``stop_neo4j`` is False.
    """
    backup_dir, home = Path(backup_dir).resolve(), Path(home).resolve()
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    for rel, digest in manifest["files"].items():
        if _sha256(backup_dir / "home" / rel) != digest:
            raise ValueError(f"{backup_dir / 'home' / rel}: checksum differs from the manifest; nothing restored")
    if manifest.get("neo4j") and _sha256(backup_dir / manifest["neo4j"]["file"]) != manifest["neo4j"]["sha256"]:
        raise ValueError("the Neo4j dump's checksum differs from the manifest; nothing restored")
    sqlite = set(manifest.get("sqlite", []))
    for rel in manifest["files"]:
        src, dst = backup_dir / "home" / rel, home / rel
        if rel in sqlite:
            sqlite_copy(src, dst)
        else:
            _copy_atomic(src, dst)
    loaded = False
    if manifest.get("neo4j") and neo4j_home is not None:
        from graph import neo4j_server

        with _Neo4jPause(neo4j_home, stop_neo4j, password):
            neo4j_server.load(neo4j_home, backup_dir / Path(manifest["neo4j"]["file"]).parent, manifest["neo4j"]["database"])
        loaded = True
    return {"restored_files": len(manifest["files"]), "sqlite": sorted(sqlite), "neo4j_loaded": loaded,
            "from": str(backup_dir)}


# ---------------------------------------------------------------------------- commands
def _run(args, fn) -> int:
    from api.cli import _emit, _settings

    settings = _settings(args)
    password = settings.neo4j_password.get_secret_value() if settings.neo4j_password else None
    try:
        out = fn(settings, password)
    except FileNotFoundError as exc:
        print(f"socialrec: bad input: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, ValueError) as exc:
        print(f"socialrec: error: {exc}", file=sys.stderr)
        return 1
    _emit(args, out)
    return 0


def cmd_backup(args) -> int:
    return _run(args, lambda s, pw: backup(Path(s.home), Path(args.to), _neo4j_home(args, s), args.stop_neo4j, pw))


def cmd_restore(args) -> int:
    def fn(s, pw):
        src = Path(args.source)
        if not (src / "manifest.json").exists():
            raise FileNotFoundError(f"{src}: not a socialrec backup (no manifest.json)")
        return restore(src, Path(s.home), _neo4j_home(args, s), args.stop_neo4j, pw)

    return _run(args, fn)


def register(sub, common) -> None:
    """Add ``socialrec backup`` and ``socialrec restore``."""
    for name, func, helptext in (
        ("backup", cmd_backup, "back up SOCIALREC_HOME (models, event journal) and the local Neo4j (dump)"),
        ("restore", cmd_restore, "restore a backup folder made by `socialrec backup`"),
    ):
        s = sub.add_parser(name, help=helptext)
        if name == "backup":
            s.add_argument("--to", required=True, help="folder that receives socialrec-backup-<time>/")
        else:
            s.add_argument("--from", dest="source", required=True, help="a socialrec-backup-<time>/ folder")
        s.add_argument("--neo4j-home", help="SOCIALREC_HOME of the local Neo4j server (default: SOCIALREC_HOME)")
        s.add_argument("--stop-neo4j", action="store_true",
                       help="stop a running local server for the dump/load and start it again")
        s.add_argument("--no-neo4j", action="store_true", help="files only, no Neo4j dump/load")
        s.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        s.set_defaults(func=func)
