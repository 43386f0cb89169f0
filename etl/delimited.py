"""Read delimited text files into frames that remember each row's source line.

Used by the dataset readers (``etl/datasets/``) and the shop-export reader (:mod:`etl.shop`).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from etl.errors import EtlInputError

_LINE_IN_MESSAGE = re.compile(r"line (\d+)")


def read_delimited(
    path: Path,
    columns: Sequence[str],
    *,
    sep: str = "\t",
    header: bool = False,
    dtype: dict[str, object] | None = None,
    encoding: str = "utf-8",
    quoting: int = csv.QUOTE_NONE,
    display_name: str | None = None,
) -> pd.DataFrame:
    """Read a delimited text file (plain or .gz) with a fixed column layout.

    Args:
        path: the file; ``.gz`` is decompressed transparently. LF or CRLF line ends.
        columns: names given to the columns, in file order (a header line, if any, is skipped,
            not used for names).
        sep: field separator (a regex such as ``r"\\s+"`` selects pandas' python engine).
        header: True when the first line is a header.
        dtype: column -> dtype; columns not named are read as ``str`` (ids keep their exact text).
        encoding: text encoding, e.g. ``"ISO-8859-1"`` for lastfm ``tags.dat``.
        quoting: a :mod:`csv` quoting constant; QUOTE_NONE for the datasets' ``.dat`` files,
            whose names contain bare quote characters.
        display_name: name used in errors (defaults to the file name).
    Returns:
        Frame with ``columns`` plus ``_line`` (int64, 1-based physical line; header = 1).
        Blank lines are kept as all-null rows so line numbers stay exact (they are then
        quarantined as ``bad_id``).
    Raises:
        EtlInputError: file missing/unreadable, wrong encoding, or a line with too many fields.
    """
    name = display_name or path.name
    types = {c: str for c in columns}
    types.update(dtype or {})
    if not path.exists():
        raise EtlInputError(name, 0, "", f"file not found: {path}")
    try:
        frame = pd.read_csv(
            path,
            sep=sep,
            header=None,
            skiprows=1 if header else 0,
            names=list(columns),
            dtype=types,
            encoding=encoding,
            quoting=quoting,
            skip_blank_lines=False,
            keep_default_na=False,
            na_values=[""],
            engine="python" if len(sep) > 1 else "c",
        )
    except UnicodeDecodeError as exc:
        raise EtlInputError(name, 0, "", f"not valid {encoding} text ({exc.reason} at byte {exc.start})") from exc
    except (pd.errors.ParserError, ValueError) as exc:
        match = _LINE_IN_MESSAGE.search(str(exc))
        line = int(match.group(1)) if match else 0
        raise EtlInputError(name, line, "", f"cannot parse: {exc}") from exc
    except OSError as exc:
        raise EtlInputError(name, 0, "", f"cannot read: {exc}") from exc
    first = 2 if header else 1
    frame["_line"] = np.arange(first, first + len(frame), dtype=np.int64)
    return frame


def read_id_names(path: Path, encoding: str = "utf-8") -> dict[str, str]:
    """Read an ``id name`` file (first space separates; the name may contain spaces), e.g. ciao
    ``category.txt``.

    Args:
        path: the file (LF or CRLF).
        encoding: text encoding.
    Returns:
        id (str) -> name (str, stripped).
    Raises:
        EtlInputError: missing file or a non-empty line without a name.
    """
    if not path.exists():
        raise EtlInputError(path.name, 0, "", f"file not found: {path}")
    out: dict[str, str] = {}
    with open(path, encoding=encoding, newline="") as fh:
        for number, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.strip().split(None, 1)
            if len(parts) != 2:
                raise EtlInputError(path.name, number, "name", "expected 'id name'")
            out[parts[0]] = parts[1].strip()
    return out
