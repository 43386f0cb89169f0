"""Campaigns over HTTP (admin) and from the command line: assignment, events after launch -> lift, bad input."""

from __future__ import annotations

import time
import uuid

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.cli import main
from etl.pseudonymise import Pseudonymiser
from tests.api.conftest import auth


def _filmtrust(shared_data_dir) -> pd.DataFrame:
    return pd.read_csv(shared_data_dir / "filmtrust" / "ratings.txt", sep=" ", header=None, names=["u", "i", "r"])


@pytest.fixture(scope="module")
def admin(api_settings):
    with TestClient(create_app(api_settings), headers=auth("admin")) as c:
        yield c


def test_campaign_lifecycle_events_after_launch_give_the_lift(admin, client, api_settings, shared_data_dir):
    ratings = _filmtrust(shared_data_dir)
    users = sorted(ratings["u"].astype(str).unique())[:600]
    items = ratings["i"].astype(str).value_counts().index[:20].tolist()
    name = "api-lifecycle"  # fixed: the salted-hash arms (and so the realised lift) are the same every run
    launch = time.time() - 3600
    r = admin.post("/v1/campaigns", json={"name": name, "audience": users, "treatment_share": 0.5,
                                          "launched_at": launch, "cost_per_contact": 0.2, "margin": 0.5})
    assert r.status_code == 201, r.text
    assert r.json()["arm_sizes"] == {"treatment": 300, "control": 300}
    assert {row["covariate"] for row in r.json()["balance"]} >= {"pre_interactions", "followers"}
    assert admin.post("/v1/campaigns", json={"name": name, "audience": users}).status_code == 409
    assert client.get(f"/v1/campaigns/{name}").status_code == 403  # storefront key: not an admin
    assert admin.get("/v1/campaigns/no-such").status_code == 404
    bad = admin.post("/v1/campaigns", json={"name": f"{name}-x", "audience": users[:3] + users[:1]})
    assert bad.status_code == 422 and "twice" in bad.json()["detail"]
    assert admin.get(f"/v1/campaigns/{name}-x").status_code == 404  # nothing stored

    csv_text = admin.get(f"/v1/campaigns/{name}/assignments", params={"format": "csv"})
    assert csv_text.headers["content-type"].startswith("text/csv")
    frame = pd.read_csv(pd.io.common.StringIO(csv_text.text))
    assert list(frame.columns) == ["user_id", "arm", "stratum"] and len(frame) == 600
    assert csv_text.text == admin.get(f"/v1/campaigns/{name}/assignments").text  # the same bytes every time

    # purchases after the launch: 40 % of treated users buy, 15 % of control users
    pseudo = Pseudonymiser(api_settings.resolved_pseudonym_key()).user
    arm_of = dict(zip(frame["user_id"], frame["arm"]))
    events = []
    for j, raw in enumerate(users):
        share = 0.40 if arm_of[pseudo(raw)] == "treatment" else 0.15
        if (j * 7919 % 100) / 100 < share:
            events.append({"user_id": raw, "item_id": items[j % len(items)], "kind": "purchase", "value": 10.0,
                           "ts": launch + 60 + j})
    for s in range(0, len(events), 500):
        got = admin.post("/v1/events", json={"events": events[s:s + 500]}, headers={"Idempotency-Key": f"c-{uuid.uuid4().hex}"})
        assert got.status_code == 202, got.text
    assert admin.app.state.socialrec.events.replayer.drain(60)

    rep = admin.get(f"/v1/campaigns/{name}/report").json()
    conv = rep["outcomes"]["conversion"]
    assert rep["outcome_source"] == "events" and not rep["srm"]["flagged"]
    assert 0.15 < conv["lift"] < 0.35 and conv["ci"][0] > 0
    revenue = rep["outcomes"]["revenue"]
    assert revenue["incremental_revenue"] == pytest.approx(revenue["lift"] * 300)
    assert revenue["roi"] == pytest.approx((revenue["incremental_revenue"] * 0.5 - 0.2 * 300) / (0.2 * 300))
    by = admin.get(f"/v1/campaigns/{name}/report", params={"by": "stratum"}).json()["by"]
    assert by["outcomes"]["conversion"]["levels"][0]["level"] == "all"
    assert admin.get(f"/v1/campaigns/{name}/report", params={"by": "nothing"}).status_code == 422
    html = admin.get(f"/v1/campaigns/{name}/report", params={"format": "html", "by": "stratum"})
    assert html.headers["content-type"].startswith("text/html") and "data:image/png;base64" in html.text
    assert "Lift by stratum" in html.text


