"""Model zoo: one file per family, pure ``nn.Module``s; ``registry`` builds them by name.

Importing the package imports every family (``_families``), which registers its variants: the
registry itself imports no family, so the imports run one way (families → registry)."""

from . import _families  # noqa: F401  (registers the variants)
from .registry import ModelInfo, count_parameters, create_model, list_models, model_info, register_model, zero_output_layer

__all__ = ["ModelInfo", "count_parameters", "create_model", "list_models", "model_info", "register_model",
           "zero_output_layer"]
