"""``xlexp`` command: looks up the verb (one module each, :mod:`xlexp.cli.registry`) and runs it.

``xlexp --help`` is generated from the registry; ``run`` hands its arguments to Hydra; the other
verbs parse their own. An XlexpError (or a missing optional extra) becomes one line,
``xlexp: error: ...``, and exit code 2 (the traceback too under ``XLEXP_DEBUG=1``).
"""

from __future__ import annotations

import sys

from xlexp.cli import registry
from xlexp.cli.registry import version
from xlexp.errors import XlexpError, debug, missing_extra

__all__ = ["main", "version"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(registry.usage())
        return 0
    if argv[0] in ("--version", "-V"):
        print(f"xlexp {version()}")
        return 0
    command, rest = argv[0], argv[1:]
    verb = registry.get(command)
    if verb is None:
        print(f"xlexp: unknown command '{command}'\n\n{registry.usage()}", file=sys.stderr)
        return 2
    try:
        return verb.main(rest)
    except (XlexpError, ImportError) as e:
        if isinstance(e, ImportError):  # an optional extra that is not installed: one line naming it
            if missing_extra(e) is None:
                raise
            e = missing_extra(e)
        if debug():  # the traceback too, for a bug report
            import traceback

            traceback.print_exc()
        print(f"xlexp: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
