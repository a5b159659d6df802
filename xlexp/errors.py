"""One exception type for bad input: the CLI prints its message alone, without a traceback."""


class XlexpError(Exception):
    """A user-facing error: the message names what is wrong and how to fix it."""
