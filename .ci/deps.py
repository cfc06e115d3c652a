#!/usr/bin/env python3
"""The workspace's dependency rules (docs/architecture.md, "Crates and the
direction of dependencies"), checked on `cargo metadata`.

Each crate's normal and build dependencies on other workspace crates must be
among those it is allowed; test-only dependencies (dev) are free. A crate
that is not in the table fails the check until its rules are written down.
"""

import json
import subprocess
import sys

ALLOWED = {
    "hush-proto": set(),
    "hush-wire": set(),
    "hush-server": {"hush-proto", "hush-wire"},
    "hush-client": {"hush-proto", "hush-wire"},
    "hush-cli": {"hush-client", "hush-proto", "hush-wire"},
    "hush-bench": {"hush-client", "hush-proto", "hush-server", "hush-wire"},
    "hush-testkit": {"hush-server"},
}


def main() -> int:
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    members = {p["name"] for p in meta["packages"]}
    failures = []
    for package in meta["packages"]:
        name = package["name"]
        if name not in ALLOWED:
            failures.append(f"{name}: not in the rules of .ci/deps.py")
            continue
        for dep in package["dependencies"]:
            if dep["name"] in members and dep["kind"] != "dev":
                if dep["name"] not in ALLOWED[name]:
                    failures.append(f"{name} depends on {dep['name']}")
    for failure in failures:
        print(failure, file=sys.stderr)
    if failures:
        return 1
    print("ok: " + "; ".join(
        f"{n} -> {{{', '.join(sorted(a))}}}" for n, a in sorted(ALLOWED.items())
    ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
