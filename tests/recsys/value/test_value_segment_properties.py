"""Segment profiles are written as Neo4j list properties (no JSON strings) with a readable label."""

from __future__ import annotations

import pandas as pd
import pytest

from recsys.value.pipeline import segment_label, segment_properties
from tests.graph.conftest import neo4j_conn, neo4j_store  # noqa: F401 - fixtures

SEGMENTS = pd.DataFrame([
    {"segment_id": "C00", "size": 2, "total_value": 10.0, "mean_value": 5.0, "churn_risk_share": 0.8,
     "top_categories": [{"category": "Books", "share": 0.6}, {"category": "Music", "share": 0.4}],
     "top_influencers": [{"user_id": "u_a", "influence": 0.3}, {"user_id": "u_b", "influence": 0.1}]},
    {"segment_id": "C01", "size": 1, "total_value": 1.0, "mean_value": 1.0, "churn_risk_share": None,
     "top_categories": [], "top_influencers": []},
])


def test_segment_properties_are_lists_of_primitives_with_a_label():
    props = segment_properties(SEGMENTS)
    c0 = props.iloc[0]
    assert c0["top_categories"] == ["Books", "Music"] and c0["top_category_shares"] == [0.6, 0.4]
    assert c0["top_influencers"] == ["u_a", "u_b"] and c0["top_influencer_scores"] == [0.3, 0.1]
    assert c0["label"] == "Books / Music · high value · at risk"
    assert props.iloc[1]["label"] == "no category · mid value" and props.iloc[1]["top_categories"] == []
    for col in props.columns:
        assert not any(isinstance(v, str) and v.startswith(("[", "{")) for v in props[col]), col


def test_segment_label_names_the_top_two_categories():
    assert segment_label([{"category": "A"}, {"category": "B"}, {"category": "C"}], "mid") == "A / B · mid value"


@pytest.mark.neo4j
def test_segments_in_neo4j_have_list_properties_cypher_can_index(neo4j_store):
    props = segment_properties(SEGMENTS)
    neo4j_store.write_segments(pd.DataFrame({"user_id": ["u_a", "u_b"], "segment_id": ["C00", "C01"]}), props)
    rows = neo4j_store.run(
        "MATCH (s:Segment {dataset: $ds}) RETURN s.id AS id, s.label AS label, s.top_categories[0] AS first, "
        "valueType(s.top_categories) AS type, size(s.top_influencers) AS n ORDER BY id")
    assert rows[0] == {"id": "C00", "label": "Books / Music · high value · at risk", "first": "Books",
                       "type": "LIST<STRING NOT NULL> NOT NULL", "n": 2}
    assert rows[1]["n"] == 0
