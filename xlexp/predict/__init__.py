"""Predict the matrix before paying for it: features, completion, recommendation, evaluation, active filling.

``uriel`` reads URIEL distances from the database urielplus ships; ``represent`` the model's view
of a language (mean-pooled hidden states, sub-words; cached); ``features`` assembles the pair
features; ``complete`` fills a partially measured sources x targets matrix with intervals;
``rank`` recommends sources for a target; ``active`` chooses the sources worth training;
``evaluate`` measures all of it on complete matrices; ``predictor`` ties them to the results
store (predicted cells go to ``xlexp.results.predicted``, never to the records).

Stage: below ``views`` (which shows predicted cells through ``xlexp.results``) and above
``engine``.
"""
