"""One exception type for bad input: the CLI prints its message alone, without a traceback."""


class XlexpError(Exception):
    """A user-facing error: the message names what is wrong and how to fix it."""



def unknown_key(key: str, known, where: str, prefix: str = "") -> XlexpError:
    """The one-line error for a key nobody reads (a typo silently ignored can change what a run does:
    ``primary_metrc`` once switched model selection to accuracy): the closest known key first.
    ``prefix`` is prepended to the key names shown (``model.`` for ``model.peeft``)."""
    import difflib

    known = sorted(str(k) for k in known)
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
    return XlexpError(f"unknown key '{prefix}{key}' in {where}{hint} (known: {', '.join(known)})")


def debug() -> bool:
    """``XLEXP_DEBUG=1``: tracebacks too, for failures that otherwise end in one line."""
    import os

    return os.environ.get("XLEXP_DEBUG", "").strip().lower() not in ("", "0", "false", "no")
