"""The ``socialrec`` command line.

Every command exits 0 on success, 2 on bad input (the message names the file/row/field), 1 on
any other failure. ``--json`` prints exactly one JSON object on stdout; logs and progress go to
stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from api.settings import Settings

log = logging.getLogger("socialrec")

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
EXIT_REJECTED = 3  # `retrain --fail-on-reject`: the quality gate kept the old version


class BadInput(ValueError):
    """Bad command-line input: exit code 2."""


# --------------------------------------------------------------------------- helpers
def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment. Commands on a built-in public research dataset (not a shop's
    ``csv:``/``parquet:`` export) and ``demo`` run in demo mode when no pseudonym key is set, so
    they use the documented demo key; shop data and ``serve`` in production need a real key."""
    settings = Settings()
    dataset = getattr(args, "dataset", None)
    public = dataset is not None and not dataset.startswith(("csv:", "parquet:"))
    if settings.mode == "production" and settings.pseudonym_key is None and (getattr(args, "demo_mode", False) or public):
        settings.mode = "demo"
    return settings


def _check_dataset(dataset: str) -> None:
    """Raise BadInput unless ``dataset`` is a known name or a ``csv:``/``parquet:`` export."""
    from etl.datasets import DATASETS, is_shop_export

    if not is_shop_export(dataset) and dataset not in DATASETS:
        raise BadInput(f"--dataset: unknown dataset {dataset!r}; known: {', '.join(sorted(DATASETS))}, csv:PATH, parquet:PATH")


def _open_store(settings: Settings, dataset: str, kind: str | None = None):
    from graph.store import open_store

    _check_dataset(dataset)
    return open_store(dataset, kind=kind, **settings.store_kwargs())


def _ensure_loaded(settings: Settings, dataset: str, store, progress: bool = True) -> dict | None:
    """Run the ETL unless the store records a complete load of ``dataset``; returns its report.

    An interrupted load (no completion record) is run again: loads are idempotent upserts, so
    the rerun completes it instead of training on a partial graph.
    """
    record = store.read_meta("etl")
    if record and record.get("state") == "complete":
        return None
    if record:
        log.warning("the last ETL of %s did not complete: running it again", dataset)
    else:
        log.info("store has no complete %s load yet: running the ETL first", dataset)
    return _run_etl(settings, dataset, store, progress)


def _run_etl(settings: Settings, dataset: str, store, progress: bool = True, replace: bool = False, bulk: bool = False) -> dict:
    from etl.pipeline import run_etl

    bulk_args = None
    if bulk:
        if replace:
            raise BadInput("--bulk writes an empty database; it cannot be combined with --replace")
        if not settings.neo4j_uri or not settings.neo4j_password:
            raise BadInput("--bulk imports into the local Neo4j server: set SOCIALREC_NEO4J_URI and SOCIALREC_NEO4J_PASSWORD "
                           "(and start it with `socialrec neo4j start`)")
        bulk_args = {"home": settings.home, "password": settings.neo4j_password.get_secret_value()}

    return run_etl(
        dataset,
        store,
        data_dir=settings.data_dir,
        cache_dir=settings.home / "cache",
        pseudonym_key=settings.resolved_pseudonym_key(),
        quarantine_dir=settings.home / "quarantine",
        progress=progress,
        replace=replace,
        bulk=bulk_args,
    )


def _models_arg(value: str | None, default) -> list[str]:
    from recsys.registry import MODELS

    names = [m.strip() for m in value.split(",") if m.strip()] if value else list(default)
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        raise BadInput(f"--models: unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    return names


def _ks_arg(value: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(k) for k in value.split(",") if k.strip()}))
    except ValueError:
        raise BadInput(f"--k: expected comma-separated integers, got {value!r}") from None
    if not ks or ks[0] < 1:
        raise BadInput(f"--k: cut-offs must be >= 1, got {value!r}")
    return ks


def _emit(args: argparse.Namespace, payload: dict, human: str | None = None) -> None:
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
    else:
        print(human if human is not None else json.dumps(payload, indent=2, default=str))


