"""``doctor``: what this installation runs on — versions, and which erasure backend and library.

Loads the erasure backend the configuration names exactly as the worker pool does (ISA-L proves
itself byte-identical to zfec first) and says which one is in use, from which file, and, when
``auto`` fell back to zfec, why. Exit 0, or 3 when ``erasure_backend = "isal"`` cannot be used.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from importlib import metadata
from typing import Any

from uploader.cli import VERSION, add_config_flags, emit
from uploader.config import Config
from workers import erasure
from workers.erasure import ErasureBackendError

PACKAGES = ("zfec", "pyeclib", "pycryptodome", "cryptography", "msgpack", "uvloop", "aiohttp", "cbor2")
_CPU_FLAGS = ("sse4_2", "avx", "avx2", "avx512f", "avx512bw", "gfni", "vpclmulqdq")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "doctor",
        help="show versions and the erasure backend in use",
        description="Print the versions this installation runs with, and which erasure backend "
        "(ISA-L or zfec) the workers would use, with the library file. Exit 3 when "
        "erasure_backend = isal cannot be used.",
    )
    add_config_flags(p, encoding=False)
    p.set_defaults(run=run)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [f for f in _CPU_FLAGS if f in have]
    except OSError:
        pass
    return []


def report(config: Config) -> tuple[dict[str, Any], int]:
    """The doctor's findings and the exit code."""
    backend: dict[str, Any] = {"setting": config.erasure_backend}
    code = 0
    try:
        chosen = erasure.select(config.erasure_backend)
    except ErasureBackendError as exc:
        backend.update(in_use=None, error=str(exc))
        code = exc.exit_code
    else:
        check = "passed" if chosen.name != "zfec" else "not needed (zfec is the reference)"
        backend.update(in_use=chosen.name, library=chosen.library or None, self_check=check)
        if chosen.note:
            backend["fallback_reason"] = chosen.note
    info = {
        "uploader": VERSION,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu_flags": _cpu_flags(),
        "workers": config.workers,
        "packages": {p: _version(p) for p in PACKAGES},
        "erasure": backend,
    }
    return info, code


def run(args: argparse.Namespace, config: Config) -> int:
    info, code = report(config)
    if args.json:
        emit(info)
        return code
    e = info["erasure"]
    lines = [
        f"uploader {info['uploader']} on {info['python']} ({info['executable']})",
        f"platform: {info['platform']}, {info['cpus']} CPUs ({' '.join(info['cpu_flags']) or 'no SIMD flags'})",
        f"workers: {info['workers']}",
        "packages: " + ", ".join(f"{p} {v or 'not installed'}" for p, v in info["packages"].items()),
        f"erasure_backend = {e['setting']}",
    ]
    if e["in_use"] is None:
        lines.append(f"erasure backend: NOT USABLE: {e['error']}")
    else:
        where = f" ({e['library']})" if e.get("library") else ""
        lines.append(
            f"erasure backend in use: {e['in_use']}{where}; self-check against zfec: {e['self_check']}"
        )
        if "fallback_reason" in e:
            lines.append(f"  fell back to zfec because {e['fallback_reason']}")
    print("\n".join(lines), flush=True)
    return code
