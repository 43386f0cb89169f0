"""FilmTrust (``filmtrust``): movie ratings 0.5–4.0 and directed trust; no timestamps, no text.

What becomes what:

* ``ratings.txt`` (user item rating; space separated, no header) → ``interactions`` kind
  ``rating``, value on the 0.5–4.0 scale (anything outside it is quarantined ``out_of_range``).
  The file has 3 repeated (user, item) pairs; with no timestamps the LAST row in file order
  wins and the earlier ones are quarantined ``duplicate``.
* ``trust.txt`` (trustor trustee value; value is always 1) → ``follows`` trustor → trustee.
* ``users`` / ``items`` are derived from the loaded rows (trust-only users become nodes).

Source: GitHub Coder-Yu/QRec @ a141bb37cb7706b2f53b2eed5843de3269f9f37f, ``dataset/FilmTrust/``.
"""

from __future__ import annotations

from pathlib import Path

from etl.datasets.spec import DatasetSpec
from etl.delimited import read_delimited
from etl.download import RemoteFile
from etl.schema import SourceTable
from etl.validate import DEFAULT_VALUE_RANGES, ValidationRules, ValueRange

NAME = "filmtrust"
_BASE = "https://raw.githubusercontent.com/Coder-Yu/QRec/a141bb37cb7706b2f53b2eed5843de3269f9f37f/dataset/FilmTrust/"
FILES = (
    RemoteFile("ratings.txt", _BASE + "ratings.txt", "241167424e24d588e8871d68641e94ead98d5b3a4f0db01ef3181a74ad35e7a1"),
    RemoteFile("trust.txt", _BASE + "trust.txt", "64573a033add72b988a0fb140fdbc0ad3464cb9821f940007aff6fda44b09603"),
    RemoteFile("readme.txt", _BASE + "readme.txt", "8790048bef340f52a8e2abf40e8f7bff59aba4e37cb5dc3efdae3efd46922041"),
)
#: FilmTrust's rating scale: 0.5 to 4.0 in steps of 0.5.
RATING_SCALE = ValueRange(0.5, 4.0)


def read(folder: Path) -> dict[str, SourceTable]:
    """Read the FilmTrust folder (``ratings.txt``, ``trust.txt``).

    Args:
        folder: dataset directory.
    Returns:
        ``interactions`` and ``follows`` source tables (raw user ids).
    Raises:
        EtlInputError: a file is missing or malformed.
    """
    ratings = read_delimited(folder / "ratings.txt", ("user_id", "item_id", "value"), sep=" ")
    ratings["kind"] = "rating"
    trust = read_delimited(folder / "trust.txt", ("follower_id", "followee_id", "trust_value"), sep=" ")
    return {
        "interactions": SourceTable(ratings, "ratings.txt"),
        "follows": SourceTable(trust[["follower_id", "followee_id", "_line"]], "trust.txt"),
    }


SPEC = DatasetSpec(
    name=NAME,
    read=read,
    rules=ValidationRules(value_ranges={**DEFAULT_VALUE_RANGES, "rating": RATING_SCALE}, rating_range=RATING_SCALE),
    files=FILES,
    description="FilmTrust: 35,497 movie ratings (0.5-4) and 1,853 directed trust edges",
)
