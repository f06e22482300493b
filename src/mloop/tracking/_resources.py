"""What a run cost: wall time, CPU time, peak memory, and the GPU it could see.

Starting a meter only reads two clocks, because every run gets one and run creation must
stay fast. Peak RSS is the operating system's high-water mark for the whole process up to
the end of the run (there is no per-run reset that is free of side effects), and CPU times
count this process only, not the child processes it started.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import time

NVIDIA_SMI_TIMEOUT_SECONDS = 2.0


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return _peak_rss_mb_psutil()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS (and the BSD it comes from) reports bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _peak_rss_mb_psutil() -> float | None:
    import psutil

    peak = getattr(psutil.Process().memory_info(), "peak_wset", None)
    return None if peak is None else float(peak) / (1024 * 1024)


@functools.cache
def gpu_info() -> dict[str, float | str]:
    """The first visible NVIDIA GPU's name and total memory, plus how many are visible.

    ``nvidia-smi`` is asked once per process: the hardware does not change while it runs.
    ``CUDA_VISIBLE_DEVICES`` is honoured so a run pinned to one GPU reports that GPU.
    """
    exe = shutil.which("nvidia-smi")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if exe is None or (visible is not None and visible.strip() in ("", "-1")):
        return {}
    try:
        done = subprocess.run(
            [
                exe,
                "--query-gpu=index,uuid,name,memory.total",
                "--format=csv,noheader,nounits",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=NVIDIA_SMI_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    if done.returncode != 0:
        return {}
    gpus: list[tuple[str, str, str, float]] = []
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 4:
            continue
        index, uuid, name, memory = fields
        try:
            gpus.append((index, uuid, name, float(memory)))
        except ValueError:
            continue
    if visible is not None:
        wanted = [v.strip() for v in visible.split(",") if v.strip()]
        gpus = [g for g in gpus if g[0] in wanted or any(g[1].startswith(w) for w in wanted)]
    if not gpus:
        return {}
    return {
        "mloop.resources.gpu_name": gpus[0][2],
        "mloop.resources.gpu_memory_mb": gpus[0][3],
        "mloop.resources.gpu_count": float(len(gpus)),
    }


class ResourceMeter:
    """Measures one run: made when the run starts, read once by :meth:`stop` when it ends."""

    def __init__(self) -> None:
        self._wall = time.perf_counter()
        times = os.times()
        self._user = times.user
        self._system = times.system

    def stop(self) -> dict[str, float | str]:
        """Metrics (floats) and tags (strings, only the GPU name) to record on the run."""
        times = os.times()
        result: dict[str, float | str] = {
            "mloop.resources.wall_seconds": time.perf_counter() - self._wall,
            "mloop.resources.cpu_user_seconds": times.user - self._user,
            "mloop.resources.cpu_system_seconds": times.system - self._system,
        }
        peak = _peak_rss_mb()
        if peak is not None:
            result["mloop.resources.peak_rss_mb"] = peak
        result.update(gpu_info())
        return result


__all__ = ["NVIDIA_SMI_TIMEOUT_SECONDS", "ResourceMeter", "gpu_info"]
