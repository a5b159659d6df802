"""Active matrix filling (``langpair.budget``): a stage above the experiment, as the sweep is.

:func:`run` takes typed settings and runs the experiment stage once per chosen source, then predicts
the other rows (:mod:`xlexp.fill.budget`).
"""

from xlexp.fill.budget import run

__all__ = ["run"]
