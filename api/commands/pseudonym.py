"""``socialrec pseudonym RAW_ID...``: the pseudonym of a shop customer, to find them in Neo4j.

Analysts query the graph by pseudonym (``u_…``, what the ETL stores); support staff know the
shop's raw customer id. This command maps raw ids to pseudonyms with the same keyed HMAC as the
ETL (:class:`etl.pseudonymise.Pseudonymiser`), so it needs ``SOCIALREC_PSEUDONYM_KEY`` (the demo
key only in demo/test mode). Raw ids are read from the arguments or, with ``-`` / ``--stdin``,
one per line from standard input (which keeps them out of the shell history and ``ps``). Output:
one pseudonym per line in input order (``--json``: ``{"pseudonyms": [...], "key_id": ...}``). Raw
ids are never logged or echoed.

Exit codes: 0; 2 when no id is given, an id is empty, or no key is configured.
"""

from __future__ import annotations

import sys


def cmd_pseudonym(args) -> int:
    from api.cli import _emit, _settings
    from etl.pseudonymise import Pseudonymiser

    raw = list(args.raw_ids or [])
    if args.stdin or raw == ["-"]:
        raw = [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
    problem = "give at least one raw user id (or --stdin with one id per line)" if not raw else next(
        (f"raw id {n} is empty" for n, value in enumerate(raw, start=1) if not value.strip()), None)
    if problem:  # printed here: api.cli's BadInput is another class when run as python -m api.cli
        print(f"socialrec: bad input: {problem}", file=sys.stderr)
        return 2
    settings = _settings(args)
    pseudo = Pseudonymiser(settings.resolved_pseudonym_key())
    out = [pseudo.user(value) for value in raw]
    _emit(args, {"pseudonyms": out, "key_id": settings.pseudonym_key_id()}, "\n".join(out))
    return 0


def register(sub, common) -> None:
    """Add ``socialrec pseudonym``."""
    s = sub.add_parser("pseudonym", help="pseudonyms of raw (shop) user ids, as the ETL stores them; needs the key")
    s.add_argument("raw_ids", nargs="*", metavar="RAW_ID", help="raw user ids ('-' = read from stdin)")
    s.add_argument("--stdin", action="store_true", help="read raw ids from stdin, one per line")
    s.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    s.set_defaults(func=cmd_pseudonym)
