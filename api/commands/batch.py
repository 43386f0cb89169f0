"""``socialrec batch-score``: precomputed top-K lists of every user, on Spark.

    socialrec batch-score --dataset ciao [--model als] [--k 20] [--out DIR] [--no-store] --json

Takes the promoted model version of the dataset (its serving model, or ``--model``, which must be a
factor model), scores every user on Spark (:mod:`recsys.spark.batch`), writes
``DIR/recommendations.parquet`` (default ``SOCIALREC_HOME/batch/<dataset>/<version>/``) and the
lists to the graph store (Neo4j: ``(:User)-[:RECOMMENDED {rank, score, model_version}]->(:Item)``).
Exit 2 when nothing is promoted or the model has no factors.
"""

from __future__ import annotations


def register(sub, common) -> None:
    s = sub.add_parser("batch-score", help="top-K lists of every user on Spark -> Parquet and the graph store")
    s.add_argument("--dataset", required=True)
    s.add_argument("--model", default=None, help="a factor model of the promoted version (default: its serving model)")
    s.add_argument("--k", type=int, default=20)
    s.add_argument("--out", default=None, help="output folder (default SOCIALREC_HOME/batch/<dataset>/<version>)")
    s.add_argument("--no-store", action="store_true", help="Parquet only, no write to the graph store")
    common(s)
    s.set_defaults(func=cmd_batch_score)


def cmd_batch_score(args) -> int:
    from pathlib import Path

    from api.cli import EXIT_OK, BadInput, _emit, _open_store, _settings
    from recsys.protocol import FactorModel
    from recsys.spark.batch import batch_score
    from recsys.spark.session import stop_spark
    from recsys.versions import VersionNotFoundError, load_version

    settings = _settings(args)
    if args.k < 1:
        raise BadInput("--k: must be >= 1")
    try:
        version = load_version(settings.home, args.dataset)
    except VersionNotFoundError as exc:
        raise BadInput(f"--dataset {args.dataset}: {exc}; run `socialrec train --dataset {args.dataset}` first") from exc
    name = args.model or version.serving_model
    model = version.models.get(name)
    if model is None:
        raise BadInput(f"--model: {name!r} is not in version {version.version} (has {', '.join(version.models)})")
    if not isinstance(model, FactorModel):
        raise BadInput(f"--model: {name!r} has no user/item factors; batch scoring needs a factor model "
                       f"({', '.join(n for n, m in version.models.items() if isinstance(m, FactorModel)) or 'none in this version'})")
    out = Path(args.out) if args.out else settings.home / "batch" / args.dataset / version.version
    store = None if args.no_store else _open_store(settings, args.dataset, args.store)
    try:
        report = batch_score(model, f"{version.version}/{name}", out, store=store, k=args.k)
    finally:
        if store is not None:
            store.close()
        stop_spark()
    report.update({"dataset": args.dataset, "model_version": version.version, "model": name})
    _emit(args, report, f"batch-score {args.dataset} {version.version}/{name}: {report['rows']:,} rows for "
                        f"{report['users']:,} users -> {report['parquet']}")
    return EXIT_OK
