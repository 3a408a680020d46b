"""Feature networks (I/O, weights, devices), kept apart from the metric math one folder up.

Names are imported when first used (the networks pull in torch and clean-fid)."""

import importlib

_HOMES = {"FeatureExtractor": "base", "InceptionExtractor": "inception", "load_inception": "inception",
          "VGG16Extractor": "vgg", "load_vgg16": "vgg"}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
