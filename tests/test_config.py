"""Run configuration is derived from the domain's settings dataclasses: one source of truth per stage, mapped by keyword."""

import dataclasses
import os

import dagster as dg
import pytest

from assets.config import settings_config, to_settings
from assets.cropped import CropSettings
from assets.datasets import CleaningSettings, GenerationSettings, SplitSettings
from assets.ensemble import EnsembleSettings
from assets.label_issues import LabelIssuesSettings
from assets.models import TrainingConfig
from maskops.cleaning import CleaningRules
from maskops.crop import CropConfig
from maskops.ensemble import EnsembleConfig
from maskops.generate import GenerateConfig
from maskops.label_issues import LabelIssuesConfig
from maskops.options import help_of, option
from maskops.splits import SplitConfig
from maskops.train import PRESETS, TrainConfig

STAGES = [
    (CropSettings, CropConfig), (SplitSettings, SplitConfig), (CleaningSettings, CleaningRules), (GenerationSettings, GenerateConfig),
    (EnsembleSettings, EnsembleConfig), (LabelIssuesSettings, LabelIssuesConfig),
]  # fmt: skip


@pytest.mark.parametrize(("config", "settings"), STAGES)
def test_every_stage_config_is_its_domain_dataclass(config, settings):
    fields = {f.name: f for f in dataclasses.fields(settings)}
    assert set(config.model_fields) == set(fields)
    for name, field in fields.items():
        assert config.model_fields[name].description == help_of(field) != "", name
    assert to_settings(settings, config()) == settings()  # the defaults are the domain's defaults


def test_values_map_back_by_keyword_and_tuples_round_trip():
    crop = to_settings(CropConfig, CropSettings(margin=12, background_color=[9, 8, 7], order="crop_first"))
    assert crop == CropConfig(margin=12, background_color=(9, 8, 7), order="crop_first")
    cleaning = to_settings(CleaningRules, CleaningSettings(drop_age_band=False, age_band_high=61))
    assert cleaning.age_band is None and cleaning.age_band_high == 61


def test_a_field_added_to_the_domain_appears_in_the_run_config():
    @dataclasses.dataclass(frozen=True)
    class Settings:
        first: int = option(1, "The first.")
        inserted: str = option("x", "Added between two fields.")
        last: float = option(2.5, "The last.")

    derived = settings_config(Settings)
    assert to_settings(Settings, derived(last=3.0, first=7)) == Settings(first=7, inserted="x", last=3.0)  # never by position

    @dg.asset
    def uses(config: derived) -> None: ...

    schema = uses.op.config_schema.config_type.fields
    assert set(schema) == {"first", "inserted", "last"} and schema["inserted"].description == "Added between two fields."


def test_training_config_overrides_only_what_is_set():
    config = TrainingConfig(preset="seed-best", epochs=3, task_weights=[0.1, 0.1, 0.8])
    resolved = config.train_config(device="cpu")
    assert resolved == dataclasses.replace(PRESETS["seed-best"], epochs=3, task_weights=(0.1, 0.1, 0.8), device="cpu")
    assert set(TrainingConfig.model_fields) == {f.name for f in dataclasses.fields(TrainConfig)} - {"device"} | {
        "preset",
        "gradcam_images",
        "mask_only_photos",
    }
    with pytest.raises(ValueError, match="unknown preset"):
        TrainingConfig(preset="nope").train_config("cpu")


@pytest.mark.parametrize("do_not_track", [None, "1", "true", "0"])
def test_the_environment_maskops_gives_its_processes_switches_every_telemetry_off(monkeypatch, tmp_path, do_not_track):
    """Read back by the tools' own switches; DO_NOT_TRACK=1 on its own would not stop MLflow 3 (it reads only "true")."""
    from dagster._core.telemetry_upload import is_running_in_test as dagster_upload_off
    from mlflow.environment_variables import MLFLOW_DISABLE_TELEMETRY

    from maskops.settings import Settings

    for name in ("MLFLOW_DISABLE_TELEMETRY", "GX_ANALYTICS_ENABLED", "DAGSTER_DISABLE_TELEMETRY", "DO_NOT_TRACK"):
        monkeypatch.delenv(name, raising=False)
    if do_not_track is not None:
        monkeypatch.setenv("DO_NOT_TRACK", do_not_track)
    assert not MLFLOW_DISABLE_TELEMETRY.get() and not dagster_upload_off()  # the switches can be seen off
    env = Settings.from_env({**os.environ, "MASKOPS_HOME": str(tmp_path)}).environment()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert MLFLOW_DISABLE_TELEMETRY.get() and dagster_upload_off()
    assert env["GX_ANALYTICS_ENABLED"] == "false" and env["DO_NOT_TRACK"] == "1"
