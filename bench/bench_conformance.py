"""Home Assistant conformance: the assistant next to Home Assistant Core 2025.4.4 on real payloads.

Learns the 493 real discovery payloads of ../shared/reference/ha-conformance/ and encodes
the 347 service calls Home Assistant made on them; prints the two ratios (payloads learned
as HA learned them, commands equal to what HA published), the domains not handled at all,
and, with --diffs, every difference.

    .venv/bin/python bench/bench_conformance.py [--diffs]
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.ha_conformance import corpus_dir, measure, unsupported_payloads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--diffs", action="store_true", help="print every difference")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    folder = corpus_dir()
    if folder is None:
        print("conformance corpus not found (set HA_CONFORMANCE_DIR)", file=sys.stderr)
        return 2
    report = measure(folder)
    print(f"payloads learned as Home Assistant learned them: {report.payloads_equal}/{report.payloads}"
          f" = {100 * report.learned_ratio:.1f}% (goal >= 99%)")
    print(f"commands equal to what Home Assistant published: {report.commands_equal}/{report.commands}"
          f" = {100 * report.command_ratio:.1f}% (goal >= 99%)")
    missing = collections.Counter(component for component, _ in unsupported_payloads(folder))
    if missing:
        print("accepted by HA, in domains the assistant does not handle: "
              + ", ".join(f"{k} {v}" for k, v in missing.most_common()))
    kinds = collections.Counter(d.split(": ", 1)[1].split(" ", 1)[0] for d in report.command_diffs)
    if kinds:
        print("command differences by kind: " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
    if args.diffs:
        for line in report.payload_diffs:
            print("payload:", line)
        for line in report.command_diffs:
            print("command:", line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
