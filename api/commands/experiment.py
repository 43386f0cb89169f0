"""``socialrec experiment create|stop|list|analyze``: A/B tests of recommendation strategies in serving.

``create --name N --variants control=als,treatment=hybrid [--shares 0.5,0.5] [--dataset D]``
writes ``SOCIALREC_HOME/experiments/N.json``; a running server picks it up within a second
(:class:`recsys.campaigns.experiments.ExperimentHook`). ``analyze N`` attributes the stored events
to the variant that showed the item and reports hit rate / conversion per variant with 95 % CIs,
the difference against the control and an SRM check. See ``docs/marketing.md``.
"""

from __future__ import annotations

import time

from api.cli import EXIT_OK, BadInput, _emit, _open_store, _settings


def _variants_in_promoted(settings, dataset: str, variants: dict[str, str]) -> None:
    """BadInput when the promoted version of ``dataset`` lacks a variant's model (checked only
    when a version is promoted; otherwise the server checks when it serves)."""
    import json

    from recsys.versions import VersionNotFoundError, current_version, models_dir

    try:
        version = current_version(settings.home, dataset)
        models = list(json.loads((models_dir(settings.home, dataset) / version / "manifest.json").read_text())["models"])
    except (VersionNotFoundError, OSError, KeyError, ValueError):
        return
    missing = [m for m in variants.values() if m not in models]
    if missing:
        raise BadInput(f"--variants: model(s) {missing} are not in the promoted version {version} of {dataset} (it has {models})")


def cmd_create(args) -> int:
    from recsys.campaigns.experiments import Experiment, ExperimentError, parse_variants, save_experiment

    settings = _settings(args)
    dataset = args.dataset or settings.dataset
    if not dataset:
        raise BadInput("--dataset is required (or set SOCIALREC_DATASET)")
    try:
        variants = parse_variants(args.variants)
        if args.shares:
            vals = [float(x) for x in args.shares.split(",")]
            if len(vals) != len(variants):
                raise ExperimentError(f"--shares: one share per variant ({len(variants)})")
            shares = dict(zip(variants, [v / sum(vals) for v in vals]))
        else:
            shares = {v: 1.0 / len(variants) for v in variants}
        _variants_in_promoted(settings, dataset, variants)
        exp = Experiment(name=args.name, dataset=dataset, variants=variants, shares=shares,
                         salt=args.salt or args.name, started_at=time.time())
        from recsys.campaigns.experiments import list_experiments

        if any(e.name == args.name for e in list_experiments(settings.home)):
            raise ExperimentError(f"experiment {args.name!r} exists; choose another --name")
        path = save_experiment(settings.home, exp)
    except (ExperimentError, ValueError) as exc:
        raise BadInput(f"experiment create: {exc}") from None
    _emit(args, {**exp.to_dict(), "config": str(path)}, f"experiment {exp.name} on {dataset}: {variants} shares {shares} ({path})")
    return EXIT_OK


def cmd_stop(args) -> int:
    from recsys.campaigns.experiments import load_experiment, save_experiment

    settings = _settings(args)
    try:
        exp = load_experiment(settings.home, args.name)
    except KeyError:
        raise BadInput(f"no experiment {args.name!r}") from None
    exp.status, exp.stopped_at = "stopped", time.time()
    save_experiment(settings.home, exp)
    _emit(args, exp.to_dict(), f"experiment {exp.name} stopped")
    return EXIT_OK


def cmd_list(args) -> int:
    from recsys.campaigns.experiments import list_experiments

    settings = _settings(args)
    exps = [e.to_dict() for e in list_experiments(settings.home)]
    _emit(args, {"experiments": exps},
          "\n".join(f"{e['name']:<24} {e['status']:<8} {e['dataset']:<20} {e['variants']}" for e in exps) or "no experiments")
    return EXIT_OK


def cmd_analyze(args) -> int:
    from recsys.campaigns.experiments import ExposureLog, analyze_experiment, exposure_log_path, load_experiment

    settings = _settings(args)
    try:
        exp = load_experiment(settings.home, args.name)
    except KeyError:
        raise BadInput(f"no experiment {args.name!r}") from None
    if args.window_days <= 0:
        raise BadInput("--window-days must be > 0")
    log = ExposureLog(exposure_log_path(settings.home, exp.name))
    try:
        exposures = log.read()
    finally:
        log.close()
    store = _open_store(settings, exp.dataset, args.store)
    try:
        interactions = store.read_table("interactions")
    finally:
        store.close()
    result = analyze_experiment(exp, exposures, interactions, window_s=args.window_days * 86400.0)
    lines = [f"experiment {exp.name} ({exp.dataset}, {exp.status}); SRM p = {result['srm_p']:.4g}"
             + ("  ** SAMPLE RATIO MISMATCH **" if result["srm"]["flagged"] else "")]
    for v, r in result["variants"].items():
        hr = "–" if r["hit_rate"] is None else f"{r['hit_rate']:.4f} [{r['hit_rate_ci'][0]:.4f}, {r['hit_rate_ci'][1]:.4f}]"
        cv = "–" if r["conversion"] is None else f"{r['conversion']:.4f} [{r['conversion_ci'][0]:.4f}, {r['conversion_ci'][1]:.4f}]"
        lines.append(f"  {v:<12} {r['model']:<10} users {r['users']:>7}  hit rate {hr}  conversion {cv}")
    for v, d in result["differences"].items():
        h = d["hit_rate"]
        if h["diff"] is not None:
            lines.append(f"  {v} - {result['control']}: hit rate {h['diff']:+.4f} [{h['ci'][0]:+.4f}, {h['ci'][1]:+.4f}] p={h['p_value']:.2g}")
    _emit(args, result, "\n".join(lines))
    return EXIT_OK


def register(sub, common) -> None:
    """Add ``socialrec experiment ...``."""
    p = sub.add_parser("experiment", help="A/B tests of recommendation strategies in serving")
    verbs = p.add_subparsers(dest="experiment_command", required=True)

    s = verbs.add_parser("create", help="split users of a served dataset between models of the promoted version")
    s.add_argument("--name", required=True)
    s.add_argument("--variants", required=True, help="e.g. control=als,treatment=hybrid (first = control)")
    s.add_argument("--shares", default=None, help="e.g. 0.5,0.5 (default equal)")
    s.add_argument("--dataset", default=None, help="default SOCIALREC_DATASET")
    s.add_argument("--salt", default=None, help="hash salt (default: the name)")
    common(s)
    s.set_defaults(func=cmd_create)

    s = verbs.add_parser("stop", help="stop an experiment (responses lose experiment/variant)")
    s.add_argument("name")
    common(s)
    s.set_defaults(func=cmd_stop)

    s = verbs.add_parser("list", help="experiments")
    common(s)
    s.set_defaults(func=cmd_list)

    s = verbs.add_parser("analyze", help="hit rate / conversion per variant with CIs and an SRM check")
    s.add_argument("name")
    s.add_argument("--window-days", type=float, default=7.0, help="attribution window after an exposure")
    common(s)
    s.set_defaults(func=cmd_analyze)
