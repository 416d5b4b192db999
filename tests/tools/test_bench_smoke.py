"""Each benchmark has a tiny smoke run here, so it cannot rot. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_bench_quick_runs_every_section() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tools.bench", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    sections: dict[str, dict[str, float]] = {}
    decoder = json.JSONDecoder()
    text = out.stdout.strip()
    while text:
        obj, end = decoder.raw_decode(text)
        sections.update(obj)
        text = text[end:].strip()
    from tools.bench import SECTIONS

    assert set(sections) == {name for name, *_ in SECTIONS}
    enc = sections["encode"]
    for key in ("segment_encode_mb_per_s_1MiB", "cap_pool_w2_mb_per_s", "network_receive_cpu_s_per_gb_slots"):
        assert enc[key] > 0
    era = sections["erasure"]
    for backend in ("zfec", "isal"):
        assert era["codec"][backend]["encode_mb_per_s_1MiB"] > 0
        assert era["put"][backend]["share_bytes_sent"] > 0  # each put uploaded, none deduplicated