def metrics_table(result: dict, k: int = 10) -> str:
    """A plain-text table of an evaluation result at cut-off k."""
    cols = [f"precision@{k}", f"recall@{k}", f"ndcg@{k}", f"hr@{k}", f"map@{k}", f"coverage@{k}", "fit_seconds"]
    if result.get("candidates", "full") != "full":
        cols = [f"precision@{k}", f"recall@{k}", f"ndcg@{k}", f"hr@{k}", f"map@{k}", "auc", "fit_seconds"]
    lines = [f"{result['dataset']} · {result['protocol']} ({result.get('protocol_definition', '')})",
             f"candidates: {result.get('candidates', 'full')} ({result.get('candidates_definition', '')})",
             f"{'model':<10}" + "".join(f"{c:>14}" for c in cols)]
    for name, vals in result["models"].items():
        lines.append(f"{name:<10}" + "".join(f"{vals.get(c, float('nan')):>14.4f}" for c in cols))
    return "\n".join(lines)


# --------------------------------------------------------------------------- commands
def cmd_etl(args) -> int:
    settings = _settings(args)
    store = _open_store(settings, args.dataset, args.store)
    try:
        report = _run_etl(settings, args.dataset, store, progress=not args.no_progress, replace=args.replace, bulk=args.bulk)
        if hasattr(store, "transient_retries"):  # Neo4j: transactions the driver retried (deadlock, leader switch)
            report["neo4j_transient_retries"] = int(store.transient_retries)
    finally:
        store.close()
    human = "\n".join(f"{t:<13} read={v['read']:>9,} loaded={v['loaded']:>9,} quarantined={v['quarantined']:>7,}"
                      for t, v in report["tables"].items())
    _emit(args, report, f"ETL {args.dataset}\n{human}\nquarantine: {report.get('quarantine_file')}")
    return EXIT_OK


def _train(settings: Settings, dataset: str, models: list[str], store_kind, tune_params: bool, promote_it: bool, progress=True) -> dict:
    """Snapshot -> tune + fit -> save a version -> write embeddings/scores back -> promote."""
    from recsys.retrain import write_back_models
    from recsys.training import train_models
    from recsys.versions import promote, save_version

    store = _open_store(settings, dataset, store_kind)
    try:
        _ensure_loaded(settings, dataset, store, progress)
        snapshot = store.snapshot()
        if snapshot.interactions.nnz == 0:
            raise BadInput(f"the store holds no interactions for {dataset!r}; run `socialrec etl --dataset {dataset}`")
        t0 = time.perf_counter()
        result = train_models(snapshot, models, tune_params=tune_params)
        path = save_version(
            settings.home,
            snapshot,
            result.models,
            {"serving_model": result.serving_model, "validation": result.validation, "fit_seconds": result.fit_seconds,
             "selection": result.selection, "pseudonym_key_id": settings.pseudonym_key_id(), "made_by": "train"},
        )
        written = write_back_models(store, snapshot, result.models, result.serving_model, path.name)
    finally:
        store.close()
    if promote_it:
        from recsys.retrain import activate_write_back

        promote(settings.home, snapshot.dataset, path.name)
        store = _open_store(settings, dataset, store_kind)
        try:
            written["activated"] = activate_write_back(store, path.name)
        finally:
            store.close()
    return {
        "dataset": dataset,
        "version": path.name,
        "promoted": promote_it,
        "serving_model": result.serving_model,
        "selection": result.selection,
        "models": {n: {"params": result.params[n], "validation": result.validation[n], "fit_seconds": result.fit_seconds[n]} for n in result.models},
        "written_back": written,
        # users the snapshot knows only from follows: no interaction, so no trained vector of their own
        "n_users_without_vector": int((snapshot.interactions.indptr[1:] == snapshot.interactions.indptr[:-1]).sum()),
        "seconds": round(time.perf_counter() - t0, 2),
        "path": str(path),
    }


