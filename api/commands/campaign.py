"""``socialrec campaign create|import|analyze|list|show|export``: randomised campaigns in the graph store.

* ``create`` assigns a two-arm campaign (``treatment`` / ``control``) over an audience chosen by
  ``--audience FILE`` (a CSV with a ``user_id`` column of the shop's raw ids), ``--segment S``
  (the users of a stored segment) or ``--uplift-top K`` (the K users with the highest written-back
  ``uplift`` score), by salted hash (:mod:`recsys.campaigns.assignment`), and stores it; outcomes
  are then the events recorded after the launch time.
* ``import`` stores a finished campaign from a campaign table (``hillstrom``, ``csv:PATH``;
  :func:`etl.campaign.load_campaign_table`) with its outcomes.
* ``analyze`` reports lift with 95 % CIs, CUPED, the SRM check, incremental revenue and ROI, and
  writes an HTML report (:mod:`recsys.campaigns.analysis`).
* ``export`` prints the assignments as CSV (pseudonymised ids; ``--ids FILE`` maps them back to
  the raw ids of a file of the shop's own ids).

Bad input (unknown arm, missing outcome column, a customer in two arms, a duplicate in the
audience file, an existing campaign name) exits 2 with ``file:line`` and stores nothing.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pandas as pd

from api.cli import EXIT_OK, BadInput, _emit, _open_store, _settings


def _dataset(args, settings) -> str:
    dataset = args.dataset or settings.dataset
    if not dataset:
        raise BadInput("--dataset is required (or set SOCIALREC_DATASET)")
    return dataset


def read_audience_file(path: str, pseudonymise) -> list[str]:
    """Pseudonymised user ids of an audience CSV (header with ``user_id`` or ``customer_id``).

    Raises:
        EtlInputError: missing file or column, an empty id, a user listed twice (file:line).
    """
    from etl.errors import EtlInputError

    p = Path(path)
    if not p.is_file():
        raise EtlInputError(path, 0, "", "file not found")
    with p.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise EtlInputError(path, 1, "user_id", "empty file: the header must name user_id")
        header = [h.strip() for h in header]
        col = next((header.index(c) for c in ("user_id", "customer_id") if c in header), None)
        if col is None:
            raise EtlInputError(path, 1, "user_id", f"missing column (header: {', '.join(header)})")
        seen: dict[str, int] = {}
        out = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            raw = row[col].strip() if col < len(row) else ""
            if not raw:
                raise EtlInputError(path, line, header[col], "empty user id")
            if raw in seen:
                raise EtlInputError(path, line, header[col], f"user listed twice (also on line {seen[raw]})")
            seen[raw] = line
            out.append(pseudonymise(raw))
    if not out:
        raise EtlInputError(path, 1, header[col], "no users in the file")
    return out


def _audience(args, store, pseudonymise) -> tuple[list[str], str]:
    chosen = [x for x in (args.audience, args.segment, args.uplift_top) if x is not None]
    if len(chosen) != 1:
        raise BadInput("campaign create: give exactly one of --audience FILE, --segment S, --uplift-top K")
    if args.audience is not None:
        ids = read_audience_file(args.audience, pseudonymise)
        known = set(store.read_table("users")["user_id"])
        if known:
            from etl.errors import EtlInputError

            for line, uid in enumerate(ids, start=2):
                if uid not in known:
                    raise EtlInputError(args.audience, line, "user_id", "unknown user (not in the store; load or register it first)")
        return ids, f"file:{Path(args.audience).name}"
    from recsys.campaigns.assignment import segment_audience, uplift_audience

    try:
        if args.segment is not None:
            return segment_audience(store, args.segment), f"segment:{args.segment}"
        return uplift_audience(store, args.uplift_top), f"uplift-top:{int(args.uplift_top)}"
    except ValueError as exc:
        raise BadInput(f"campaign create: {exc}") from None


def cmd_create(args) -> int:
    from etl.pseudonymise import Pseudonymiser
    from recsys.campaigns.assignment import create_campaign

    settings = _settings(args)
    dataset = _dataset(args, settings)
    store = _open_store(settings, dataset, args.store)
    try:
        ids, source = _audience(args, store, Pseudonymiser(settings.resolved_pseudonym_key()).user)
        try:
            out = create_campaign(store, args.name, ids, treatment_share=args.treatment_share, stratify=args.stratify,
                                  salt=args.salt, launched_at=args.launch_at, source=source,
                                  cost_per_contact=args.cost_per_contact, margin=args.margin)
        except ValueError as exc:
            raise BadInput(f"campaign create: {exc}") from None
    finally:
        store.close()
    doc = out["campaign"]
    bad = [r["covariate"] for r in out["balance"] if r["imbalanced"]]
    human = (f"campaign {doc['id']} on {dataset}: {doc['arm_sizes']} (salt {doc['salt']!r}, source {source})\n"
             + "\n".join(f"  {r['covariate']:<18} treated {r['mean_treatment']:>10.3f}  control {r['mean_control']:>10.3f}  "
                         f"SMD {r['smd']:+.3f}{'  IMBALANCED' if r['imbalanced'] else ''}" for r in out["balance"])
             + ("" if not bad else f"\nwarning: imbalanced covariates {bad}"))
    _emit(args, {"dataset": dataset, **out}, human)
    return EXIT_OK


def cmd_import(args) -> int:
    from etl.campaign import load_campaign_table
    from etl.errors import EtlInputError
    from etl.pseudonymise import Pseudonymiser
    from recsys.campaigns.assignment import import_campaign

    settings = _settings(args)
    dataset = _dataset(args, settings)
    frame, spec = load_campaign_table(args.table, data_dir=settings.data_dir, cache_dir=settings.home / "cache",
                                      control=args.control, pseudonymiser=Pseudonymiser(settings.resolved_pseudonym_key()))
    arms = list(spec.arms)
    if args.arms:
        wanted = [a.strip() for a in args.arms.split(",") if a.strip()]
        if spec.control not in wanted:
            raise BadInput(f"--arms must include the control arm {spec.control!r}")
        for a in wanted:
            if a not in spec.arms:
                raise EtlInputError(spec.file, 0, "arm", f"unknown arm {a!r}; the arms are: {', '.join(spec.arms)}")
        outside = ~frame["arm"].isin(wanted)
        if outside.any():
            line = int(frame.loc[outside, "_line"].iloc[0])
            raise EtlInputError(spec.file, line, "arm", f"unknown arm {frame.loc[outside, 'arm'].iloc[0]!r} (allowed: {', '.join(wanted)})")
        arms = [a for a in spec.arms if a in wanted]
    outcomes = list(spec.outcomes)
    if args.outcomes:
        outcomes = [o.strip() for o in args.outcomes.split(",") if o.strip()]
        for o in outcomes:
            spec.require_outcome(o)
    covariates = list(spec.numeric_covariates)
    categorical = list(spec.categorical_covariates)
    if args.pre is not None and args.pre not in covariates:
        raise EtlInputError(spec.file, 1, args.pre, f"--pre: no numeric covariate column {args.pre!r} (numeric: {', '.join(covariates)})")
    shares = None
    if args.shares:
        try:
            vals = [float(x) for x in args.shares.split(",")]
        except ValueError:
            raise BadInput(f"--shares: expected comma-separated numbers, got {args.shares!r}") from None
        if len(vals) != len(arms) or min(vals) <= 0:
            raise BadInput(f"--shares: one positive share per arm, in the order {arms}")
        shares = dict(zip(arms, [v / sum(vals) for v in vals]))
    store = _open_store(settings, dataset, args.store)
    try:
        out = import_campaign(store, args.name, frame, arms, spec.control, outcomes, covariates, categorical=categorical,
                              pre=args.pre, shares=shares,
                              source=f"table:{spec.name}", launched_at=args.launch_at,
                              cost_per_contact=args.cost_per_contact, margin=args.margin)
    except ValueError as exc:
        raise BadInput(f"campaign import: {exc}") from None
    finally:
        store.close()
    _emit(args, {"dataset": dataset, **out}, f"campaign {args.name} imported into {dataset}: {out['arm_sizes']}")
    return EXIT_OK


def report_path(settings, dataset: str, campaign_id: str) -> Path:
    """Where ``campaign analyze`` writes the HTML report."""
    safe = dataset.replace(":", "_").replace("/", "_")
    return settings.home / "reports" / "campaigns" / safe / f"{campaign_id}.html"


def cmd_analyze(args) -> int:
    from recsys.campaigns.analysis import analyze_campaign, write_report

    settings = _settings(args)
    dataset = _dataset(args, settings)
    store = _open_store(settings, dataset, args.store)
    try:
        outcomes = [o.strip() for o in args.outcomes.split(",") if o.strip()] if args.outcomes else None
        try:
            result = analyze_campaign(store, args.name, treatment=args.treatment, outcomes=outcomes,
                                      cost_per_contact=args.cost_per_contact, margin=args.margin, until=args.until,
                                      by=args.by)
        except KeyError:
            raise BadInput(f"no campaign {args.name!r} in {dataset!r} (see `socialrec campaign list --dataset {dataset}`)") from None
        except ValueError as exc:
            raise BadInput(f"campaign analyze: {exc}") from None
        doc = store.read_campaign(args.name)
    finally:
        store.close()
    if not args.no_report:
        path = write_report({**result, "campaign": doc}, report_path(settings, dataset, args.name), f"Campaign {args.name} ({dataset})")
        result["report"] = str(path)
    lines = [f"campaign {args.name} ({dataset}): {result['treatment']} vs {result['control']}, n = {result['arms']}",
             f"SRM chi-square p = {result['srm_p']:.4g}" + ("  ** SAMPLE RATIO MISMATCH: do not trust the lifts **" if result["srm"]["flagged"] else "")]
    for o, r in result["outcomes"].items():
        line = f"  {o:<11} lift {r['lift']:+.5f} [{r['ci'][0]:+.5f}, {r['ci'][1]:+.5f}]  p={r['p_value']:.2g}"
        if r["cuped_lift"] is not None:
            line += f"  CUPED {r['cuped_lift']:+.5f} [{r['cuped_ci'][0]:+.5f}, {r['cuped_ci'][1]:+.5f}]"
        if r["incremental_revenue"] is not None:
            line += f"  incremental revenue {r['incremental_revenue']:,.2f}"
        if r["roi"] is not None:
            line += f"  ROI {r['roi']:+.2f} [{r['roi_ci'][0]:+.2f}, {r['roi_ci'][1]:+.2f}]"
        lines.append(line)
    if result.get("by"):
        for o, part in result["by"]["outcomes"].items():
            het = part["heterogeneity_p"]
            lines.append(f"  {o} by {args.by}: heterogeneity p = {'–' if het is None else f'{het:.3g}'}"
                         + ("" if het is None or het < 0.05 else "  (no evidence that the lift differs between levels)"))
            for r in part["levels"]:
                stat = "too few users" if r["lift"] is None else f"lift {r['lift']:+.5f} [{r['ci'][0]:+.5f}, {r['ci'][1]:+.5f}]"
                lines.append(f"    {r['level']:<22} n={r['n_treatment']}/{r['n_control']}  {stat}")
    if result.get("report"):
        lines.append(f"report: {result['report']}")
    _emit(args, result, "\n".join(lines))
    return EXIT_OK


def cmd_list(args) -> int:
    settings = _settings(args)
    dataset = _dataset(args, settings)
    store = _open_store(settings, dataset, args.store)
    try:
        docs = store.list_campaigns()
    finally:
        store.close()
    slim = [{k: d.get(k) for k in ("id", "status", "source", "launched_at", "n_assigned", "arm_sizes")} for d in docs]
    _emit(args, {"dataset": dataset, "campaigns": slim},
          "\n".join(f"{d['id']:<24} {d['status']:<9} {d['n_assigned']:>8} {d['arm_sizes']}" for d in slim) or "no campaigns")
    return EXIT_OK


def cmd_show(args) -> int:
    settings = _settings(args)
    dataset = _dataset(args, settings)
    store = _open_store(settings, dataset, args.store)
    try:
        doc = store.read_campaign(args.name)
    finally:
        store.close()
    if doc is None:
        raise BadInput(f"no campaign {args.name!r} in {dataset!r}")
    _emit(args, doc)
    return EXIT_OK


def cmd_export(args) -> int:
    from recsys.campaigns.assignment import assignments_csv

    settings = _settings(args)
    dataset = _dataset(args, settings)
    store = _open_store(settings, dataset, args.store)
    try:
        try:
            frame = store.read_assignments(args.name)
        except KeyError:
            raise BadInput(f"no campaign {args.name!r} in {dataset!r}") from None
    finally:
        store.close()
    if args.ids:
        from etl.pseudonymise import Pseudonymiser

        pseudo = Pseudonymiser(settings.resolved_pseudonym_key()).user
        raw = pd.read_csv(args.ids, dtype=str, keep_default_na=False)
        col = next((c for c in ("user_id", "customer_id") if c in raw.columns), None)
        if col is None:
            from etl.errors import EtlInputError

            raise EtlInputError(args.ids, 1, "user_id", "missing column")
        back = dict(zip(raw[col].map(pseudo), raw[col]))
        frame = frame[frame["user_id"].isin(back)].assign(user_id=lambda f: f["user_id"].map(back))
    text = assignments_csv(frame)
    if args.output:
        out = Path(args.output)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text)
        tmp.replace(out)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def register(sub, common) -> None:
    """Add ``socialrec campaign ...``."""
    p = sub.add_parser("campaign", help="randomised campaigns: create/import, analyze (lift, CUPED, SRM, ROI), export")
    verbs = p.add_subparsers(dest="campaign_command", required=True)

    def base(s):
        s.add_argument("--dataset", help="the store namespace (default SOCIALREC_DATASET)")
        common(s)

    s = verbs.add_parser("create", help="assign a two-arm campaign by salted hash and store it")
    s.add_argument("--name", required=True, help="campaign id (letters, digits, _ . -)")
    s.add_argument("--audience", help="CSV with a user_id column (the shop's raw ids)")
    s.add_argument("--segment", help="the users of this stored segment")
    s.add_argument("--uplift-top", type=int, help="the K users with the highest written-back uplift score")
    s.add_argument("--treatment-share", type=float, default=0.5)
    s.add_argument("--stratify", choices=["segment"], default=None)
    s.add_argument("--salt", default=None, help="hash salt (default: the name)")
    s.add_argument("--launch-at", type=float, default=None, help="Unix seconds outcomes count from (default now)")
    s.add_argument("--cost-per-contact", type=float, default=0.0)
    s.add_argument("--margin", type=float, default=1.0, help="share of revenue that is profit, for ROI")
    base(s)
    s.set_defaults(func=cmd_create)

    s = verbs.add_parser("import", help="store a finished campaign from a campaign table (hillstrom, csv:PATH)")
    s.add_argument("--name", required=True)
    s.add_argument("--table", required=True, help="hillstrom | csv:PATH | parquet:PATH (docs/marketing.md schema)")
    s.add_argument("--control", default=None, help="the control arm (default: detected)")
    s.add_argument("--arms", default=None, help="comma-separated arms allowed (others are an error)")
    s.add_argument("--outcomes", default=None, help="comma-separated outcome columns (default all)")
    s.add_argument("--pre", default=None, help="numeric pre-period covariate used by CUPED, e.g. history")
    s.add_argument("--shares", default=None, help="designed arm shares, in arm order (default equal)")
    s.add_argument("--launch-at", type=float, default=None)
    s.add_argument("--cost-per-contact", type=float, default=0.0)
    s.add_argument("--margin", type=float, default=1.0)
    base(s)
    s.set_defaults(func=cmd_import)

    s = verbs.add_parser("analyze", help="lift with 95% CIs, CUPED, SRM, incremental revenue, ROI + HTML report")
    s.add_argument("name")
    s.add_argument("--treatment", default=None, help="treatment arm to report (default the campaign's)")
    s.add_argument("--outcomes", default=None)
    s.add_argument("--cost-per-contact", type=float, default=None)
    s.add_argument("--margin", type=float, default=None)
    s.add_argument("--until", type=float, default=None, help="end of the outcome window, Unix seconds")
    s.add_argument("--by", default=None, help="lift per level of a column (segment, stratum, an imported covariate)")
    s.add_argument("--no-report", action="store_true", help="skip the HTML report")
    base(s)
    s.set_defaults(func=cmd_analyze)

    s = verbs.add_parser("list", help="campaigns of a dataset")
    base(s)
    s.set_defaults(func=cmd_list)

    s = verbs.add_parser("show", help="one campaign's document")
    s.add_argument("name")
    base(s)
    s.set_defaults(func=cmd_show)

    s = verbs.add_parser("export", help="assignments as CSV")
    s.add_argument("name")
    s.add_argument("--ids", default=None, help="CSV of the shop's raw user ids: export those with raw ids")
    s.add_argument("--output", default=None, help="write to this file (atomically) instead of stdout")
    base(s)
    s.set_defaults(func=cmd_export)
