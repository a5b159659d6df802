"""Checks on the composed Hydra config, so a typo fails in one line before any work starts."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from xlexp.errors import XlexpError

REQUIRED_GROUPS = ("model", "task", "langpair", "regime", "optimizer", "tracker", "data", "trainer", "paths")


def _positive_int(cfg: DictConfig, key: str, allow_none: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise XlexpError(f"{key} must be a positive integer, got {value!r}")


def _one_of(cfg: DictConfig, key: str, choices: tuple) -> None:
    value = OmegaConf.select(cfg, key)
    if value not in choices:
        raise XlexpError(f"{key} must be one of {', '.join(map(str, choices))}; got {value!r}")


def validate(cfg: DictConfig) -> None:
    missing = [g for g in REQUIRED_GROUPS if g not in cfg or cfg[g] is None]
    if missing:
        raise XlexpError(f"config is missing group(s) {missing}; check conf/config.yaml defaults")
    for key in ("data.batch_size", "data.eval_batch_size", "data.max_length", "trainer.epochs"):
        _positive_int(cfg, key)
    for key in ("data.max_train_examples", "data.max_eval_examples", "trainer.eval_every", "trainer.num_threads",
                "trainer.grad_accum_steps"):
        _positive_int(cfg, key, allow_none=True)
    _one_of(cfg, "trainer.precision", ("auto", "fp32", "bf16"))
    from xlexp.engine.loop import compile_setting  # trainer.compile: bool or a torch.compile mode

    compile_setting(OmegaConf.select(cfg, "trainer.compile", default=False))
    _one_of(cfg, "data.source", ("auto", "local", "hub"))
    from xlexp.tracking.base import check_tracker_config  # tracker options fail here, before any work

    check_tracker_config(cfg.tracker)
    lr = cfg.optimizer.get("lr")
    if not isinstance(lr, (int, float)) or lr <= 0:
        raise XlexpError(f"optimizer.lr must be a positive number, got {lr!r}")
    for key in ("optimizer.warmup_ratio", "optimizer.label_smoothing"):
        value = OmegaConf.select(cfg, key, default=0.0)
        if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise XlexpError(f"{key} must be in [0, 1), got {value!r}")
    model_max = cfg.model.get("max_length")
    if model_max is not None and cfg.data.max_length > model_max:
        raise XlexpError(f"data.max_length={cfg.data.max_length} exceeds model '{cfg.model.name}''s limit "
                         f"model.max_length={model_max}; use data.max_length<={model_max}")
    if cfg.model.get("family") != "classical":
        from xlexp.models.finetune import check_config

        check_config(cfg.model)
    dropout = cfg.model.get("dropout")
    if dropout is not None and (not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0):
        raise XlexpError(f"model.dropout must be null or in [0, 1), got {dropout!r}")
    if not isinstance(cfg.seed, int):
        raise XlexpError(f"seed must be an integer, got {cfg.seed!r}")