def cmd_train(args) -> int:
    settings = _settings(args)
    dataset = args.dataset or settings.dataset
    if not dataset:
        raise BadInput("--dataset is required (or set SOCIALREC_DATASET)")
    from recsys.registry import TRAIN_MODELS

    out = _train(settings, dataset, _models_arg(args.models, TRAIN_MODELS), args.store, not args.no_tune, not args.no_promote,
                 progress=not args.no_progress)
    _emit(args, out, f"trained {dataset} version {out['version']} (serving model {out['serving_model']}); promoted={out['promoted']}")
    return EXIT_OK


def cmd_evaluate(args) -> int:
    from recsys.evaluation import evaluate
    from recsys.registry import DEFAULT_MODELS
    from recsys.report import evaluation_report

    settings = _settings(args)
    models = _models_arg(args.models, DEFAULT_MODELS)
    ks = _ks_arg(args.k)
    store = _open_store(settings, args.dataset, args.store)
    try:
        _ensure_loaded(settings, args.dataset, store, not args.no_progress)
        snapshot = store.snapshot()
    finally:
        store.close()
    user_key = None
    if args.protocol == "given":
        if not args.split_dir:
            raise BadInput("--protocol given needs --split-dir DIR (train.csv, test.csv, optional validation.csv)")
        from etl.pseudonymise import Pseudonymiser

        user_key = Pseudonymiser(settings.resolved_pseudonym_key()).user
    elif args.split_dir:
        raise BadInput("--split-dir is only for --protocol given")
    if args.repeats < 1:
        raise BadInput(f"--repeats must be >= 1, got {args.repeats}")
    result = evaluate(snapshot, args.protocol, models, ks=ks, seed=args.seed, tune_params=not args.no_tune, max_folds=args.max_folds,
                      candidates=args.candidates, repeats=args.repeats, split_dir=args.split_dir, user_key=user_key)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    report = evaluation_report(result, settings.home / "reports" / f"evaluate-{snapshot.dataset.replace(':', '_').replace('/', '_')}-{args.protocol}-{stamp}.html")
    result["report"] = str(report)
    _emit(args, result, metrics_table(result, ks[0]) + f"\nreport: {report}")
    return EXIT_OK


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def _serve_preflight(settings: Settings, host: str, allow_public: bool = False) -> list[str]:
    """What ``serve`` must say before it starts (logged as warnings); refuses unsafe binds.

    * demo/test mode without API keys answers every route, admin included, without a key: say
      so loudly, and refuse a non-loopback host (``--allow-public-demo`` overrides);
    * the routes that will answer 503 and why (no promoted version; no customer value computed).

    Raises:
        BadInput: a non-loopback host in demo/test mode without auth.
    """
    from api.security import load_keyring

    notes = []
    try:
        open_routes = not load_keyring(settings).required
    except Exception:  # noqa: BLE001 - the server reports key problems itself
        open_routes = False
    if settings.mode in ("demo", "test") and open_routes:
        if host not in LOOPBACK_HOSTS and not allow_public:
            raise BadInput(f"SOCIALREC_MODE={settings.mode}: admin and event routes answer without an API key, so the "
                           f"server binds loopback only; refusing --host {host} (use SOCIALREC_MODE=production with "
                           "SOCIALREC_API_KEYS, or --allow-public-demo)")
        notes.append(f"*** SOCIALREC_MODE={settings.mode}: NO AUTHENTICATION — every route, admin included, answers "
                     "without an API key. Never expose this server. ***")
    from recsys.versions import promoted_datasets

    dataset = settings.dataset or next((d for _, d in promoted_datasets(settings.home)), None)
    if dataset is None:
        notes.append("no promoted model version: /ready and the recommendation routes answer 503 until `socialrec train`")
    else:
        try:
            from recsys.value.pipeline import load_result

            load_result(settings.home, dataset)
        except ImportError:
            notes.append("customer value is not installed: /v1/users/{id}/value and /v1/segments answer 503")
        except (FileNotFoundError, OSError, ValueError):
            notes.append(f"no customer value computed for {dataset}: /v1/users/{{id}}/value and /v1/segments answer 503 "
                         f"until `socialrec value --dataset {dataset}` (or a nightly retrain with value) runs")
    return notes


