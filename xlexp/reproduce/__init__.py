"""``xlexp reproduce``: published tables as data, run (or reused) and compared with ours.

``spec`` reads a reproduction and its reference table and holds the planned runs and the result;
``runner`` plans, runs through ``xlexp.experiment``, reuses matching records and compares;
``output`` prints and writes the tables and the Δ heatmap.
"""
