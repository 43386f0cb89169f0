"""Pseudonyms are deterministic, keyed and never the raw id."""

from __future__ import annotations

import pandas as pd
import pytest

from etl.pseudonymise import Pseudonymiser


def test_same_key_same_pseudonym():
    a, b = Pseudonymiser(b"key-1"), Pseudonymiser(b"key-1")
    assert a.user("42") == b.user("42")
    assert a.user("42") == a.user(" 42 ") == a.user(42)


def test_pseudonym_depends_on_key():
    assert Pseudonymiser(b"key-1").user("42") != Pseudonymiser(b"key-2").user("42")


def test_pseudonym_format_and_distinct_ids():
    p = Pseudonymiser(b"k")
    out = {p.user(str(i)) for i in range(5000)}
    assert len(out) == 5000
    assert all(s.startswith("u_") and len(s) == 22 and "42" != s for s in out)


def test_series_matches_scalar_and_keeps_nulls():
    p = Pseudonymiser(b"k")
    s = pd.Series(["7", None, "7", "8"], index=[10, 11, 12, 13])
    out = p.users(s)
    assert out.index.tolist() == [10, 11, 12, 13]
    assert out[10] == out[12] == p.user("7")
    assert out[13] == p.user("8")
    assert pd.isna(out[11])


def test_empty_key_refused():
    with pytest.raises(ValueError):
        Pseudonymiser(b"")
    with pytest.raises(TypeError):
        Pseudonymiser("text")  # type: ignore[arg-type]
    assert "key" in repr(Pseudonymiser(b"secret")) and "secret" not in repr(Pseudonymiser(b"secret"))
