"""Tasks as data: one YAML file per benchmark (``xlexp/conf/task`` or a user config folder) becomes a
``TaskSpec``; readers turn local files (csv/tsv/jsonl/CoNLL/parallel text) or hub datasets into
examples.
"""
