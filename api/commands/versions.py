"""``socialrec versions list|prune|rollback`` and ``socialrec events stats|prune``.

* ``versions list`` — saved versions of a dataset, newest first (promoted / previous marked, size).
* ``versions prune [--keep N] [--dry-run]`` — delete old versions; the promoted and the previous
  version are never deleted, plus the ``N`` newest (default 3). Runs under the retrain lock, so
  a version being written by ``retrain`` is never touched (exit 1 while a retrain runs).
* ``versions rollback [--to VERSION]`` — promote the previous (or the named) version again and
  rewrite its vectors/scores into the store's write-back (flipped after promotion, as in
  ``retrain``); a running server swaps to it within ``SOCIALREC_RELOAD_POLL_SECONDS``.
* ``events stats`` / ``events prune [--older-than-days D]`` — the durable event journal:
  delivered event rows older than D days (default 7) are deleted; registrations and
  undelivered rows are kept.
"""

from __future__ import annotations


def register(sub, common) -> None:
    v = sub.add_parser("versions", help="list, prune or roll back model versions")
    vsub = v.add_subparsers(dest="versions_command", required=True)
    for name, helptext in (("list", "saved versions, newest first"),
                           ("prune", "delete old versions (never the promoted or the previous one)"),
                           ("rollback", "promote the previous (or --to) version again")):
        p = vsub.add_parser(name, help=helptext)
        p.add_argument("--dataset", help="dataset (default: SOCIALREC_DATASET or the latest promoted)")
        common(p)
        if name == "prune":
            p.add_argument("--keep", type=int, default=None, help="newest versions kept besides promoted/previous (default 3)")
            p.add_argument("--dry-run", action="store_true", help="only report what would be deleted")
        if name == "rollback":
            p.add_argument("--to", default=None, help="version id to promote (default: the previous one)")
            p.add_argument("--no-write-back", action="store_true", help="do not rewrite vectors/scores into the store")
        p.set_defaults(func=cmd_versions)

    e = sub.add_parser("events", help="the durable event journal: stats, prune")
    esub = e.add_subparsers(dest="events_command", required=True)
    for name in ("stats", "prune"):
        p = esub.add_parser(name, help="journal counts" if name == "stats" else "delete delivered event rows older than D days")
        common(p)
        if name == "prune":
            p.add_argument("--older-than-days", type=float, default=7.0, help="age of delivery in days (default 7)")
        p.set_defaults(func=cmd_events)


def _dataset(args, settings) -> str:
    from api.cli import BadInput
    from recsys.versions import promoted_datasets

    dataset = args.dataset or settings.dataset
    if not dataset:
        promoted = promoted_datasets(settings.home)
        if not promoted:
            raise BadInput("--dataset is required (or set SOCIALREC_DATASET) when nothing is promoted yet")
        dataset = promoted[0][1]
    return dataset


def cmd_versions(args) -> int:
    from api.cli import EXIT_FAILURE, EXIT_OK, BadInput, _emit, _settings
    from recsys.retrain import RetrainLocked, activate_write_back, retrain_lock, write_back_models
    from recsys.versions import DEFAULT_KEEP, VersionNotFoundError, list_versions, load_version, prune_versions, rollback

    settings = _settings(args)
    dataset = _dataset(args, settings)
    if args.versions_command == "list":
        rows = list_versions(settings.home, dataset)
        human = "\n".join(f"{r['version']}  {r['made_by'] or '-':<8} {r['serving_model'] or '-':<10} {r['bytes'] / 1e6:8.1f} MB"
                          f"{'  promoted' if r['promoted'] else ''}{'  previous' if r['previous'] else ''}" for r in rows)
        _emit(args, {"dataset": dataset, "versions": rows}, human or f"no versions of {dataset}")
        return EXIT_OK
    keep = DEFAULT_KEEP if getattr(args, "keep", None) is None else args.keep
    if keep < 0:
        raise BadInput(f"--keep must be >= 0, got {keep}")
    try:
        with retrain_lock(settings.home):
            if args.versions_command == "prune":
                out = {"dataset": dataset, **prune_versions(settings.home, dataset, keep=keep, dry_run=args.dry_run)}
                human = (f"{'would delete' if args.dry_run else 'deleted'} {len(out['deleted'])} version(s), "
                         f"{out['freed_bytes'] / 1e6:.1f} MB; kept {', '.join(out['kept'])}")
            else:
                try:
                    out = {"dataset": dataset, **rollback(settings.home, dataset, args.to)}
                except VersionNotFoundError as exc:
                    raise BadInput(str(exc)) from None
                if not args.no_write_back:
                    loaded = load_version(settings.home, dataset, out["current"])
                    from graph.store import open_store  # the dataset has versions: no name check needed

                    store = open_store(dataset, kind=args.store, **settings.store_kwargs())
                    try:
                        written = write_back_models(store, loaded.snapshot, loaded.models, loaded.serving_model,
                                                    f"{loaded.version}/{loaded.serving_model}")
                        written["activated"] = activate_write_back(store, loaded.version)
                    finally:
                        store.close()
                    out["write_back"] = written
                human = f"rolled {dataset} back to {out['current']} (was {out['was']})"
    except RetrainLocked as exc:
        _emit(args, {"dataset": dataset, "error": str(exc), "state": "locked"}, f"socialrec: {exc}")
        return EXIT_FAILURE
    _emit(args, out, human)
    return EXIT_OK


def cmd_events(args) -> int:
    from api.cli import EXIT_OK, BadInput, _emit, _settings
    from recsys.events import EventQueue

    settings = _settings(args)
    queue = EventQueue(settings.resolved_queue_dir())
    try:
        if args.events_command == "stats":
            out = queue.stats()
            _emit(args, out, ", ".join(f"{k}={v}" for k, v in out.items()))
            return EXIT_OK
        if args.older_than_days < 0:
            raise BadInput(f"--older-than-days must be >= 0, got {args.older_than_days}")
        deleted = queue.prune(args.older_than_days * 86400)
        out = {"deleted": deleted, **queue.stats()}
        _emit(args, out, f"deleted {deleted} delivered event row(s); {out['pending']} pending")
        return EXIT_OK
    finally:
        queue.close()
