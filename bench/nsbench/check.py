"""The exit status of bench/run.sh: 1 when a trial of nsvisor or of an
anchor (posix_spawn, splice, cat) failed, or a companion script
(``bench/logs.sh``, ``bench/net.sh``) failed, so CI notices a broken
harness or daemon; failures of the peers are reported on the page but do
not fail the run. No timing is judged here.

    python3 -m nsbench.check RESULTS.json
"""

import json
import sys

OURS = ("nsvisor", "limit", "splice", "cat")
COMPANIONS = (("logs_sh", "bench/logs.sh"), ("net", "bench/net.sh"))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as f:
        doc = json.load(f)
    if doc["tools"].get("nsvisor", {}).get("missing"):
        print(f"nsvisor: missing: {doc['tools']['nsvisor']['missing']}", file=sys.stderr)
        return 1
    failed = [t for t in doc["trials"] if t["tool"] in OURS and "error" in t]
    for t in failed:
        where = t["workload"] + (f" N={t['n']}" if "n" in t else "")
        print(f"FAILED {t['tool']} {where} run {t['run'] + 1}: {t['error']}", file=sys.stderr)
        if t.get("log_tail"):
            print(t["log_tail"], file=sys.stderr)
    ran = sum(1 for t in doc["trials"] if t["tool"] in OURS)
    print(f"bench: {ran - len(failed)} of {ran} nsvisor and anchor trials ran without error", file=sys.stderr)
    broken = 0
    for key, name in COMPANIONS:
        rec = doc.get(key)
        if not isinstance(rec, dict):
            continue
        if "error" in rec:
            broken += 1
            print(f"FAILED {name}: {rec['error']}", file=sys.stderr)
            if rec.get("stderr_tail"):
                print(rec["stderr_tail"], file=sys.stderr)
        elif "missing" in rec and rec["missing"] != "needs root":
            broken += 1
            print(f"FAILED {name}: {rec['missing']}", file=sys.stderr)
    for key in ("checks_error",):
        if doc.get(key):
            broken += 1
            print(f"FAILED checks: {doc[key]}", file=sys.stderr)
    return 1 if failed or broken else 0


if __name__ == "__main__":
    sys.exit(main())
