"""Timing, statistics, memory and FLOP helpers shared by the benchmark scripts.

The scripts compare a plain float32 reference against the project's fast paths on a machine that
may be busy with other work. Two habits make such comparisons trustworthy:

- Variants are timed in alternation within one process (`alternate`), rotating the order every
  round (AB, BA, AB, ...), so that a burst of outside load or a slow drift hits all of them alike.
  The figure to quote is the ratio of medians, not an absolute time.
- Peak memory is read from a fresh process per variant (`peak_memory_in_subprocess`): the peak
  RSS is a high-water mark for the whole process, so variants sharing a process would hide each other.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

# The line a memory probe prints on stdout, so that the parent can find it among other output.
PROBE_PREFIX = "MEMORY-PROBE "


@dataclass
class Summary:
    """Statistics of one variant's timings, in seconds."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    count: int

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1


def summarize(times: Sequence[float]) -> Summary:
    if not times:
        raise ValueError("no timings to summarize; use --repeats 1 or more")
    ordered = sorted(times)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return Summary(statistics.median(ordered), q1, q3, ordered[0], ordered[-1], len(ordered))


def alternate(steps: dict[str, Callable[[], None]], repeats: int, warmup: int,
              device: torch.device | None = None) -> dict[str, list[float]]:
    """Run every step `warmup` untimed times, then `repeats` timed times, interleaved.

    Round r runs the variants in the order rotated by r, so with two variants the sequence is
    A B, B A, A B, ...: neither always follows the other, and a linear drift in machine load
    cancels out of the comparison. On a GPU the device is synchronised before the clock starts
    and before it stops, so a time covers the step's kernels and nothing queued before it.
    """
    wait = synchronizer(device)
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            wait()
            started = time.perf_counter()
            steps[name]()
            wait()
            times[name].append(time.perf_counter() - started)
    return times


def synchronizer(device: torch.device | None) -> Callable[[], None]:
    """A function that waits for the device's queued work (a no-op on the CPU)."""
    if device is not None and device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def add_device_argument(parser) -> None:
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA if available, else CPU), cpu, cuda or cuda:N.")


def resolve_device(name: str) -> torch.device:
    """The device to benchmark on. On CUDA, cuDNN autotuning is turned on for every variant, the
    reference included, as the reference code does (BaseModel sets cudnn.benchmark)."""
    from cyclegan.device import select_device

    device = select_device(name)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device


def peak_memory_label(device: torch.device) -> str:
    return "peak GPU MiB" if device.type == "cuda" else "peak MiB"


def peak_memory_note(device: torch.device, what: str) -> str:
    if device.type == "cuda":
        return (f"peak GPU MiB: torch.cuda.max_memory_allocated of a fresh process {what} "
                "(tensors only; the caching allocator's reserve and the CUDA context are not counted)")
    return f"peak MiB: peak RSS of a fresh process {what} (interpreter and libraries included)"


def with_plain_instance_norms(network: torch.nn.Module) -> torch.nn.Module:
    """Replace, in place, every subclass of nn.InstanceNorm2d in `network` (the project's
    FastInstanceNorm2d) by nn.InstanceNorm2d itself, the reference code's norm, so that the
    reference measures the same computation whatever norm the project uses. Returns `network`."""
    for name, module in list(network.named_modules()):
        if isinstance(module, torch.nn.InstanceNorm2d) and type(module) is not torch.nn.InstanceNorm2d:
            plain = torch.nn.InstanceNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                                            module.track_running_stats)
            plain.load_state_dict(module.state_dict())
            parent_name, _, child = name.rpartition(".")
            setattr(network.get_submodule(parent_name) if parent_name else network, child, plain)
    return network


def count_flops(step: Callable[[], None]) -> int:
    """FLOPs of one call of `step` as torch.utils.flop_counter counts them: matmuls and
    convolutions (forward and backward), 2 per multiply-add; norms and elementwise ops are free."""
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far.

    On Linux this is VmHWM from /proc/self/status, not ru_maxrss: ru_maxrss survives fork and exec,
    so a probe started from a large parent would report the parent's size as its own peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS reports bytes, Linux KiB


def report_probe(rss_after_setup: int, device: torch.device | None = None, **extra) -> None:
    """Called at the end of a memory probe: print its result (and any `extra` values, e.g. the
    probe's iteration times) for `peak_memory_in_subprocess`.
    On a GPU, "peak" is the most device memory the tensors held; on the CPU, the peak RSS."""
    result = {"peak_rss": peak_rss_bytes(), "rss_after_setup": rss_after_setup, **extra}
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
        result["peak_cuda"] = torch.cuda.max_memory_allocated(device)
    result["peak"] = result.get("peak_cuda", result["peak_rss"])
    print(PROBE_PREFIX + json.dumps(result), flush=True)