def cmd_serve(args) -> int:
    from api.app import serve

    settings = _settings(args)
    for note in _serve_preflight(settings, args.host, getattr(args, "allow_public_demo", False)):
        log.warning("%s", note)
    serve(settings, host=args.host, port=args.port, workers=args.workers)
    return EXIT_OK


def cmd_retrain(args) -> int:
    from recsys.retrain import RetrainLocked, run_retrain

    settings = _settings(args)
    dataset = args.dataset or settings.dataset
    if not dataset:
        from recsys.versions import promoted_datasets

        promoted = promoted_datasets(settings.home)
        if not promoted:
            raise BadInput("--dataset is required (or set SOCIALREC_DATASET) when nothing is promoted yet")
        dataset = promoted[0][1]
    _check_dataset(dataset)
    models = _models_arg(args.models or settings.retrain_models, ())
    tolerance = settings.quality_gate_tolerance if args.tolerance is None else args.tolerance
    if tolerance < 0:
        raise BadInput(f"--tolerance must be >= 0, got {tolerance}")
    try:
        report = run_retrain(
            settings.home,
            dataset,
            open_store=lambda: _open_store(settings, dataset, args.store),
            models=models,
            tolerance=tolerance,
            tune_params=settings.retrain_tune and not args.no_tune,
            with_value=settings.retrain_with_value and not args.no_value,
            prepare_store=lambda store: _ensure_loaded(settings, dataset, store, progress=False),
            pause_at=args.pause_at,
            manifest_extra={"pseudonym_key_id": settings.pseudonym_key_id()},
        )
    except RetrainLocked as exc:
        print(f"socialrec: {exc}", file=sys.stderr)
        if getattr(args, "json", False):  # --json promises one object on stdout, failures included
            sys.stdout.write(json.dumps({"dataset": dataset, "state": "locked", "promoted": False, "error": str(exc)}) + "\n")
        return EXIT_FAILURE
    except Exception as exc:  # noqa: BLE001 - report the failure in the --json shape too
        _emit(args, {"dataset": dataset, "state": "failed", "promoted": False, "error": f"{type(exc).__name__}: {exc}"},
              f"retrain {dataset}: failed ({type(exc).__name__}: {exc}); the promoted version keeps serving")
        return EXIT_FAILURE
    gate = report.get("gate", {})
    human = (f"retrain {dataset}: {report['state']} (version {report.get('version')}, previous {report.get('previous')}); "
             f"gate: {gate.get('reason')}")
    _emit(args, report, human)
    if report.get("state") == "rejected" and getattr(args, "fail_on_reject", False):
        return EXIT_REJECTED
    return EXIT_OK


def cmd_apikey(args) -> int:
    from api.security import new_key

    key, line = new_key(args.role)
    _emit(args, {"role": args.role, "key": key, "hash_line": line},
          f"key (give it to the client, it is not stored): {key}\n"
          f"hash line (add to SOCIALREC_API_KEYS or the SOCIALREC_API_KEYS_FILE): {line}")
    return EXIT_OK


def cmd_neo4j(args) -> int:
    from graph import neo4j_server

    settings = _settings(args)
    password = settings.neo4j_password.get_secret_value() if settings.neo4j_password else None
    if args.action == "start":
        if not password:
            raise BadInput("set SOCIALREC_NEO4J_PASSWORD before `socialrec neo4j start`")
        current = neo4j_server.status(settings.home, password)
        if current["running"]:
            uri = current["uri"]
            _emit(args, {"status": "running", "uri": uri, "already_running": True},
                  f"Neo4j already running at {uri} (export SOCIALREC_NEO4J_URI={uri})")
            return EXIT_OK
        port = args.port
        if port is None and settings.neo4j_uri:
            from urllib.parse import urlparse

            port = urlparse(settings.neo4j_uri).port
        uri = neo4j_server.start(settings.home, password, bolt_port=port or 7687,
                                 heap=args.heap or settings.neo4j_heap, pagecache=args.pagecache or settings.neo4j_pagecache)
        _emit(args, {"status": "running", "uri": uri}, f"Neo4j running at {uri} (export SOCIALREC_NEO4J_URI={uri})")
    elif args.action == "stop":
        stopped = neo4j_server.stop(settings.home)
        _emit(args, {"status": "stopped" if stopped else "not running"})
    else:
        _emit(args, neo4j_server.status(settings.home))
    return EXIT_OK


