"""Stock Tahoe-LAFS as an oracle: its own caps and share bytes for a batch of files.

``tahoe_encode(tahoe_python, cases)`` runs ``driver.py`` once, in the stock Tahoe-LAFS venv, for the
whole batch (one subprocess, never one per case) and returns ``{case.id: (cap, shares)}`` where
``shares[j]`` is the full byte string of share j exactly as Tahoe's uploader wrote it to a server.
This package imports nothing from the code under test.
"""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

DRIVER = Path(__file__).resolve().parent / "driver.py"
DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Case:
    """One file to upload: either ``data`` itself, or ``seed`` repeated up to ``length`` bytes."""

    id: str
    k: int
    n: int
    max_segment_size: int
    secret: bytes
    data: bytes | None = None
    seed: bytes | None = None
    length: int | None = None

    def __post_init__(self) -> None:
        if (self.data is None) == (self.seed is None):
            raise ValueError(f"case {self.id}: give exactly one of data or seed")
        if self.seed is not None and (
            self.length is None or self.length < 0 or (self.length and not self.seed)
        ):
            raise ValueError(
                f"case {self.id}: a seed needs a length >= 0 (and a non-empty seed if length > 0)"
            )

    def plaintext(self) -> bytes:
        """The file's bytes, expanded the same way the driver expands them."""
        if self.data is not None:
            return self.data
        assert self.seed is not None and self.length is not None
        reps = -(-self.length // len(self.seed)) if self.length else 0
        return (self.seed * reps)[: self.length]

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else int(self.length or 0)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "id": self.id,
            "k": self.k,
            "n": self.n,
            "max_segment_size": self.max_segment_size,
            "secret_b64": base64.b64encode(self.secret).decode("ascii"),
        }
        if self.data is not None:
            out["data_b64"] = base64.b64encode(self.data).decode("ascii")
        else:
            assert self.seed is not None
            out["data"] = {"seed_b64": base64.b64encode(self.seed).decode("ascii"), "length": self.length}
        return out


class TahoeResult(NamedTuple):
    cap: str
    shares: list[bytes]


class TahoeOracleError(RuntimeError):
    pass


def tahoe_encode(
    tahoe_python: Path, cases: list[Case], *, timeout: float = DEFAULT_TIMEOUT_S
) -> dict[str, TahoeResult]:
    """Tahoe's (cap, shares) for every case, from one run of the driver in the stock Tahoe venv."""
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        raise ValueError("case ids must be unique")
    if not cases:
        return {}
    payload = json.dumps([c.to_json() for c in cases])
    try:
        proc = subprocess.run(
            [str(tahoe_python), str(DRIVER)],
            input=payload.encode("ascii"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = (exc.stderr or b"").decode("utf-8", "replace")
        raise TahoeOracleError(f"Tahoe oracle driver timed out after {timeout} s; stderr:\n{stderr}") from exc
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise TahoeOracleError(f"Tahoe oracle driver exited with {proc.returncode}; stderr:\n{stderr}")
    results: dict[str, TahoeResult] = {}
    for line in proc.stdout.decode("ascii").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        results[rec["id"]] = TahoeResult(rec["cap"], [base64.b64decode(s) for s in rec["shares"]])
    missing = [i for i in ids if i not in results]
    if missing:
        raise TahoeOracleError(f"Tahoe oracle driver gave no result for {missing}; stderr:\n{stderr}")
    return results
