"""`socialrec uplift`: one JSON object in the INTERFACES shape, a report, and exit 2 with file:line on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from api.cli import main


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCIALREC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SOCIALREC_MODE", "test")
    return tmp_path / "home"


def _export(tmp_path, n=1500, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = rng.integers(0, 2, n)
    visit = (rng.random(n) < 0.1 + 0.3 * t * (x > 0)).astype(int)
    lines = ["customer_id,arm,visit,spend,x,channel"]
    lines += [f"c{i},{'sms' if t[i] else 'control'},{visit[i]},{visit[i] * 20.0},{x[i]:.4f},{'web' if i % 2 else 'shop'}"
              for i in range(n)]
    path = tmp_path / "campaign.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_export_prints_the_interfaces_shape_and_writes_a_report(tmp_path, home, capsys):
    path = _export(tmp_path)
    rc = main(["uplift", "--dataset", f"csv:{path}", "--treatment", "sms", "--outcome", "visit", "--models", "t_learner",
               "--seeds", "1", "--bootstrap", "50", "--no-progress", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    result = json.loads(out)
    assert {"dataset", "treatment", "outcome", "models", "baselines", "policy"} <= set(result)
    assert {"qini", "qini_ci", "uplift@10", "uplift@30", "auuc"} <= set(result["models"]["t_learner"])
    assert set(result["baselines"]) == {"random", "response", "t_learner"}
    assert (home / "reports").is_dir() and result["report"]["html"].endswith(".html")
    assert result["report"]["png"].endswith(".png")


@pytest.mark.parametrize(
    "text, args, expected",
    [
        ("customer_id,arm,visit,x\na,control,0,1\nb,sms,1,2\n", ["--treatment", "email"], "unknown arm 'email'"),
        ("customer_id,arm,visit,x\na,control,0,1\nb,sms,1,2\n", ["--outcome", "spend"], "c.csv:1: field 'spend': missing outcome column"),
        ("customer_id,arm,visit,x\na,control,0,1\nb,sms,1,2\na,sms,0,3\n", [], "c.csv:4: field 'customer_id': customer in two arms"),
        ("customer_id,treatment,visit,x\na,0,0,1\nb,3,1,2\n", ["--treatment", "treatment"], "c.csv:3: field 'treatment': non-binary treatment"),
    ],
)
def test_bad_input_exits_2_naming_file_line_and_field(tmp_path, home, capsys, text, args, expected):
    path = tmp_path / "c.csv"
    path.write_text(text)
    argv = {"--treatment": "sms", "--outcome": "visit"}
    for flag, value in zip(args[::2], args[1::2]):
        argv[flag] = value
    rc = main(["uplift", "--dataset", f"csv:{path}", *[x for kv in argv.items() for x in kv], "--json", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert expected in captured.err


def test_unknown_outcome_and_model_exit_2(tmp_path, home, capsys):
    path = _export(tmp_path, n=50)
    assert main(["uplift", "--dataset", f"csv:{path}", "--treatment", "sms", "--outcome", "clicks"]) == 2
    assert main(["uplift", "--dataset", f"csv:{path}", "--treatment", "sms", "--outcome", "visit", "--models", "magic"]) == 2
    assert main(["uplift", "--dataset", "ciao", "--treatment", "sms", "--outcome", "visit"]) == 2
    err = capsys.readouterr().err
    assert "clicks" in err and "magic" in err and "not a campaign" in err