# ---------------------------------------------------------------------------- the command line
@pytest.fixture
def cli_env(monkeypatch, tmp_path, shared_data_dir):
    monkeypatch.setenv("SOCIALREC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SOCIALREC_DATA_DIR", str(shared_data_dir))
    monkeypatch.setenv("SOCIALREC_MODE", "test")
    monkeypatch.delenv("SOCIALREC_NEO4J_URI", raising=False)
    monkeypatch.delenv("SOCIALREC_DATASET", raising=False)
    return tmp_path


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_cli_assignment_is_byte_identical_across_two_runs(cli_env, monkeypatch, capsys):
    audience = _write(cli_env / "aud.csv", "user_id\n" + "\n".join(f"c{i}" for i in range(500)) + "\n")
    exports = []
    for run in ("one", "two"):
        monkeypatch.setenv("SOCIALREC_HOME", str(cli_env / run))
        assert main(["campaign", "create", "--dataset", "csv:shop", "--name", "welcome", "--audience", audience,
                     "--treatment-share", "0.5", "--json"]) == 0
        capsys.readouterr()
        assert main(["campaign", "export", "welcome", "--dataset", "csv:shop"]) == 0
        exports.append(capsys.readouterr().out.encode())
    assert exports[0] == exports[1] and exports[0].count(b"\n") == 501
    assert exports[0].count(b",treatment,") == 250


CAMPAIGN_TABLE = "customer_id,arm,visit,spend,history\n" + "".join(
    f"k{i},{'mail' if i % 2 else 'control'},{i % 3 == 0:d},{(i % 5) * 1.5},{i * 2.0}\n" for i in range(200))


