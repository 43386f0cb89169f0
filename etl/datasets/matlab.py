"""Rebuild the *derived* CSV files of ciao/epinions from their MATLAB originals.

``SOURCE.md`` of ciao and epinions marks ``ratings.csv.gz``/``trust.csv.gz`` as derived: the
same integer matrix as a ``.mat`` variable, written as CSV with a header, ids unchanged
(1-based). A download fetches the ``.mat`` files and calls :func:`mat_to_csv_gz` to rebuild them.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io

from etl.errors import EtlInputError


def load_mat_matrix(path: Path, variable: str, n_columns: int) -> np.ndarray:
    """Load one 2-D integer matrix from a MATLAB v5 file.

    Args:
        path: the ``.mat`` file.
        variable: variable name (``rating``, ``trustnetwork``...).
        n_columns: expected number of columns.
    Returns:
        (n_rows, n_columns) int64 array.
    Raises:
        EtlInputError: unreadable file, missing variable or wrong shape.
    """
    try:
        mat = scipy.io.loadmat(path, variable_names=[variable])
    except (OSError, ValueError, NotImplementedError) as exc:
        raise EtlInputError(path.name, 0, variable, f"cannot read MATLAB file: {exc}") from exc
    if variable not in mat:
        raise EtlInputError(path.name, 0, variable, "variable not found in MATLAB file")
    matrix = np.asarray(mat[variable])
    if matrix.ndim != 2 or matrix.shape[1] != n_columns:
        raise EtlInputError(path.name, 0, variable, f"expected (n, {n_columns}) matrix, got {matrix.shape}")
    return matrix.astype(np.int64)


def mat_to_csv_gz(mat_path: Path, variable: str, columns: Sequence[str], out_path: Path) -> int:
    """Write a ``.mat`` matrix as a gzip'd CSV with a header (atomic: temp file + rename).

    Args:
        mat_path: source ``.mat``.
        variable: matrix variable name.
        columns: header names, one per matrix column.
        out_path: destination ``.csv.gz``.
    Returns:
        Number of data rows written.
    Raises:
        EtlInputError: see :func:`load_mat_matrix`.
    """
    matrix = load_mat_matrix(mat_path, variable, len(columns))
    frame = pd.DataFrame(matrix, columns=list(columns))
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=out_path.parent)
    os.close(fd)
    try:
        with gzip.GzipFile(tmp, "wb", mtime=0) as gz:
            gz.write(frame.to_csv(index=False, lineterminator="\n").encode("ascii"))
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return int(len(frame))
