from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from uploader.placement import Candidate, happiness, max_matching, plan


def test_ten_empty_servers_get_one_share_each() -> None:
    p = plan([Candidate(f"s{i}", True) for i in range(10)], 10)
    assert p.happiness == 10
    assert p.to_allocate == {f"s{i}": frozenset({i}) for i in range(10)}
    assert p.kept == {}


def test_fewer_servers_than_shares_spreads_evenly() -> None:
    p = plan([Candidate(f"s{i}", True) for i in range(4)], 10)
    assert p.happiness == 4
    assert sorted(len(v) for v in p.to_allocate.values()) == [2, 2, 3, 3]
    assert set().union(*p.to_allocate.values()) == set(range(10))


def test_existing_shares_are_kept_not_resent() -> None:
    cands = [Candidate(f"s{i}", True, frozenset({i})) for i in range(10)]
    p = plan(cands, 10)
    assert p.to_allocate == {}
    assert p.happiness == 10


def test_read_only_servers_count_with_their_shares() -> None:
    cands = [Candidate("ro", False, frozenset({0, 1})), *(Candidate(f"w{i}", True) for i in range(9))]
    p = plan(cands, 10)
    assert p.kept["ro"] in ({0}, {1})
    assert "ro" not in p.to_allocate
    assert p.happiness == 10


def test_no_writable_servers_leaves_shares_homeless() -> None:
    p = plan([Candidate("ro", False, frozenset({3}))], 5)
    assert p.happiness == 1
    assert p.homeless == frozenset({0, 1, 2, 4})


def test_refused_shares_go_to_other_servers() -> None:
    """Each server has an upload of "its" share in progress (a crashed uploader's buckets): every
    share still finds a home, each on a server that did not refuse it."""
    cands = [Candidate(f"s{i}", True, refused=frozenset({i})) for i in range(10)]
    p = plan(cands, 10)
    assert p.happiness == 10 and p.homeless == frozenset()
    assert sorted(s for v in p.to_allocate.values() for s in v) == list(range(10))
    assert all(int(server[1:]) not in shares for server, shares in p.to_allocate.items())


def test_a_share_every_server_refuses_is_homeless() -> None:
    p = plan([Candidate(f"s{i}", True, refused=frozenset({2})) for i in range(3)], 4)
    assert p.homeless == frozenset({2})
    assert sorted(s for v in p.to_allocate.values() for s in v) == [0, 1, 3]


def test_max_matching_prefers_earlier_servers_and_is_maximum() -> None:
    m = max_matching({"a": [0, 1], "b": [0], "c": [1]}, ["a", "b", "c"])
    assert len(m) == 2
    assert happiness({"a": [0], "b": [0], "c": [0]}) == 1


@given(
    st.lists(st.tuples(st.booleans(), st.frozensets(st.integers(0, 9), max_size=4)), min_size=0, max_size=14),
)
def test_plan_properties(specs: list[tuple[bool, frozenset[int]]]) -> None:
    cands = [Candidate(f"s{i}", w, e) for i, (w, e) in enumerate(specs)]
    p = plan(cands, 10)
    by_id = {c.server: c for c in cands}
    for server, shares in p.to_allocate.items():
        assert by_id[server].writable  # nothing is sent to a read-only server
        assert not (shares & by_id[server].existing)  # nor a share a server already holds
    for server, shares in p.kept.items():
        assert shares <= by_id[server].existing
    placed = set().union(*p.to_allocate.values(), *p.kept.values()) if (p.to_allocate or p.kept) else set()
    if any(c.writable for c in cands):
        assert placed == set(range(10))  # every share has a home
    assert p.happiness == happiness({s: p.shares_on(s) for s in by_id})
    # no placement of these servers can be happier than servers or shares allow
    assert p.happiness <= min(len(cands), 10)
    writable = sum(c.writable for c in cands)
    assert p.happiness >= min(writable, 10)
