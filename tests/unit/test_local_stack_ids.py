"""The local stack's generated identifiers are safe to pass on a command line."""

from __future__ import annotations

from cli.local_stack import _cluster_id


def test_kraft_cluster_ids_never_look_like_options() -> None:
    ids = [_cluster_id() for _ in range(3000)]  # about 47 of them would start with '-' by chance
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids)
