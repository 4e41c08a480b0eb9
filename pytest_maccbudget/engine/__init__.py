"""The cost engine: ONNX graph -> per-layer MACs, FLOPs, parameters and memory. Imports only onnx/numpy."""
