"""The earlier name of edgeprune.model_io (kept so that `from edgeprune.store import
load_model` keeps working)."""
from edgeprune.model_io import (  # noqa: F401
    MAX_WEIGHTS_BYTES,
    load_model,
    load_pruned,
    load_weights,
    read_model_json,
    save_model,
    save_pruned,
    write_model_files,
)
