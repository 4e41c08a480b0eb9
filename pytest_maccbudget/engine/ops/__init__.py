"""Cost functions, one op family per module. Importing this package fills the default registry."""
from . import activations, dot, elementwise, movement, normalization, pooling, quantized, recurrent, reduce, attention  # noqa: F401
