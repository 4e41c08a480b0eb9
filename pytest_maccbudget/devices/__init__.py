"""Latency, energy and memory estimates of a profiled model on target devices.

    from pytest_maccbudget import profile_model
    from pytest_maccbudget.devices import load_device, estimate, memory_bound_layers

    device = load_device("phone-cortex-a76x4")        # a built-in name, or a profile's YAML path
    model_estimate = estimate(profile_model("model.onnx"), device)
    model_estimate.latency_ms, model_estimate.energy_mj  # None when a layer could not be estimated
    memory_bound_layers(model_estimate, top=5)

profiles.py reads and checks device profiles, catalog.py holds the built-in ones, roofline.py
estimates, timing.py times models with onnxruntime, node_map.py maps onnxruntime's nodes back to
the engine's layers, calibrate.py fits a profile to timings, report.py renders.
"""
from .profiles import (
    Cache,
    Device,
    DeviceError,
    Energy,
    dump_device,
    load_device,
    parse_device,
)
from .roofline import (
    DownloadSize,
    LayerEstimate,
    ModelEstimate,
    estimate,
    memory_bound_layers,
)

__all__ = [
    "Cache", "Device", "DeviceError", "DownloadSize", "Energy", "LayerEstimate", "ModelEstimate", "device_from_node",
    "dump_device", "estimate", "load_device", "memory_bound_layers", "parse_device",
]
