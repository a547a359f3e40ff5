"""Model zoo: one file per family, pure ``nn.Module``s; ``registry`` builds them by name."""

from .registry import ModelInfo, count_parameters, create_model, list_models, model_info, register_model, zero_output_layer

__all__ = ["ModelInfo", "count_parameters", "create_model", "list_models", "model_info", "register_model",
           "zero_output_layer"]