def peak_memory_in_subprocess(script: Path, arguments: list[str], timeout: float | None = None,
                              env: dict[str, str] | None = None) -> dict:
    """Run `script arguments` (a memory probe) in a new interpreter, with `env` added to this
    process's environment, and return what it reported: {"peak_rss": bytes, "rss_after_setup":
    bytes, ...}. Raises RuntimeError with its stderr on failure."""
    command = [sys.executable, str(script), *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"})
    lines = [line for line in result.stdout.splitlines() if line.startswith(PROBE_PREFIX)]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"memory probe {' '.join(command)} failed (exit {result.returncode}):\n"
                           f"{result.stderr[-3000:]}")
    return json.loads(lines[-1][len(PROBE_PREFIX):])


def check_counts(parser, positive: dict[str, int], warmup: int) -> None:
    """Stop with argparse's usage error unless each count is at least 1 and warmup at least 0."""
    for flag, value in positive.items():
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    if warmup < 0:
        parser.error(f"--warmup must be 0 or more, got {warmup}")


def set_threads(threads: int | None) -> None:
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)


def bf16_native() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX in its flags), the package's own
    test. oneDNN's `_is_mkldnn_bf16_supported` also says yes on AVX-512 CPUs without them, where
    bf16 convolutions are emulated and far slower than fp32 (docs/PERFORMANCE.md)."""
    from cyclegan.device import has_native_bf16

    return has_native_bf16(torch.device("cpu"))


def machine_description(device: torch.device | None = None) -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": bf16_native(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "device": str(device) if device is not None else "cpu",
        **(gpu_description(device) if device is not None and device.type == "cuda" else {}),
    }


def gpu_description(device: torch.device) -> dict:
    properties = torch.cuda.get_device_properties(device)
    return {
        "gpu": properties.name,
        "gpu_memory_mib": properties.total_memory // 2**20,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        # PyTorch lets cuDNN run float32 convolutions on the TF32 tensor cores unless told not
        # to: the "fp32" rows on a GPU are TF32 convolutions, the reference's included.
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
    }


def announce(device: torch.device, variant_names: Sequence[str]) -> dict:
    """Describe the machine (returned, and printed with a bf16 warning where one applies)."""
    machine = machine_description(device)
    print(describe_machine(machine))
    warning = bf16_warning(variant_names, device)
    if warning:
        print(warning)
    return machine


def memory_columns(probe: dict, reference_probe: dict) -> dict:
    """A variant's memory results from its probe (see `report_probe`), with its peak relative to
    the reference's."""
    return {**probe, "peak_vs_reference": probe["peak"] / reference_probe["peak"]}


def describe_machine(machine: dict) -> str:
    if "gpu" in machine:
        return (f"{machine['gpu']} ({machine['gpu_memory_mib']} MiB), CUDA {machine['cuda']}, cuDNN "
                f"{machine['cudnn']}, torch {machine['torch']}, TF32 convolutions "
                f"{'on' if machine['cudnn_allow_tf32'] else 'off'}; host {machine['cpu']}, "
                f"{machine['logical_cpus']} logical CPUs")
    load = machine["load_average"]
    text = (f"{machine['cpu']}, {machine['logical_cpus']} logical CPUs, torch {machine['torch']} with "
            f"{machine['torch_threads']} threads, capability {machine['cpu_capability']}, "
            f"native bf16: {'yes' if machine['native_bf16'] else 'NO'}")
    if load is not None:
        text += f", load average {load[0]:.1f}"
        if load[0] > (machine["logical_cpus"] or 1) * 0.5:
            text += " (busy machine: trust the ratios, not the absolute times)"
    return text


def bf16_warning(variants: Sequence[str], device: torch.device | None = None) -> str | None:
    if device is not None and device.type != "cpu":
        return None
    if any("bf16" in name for name in variants) and not bf16_native():
        return ("warning: this CPU has no native bf16 (AVX-512 BF16 or AMX); bf16 convolutions are emulated here "
                "and are expected to be much slower than fp32 (worst in the contiguous layout)")
    return None


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(cell).rjust(width) if index else str(cell).ljust(width)
                       for index, (cell, width) in enumerate(zip(row, widths)))
             for row in [headers, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def megabytes(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}"


def gigaflops(value: float) -> str:
    return f"{value / 1e9:.3g}"


def seconds(value: float) -> str:
    return f"{value:.4f}" if value < 10 else f"{value:.2f}"


def summary_dict(summary: Summary) -> dict:
    return {**asdict(summary), "iqr": summary.iqr}


def write_json(path: str | Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def top_operators(step: Callable[[], None], rows: int = 15, device: torch.device | None = None) -> str:
    """The operators that took the most time in one call of `step` (torch.profiler): CPU time on
    the CPU, kernel time on a GPU."""
    from torch.profiler import ProfilerActivity, profile

    on_gpu = device is not None and device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with profile(activities=activities) as profiler:
        step()
        synchronizer(device)()
    return profiler.key_averages().table(sort_by="self_cuda_time_total" if on_gpu else "self_cpu_time_total",
                                         row_limit=rows)
