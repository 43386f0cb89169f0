"""Amazon Review Data 2018, All Beauty 5-core (``amazon-all-beauty-5core-2018``): reviews with text.

What becomes what (one JSON object per line, gzip'd):

* every line → an ``interactions`` row (kind ``rating``, value = ``overall``, ts =
  ``unixReviewTime``) AND a ``reviews`` row (rating = ``overall``, helpfulness = ``vote`` parsed
  as a number — "1,234" → 1234, absent → NaN —, text = ``reviewText``, extra column ``summary``,
  ts = ``unixReviewTime``).
* ``review_id`` = ``"r_" + sha256(pseudonymised reviewer, asin, sha256 of the raw line)[:24]``:
  the 1,027 lines that are exact duplicates of an earlier line get the same id and are
  quarantined ``duplicate`` in ``reviews``; two different reviews of one product by one
  reviewer stay two reviews.
* ``interactions`` are keyed (user, item, kind), so every repeated (reviewer, asin) pair —
  1,177 surplus rows, the 1,027 exact copies included — is quarantined ``duplicate`` there
  (latest ``unixReviewTime`` wins, ties → last line).
* Not loaded: ``reviewerName`` (personal data), ``style``, ``image``, ``verified``,
  ``reviewTime`` (same day as ``unixReviewTime``).
* ``users`` and ``items`` (85 ASINs, no metadata) are derived from the loaded rows.

Source: GitHub steveksh/Product-Ratings-Classifier @ 7a5c69098df66768c97648ce1213c0d4ebf8924d,
``data/All_Beauty_5.json.gz``; originally https://nijianmo.github.io/amazon/ (Ni, Li & McAuley,
EMNLP 2019).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pandas as pd

from etl.datasets.spec import DatasetSpec
from etl.download import RemoteFile
from etl.errors import EtlInputError
from etl.schema import SourceTable
from etl.validate import ValidationRules

NAME = "amazon-all-beauty-5core-2018"
FILE = "All_Beauty_5.json.gz"
FILES = (
    RemoteFile(
        FILE,
        "https://raw.githubusercontent.com/steveksh/Product-Ratings-Classifier/"
        "7a5c69098df66768c97648ce1213c0d4ebf8924d/data/All_Beauty_5.json.gz",
        "4a6b1eb40c4f58328f3f34181a6ef00f8e3423d801128617cc408a83c9bd0027",
    ),
)


def _vote(value: object) -> object:
    """``vote`` is a string with thousands separators ("1,234"); keep it raw for the validator."""
    return value.replace(",", "") if isinstance(value, str) else value


def read_reviews_jsonl(path: Path) -> pd.DataFrame:
    """Parse the gzip'd JSON-lines review file.

    Args:
        path: ``All_Beauty_5.json.gz``.
    Returns:
        Frame ``user_id, item_id, overall, ts, text, summary, vote, _digest, _line`` (raw values;
        ``_digest`` = SHA-256 of the line's bytes, ``_line`` 1-based).
    Raises:
        EtlInputError: missing file, bad gzip, or a line that is not a JSON object.
    """
    if not path.exists():
        raise EtlInputError(path.name, 0, "", f"file not found: {path}")
    rows = []
    try:
        with gzip.open(path, "rb") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    rows.append({"_line": number})
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise EtlInputError(path.name, number, "", f"not valid JSON: {exc.msg}") from exc
                if not isinstance(obj, dict):
                    raise EtlInputError(path.name, number, "", "expected a JSON object per line")
                rows.append(
                    {
                        "user_id": obj.get("reviewerID"),
                        "item_id": obj.get("asin"),
                        "overall": obj.get("overall"),
                        "ts": obj.get("unixReviewTime"),
                        "text": obj.get("reviewText"),
                        "summary": obj.get("summary"),
                        "vote": _vote(obj.get("vote")),
                        "_digest": hashlib.sha256(line.rstrip(b"\r\n")).hexdigest(),
                        "_line": number,
                    }
                )
    except (OSError, EOFError) as exc:
        raise EtlInputError(path.name, 0, "", f"cannot read gzip: {exc}") from exc
    columns = ["user_id", "item_id", "overall", "ts", "text", "summary", "vote", "_digest", "_line"]
    return pd.DataFrame(rows, columns=columns).astype({"_line": "int64"})


def read(folder: Path) -> dict[str, SourceTable]:
    """Read the All Beauty 5-core folder.

    Args:
        folder: dataset directory.
    Returns:
        ``interactions`` and ``reviews`` source tables (raw reviewer ids).
    Raises:
        EtlInputError: see :func:`read_reviews_jsonl`.
    """
    raw = read_reviews_jsonl(folder / FILE)
    interactions = pd.DataFrame(
        {"user_id": raw["user_id"], "item_id": raw["item_id"], "kind": "rating", "value": raw["overall"],
         "ts": raw["ts"], "_line": raw["_line"]}
    )
    reviews = pd.DataFrame(
        {"user_id": raw["user_id"], "item_id": raw["item_id"], "rating": raw["overall"], "helpfulness": raw["vote"],
         "text": raw["text"], "ts": raw["ts"], "summary": raw["summary"], "_digest": raw["_digest"], "_line": raw["_line"]}
    )
    return {"interactions": SourceTable(interactions, FILE), "reviews": SourceTable(reviews, FILE)}


SPEC = DatasetSpec(
    name=NAME,
    read=read,
    rules=ValidationRules(review_key=("user_id", "item_id", "_digest")),
    files=FILES,
    description="Amazon 2018 All Beauty 5-core: 5,269 reviews with text (1,027 exact duplicate lines)",
)
