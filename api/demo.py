"""``socialrec demo``: the README's main job on a real dataset, end to end, with the embedded store.

ETL (validate, pseudonymise, load) -> snapshot -> evaluate popular/ALS/item-CF under the
dataset's published protocol (ciao: ``random-80-10-10``, the DICER protocol) with validation-only
tuning -> train and promote a model version on all data -> sample recommendations with reasons ->
how to start the server.
"""

from __future__ import annotations

import logging
import sys
import time

from api.settings import Settings

log = logging.getLogger("socialrec.demo")
DEMO_PROTOCOL = {"ciao": "random-80-10-10", "lastfm-hetrec2011": "cv5-full", "filmtrust": "random-80-10-10"}
SAMPLE_RAW_USERS = ("1", "2", "3")


def run_demo(settings: Settings, dataset: str = "ciao", quick: bool = False, out=sys.stdout) -> int:
    """Run the main job and print what a new user should see.

    Args:
        settings: configuration (embedded store unless ``SOCIALREC_NEO4J_URI`` is set).
        dataset: a known dataset name; default ``ciao``.
        quick: skip hyper-parameter tuning (default settings of each model).
        out: where the human-readable results go.
    Returns:
        Exit code 0.
    """
    from api.cli import _open_store, _run_etl, _train, metrics_table
    from etl.pseudonymise import Pseudonymiser
    from recsys.evaluation import evaluate
    from recsys.explain import item_label
    from recsys.report import evaluation_report
    from recsys.serving import RecommendationService
    from recsys.versions import load_version

    started = time.perf_counter()
    models = ["popular", "als", "itemcf"]
    protocol = DEMO_PROTOCOL.get(dataset, "random-80-10-10")

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    say(f"== socialrec demo on {dataset} (home: {settings.home}) ==")
    say("1/4 ETL: read, validate, pseudonymise, load into the graph store")
    store = _open_store(settings, dataset)
    try:
        report = _run_etl(settings, dataset, store, progress=True)
        snapshot = store.snapshot()
    finally:
        store.close()
    for table, v in report["tables"].items():
        say(f"    {table:<13} read={v['read']:>9,} loaded={v['loaded']:>9,} quarantined={v['quarantined']:>7,}")
    say(f"    snapshot: {snapshot.n_users:,} users, {snapshot.n_items:,} items, {snapshot.interactions.nnz:,} interactions, "
        f"{snapshot.follows.nnz:,} follows; quarantine: {report.get('quarantine_file')}")

    say(f"2/4 evaluate {', '.join(models)} under {protocol} (tuning on validation only)")
    result = evaluate(snapshot, protocol, models, ks=(10, 20), tune_params=not quick)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    html = evaluation_report(result, settings.home / "reports" / f"demo-{dataset}-{protocol}-{stamp}.html")
    say(metrics_table(result, 10))
    say(f"    HTML report: {html}")

    say("3/4 train on all interactions and promote a model version")
    trained = _train(settings, dataset, models, None, tune_params=not quick, promote_it=True)
    say(f"    version {trained['version']} promoted; serving model: {trained['serving_model']}")

    say("4/4 sample recommendations with reasons")
    version = load_version(settings.home, snapshot.dataset, trained["version"])
    service = RecommendationService(version, Pseudonymiser(settings.resolved_pseudonym_key()).user)
    for raw in SAMPLE_RAW_USERS:
        answer = service.recommend(raw, k=5)
        say(f"  user {raw} → strategy {answer['strategy']}, model {answer['model_version']}")
        for item in answer["items"]:
            j = version.snapshot.item_index(item["item_id"])
            say(f"    {item_label(version.snapshot, j):<48} score={item['score']:.3f}  because: {'; '.join(item['reasons'])}")
    say(f"done in {time.perf_counter() - started:.0f} s.")
    mode = "" if settings.pseudonym_key else "SOCIALREC_MODE=demo "
    say(f"Start the API on this model:  {mode}SOCIALREC_HOME={settings.home} socialrec serve --port 8000")
    if mode:
        say("  (the demo pseudonymised user ids with the built-in demo key, so the server must run in demo mode;\n"
            "   production data needs SOCIALREC_PSEUDONYM_KEY for both the ETL and the server)")
    say(f"  then: curl 'http://127.0.0.1:8000/v1/users/{SAMPLE_RAW_USERS[0]}/recommendations?k=5'   (docs at /docs)")
    return 0
