"""A small IoT model zoo. Every model is a plain nn.Module registered by name;
`create_model(name, **kwargs)` builds one, `list_models()` names them all."""
from edgeprune.zoo import autoencoder, har, vision  # noqa: F401
from edgeprune.zoo.registry import (
    MODELS,
    ModelSpec,
    create_model,
    list_models,
    register_model,
)

__all__ = ["MODELS", "ModelSpec", "create_model", "list_models", "register_model"]