def cmd_clv(args) -> int:
    from recsys.value.clv import cdnow_report

    settings = _settings(args)
    if args.dataset != "cdnow":
        raise BadInput("clv: only --dataset cdnow has a calibration/holdout split; use `socialrec value` for others")
    from etl.download import ensure_dataset

    folder = ensure_dataset("cdnow", settings.data_dir, settings.home / "cache")
    _emit(args, cdnow_report(folder))
    return EXIT_OK


def cmd_value(args) -> int:
    """Customer value: CLV, influence, weighted value, segments; written back and reported."""
    from recsys.value.pipeline import TransactionInputError, run_value_job

    settings = _settings(args)
    transactions = None
    observation_end = None
    if args.observation_end:
        import pandas as pd

        try:
            observation_end = pd.Timestamp(args.observation_end).floor("D")
        except ValueError:
            raise BadInput(f"--observation-end: not a date: {args.observation_end!r} (e.g. 2024-06-30)") from None
    if args.transactions:
        from etl.pseudonymise import Pseudonymiser
        from etl.transactions import read_transactions

        path = Path(args.transactions)
        if not path.is_file():
            raise BadInput(f"--transactions: no such file {path}")
        # Raw shop ids are pseudonymised with the deployment's key, like every other table.
        transactions = read_transactions(path, Pseudonymiser(settings.resolved_pseudonym_key()))
    store = _open_store(settings, args.dataset, args.store)
    try:
        _ensure_loaded(settings, args.dataset, store, not args.no_progress)
        snapshot = store.snapshot()
        version = "value-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        try:
            out = run_value_job(
                snapshot, store, settings.home, version, transactions,
                horizon_weeks=args.horizon_weeks, discount_rate=args.discount_rate, tau_days=args.tau_days,
                with_propensity=not args.no_propensity, observation_end=observation_end,
                **({"value_unit": args.value_unit} if args.value_unit else {}),
            )
        except TransactionInputError as exc:
            raise BadInput(f"--transactions {args.transactions or ''}: {exc}".replace("  ", " ")) from None
    finally:
        store.close()
    _emit(args, out, f"customer value for {args.dataset}: report {out.get('report')}")
    return EXIT_OK


def cmd_audience(args) -> int:
    """A campaign audience: users with the highest expected organic value (not uplift), with reasons."""
    from recsys.value.audience import build_audience
    from recsys.value.pipeline import load_result

    settings = _settings(args)
    if (args.item is None) == (args.category is None):
        raise BadInput("audience: give exactly one of --item ID or --category NAME")
    if args.size < 1:
        raise BadInput("--size must be >= 1")
    store = _open_store(settings, args.dataset, args.store)
    try:
        snapshot = store.snapshot()
    finally:
        store.close()
    try:
        result = load_result(settings.home, snapshot.dataset)
    except FileNotFoundError:
        raise BadInput(f"no customer value computed for {args.dataset}; run `socialrec value --dataset {args.dataset}` first") from None
    try:
        frame = build_audience(result, snapshot, item_id=args.item, category=args.category, size=args.size,
                               seed_influencers=args.seed_influencers, window_weeks=args.window_weeks,
                               min_marginal_spread=args.min_spread)
    except ValueError as exc:
        raise BadInput(f"audience: {exc}") from None
    seeding = frame.attrs.get("seeding", {})
    if args.format == "csv":
        sys.stdout.write(frame.to_csv(index=False))
        if args.seed_influencers:
            sys.stderr.write(f"seeding: {json.dumps(seeding)}\n")
    else:
        sys.stdout.write(json.dumps({"dataset": args.dataset, "item": args.item, "category": args.category,
                                     "size": int(len(frame)), "seeding": seeding,
                                     "users": json.loads(frame.to_json(orient="records"))}) + "\n")
    return EXIT_OK


