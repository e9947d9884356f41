"""``--shard K/N``: split a batch job over N runs (machines) deterministically.

Every run plans the *whole* job first (so each output gets the name it would have in one
unsharded run, collisions resolved over all inputs), then keeps the items whose position in
the sorted list of output keys is ≡ K − 1 (mod N). The N shards are disjoint, cover every
input, and their ``--out`` folders merge (copy them into one) without a name collision;
only ``manifest.json`` / ``report.txt`` are per shard.
"""

from __future__ import annotations

import re

from eyepurify.errors import EyepurifyError


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """"2/4" → (2, 4) (1 ≤ K ≤ N); None or "" → None; EyepurifyError otherwise."""
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise EyepurifyError(f"bad --shard {text!r}: use K/N with 1 <= K <= N, e.g. --shard 1/4")
    return int(m.group(1)), int(m.group(2))


def in_shard(keys: list[str], shard: tuple[int, int] | None) -> set[str]:
    """The keys shard ``(K, N)`` keeps (all of them for None)."""
    if shard is None:
        return set(keys)
    k, n = shard
    return {key for i, key in enumerate(sorted(set(keys))) if i % n == k - 1}
