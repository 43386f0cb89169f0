"""Downloads: pinned checksums, bad-checksum failure, archive members, derived-file rebuild.

Nothing here reaches the network: URLs are served from the shared copy via file:// or a
monkeypatched opener (those bytes are the ones the pinned URLs serve).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from etl import download
from etl.datasets import DATASETS
from etl.download import RemoteFile, ensure_dataset, fetch_file, fetch_verified
from etl.errors import DownloadError


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shared_opener(data_dir: Path, name: str):
    """An opener serving each RemoteFile URL of dataset ``name`` from the shared copy."""
    by_url = {f.url: data_dir / name / f.name for f in DATASETS[name].files}

    def opener(url: str):
        return open(by_url[url], "rb")

    return opener


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_pinned_checksums_match_the_shared_copy(data_dir, name):
    spec = DATASETS[name]
    assert spec.files, name
    for remote in spec.files:
        assert remote.url.startswith("https://"), remote.url
        assert _sha256(data_dir / name / remote.name) == remote.sha256, remote.name


def test_file_url_download_verifies_checksum(tmp_path, data_dir):
    src = data_dir / "filmtrust" / "trust.txt"
    good = next(f for f in DATASETS["filmtrust"].files if f.name == "trust.txt")
    out = fetch_verified(src.as_uri(), good.sha256, tmp_path / "dl" / "trust.txt")
    assert out.read_bytes() == src.read_bytes()


def test_bad_checksum_fails_and_leaves_no_partial_file(tmp_path, data_dir):
    src = data_dir / "filmtrust" / "trust.txt"
    dest = tmp_path / "dl" / "trust.txt"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch_verified(src.as_uri(), "0" * 64, dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_unreachable_url_is_a_download_error(tmp_path):
    with pytest.raises(DownloadError, match="cannot download"):
        fetch_verified((tmp_path / "missing.bin").as_uri(), "0" * 64, tmp_path / "out.bin")


def test_archive_member_is_extracted_and_verified(tmp_path):
    payload = b"customer_id date\n1 19970101\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("pkg/datasets/data.txt", payload)
    archive = tmp_path / "pkg.whl"
    archive.write_bytes(buf.getvalue())
    good = RemoteFile("data.txt", archive.as_uri(), hashlib.sha256(payload).hexdigest(), member="pkg/datasets/data.txt")
    assert fetch_file(good, tmp_path / "a").read_bytes() == payload
    bad = RemoteFile("data.txt", archive.as_uri(), "f" * 64, member="pkg/datasets/data.txt")
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch_file(bad, tmp_path / "b")
    assert not (tmp_path / "b" / "data.txt").exists()
    missing = RemoteFile("x.txt", archive.as_uri(), "f" * 64, member="pkg/nothing.txt")
    with pytest.raises(DownloadError, match="not in"):
        fetch_file(missing, tmp_path / "c")


def test_local_data_dir_is_used_as_is(tmp_path, data_dir):
    assert ensure_dataset("filmtrust", data_dir, tmp_path / "cache") == data_dir / "filmtrust"
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("name", ["ciao", "epinions"])
def test_download_rebuilds_derived_csvs_from_mat(tmp_path, data_dir, monkeypatch, name):
    monkeypatch.setattr(download, "_urlopen", _shared_opener(data_dir, name))
    folder = ensure_dataset(name, None, tmp_path / "cache")
    assert folder == tmp_path / "cache" / "datasets" / name
    for derived in ("ratings.csv.gz", "trust.csv.gz"):
        rebuilt = pd.read_csv(folder / derived)
        shared = pd.read_csv(data_dir / name / derived)
        pd.testing.assert_frame_equal(rebuilt, shared)
    # a second call reuses the completed download without fetching
    monkeypatch.setattr(download, "_urlopen", lambda url: pytest.fail("downloaded twice"))
    assert ensure_dataset(name, None, tmp_path / "cache") == folder


def test_download_with_a_corrupted_source_fails_cleanly(tmp_path, data_dir, monkeypatch):
    def corrupted(url: str):
        return io.BytesIO(b"not the file")

    monkeypatch.setattr(download, "_urlopen", corrupted)
    with pytest.raises(DownloadError, match="checksum mismatch"):
        ensure_dataset("filmtrust", None, tmp_path / "cache")
    folder = tmp_path / "cache" / "datasets" / "filmtrust"
    assert not (folder / ".complete").exists()
    assert [p.name for p in folder.iterdir()] == []
