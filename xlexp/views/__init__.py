"""Views: what a person sees of the results, drawn from ``xlexp.results.query``.

``console`` prints matrices, gaps and few-shot tables (rich); ``figures`` draws every heatmap and
K-curve (plotly for the report and W&B, matplotlib PNGs for files); ``html`` writes the report;
``tables`` the Markdown/LaTeX tables; ``compare`` the delta matrix of two experiments;
``progress`` the training progress bars.
"""
