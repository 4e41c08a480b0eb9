"""Cost functions, one op family per module. Importing this package fills the default registry."""
from . import (  # noqa: F401
    activations,
    attention,
    control_flow,
    detection,
    dot,
    elementwise,
    movement,
    normalization,
    pooling,
    quantized,
    recurrent,
    reduce,
)
