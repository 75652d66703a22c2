"""Applying trained generators: the translator, model resolution, tiling, videos and ONNX export.

The names are imported on first use, so that `cyclegan.inference.onnx` (what `cyclegan export`
needs) loads without the translator, PIL and the video code.
"""
from __future__ import annotations

_EXPORTS = {
    "Translator": "translator", "load_translators": "translator", "pad_to_multiple": "translator",
    "expand_inputs": "translator", "TranslationReport": "translator",
    "ResolvedModel": "resolve", "resolve": "resolve", "Pipeline": "pipeline",
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cyclegan.inference' has no attribute {name!r}")
    if _EXPORTS[name] == "translator":
        from cyclegan.inference import translator as module
    elif _EXPORTS[name] == "resolve":
        from cyclegan.inference import resolve as module
    else:
        from cyclegan.inference import pipeline as module
    return getattr(module, name)


__all__ = list(_EXPORTS)
