"""Interaction kinds of one pair get per-kind weights, not a sum of raw values (issue 14 item 16)."""

from __future__ import annotations

import pandas as pd
import pytest

from graph.snapshot import build_snapshot


def _snap(rows, weights=None):
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "kind", "value", "ts"])
    return build_snapshot("t", pd.DataFrame({"user_id": ["u"]}), pd.DataFrame({"item_id": ["i", "j"]}), inter,
                          pd.DataFrame({"follower_id": [], "followee_id": []}), kind_weights=weights)


def test_a_rating_is_not_added_to_a_purchase_quantity():
    rows = [("u", "i", "purchase", 2.0, 1.0), ("u", "i", "view", 1.0, 2.0), ("u", "i", "rating", 5.0, 3.0)]
    assert _snap(rows).interactions[0, 0] == pytest.approx(2 * 1.0 + 0.25 + 1.0)
    assert _snap(rows, {"view": 0.0, "rating": 2.0}).interactions[0, 0] == pytest.approx(2 + 0 + 2)


def test_a_single_kind_table_keeps_its_raw_values():
    assert _snap([("u", "i", "rating", 4.0, 1.0), ("u", "j", "rating", 2.0, 1.0)]).interactions.toarray().tolist() == [[4.0, 2.0]]


def test_kind_weights_come_from_settings_and_bad_ones_are_config_errors(tmp_path):
    from api.settings import ConfigError, Settings

    s = Settings(home=tmp_path, kind_weights="purchase=1, view=0.1")
    assert s.parsed_kind_weights() == {"purchase": 1.0, "view": 0.1}
    assert s.store_kwargs()["kind_weights"] == {"purchase": 1.0, "view": 0.1}
    with pytest.raises(ConfigError):
        Settings(home=tmp_path, kind_weights="view=-1").parsed_kind_weights()
    with pytest.raises(ConfigError):
        Settings(home=tmp_path, kind_weights="view").parsed_kind_weights()