def cmd_demo(args) -> int:
    from api.demo import run_demo

    settings = _settings(args)
    return run_demo(settings, dataset=args.dataset, quick=args.quick)


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of every ``socialrec`` command."""
    p = argparse.ArgumentParser(prog="socialrec", description="Graph-based social recommendation and customer value.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, json_flag=True):
        if json_flag:
            sp.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        sp.add_argument("--store", choices=["embedded", "neo4j"], default=None,
                        help="store to use (default: neo4j when SOCIALREC_NEO4J_URI is set, else embedded)")
        sp.add_argument("--no-progress", action="store_true", help="no progress bars")

    s = sub.add_parser("etl", help="load a dataset into the store")
    s.add_argument("--dataset", required=True, help="dataset name or csv:PATH / parquet:PATH")
    s.add_argument("--replace", action="store_true", help="clear the dataset's namespace first")
    s.add_argument("--bulk", action="store_true",
                   help="first load into an EMPTY local Neo4j with neo4j-admin's offline importer (stops and restarts "
                        "the server of SOCIALREC_HOME); refused when the database holds anything")
    common(s)
    s.set_defaults(func=cmd_etl)

    s = sub.add_parser("train", help="train a new model version (and promote it)")
    s.add_argument("--dataset")
    s.add_argument("--models", help="comma-separated model names (default popular,als,itemcf,hybrid); the serving "
                   "model is chosen among them on validation data, popular included")
    s.add_argument("--no-tune", action="store_true", help="use default hyper-parameters")
    s.add_argument("--no-promote", action="store_true", help="save the version without promoting it")
    common(s)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="evaluate models under a protocol")
    s.add_argument("--dataset", required=True)
    s.add_argument("--protocol", required=True,
                   choices=["cv5-full", "cold-lt20", "random-80-10-10", "temporal", "cold-users", "cold-items", "given"])
    s.add_argument("--split-dir", help="protocol given: folder with train.csv, test.csv, optional validation.csv "
                   "(user_id,item_id[,kind,value,ts], raw ids)")
    s.add_argument("--candidates", default="full",
                   help="ranking set of each test item: full (default, every unseen item) or sampled:N "
                        "(N never-interacted items, seeded; adds auc)")
    s.add_argument("--repeats", type=int, default=3, help="draws of the sampled candidates (mean and sd)")
    s.add_argument("--models")
    s.add_argument("--k", default="10,20", help="cut-offs, e.g. 10,20")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--no-tune", action="store_true")
    s.add_argument("--max-folds", type=int, default=None, help="only the first N folds (quick looks)")
    common(s)
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("serve", help="run the HTTP API")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1,
                   help="worker processes forked after the model is loaded (they share its memory copy-on-write)")
    s.add_argument("--allow-public-demo", action="store_true",
                   help="let a demo/test-mode server (no authentication) bind a non-loopback host")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("retrain", help="the nightly job: snapshot -> train -> holdout -> quality gate -> write back -> promote")
    s.add_argument("--dataset", help="default: SOCIALREC_DATASET, else the latest promoted dataset")
    s.add_argument("--models", help="comma-separated model names (default SOCIALREC_RETRAIN_MODELS)")
    s.add_argument("--tolerance", type=float, default=None,
                   help="quality-gate tolerance, relative drop allowed per metric (default SOCIALREC_QUALITY_GATE_TOLERANCE)")
    s.add_argument("--no-tune", action="store_true", help="default hyper-parameters")
    s.add_argument("--no-value", action="store_true", help="skip customer value / segments write-back")
    s.add_argument("--pause-at", default=None, help=argparse.SUPPRESS)  # tests: sleep at a step to be killed there
    s.add_argument("--fail-on-reject", action="store_true",
                   help="exit 3 when the quality gate rejects the candidate (for schedulers); default exit 0")
    common(s)
    s.set_defaults(func=cmd_retrain)

    s = sub.add_parser("apikey", help="API keys")
    s.add_argument("action", choices=["create"])
    s.add_argument("--role", required=True, choices=["storefront", "events", "admin"])
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_apikey)

    s = sub.add_parser("demo", help="the README's main job: ETL -> train -> evaluate -> sample recommendations")
    s.add_argument("--dataset", default="ciao")
    s.add_argument("--quick", action="store_true", help="skip hyper-parameter tuning")
    s.set_defaults(func=cmd_demo, demo_mode=True)

    s = sub.add_parser("neo4j", help="a local real Neo4j server")
    s.add_argument("action", choices=["start", "stop", "status"])
    s.add_argument("--port", type=int, default=None, help="Bolt port (default: the port of SOCIALREC_NEO4J_URI, else 7687)")
    s.add_argument("--heap", default=None, help="JVM heap, e.g. 2g (default SOCIALREC_NEO4J_HEAP or 2g)")
    s.add_argument("--pagecache", default=None, help="Neo4j page cache (default SOCIALREC_NEO4J_PAGECACHE or 512m)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_neo4j)

    s = sub.add_parser("value", help="customer value: CLV, social influence, weighted value, segments (+ HTML report)")
    s.add_argument("--dataset", required=True)
    s.add_argument("--transactions", help="CSV/Parquet of money transactions (user_id, date or ts, amount) for shops "
                   "with prices; raw shop ids are pseudonymised (see docs/customer-value.md, BTYD inputs)")
    s.add_argument("--value-unit", default=None, help="currency code of --transactions amounts, e.g. EUR")
    s.add_argument("--horizon-weeks", type=float, default=52.0)
    s.add_argument("--discount-rate", type=float, default=0.01, help="per month")
    s.add_argument("--tau-days", type=float, default=30.0, help="influence window (days)")
    s.add_argument("--no-propensity", action="store_true", help="skip the LightGBM high-value model")
    s.add_argument("--observation-end", default=None,
                   help="last observed day (YYYY-MM-DD); later rows are quarantined after_observation_end "
                        "(default: the latest date in the data)")
    common(s)
    s.set_defaults(func=cmd_value)

    s = sub.add_parser("audience", help="campaign audience for an item or a category")
    s.add_argument("--dataset", required=True)
    s.add_argument("--item")
    s.add_argument("--category")
    s.add_argument("--size", type=int, default=100)
    s.add_argument("--seed-influencers", type=int, default=0,
                   help="also pick up to K influencers by CELF (only tested influence spreads; see --min-spread)")
    s.add_argument("--min-spread", type=float, default=1.0,
                   help="CELF floor: add a seed only while it reaches more than this many expected users beyond the seeds")
    s.add_argument("--window-weeks", type=float, default=4.0)
    s.add_argument("--format", choices=["csv", "json"], default="csv")
    s.add_argument("--store", choices=["embedded", "neo4j"], default=None)
    s.set_defaults(func=cmd_audience)

    s = sub.add_parser("clv", help="BG/NBD + Gamma-Gamma customer lifetime value (cdnow calibration/holdout)")
    s.add_argument("--dataset", required=True)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_clv)

    from api.commands import register_all

    register_all(sub, common)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``socialrec`` console script. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("neo4j", "httpx", "matplotlib", "gensim", "numba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if getattr(args, "no_progress", False):
        from graph.progress import set_enabled

        set_enabled(False)
    from etl.errors import EtlInputError
    from graph.neo4j_import import BulkImportError
    from recsys.evaluation import ProtocolError
    from recsys.registry import UnknownModelError

    from pydantic import ValidationError

    from api.settings import ConfigError

    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"socialrec: configuration: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValidationError as exc:
        problems = "; ".join(f"SOCIALREC_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors())
        print(f"socialrec: configuration: {problems}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except EtlInputError as exc:
        print(f"socialrec: bad input: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BulkImportError as exc:
        print(f"socialrec: {'bad input' if exc.bad_input else 'error'}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT if exc.bad_input else EXIT_FAILURE
    except (BadInput, ProtocolError, UnknownModelError) as exc:
        print(f"socialrec: bad input: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        log.debug("failure", exc_info=True)
        print(f"socialrec: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    # run the importable module's main, not this __main__ copy: command modules under
    # api/commands raise api.cli.BadInput, which must be the class main() catches
    from api.cli import main as _main

    sys.exit(_main())
