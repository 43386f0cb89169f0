"""``socialrec uplift``: uplift models, targeting policy and ROI on a randomised campaign.

``socialrec uplift --dataset hillstrom --treatment "Mens E-Mail" --outcome visit --json`` prints
one JSON object ``{"dataset", "treatment", "outcome", "protocol", "models", "baselines",
"comparisons", "selected_model", "policy", "report"}`` (see :func:`recsys.campaigns.uplift.run_uplift`)
and writes a Qini-curve PNG and an HTML report under ``$SOCIALREC_HOME/reports/``. ``--dataset``
may be ``csv:PATH`` / ``parquet:PATH`` (a campaign export, ``docs/marketing.md``). Bad input (unknown
arm, missing outcome column, a customer in two arms, non-binary treatment...) exits 2 with
``file:line: field ...``.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("socialrec.uplift")


def register(sub, common) -> None:
    s = sub.add_parser("uplift", help="uplift models + targeting policy / ROI on a randomised campaign (hillstrom, csv:PATH)")
    s.add_argument("--dataset", required=True, help="hillstrom, or csv:PATH / parquet:PATH of a campaign export")
    s.add_argument("--treatment", required=True, help='treatment arm, e.g. "Mens E-Mail"; "all" = best arm per customer')
    s.add_argument("--outcome", required=True, help="visit, conversion or spend")
    s.add_argument("--control", default=None, help="name of the control arm (default: the arm named control / No E-Mail / none)")
    s.add_argument("--models", default=None, help="comma-separated subset of s_learner,t_learner,x_learner,transformed_outcome,uplift_forest")
    s.add_argument("--seeds", type=int, default=3, help="number of seeded train/test splits (default 3)")
    s.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples per seed (default 1000)")
    s.add_argument("--cost", type=float, default=0.10, help="cost per contact, money (default 0.10)")
    s.add_argument("--margin", type=float, default=0.30, help="profit share of incremental revenue, 0..1 (default 0.30)")
    s.add_argument("--top", type=float, default=0.30, help="N of the top-N policies as a share of customers (default 0.30)")
    s.add_argument("--value-per-outcome", type=float, default=None,
                   help="money per incremental outcome when the table has no spend column")
    s.add_argument("--population", type=int, default=None, help="customers the policy is sized for (default: all in the table)")
    s.add_argument("--max-rows", type=int, default=None, help=argparse.SUPPRESS)  # tests: a stratified subsample
    s.add_argument("--no-report", action="store_true", help="skip the PNG/HTML report")
    common(s)
    s.set_defaults(func=cmd_uplift)


def cmd_uplift(args) -> int:
    from api.cli import BadInput, _emit, _settings
    from etl.campaign import OUTCOME_KINDS, load_campaign_table
    from recsys.campaigns.uplift import UPLIFT_MODELS, run_uplift, subsample

    if args.outcome not in OUTCOME_KINDS:
        raise BadInput(f"--outcome: expected one of {', '.join(OUTCOME_KINDS)}, got {args.outcome!r}")
    models = None
    if args.models:
        models = tuple(m.strip() for m in args.models.split(",") if m.strip())
        unknown = [m for m in models if m not in UPLIFT_MODELS]
        if unknown:
            raise BadInput(f"--models: unknown model(s) {', '.join(unknown)}; known: {', '.join(UPLIFT_MODELS)}")
    if args.seeds < 1 or args.bootstrap < 10:
        raise BadInput("--seeds must be >= 1 and --bootstrap >= 10")
    if args.cost < 0 or not 0 <= args.margin <= 1 or not 0 < args.top <= 1:
        raise BadInput("--cost must be >= 0, --margin in [0, 1] and --top in (0, 1]")
    settings = _settings(args)
    name = args.dataset
    if name != "hillstrom" and not name.startswith(("csv:", "parquet:")):
        raise BadInput(f"--dataset: {name!r} is not a campaign; use hillstrom or csv:PATH / parquet:PATH (docs/marketing.md)")
    frame, spec = load_campaign_table(name, data_dir=settings.data_dir, cache_dir=settings.home / "cache", control=args.control)
    frame = subsample(frame, args.max_rows)
    result = run_uplift(frame, spec, args.treatment, args.outcome, models=models, seeds=args.seeds, n_boot=args.bootstrap,
                        cost=args.cost, margin=args.margin, top_fraction=args.top, value_per_outcome=args.value_per_outcome,
                        population=args.population, progress=not args.no_progress)
    curves = result.pop("_curves", None)
    if not args.no_report:
        from recsys.campaigns.uplift_report import write_uplift_report

        result["report"] = {k: str(v) for k, v in write_uplift_report(result, curves, settings.home / "reports").items()}
    _emit(args, result, human=summary(result))
    return 0


def summary(result: dict) -> str:
    """A short human-readable table of a result."""
    lines = [f"{result['dataset']} · {result['treatment']} vs {result.get('control')} · outcome {result['outcome']} "
             f"· {result['protocol']['name']}"]
    lines.append(f"{'model':<22}{'qini':>9}  {'95% CI':<20}{'uplift@30':>10}")
    rows = list(result["models"].items()) + [(f"baseline:{k}", v) for k, v in result["baselines"].items() if k != "t_learner"]
    for name, b in rows:
        ci = b.get("qini_ci", [float("nan")] * 2)
        lines.append(f"{name:<22}{b['qini']:>9.4f}  [{ci[0]:.4f}, {ci[1]:.4f}]  {b.get('uplift@30', float('nan')):>10.4f}")
    pol = result.get("policy") or {}
    lines.append(f"recommended policy: {pol.get('recommended')} — {pol.get('reason')}")
    if result.get("report"):
        lines.append(f"report: {result['report'].get('html')}")
    return "\n".join(lines)
