"""Built-in device profiles, one per class of target. docs/devices.md gives the source of every
figure and the arithmetic of every derived one; the energy figures are Horowitz's 45 nm table
(ISSCC 2014): a fp32 MAC = 3.7 pJ multiply + 0.9 pJ add = 4.6 pJ, fp16 1.1 + 0.4 = 1.5 pJ,
int8 = 0.2 pJ 8-bit multiply + 0.1 pJ 32-bit accumulate = 0.3 pJ; a 32-bit DRAM read 640 pJ =
160 pJ a byte; a 32-bit read of an 8 KB SRAM 5 pJ = 1.25 pJ a byte.

The profiles taken from datasheets have no efficiency figures: they are the plain roofline, an
optimistic bound that `maccbudget calibrate` replaces with measured figures. `maccbudget-ci` is
measured: fitted by benchmarks/calibration.py on this project's CI machine.
"""
from __future__ import annotations

from functools import lru_cache

from .profiles import Device, parse_device

_HOROWITZ_ENERGY = "energy: {pj_per_mac: {fp32: 4.6, fp16: 1.5, int8: 0.3}, pj_per_dram_byte: 160}"

_PROFILES: dict[str, str] = {
    "stm32h7-cortex-m7": """
name: stm32h7-cortex-m7
class: microcontroller
description: STM32H743, one Cortex-M7 at 480 MHz, weights and activations in on-chip SRAM
source: docs/devices.md#stm32h7-cortex-m7 (ST STM32H743 specs; Cortex-M7 single-cycle MAC; SMLAD dual 16-bit MAC)
peak_macs_per_s: {fp32: 480M, int8: 960M}        # 480 MHz x 1 FP MAC; x 2 (SMLAD)
memory_bandwidth: 3.84 GB/s                       # 480 MHz x 8 bytes (64-bit DTCM, zero wait states)
energy: {pj_per_mac: {fp32: 4.6, int8: 0.3}, pj_per_dram_byte: 1.25}   # its memory is SRAM
""",
    "phone-cortex-a76x4": """
name: phone-cortex-a76x4
class: phone-cpu
description: the four Cortex-A76 cores of a Snapdragon 855 (1 x 2.84 + 3 x 2.42 GHz), LPDDR4X-4266
source: docs/devices.md#phone-cortex-a76x4 (WikiChip Snapdragon 855; AnandTech Cortex-A76 back end)
peak_macs_per_s: {fp32: 80.8G, fp16: 161.6G, int8: 323.2G}   # 10.1 GHz of cores x 8 / 16 / 32 MACs a cycle
memory_bandwidth: 34.1 GB/s                       # 4 channels x 16 bit x 4266 MT/s
""" + _HOROWITZ_ENERGY,
    "jetson-nano": """
name: jetson-nano
class: edge-gpu
description: NVIDIA Jetson Nano, 128-core Maxwell GPU at 922 MHz, 4 GB 64-bit LPDDR4
source: docs/devices.md#jetson-nano (NVIDIA Jetson Nano specifications, 472 GFLOPS fp16; deviceQuery)
peak_macs_per_s: {fp32: 118G, fp16: 236G}         # 128 cores x 0.922 GHz x 1 / 2 MACs a cycle
memory_bandwidth: 25.6 GB/s
""" + _HOROWITZ_ENERGY,
    "rtx-3090": """
name: rtx-3090
class: desktop-gpu
description: NVIDIA GeForce RTX 3090 (GA102, 10496 CUDA cores, 1.695 GHz boost, 24 GB GDDR6X)
source: docs/devices.md#rtx-3090 (NVIDIA specifications as tabulated by Tom's Hardware; GA102 tensor ratios)
peak_macs_per_s: {fp32: 17.8T, fp16: 71T, int8: 142T}   # 35.6 / 142 / 284 T ops / 2
memory_bandwidth: 936 GB/s
""" + _HOROWITZ_ENERGY,
    "github-ubuntu-latest": """
name: github-ubuntu-latest
class: ci-runner
description: GitHub-hosted ubuntu-latest runner for public repositories, 4 vCPU (2 cores) AMD EPYC 7763
source: docs/devices.md#github-ubuntu-latest (GitHub runner docs; lscpu of runners; Zen 3 FMA width)
peak_macs_per_s: {fp32: 78.4G}                    # 2 cores x 16 fp32 FMA a cycle x 2.45 GHz
memory_bandwidth: 204.8 GB/s                      # the socket's 8 x DDR4-3200: an upper bound for a VM
""" + _HOROWITZ_ENERGY,
    "maccbudget-ci": """
name: maccbudget-ci
class: ci-runner
description: this project's CI machine (2 vCPU AMD EPYC, Zen 5, 32 MiB L3) running onnxruntime 1.32 on 1 thread
source: docs/devices.md#maccbudget-ci (measured with benchmarks/calibration.py; energy from Horowitz's table)
peak_macs_per_s: {fp32: 125.7G}
memory_bandwidth: 34.85 GB/s
launch_overhead_us: 3.603
run_overhead_us: 0
efficiency: {activation: 0.1481, conv: 0.9253, depthwise_conv: 0.1519, matmul: 1.0, pooling: 0.4272,
             recurrent: 0.2684, default: 0.3478}
cache: {size: 32 MiB, bandwidth: 264.4 GB/s, pj_per_byte: 1.25}   # 8 KB SRAM figure: a lower bound
energy: {pj_per_mac: {fp32: 4.6, fp16: 1.5, int8: 0.3}, pj_per_dram_byte: 160}
""",
}

BUILTIN_NAMES: tuple[str, ...] = tuple(_PROFILES)


@lru_cache(maxsize=None)
def builtin_device(name: str) -> Device:
    return parse_device(_PROFILES[name], f"built-in device {name}")


def builtin_devices() -> list[Device]:
    return [builtin_device(name) for name in BUILTIN_NAMES]


def builtin_text(name: str) -> str:
    """The profile's YAML, a starting point for a file of one's own."""
    return _PROFILES[name].lstrip("\n")
