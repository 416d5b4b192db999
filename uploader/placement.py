"""Share placement honouring servers-of-happiness (chk-format §13). Pure: no I/O.

Happiness of a placement is the size of a maximum matching between servers and the shares they
hold (or will hold): the number of servers that each hold a share no other counted server holds.
An upload succeeds only if happiness >= ``happy``; then any k of those servers can rebuild the file.

``plan`` follows Tahoe's "upload strategy of happiness", in the permuted server order:

1. match read-only servers to shares they already hold (M1);
2. match the other (writable) servers to shares they already hold, avoiding M1's servers and shares (M2);
3. match the remaining writable servers to the remaining shares, earlier servers first (M3);
4. spread any share still homeless over the writable servers, fewest-first (round robin).

Shares already held by a matched server are never sent again, so re-uploading a file moves
(almost) no data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Candidate:
    """One server as placement sees it, in permuted order."""

    server: str  # a stable id (e.g. the NURL's SPKI hash)
    writable: bool  # reachable and willing to take a share of this size
    existing: frozenset[int] = frozenset()  # complete shares it already holds
    refused: frozenset[int] = frozenset()  # shares it would not take (e.g. an upload of them is in progress)


@dataclass(frozen=True)
class Placement:
    to_allocate: dict[str, frozenset[int]]  # server -> shares to upload there
    kept: dict[str, frozenset[int]]  # server -> shares it already holds that the plan relies on
    happiness: int
    homeless: frozenset[int] = field(default_factory=frozenset)  # shares with no server at all

    def shares_on(self, server: str) -> frozenset[int]:
        return self.to_allocate.get(server, frozenset()) | self.kept.get(server, frozenset())

    def holders(self) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        for server in set(self.to_allocate) | set(self.kept):
            for share in self.shares_on(server):
                out.setdefault(share, set()).add(server)
        return out


def max_matching(edges: Mapping[str, Iterable[int]], order: Sequence[str] | None = None) -> dict[str, int]:
    """A maximum matching server -> share (Kuhn's augmenting paths); earlier servers are tried first."""
    servers = list(order) if order is not None else list(edges)
    adjacency = {s: sorted(set(edges.get(s, ()))) for s in servers}
    owner: dict[int, str] = {}

    def augment(server: str, seen: set[int]) -> bool:
        for share in adjacency[server]:
            if share in seen:
                continue
            seen.add(share)
            if share not in owner or augment(owner[share], seen):
                owner[share] = server
                return True
        return False

    for server in servers:
        augment(server, set())
    return {server: share for share, server in owner.items()}


def happiness(holders: Mapping[str, Iterable[int]]) -> int:
    """Size of a maximum matching of servers to the shares they hold."""
    return len(max_matching(holders))


def plan(candidates: Sequence[Candidate], total_shares: int) -> Placement:
    """Place shares 0..N-1 on ``candidates`` (already in permuted order)."""
    order = [c.server for c in candidates]
    by_id = {c.server: c for c in candidates}
    read_only = [c.server for c in candidates if not c.writable]
    writable = [c.server for c in candidates if c.writable]

    m1 = max_matching({s: by_id[s].existing for s in read_only}, read_only)
    used_shares = set(m1.values())
    m2 = max_matching({s: by_id[s].existing - used_shares for s in writable}, writable)
    used_shares |= set(m2.values())
    kept: dict[str, set[int]] = {s: {share} for s, share in (m1 | m2).items()}

    remaining = [share for share in range(total_shares) if share not in used_shares]
    free_servers = [s for s in writable if s not in m2]
    to_allocate: dict[str, set[int]] = {}
    homeless = list(remaining)
    for server in free_servers:  # M3: earlier servers first, each the first share it has not refused
        share = next((share for share in homeless if share not in by_id[server].refused), None)
        if share is not None:
            to_allocate.setdefault(server, set()).add(share)
            homeless.remove(share)
    if writable:
        load = {s: len(kept.get(s, ())) + len(to_allocate.get(s, ())) for s in writable}
        for share in homeless:
            # a server that already holds this share (unmatched) takes it back for free
            holder = next((s for s in writable if share in by_id[s].existing), None)
            if holder is not None:
                kept.setdefault(holder, set()).add(share)
            else:
                takers = [s for s in writable if share not in by_id[s].refused]
                if not takers:
                    continue
                target = min(takers, key=lambda s: (load[s], order.index(s)))
                to_allocate.setdefault(target, set()).add(share)
                load[target] += 1
        homeless = [s for s in homeless if all(s in by_id[w].refused for w in writable)]
    holders: dict[str, set[int]] = {}
    for s in order:
        shares = kept.get(s, set()) | to_allocate.get(s, set())
        if shares:
            holders[s] = shares
    return Placement(
        {s: frozenset(v) for s, v in to_allocate.items() if v},
        {s: frozenset(v) for s, v in kept.items() if v},
        happiness(holders),
        frozenset(homeless),
    )


def placement_happiness(placed: Mapping[str, Iterable[int]]) -> int:
    """Happiness of what is really on servers (e.g. after some servers were lost)."""
    return happiness({s: set(v) for s, v in placed.items()})
