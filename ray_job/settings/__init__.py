"""The job settings, each declared once (declared.py) as a `Setting` (setting.py); the
config, the command line's flags (flags.py) and docs/reference.md (reference.py) are made from
them. Imports nothing but the standard library: `ray-embed --help` reads it."""
from .declared import (DEVICES, INDEX_VECTORS, MAP_SAMPLE, OPTION_SETTINGS, PRECISIONS,
                       SETTINGS, SPEC_SETTINGS)
from .presets import PRESETS
from .setting import APPLIED, OPTIONS, SPEC, TYPE_WORDS, Setting

__all__ = ["APPLIED", "DEVICES", "INDEX_VECTORS", "MAP_SAMPLE", "OPTIONS", "OPTION_SETTINGS",
           "PRECISIONS", "PRESETS", "SETTINGS", "SPEC", "SPEC_SETTINGS", "TYPE_WORDS",
           "Setting"]
