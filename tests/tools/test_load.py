"""tools/load.py's pure helpers (the load itself runs in tests/integration/test_load.py)."""

from __future__ import annotations

from pathlib import Path

from tools.load import drop_complete_shares


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
