"""Deployment to microcontrollers: an int8 model with integer-only rescaling, its Python
reference, and portable C99 generated from it (checked by compiling and running it here)."""
from edgeprune.deploy.int8 import Int8Model, quantize_model

__all__ = ["Int8Model", "quantize_model"]
