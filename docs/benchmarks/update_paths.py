#!/usr/bin/env python3
"""A model (not a measurement) of update-path sizes in a fresh Hush big group.

The group is built as the client builds it (decision 0019): the creator adds
the first 63 devices with a path, the rest in add-only commits without one,
so most parent nodes of the ratchet tree are blank. Then every member but the
creator makes one self-update, in some order. For each self-update the model
counts the HPKE ciphertexts of its update path (the size of the resolution of
each copath node, RFC 9420 section 7.9, on the filtered direct path) and the
path's public keys, and estimates the commit's size from the hybrid suite's
sizes: 1120 bytes per X-Wing ciphertext, 1216 per X-Wing public key, about
2.6 KB for the leaf node, signature and framing (mls-rs's padding not
included). It checks against the measured first self-updates in
BENCHMARKS.md ("Commits larger than a message") to within that padding.

    python3 docs/benchmarks/update_paths.py [devices]
"""

import random
import sys

CIPHERTEXT = 1120
PATH_KEY = 1216
FIXED = 2600
LIMIT = 512 * 1024
FIRST = 64  # the creator and the devices of the group-creating commit


def level(x):
    k = 0
    while (x >> k) & 1:
        k += 1
    return k


def left(x):
    return x ^ (1 << (level(x) - 1))


def right(x):
    return x ^ (3 << (level(x) - 1))


def parent(x):
    k = level(x)
    return (x | (1 << k)) ^ (((x >> (k + 1)) & 1) << (k + 1))


class Tree:
    def __init__(self, n):
        self.n = n
        self.width = 1 << max(n - 1, 1).bit_length()
        self.root = self.width - 1
        # Non-blank parent nodes (their unmerged-leaf lists stay empty: every
        # member was added before the self-updates, and the creator's path
        # covers the leaves it added with it).
        self.filled = set()
        x = 0
        while x != min(FIRST, self.width) - 1:
            x = parent(x)
            self.filled.add(x)

    def resolution(self, x):
        if x % 2 == 0:
            return 1 if x // 2 < self.n else 0
        if x in self.filled:
            return 1
        return self.resolution(left(x)) + self.resolution(right(x))

    def self_update(self, leaf):
        """Applies the update and returns its estimated size in bytes."""
        x, ciphertexts, keys = 2 * leaf, 0, 0
        while x != self.root:
            p = parent(x)
            sibling = right(p) if left(p) == x else left(p)
            r = self.resolution(sibling)
            if r:
                ciphertexts += r
                keys += 1
                self.filled.add(p)
            x = p
        return ciphertexts * CIPHERTEXT + keys * PATH_KEY + FIXED


def bit_reversed(leaf, bits):
    return int(format(leaf, f"0{bits}b")[::-1], 2)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    bits = (n - 1).bit_length()
    members = list(range(1, n))
    orders = {
        "leaf order": members,
        "random order": random.Random(1).sample(members, len(members)),
        "bit-reversed order": sorted(members, key=lambda l: bit_reversed(l, bits)),
    }
    print(f"{n} hybrid devices, every member but the creator self-updates once")
    for name, order in orders.items():
        tree = Tree(n)
        sizes = [tree.self_update(leaf) for leaf in order]
        over = sum(1 for s in sizes if s > LIMIT)
        total = sum(sizes)
        print(
            f"  {name:18s} {over:4d} of {len(sizes)} over 512 KiB, first {sizes[0]:,} B, "
            f"all {total / 1e6:,.0f} MB, fetched by {n - 1} members: {total * (n - 1) / 1e9:,.0f} GB"
        )


if __name__ == "__main__":
    main()
