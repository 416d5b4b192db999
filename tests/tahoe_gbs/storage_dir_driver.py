"""Stock Tahoe-LAFS 1.20.0's own storage-server code on a storage directory (ours or its own).

Runs INSIDE the stock Tahoe venv and imports nothing from this repository. Two commands:

``read STOREDIR SI_B64 [RENEW_B64 ...]``
    Open STOREDIR (a server's ``storage/`` directory) with ``allmydata.storage.server.StorageServer``
    and print, as JSON, each share Tahoe finds for the storage index: its length, its bytes (base64)
    and, per lease, the expiry and which of the given renew secrets Tahoe says it matches.
``write STOREDIR SI_B64 SHNUM DATA_FILE RENEW_B64 CANCEL_B64``
    Store DATA_FILE as share SHNUM with Tahoe's own allocate_buckets / BucketWriter, as a stock
    server would after a complete upload.

Give ``read`` a copy of a live server's directory: creating a StorageServer removes ``incoming``.
"""

from __future__ import annotations

import base64
import json
import sys

from allmydata.storage.server import StorageServer


def main(argv: list[str]) -> int:
    command, storedir, si_b64, *rest = argv
    si = base64.b64decode(si_b64)
    server = StorageServer(storedir, b"\x00" * 20)
    if command == "read":
        candidates = [base64.b64decode(x) for x in rest]
        out = {}
        for shnum, reader in sorted(server.get_buckets(si).items()):
            length = reader.get_length()
            leases = []
            for lease in reader._share_file.get_leases():
                leases.append(
                    {
                        "expiry": lease.get_expiration_time(),
                        "matches": [bool(lease.is_renew_secret(c)) for c in candidates],
                    }
                )
            out[str(shnum)] = {
                "length": length,
                "data_b64": base64.b64encode(reader.read(0, length)).decode("ascii"),
                "leases": leases,
            }
        print(json.dumps(out))
        return 0
    if command == "write":
        shnum, data_file, renew_b64, cancel_b64 = rest
        with open(data_file, "rb") as fh:
            data = fh.read()
        renew, cancel = base64.b64decode(renew_b64), base64.b64decode(cancel_b64)
        _, writers = server.allocate_buckets(si, renew, cancel, {int(shnum)}, len(data))
        writer = writers[int(shnum)]
        writer.write(0, data)
        writer.close()
        return 0
    print(f"unknown command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
