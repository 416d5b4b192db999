"""Build the stock Tahoe-LAFS 1.20.0 virtualenv used as the interoperability peer.

``python -m tools.tahoe_venv --dir .cache/tahoe-venv --constraints tests/tahoe-constraints.txt``

It lives under the cache directory, never in the project's venv, and is pinned by a committed
constraints file (Tahoe's own dependencies are unpinned upstream). The install is retried once.
A marker file ``.ok`` records success; tests look for it and fail (never skip) without it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

TAHOE_REQUIREMENT = "tahoe-lafs==1.20.0"


def build(venv: Path, constraints: Path, python: str = sys.executable) -> None:
    """Create ``venv`` with stock Tahoe-LAFS; raise CalledProcessError after two failed tries."""
    for attempt in (1, 2):
        if venv.exists():
            shutil.rmtree(venv)
        try:
            subprocess.run([python, "-m", "venv", str(venv)], check=True)
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
            subprocess.run([*pip, "--upgrade", "pip"], check=True)
            subprocess.run([*pip, "-c", str(constraints), TAHOE_REQUIREMENT], check=True)
            subprocess.run([str(venv / "bin" / "tahoe"), "--version"], check=True, capture_output=True)
        except subprocess.CalledProcessError:
            if attempt == 2:
                raise
            print("tahoe venv: install failed, retrying once", file=sys.stderr)
            continue
        (venv / ".ok").write_text(TAHOE_REQUIREMENT + "\n")
        return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="where the venv goes")
    parser.add_argument("--constraints", type=Path, required=True, help="pip constraints file")
    args = parser.parse_args(argv)
    if (args.dir / ".ok").exists():
        return 0
    build(args.dir, args.constraints)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
