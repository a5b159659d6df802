"""Typed settings (xlexp.config.schema) and the registered regimes and task types."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from conftest import TINY, compose_cfg
from xlexp import XlexpError, load_records
from xlexp.config.compose import CONF_DIR, compose_config
from xlexp.config.paths import list_configs
from xlexp.config.schema import (
    ClassicalSettings,
    DataSettings,
    EncoderSettings,
    OptimizerSettings,
    RegimeSettings,
    TrainerSettings,
    TransformerSettings,
    build,
)
from xlexp.errors import XlexpError
from xlexp.experiment import regimes
from xlexp.experiment.regimes.few_shot import FewShotSettings
from xlexp.experiment.runner import resolve_settings, run_experiment
from xlexp.tasks import types


@pytest.mark.unit
def test_the_default_config_resolves_to_typed_settings():
    s = resolve_settings(compose_config([]))
    assert isinstance(s.model, EncoderSettings) and s.model.name == "me5_small_offline"
    assert isinstance(s.data, DataSettings) and s.data.batch_size == 16 and s.data.group_by_length is True
    assert isinstance(s.trainer, TrainerSettings) and s.trainer.compile is False
    assert isinstance(s.optimizer, OptimizerSettings) and s.optimizer.betas == (0.9, 0.999)
    assert type(s.regime) is RegimeSettings and s.regime.dev_targets == "auto"
    assert s.seeds == (42,) and s.experiment == s.name
    assert isinstance(s.paths.cache_dir, Path) and "~" not in str(s.paths.cache_dir)


@pytest.mark.unit
@pytest.mark.parametrize("model", [m for m in list_configs("model") if not m.startswith("_")])
def test_every_shipped_model_resolves(model):
    s = resolve_settings(compose_config([f"model={model}"]))
    assert s.model.name == model
    assert isinstance(s.model, ClassicalSettings if model.startswith("classical") else TransformerSettings)


@pytest.mark.unit
@pytest.mark.parametrize("regime", regimes.available())
def test_every_regime_yaml_matches_its_settings_class(regime):
    """Every key of conf/regime/NAME.yaml is a field of the regime's class, and back again: the YAML
    shows every option the class has (so the generated docs list them all)."""
    model = "tiny_random_decoder" if regimes.get(regime).families == ("decoder",) else "tiny_random"
    s = resolve_settings(compose_config([f"regime={regime}", f"model={model}", "langpair.sources=[eng,ind]"]))
    assert isinstance(s.regime, regimes.get(regime).settings_class)
    keys = set(yaml.safe_load((Path(CONF_DIR) / "regime" / f"{regime}.yaml").read_text()))
    assert keys == {f.name for f in dataclasses.fields(s.regime)}


@pytest.mark.unit
def test_every_task_type_is_registered_and_every_shipped_task_uses_one():
    assert {"sentence_classification", "pair_classification", "token_classification", "retrieval"} <= set(
        types.available()
    )
    for name in list_configs("task"):
        task = yaml.safe_load((Path(CONF_DIR) / "task" / f"{name}.yaml").read_text())
        assert task["type"] in types.available(), name


@pytest.mark.unit
@pytest.mark.parametrize(
    "override, message",
    [
        (
            "+model.peeft=lora",
            r"unknown key 'model.peeft' in the model settings \(EncoderSettings\); did you mean 'model.peft'\? \(known: .*peft",
        ),
        (
            "+data.batchsize=8",
            r"unknown key 'data.batchsize' in the data settings \(DataSettings\); did you mean 'data.batch_size'",
        ),
        ("regime=few_shot regime.k_per=each", r"regime.k_per must be class or total; got 'each'"),
        ("regime.selection=best", r"regime.selection must be one of source_dev, target_dev, last; got 'best'"),
        ("regime.seeds=[]", r"regime.seeds is empty"),
        ("data.source=ftp", r"data.source must be one of auto, local, hub; got 'ftp'"),
        ("optimizer.warmup_ratio=1.5", r"optimizer.warmup_ratio must be in \[0, 1\), got 1.5"),
        ("model.pooling=max", r"model.pooling must be 'cls' or 'mean', got 'max'"),
        ("regime=multi_source regime.temperature=0", r"regime.temperature must be > 0, got 0"),
        ("tracker=wandb tracker.mode=sometimes", r"tracker.mode must be one of"),
    ],
)
def test_a_bad_setting_is_one_line_before_any_work(override, message):
    with pytest.raises(XlexpError, match=message):
        resolve_settings(compose_config(["model=tiny_random", *override.split()]))


@pytest.mark.unit
def test_build_turns_lists_into_tuples_and_builds_nested_settings():
    fs = build(FewShotSettings, {"name": "few_shot", "k": [1, 2], "finetune": {"lr": 1e-3}}, "regime")
    assert fs.k == (1, 2) and fs.finetune.lr == 1e-3 and fs.finetune.epochs == 5
    with pytest.raises(XlexpError, match=r"unknown key .regime.finetune.steps. in the regime.finetune settings"):
        build(FewShotSettings, {"name": "few_shot", "finetune": {"steps": 3}}, "regime")


@pytest.mark.unit
def test_lora_and_freezing_name_the_experiment():
    s = resolve_settings(compose_config(["model=tiny_random", "model.peft=lora", "model.freeze_layers=1", "name=x"]))
    assert s.model.finetune == "lora-r8+freeze-1l" and s.experiment == "x+lora-r8+freeze-1l"


def test_a_regime_is_one_registered_class_plus_yaml(dirs, tmp_path, monkeypatch):
    """A regime added from outside the package: a Regime subclass and a YAML in a user config folder;
    nothing else is edited. It trains like zero-shot but only on the first seed's first source."""
    from xlexp.experiment.plan import TrainingUnit
    from xlexp.experiment.transfer import train_unit

    @dataclasses.dataclass(frozen=True)
    class OnlyFirstSettings(RegimeSettings):
        note: str = ""

    class OnlyFirst(regimes.Regime):
        name = "only_first_test"
        settings_class = OnlyFirstSettings

        def units(self, settings, sources, targets, watch, seeds):
            return [TrainingUnit(sources[0], (sources[0],), (sources[0],), targets, watch, seeds[0])]

        def run_unit(self, ctx, unit, index, out):
            train_unit(ctx, unit, index, ctx.build_classifier(), out)

    regimes.register(OnlyFirst)
    try:
        folder = tmp_path / "conf"
        (folder / "regime").mkdir(parents=True)
        (folder / "regime" / "only_first_test.yaml").write_text(
            "name: only_first_test\nselection: source_dev\nseeds: null\ndev_targets: auto\nnote: hello\n"
        )
        monkeypatch.setenv("XLEXP_CONFIG_PATH", str(folder))
        run_experiment(
            compose_cfg(
                dirs,
                *TINY,
                "regime=only_first_test",
                "langpair.sources=[eng,ind]",
                "langpair.targets=[jav]",
                "trainer.epochs=1",
                "name=one",
            )
        )
    finally:
        regimes.REGISTRY.unregister("only_first_test")
    df = load_records(dirs["results"])
    assert set(df["regime"]) == {"only_first_test"} and set(df["source"]) == {"eng"}
