"""Results: the store of immutable long-format records and the one way to read it.

``store`` writes and loads the Parquet records (and per-example predictions) of every training
unit; ``query`` is THE query layer over them (latest replicate, default metric and selection rule,
matrices, slices, gaps, K-curves); ``significance`` holds the bootstraps of ``xlexp compare``;
``languages`` the language codes, names, scripts and families.
"""
