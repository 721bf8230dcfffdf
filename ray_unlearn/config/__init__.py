"""YAML experiment file -> validated, frozen dataclasses (no torch).

One file is one experiment (docs/yaml.md). Everything is checked before anything starts: unknown
keys, methods, datasets, archs and hyperparameters, bad types, empty or inverted ranges. Each problem
is a `ConfigError` naming the file, key path, bad value and what is allowed.

- `sections`: the sections' dataclasses and the metric vocabulary
- `experiment`: `Experiment` and `MethodSpec`
- `yaml_io`: safe reading, `--set` overrides, writing
- `parse`: raw data -> `Experiment`, with every check
"""

from .experiment import Experiment, MethodSpec, trial_config
from .parse import load_experiment, parse_experiment
from .sections import (
    METRIC_DIRECTIONS,
    MIN_POPULATION,
    UNIVERSAL_WEIGHTS,
    DataConfig,
    ForgetConfig,
    ModelConfig,
    ObjectiveConfig,
    RecheckConfig,
    ResourcesConfig,
    TrackingConfig,
    TrainConfig,
    TuneConfig,
)
from .yaml_io import MAX_DEPTH, apply_overrides, dump_yaml, parse_yaml_text, read_yaml

__all__ = [
    "MAX_DEPTH", "METRIC_DIRECTIONS", "MIN_POPULATION", "UNIVERSAL_WEIGHTS", "DataConfig", "Experiment", "ForgetConfig",
    "MethodSpec", "ModelConfig", "ObjectiveConfig", "RecheckConfig", "ResourcesConfig", "TrackingConfig", "TrainConfig",
    "TuneConfig", "apply_overrides", "dump_yaml", "load_experiment", "parse_experiment", "parse_yaml_text", "read_yaml",
    "trial_config",
]
