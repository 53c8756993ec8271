"""Models of the study, built by name: ``create_model("pytorch_cnn")``."""
from . import alexnet_ir, blog, classic, inception_hccr, lenet_variant, pytorch_cnn, resnet_hccr  # noqa: F401  (registration)
from .registry import (check_model_name, count_params, create_model, layer_table, list_models, register_model,
                       residual_adds)

__all__ = ["create_model", "list_models", "count_params", "layer_table", "register_model", "check_model_name",
           "residual_adds"]
