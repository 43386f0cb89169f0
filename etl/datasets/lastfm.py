"""Last.fm HetRec 2011 (``lastfm-hetrec2011``): play counts, friendships, artists and tags.

What becomes what:

* ``user_artists.dat`` (userID, artistID, weight) → ``interactions`` kind ``play``,
  value = listening count. ``ts`` = the FIRST date on which that user tagged that artist
  (``user_taggedartists.dat``, day resolution, 00:00 UTC) where such a tagging exists, NaN
  otherwise (most pairs were never tagged). Tag dates before 2002-01-01 (Last.fm's launch) are
  bogus — the file has 5 rows dated 1956/1957/1979 — and are ignored for this purpose.
* ``user_friends.dat`` (userID, friendID; both directions are already listed) → ``follows``.
* ``artists.dat`` (id, name, url, pictureURL; UTF-8) → ``items`` with ``title`` = name and
  ``category`` = the artist's most frequent tag (by number of user tag assignments; ties → the
  lowest tagID), NaN for artists nobody tagged. ``tags.dat`` is ISO-8859-1.
* ``users`` are derived from the loaded plays and friendships (no user file).

Source: GitHub leo0481/SocialLGN @ f844a417a9ae0402ee4593ff4d21fba2f5b17cb9, ``data/raw/lastfm/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from etl.datasets.spec import DatasetSpec
from etl.delimited import read_delimited
from etl.download import RemoteFile
from etl.schema import SourceTable
from etl.validate import ValidationRules

NAME = "lastfm-hetrec2011"
_BASE = "https://raw.githubusercontent.com/leo0481/SocialLGN/f844a417a9ae0402ee4593ff4d21fba2f5b17cb9/data/raw/lastfm/"
FILES = (
    RemoteFile("artists.dat", _BASE + "artists.dat", "c173881362c6b28551368fecb3c0be5a6a30a6cd859e1f5775413dfe46d48648"),
    RemoteFile("tags.dat", _BASE + "tags.dat", "c815d7216101fd0ba9b9c59fa2a011998d2fd076e0064d281ec4153d95ae8095"),
    RemoteFile("user_artists.dat", _BASE + "user_artists.dat", "254272fa721c3935e8be286d28c051b206844307128698ab4eaa41d483379416"),
    RemoteFile("user_friends.dat", _BASE + "user_friends.dat", "0360883a3557776e04fdebda851f2e5dd23e796cad7059b968acdebd528d13fa"),
    RemoteFile(
        "user_taggedartists.dat",
        _BASE + "user_taggedartists.dat",
        "c4a9ffae9ab47a9f9b2f0678ab1f7e5c1db4ca818837d8cddd1f5699c5bbf048",
    ),
    RemoteFile("readme.txt", _BASE + "readme.txt", "44c38757b3a24e68e844ac60c97ba7fd8e0f691cf1b00e9cf6bd8854df0dd64a"),
)
#: Tag dates before this (2002-01-01T00:00Z, Last.fm's launch year) are bogus and ignored.
EARLIEST_TAG_TS = 1_009_843_200.0


def _taggings(folder: Path) -> pd.DataFrame:
    """user_taggedartists.dat with a ``ts`` column (seconds, NaN for unparseable/bogus dates)."""
    tagged = read_delimited(
        folder / "user_taggedartists.dat", ("user", "artist", "tag", "day", "month", "year"), header=True
    )
    parts = {k: pd.to_numeric(tagged[k], errors="coerce") for k in ("year", "month", "day")}
    dates = pd.to_datetime(pd.DataFrame(parts), errors="coerce", utc=True)
    ts = ((dates - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(np.float64, na_value=np.nan)
    ts = np.where(ts < EARLIEST_TAG_TS, np.nan, ts)
    return tagged.assign(ts=ts)


def _top_tag(tagged: pd.DataFrame, tags: pd.DataFrame) -> pd.Series:
    """artist id -> most frequent tag value (ties → lowest numeric tagID)."""
    counts = tagged.groupby(["artist", "tag"], sort=False).size().rename("n").reset_index()
    counts["tag_num"] = pd.to_numeric(counts["tag"], errors="coerce")
    counts = counts.sort_values(["artist", "n", "tag_num"], ascending=[True, False, True], kind="stable")
    top = counts.drop_duplicates("artist", keep="first")
    names = tags.set_index("tag")["value"]
    names = names[~names.index.duplicated(keep="last")]
    return pd.Series(top["tag"].map(names).to_numpy(), index=top["artist"].to_numpy())


def read(folder: Path) -> dict[str, SourceTable]:
    """Read the Last.fm HetRec 2011 folder. See the module docstring for the mapping.

    Args:
        folder: directory holding the ``.dat`` files.
    Returns:
        ``items``, ``interactions``, ``follows`` source tables (raw user ids).
    Raises:
        EtlInputError: a file is missing or malformed.
    """
    plays = read_delimited(folder / "user_artists.dat", ("user_id", "item_id", "value"), header=True)
    friends = read_delimited(folder / "user_friends.dat", ("follower_id", "followee_id"), header=True)
    artists = read_delimited(folder / "artists.dat", ("item_id", "title", "url", "picture_url"), header=True)
    tags = read_delimited(folder / "tags.dat", ("tag", "value"), header=True, encoding="ISO-8859-1")
    tagged = _taggings(folder)

    first = tagged.dropna(subset=["ts"]).groupby(["user", "artist"], sort=False)["ts"].min()
    key = pd.MultiIndex.from_arrays([plays["user_id"], plays["item_id"]])
    plays["ts"] = first.reindex(key).to_numpy()
    plays["kind"] = "play"

    top = _top_tag(tagged, tags)
    artists["category"] = artists["item_id"].map(top)
    items = artists[["item_id", "category", "title", "_line"]]
    return {
        "items": SourceTable(items, "artists.dat"),
        "interactions": SourceTable(plays, "user_artists.dat"),
        "follows": SourceTable(friends, "user_friends.dat"),
    }


SPEC = DatasetSpec(
    name=NAME,
    read=read,
    rules=ValidationRules(),
    files=FILES,
    description="Last.fm HetRec 2011: 92,834 play counts, 25,434 friend edges, artist names and tags",
)