@pytest.mark.parametrize("table, extra, where, words", [
    (CAMPAIGN_TABLE + "k3,control,0,0,1\n", [], ":202", "two arms"),                       # a customer in two arms
    (CAMPAIGN_TABLE, ["--outcomes", "visit,conversion"], ":1", "missing outcome column"),  # no conversion column
    (CAMPAIGN_TABLE + "k900,sms,0,0,1\n", ["--arms", "mail,control"], ":202", "unknown arm"),
    (CAMPAIGN_TABLE.replace("arm,", "treatment,", 1).replace(",mail,", ",2,").replace(",control,", ",0,"), [], ":3", "non-binary"),
])
def test_cli_bad_campaign_table_exits_2_with_file_line_and_stores_nothing(cli_env, capsys, table, extra, where, words):
    good = _write(cli_env / "good.csv", CAMPAIGN_TABLE)
    assert main(["campaign", "import", "--dataset", "csv:shop", "--name", "first", "--table", f"csv:{good}", "--pre", "history"]) == 0
    capsys.readouterr()
    assert main(["campaign", "export", "first", "--dataset", "csv:shop"]) == 0
    before = capsys.readouterr().out
    bad = _write(cli_env / "campaign.csv", table)
    code = main(["campaign", "import", "--dataset", "csv:shop", "--name", "second", "--table", f"csv:{bad}", *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"campaign.csv{where}" in err and words in err
    assert main(["campaign", "list", "--dataset", "csv:shop", "--json"]) == 0
    listed = capsys.readouterr().out
    assert '"first"' in listed and '"second"' not in listed
    assert main(["campaign", "export", "first", "--dataset", "csv:shop"]) == 0
    assert capsys.readouterr().out == before


def test_cli_audience_file_errors_name_the_line(cli_env, capsys):
    dup = _write(cli_env / "aud.csv", "user_id\nc1\nc2\nc1\n")
    assert main(["campaign", "create", "--dataset", "csv:shop", "--name", "x", "--audience", dup]) == 2
    assert "aud.csv:4" in capsys.readouterr().err
    nohead = _write(cli_env / "aud2.csv", "email\na@b\n")
    assert main(["campaign", "create", "--dataset", "csv:shop", "--name", "x", "--audience", nohead]) == 2
    assert "aud2.csv:1" in capsys.readouterr().err
    assert main(["campaign", "analyze", "nope", "--dataset", "csv:shop"]) == 2


def test_cli_analyze_an_imported_campaign_with_an_unknown_treatment_arm_exits_2(cli_env, capsys):
    good = _write(cli_env / "good.csv", CAMPAIGN_TABLE)
    assert main(["campaign", "import", "--dataset", "csv:shop", "--name", "t", "--table", f"csv:{good}", "--pre", "history"]) == 0
    assert main(["campaign", "analyze", "t", "--dataset", "csv:shop", "--treatment", "sms"]) == 2
    assert "unknown treatment arm" in capsys.readouterr().err
    assert main(["campaign", "analyze", "t", "--dataset", "csv:shop", "--json", "--no-report"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert set(out["outcomes"]) == {"visit", "spend"}
    assert {"lift", "ci", "cuped_lift", "srm_p", "incremental_revenue", "roi"} <= set(out["outcomes"]["spend"])


def test_cli_audience_from_a_segment_or_the_uplift_score_and_stratified(cli_env, capsys):
    import json

    import numpy as np

    from graph.store import EmbeddedStore

    store = EmbeddedStore(cli_env / "home" / "store", "csv:shop")
    ids = np.array([f"u_{i:04d}" for i in range(400)])
    store.upsert("users", pd.DataFrame({"user_id": ids}))
    rng = np.random.default_rng(2)
    store.write_scores("User", ids, {"segment": np.array([f"s{i % 4}" for i in range(400)]),
                                     "uplift": rng.normal(size=400)}, "test-v1")
    assert main(["campaign", "create", "--dataset", "csv:shop", "--name", "seg", "--segment", "s2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["campaign"]["n_assigned"] == 100 and out["campaign"]["source"] == "segment:s2"
    assert main(["campaign", "create", "--dataset", "csv:shop", "--name", "top", "--uplift-top", "60", "--stratify", "segment",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert abs(out["arm_sizes"]["treatment"] - out["arm_sizes"]["control"]) <= 4 and out["campaign"]["n_assigned"] == 60
    top = set(ids[np.argsort(-store.read_scores("User").set_index("id").loc[ids, "uplift"].to_numpy())[:60]])
    frame = store.read_assignments("top")
    assert set(frame["user_id"]) == top
    per = frame.groupby(["stratum", "arm"]).size().unstack(fill_value=0)
    assert (per["treatment"] - per["control"]).abs().max() <= 1  # every segment split in half
    assert main(["campaign", "create", "--dataset", "csv:shop", "--name", "none", "--segment", "s9"]) == 2
    assert "no users in segment" in capsys.readouterr().err


def test_cli_flags_a_deliberately_unbalanced_campaign(cli_env, capsys):
    """A 50/50 design whose control arm lost a tenth of its customers: SRM says so."""
    import json

    rows = ["customer_id,arm,visit"] + [f"k{i},{'mail' if i % 2 else 'control'},{i % 3 == 0:d}" for i in range(8000)
                                        if i % 2 or i % 20 != 0]
    table = _write(cli_env / "unbalanced.csv", "\n".join(rows) + "\n")
    assert main(["campaign", "import", "--dataset", "csv:shop", "--name", "u", "--table", f"csv:{table}", "--shares", "1,1"]) == 0
    capsys.readouterr()
    assert main(["campaign", "analyze", "u", "--dataset", "csv:shop", "--no-report"]) == 0
    assert "SAMPLE RATIO MISMATCH" in capsys.readouterr().out
    assert main(["campaign", "analyze", "u", "--dataset", "csv:shop", "--no-report", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["arms"] == {"control": 3600, "mail": 4000} and out["srm"]["flagged"] and out["srm_p"] < 1e-3
