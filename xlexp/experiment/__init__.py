"""Experiments: from typed settings to records.

``plan`` expands languages into training units and checks every split exists before any work;
``regimes/`` holds one registered module per regime (zero_shot, few_shot, multi_source, full);
``transfer`` trains a unit and tests every target under every selection rule; ``retrieval`` and
``classical`` run the units of retrieval tasks and scikit-learn baselines; ``context`` is what the
units of one run share; ``runner`` resolves the config once and writes the records.
"""
