"""tools/load.py's and tools/measure.py's file helpers (the load itself runs in tests/integration/test_load.py)."""

from __future__ import annotations

from pathlib import Path

from tools.load import drop_complete_shares
from tools.measure import same_bytes


def test_drop_complete_shares_keeps_uploads_in_progress(tmp_path: Path) -> None:
    for server in ("server-01", "server-02"):
        shares = tmp_path / server / "storage" / "shares"
        (shares / "ab" / "abcdef").mkdir(parents=True)
        (shares / "ab" / "abcdef" / "0").write_bytes(b"x" * 100)
        (shares / "incoming" / "cd" / "cdefgh").mkdir(parents=True)
        (shares / "incoming" / "cd" / "cdefgh" / "1").write_bytes(b"y" * 7)
    assert drop_complete_shares(tmp_path) == 200
    for server in ("server-01", "server-02"):
        shares = tmp_path / server / "storage" / "shares"
        assert sorted(p.name for p in shares.iterdir()) == ["incoming"]
        assert (shares / "incoming" / "cd" / "cdefgh" / "1").read_bytes() == b"y" * 7
    assert drop_complete_shares(tmp_path) == 0


def test_same_bytes_compares_whole_files(tmp_path: Path) -> None:
    a, b, c, d = (tmp_path / n for n in "abcd")
    a.write_bytes(b"x" * (9 << 20))
    b.write_bytes(b"x" * (9 << 20))
    c.write_bytes(b"x" * (9 << 20) + b"!")  # longer by one byte past the first 8 MiB piece
    d.write_bytes(b"x" * (8 << 20) + b"y" * (1 << 20))
    assert same_bytes(a, b)
    assert not same_bytes(a, c) and not same_bytes(c, a)
    assert not same_bytes(a, d)
