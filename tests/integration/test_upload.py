"""The pipelined upload against real storage servers: caps, share bytes on disk, faults, memory."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, VECTORS
from tests.helpers.grid import share_files, shares_on_disk
from tests.helpers.localgrid import LocalGrid
from tests.integration.test_tahoe_differential import (
    assert_same_as_tahoe,
    differential_cases,
    tahoe_differential_results,
)
from uploader.chk import reference
from uploader.chk.caps import ChkCap
from uploader.config import Config
from uploader.encoding import encode_file_inline
from uploader.gridclient import GridClient
from uploader.secrets import convergence_secret
from workers.geometry import EncodingParams

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    with LocalGrid(tmp_path_factory.mktemp("grid"), 10) as g:
        yield g


async def _upload_all(config: Config, paths: list[Path]) -> list[object]:
    async with GridClient(config) as client:
        return list(await asyncio.gather(*(client.upload(p) for p in paths)))


def test_caps_equal_cap_and_shares_decode(grid: LocalGrid, tmp_path: Path) -> None:
    rng = random.Random(5)
    for k, n, happy in [(3, 10, 7), (1, 1, 1), (2, 5, 4), (7, 12, 8), (5, 30, 10)]:
        sizes = [56, rng.randint(57, 4000), rng.randint(4000, 300_000), 0, 55]
        paths = []
        for i, size in enumerate(sizes):
            p = tmp_path / f"{k}-{n}-{i}"
            p.write_bytes(rng.randbytes(size))
            paths.append(p)
        config = grid.config(
            shares_needed=k, shares_total=n, shares_happy=happy, max_segment_size=rng.choice([4096, 65536])
        )
        results = asyncio.run(_upload_all(config, paths))
        params = EncodingParams(k, n, config.max_segment_size)
        secret = convergence_secret(config)
        for path, result in zip(paths, results, strict=True):
            expected, _ = encode_file_inline(path, params, secret)
            assert str(result.cap) == str(expected)  # type: ignore[attr-defined]
            cap = result.cap  # type: ignore[attr-defined]
            if isinstance(cap, ChkCap):
                shares = shares_on_disk(grid.dir, cap.storage_index)
                assert set(shares) == set(range(n))
                assert reference.decode(cap, shares) == path.read_bytes()


def test_reupload_moves_almost_no_data(grid: LocalGrid, tmp_path: Path) -> None:
    path = tmp_path / "again"
    path.write_bytes(os.urandom(2_000_000))
    config = grid.config()
    first, second = asyncio.run(_upload_all(config, [path])), asyncio.run(_upload_all(config, [path]))
    assert str(first[0].cap) == str(second[0].cap)  # type: ignore[attr-defined]
    assert first[0].share_bytes_sent > 6_000_000  # type: ignore[attr-defined]
    assert second[0].share_bytes_sent == 0  # type: ignore[attr-defined]


def test_vectors_and_stock_tahoe_through_the_pipeline(
    grid: LocalGrid, tmp_path: Path, tahoe_python: Path
) -> None:
    """All 120 vector caps, and the stock-Tahoe differential's share bytes read back from the disks."""
    vectors = yaml.safe_load((VECTORS / "chk-vectors.yaml").read_text())["vector"]
    tahoe = tahoe_differential_results(tahoe_python)

    async def main() -> None:
        async with GridClient(grid.config()) as client:
            for i, v in enumerate(vectors):
                seed = base64.b64decode(v["sample"]["seed"])
                length = v["sample"]["length"]
                path = tmp_path / f"v{i}"
                path.write_bytes((seed * (length // len(seed) + 1))[:length])
                z = v["zfec"]
                params = EncodingParams(z["required"], z["total"], z["segmentSize"])
                result = await client.upload(
                    path, params=params, happy=1, secret=base64.b64decode(v["convergence"])
                )
                assert str(result.cap) == v["expected"], f"vector {i}"
                path.unlink()
            for case in differential_cases():
                path = tmp_path / case.id
                path.write_bytes(case.plaintext())
                params = EncodingParams(case.k, case.n, case.max_segment_size)
                result = await client.upload(path, params=params, happy=1, secret=case.secret)
                cap = result.cap
                shares = shares_on_disk(grid.dir, cap.storage_index) if isinstance(cap, ChkCap) else {}
                assert_same_as_tahoe(case, str(cap), [shares[j] for j in sorted(shares)], tahoe[case.id])

    asyncio.run(main())


def test_reupload_by_another_client_adds_its_lease(grid: LocalGrid, tmp_path: Path) -> None:
    """Shares found complete are not resent, but every server holding them gets this client's lease."""
    from uploader.storage.container import unpack_header

    path = tmp_path / "leased"
    path.write_bytes(os.urandom(300_000))
    secret_file = tmp_path / "secret"
    secret_file.write_text("aaaaaaaaaaaaaaaaaaaaaaaaaa")
    first = grid.config(convergence_secret_file=secret_file, data_dir=tmp_path / "client-a")
    second = grid.config(convergence_secret_file=secret_file, data_dir=tmp_path / "client-b")
    (a,) = asyncio.run(_upload_all(first, [path]))
    (b,) = asyncio.run(_upload_all(second, [path]))
    assert str(a.cap) == str(b.cap) and b.share_bytes_sent == 0  # type: ignore[attr-defined]
    files = share_files(grid.dir, a.cap.storage_index)  # type: ignore[attr-defined]
    assert len(files) == 10
    assert {unpack_header(p.read_bytes()[:12]).num_leases for p in files} == {2}


# Runs `python -m uploader` with a Ctrl-C delivered while a dataclass of MODULE is created: the moment
# a terminal's Ctrl-C hit in CI, where CPython wrapped the KeyboardInterrupt in a RuntimeError.
_CTRL_C_IN_CLASS_CREATION = """
import dataclasses, os, runpy, signal, sys
module = sys.argv.pop(1)
original = dataclasses.Field.__set_name__
def set_name(self, owner, name):
    if module in sys.modules and dataclasses.Field.__set_name__ is set_name:  # MODULE is being imported
        dataclasses.Field.__set_name__ = original
        os.kill(os.getpid(), signal.SIGINT)
    return original(self, owner, name)
dataclasses.Field.__set_name__ = set_name
sys.argv[0] = "uploader"
runpy.run_module("uploader", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("module", ["uploader.config", "uploader.journal", "uploader.gbs.client"])
def test_ctrl_c_while_a_module_creates_its_classes_is_a_quiet_130(
    grid: LocalGrid, tmp_path: Path, module: str
) -> None:
    """uploader.config: imported by the entry point; uploader.journal: by the command; the GBS
    client: once the event loop runs. Each ends in a quiet 130, before anything is uploaded."""
    source = tmp_path / "f.bin"
    source.write_bytes(os.urandom(200_000))
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            _CTRL_C_IN_CLASS_CREATION,
            module,
            "put",
            str(source),
            "--config",
            str(grid.dir / "uploader.toml"),
        ],
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert run.returncode == 130, run.stderr.decode()[-2000:]
    assert run.stdout == b"" and run.stderr.decode().strip() == "uploader: interrupted"


@pytest.mark.parametrize("command", ["put", "serve"])
def test_ctrl_c_while_the_configuration_is_read_from_a_fifo_is_a_quiet_130(
    tmp_path: Path, command: str
) -> None:
    """The Ctrl-C hold covers imports only: a command blocked reading its configuration (a FIFO,
    /dev/stdin at a terminal) stops at the first Ctrl-C."""
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    args = [str(tmp_path / "f.bin")] if command == "put" else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "uploader", command, *args, "--config", str(fifo)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    writer = -1
    try:
        while writer < 0:  # a non-blocking open for writing succeeds once the command has it open
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.02)
        time.sleep(0.2)  # the command now waits in read(): the writer sends nothing
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the Ctrl-C did not stop a command blocked reading its configuration")
        assert proc.returncode == 130, err.decode()[-2000:]
        assert out == b"" and err.decode().strip() == "uploader: interrupted"
    finally:
        if writer >= 0:
            os.close(writer)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_at_any_moment_of_start_up_is_a_quiet_130(grid: LocalGrid, tmp_path: Path) -> None:
    """SIGINT to the whole process group, as a terminal's Ctrl-C: while the command imports, while
    its workers start (they ignore it: it is the network process's), and once the upload runs."""
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(48 * 2**20))  # long enough that no run finishes before its signal
    for delay in (0.05, 0.07, 0.08, 0.09, 0.1, 0.11, 0.12, 0.15, 0.25, 0.5):  # the workers start near 0.1 s
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uploader",
                "put",
                str(source),
                "--config",
                str(grid.dir / "uploader.toml"),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, as a shell job
        )
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, (delay, proc.returncode, err.decode()[-2000:])
        assert out == b"" and err.decode().strip() == "uploader: interrupted", (delay, err.decode()[-2000:])
