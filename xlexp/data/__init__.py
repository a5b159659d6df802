"""Data for training and evaluation: tokenized splits with a content-keyed cache (``tokenized``),
length-grouped batches and collation, vocabulary trimming (``vocab``) and few-shot shot sets
(``fewshot``).
"""
