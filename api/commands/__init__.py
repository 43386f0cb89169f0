"""``socialrec`` sub-commands that live in their own modules.

Each module here defines ``register(sub, common)``: ``sub`` is the argparse sub-parsers object,
``common(parser, json_flag=True)`` adds the shared ``--json``/``--store``/``--no-progress`` flags.
:func:`api.cli.build_parser` calls every module's ``register`` in name order, so a new command is a
new file here and nothing else. A command's function returns the exit code (0, 1, 2) and raises
:class:`api.cli.BadInput` / :class:`etl.errors.EtlInputError` for bad input (exit 2).
"""

from __future__ import annotations

import importlib
import pkgutil


def register_all(sub, common) -> None:
    """Call ``register(sub, common)`` of every module of this package, in name order."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(sub, common)
