"""The benchmark driver: plans the trials, runs them interleaved (each run
goes through every tool before the next run starts, in a rotating order, so
slow drifts of the machine hit every tool alike), and writes every raw
figure to a JSON file after each trial.

Called by bench/run.sh (``python3 -m nsbench.main --help`` for the options);
the report is made from the JSON by ``nsbench.report``.
"""

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

from . import companions, procfs, workloads
from .tools import Horust, Nsvisor, Supervisord

WORKLOADS = ("lifecycle", "logs", "crash", "supervisorctl", "checks", "logs.sh", "net")


@dataclass
class Settings:
    mode: str
    ns: list
    runs: int
    warmup: int
    settle_s: float
    idle_s: float
    status_samples: int
    log_bytes: int
    log_timeout_s: float
    crash_s: float
    crash_warm_s: float
    check_n: int
    exec_n: int
    tmp_root: str = field(default="", repr=False)


def settings(mode):
    if mode == "quick":
        return Settings("quick", [20, 50], runs=2, warmup=1, settle_s=0.5, idle_s=1.0, status_samples=5,
                        log_bytes=16 << 20, log_timeout_s=120, crash_s=2.0, crash_warm_s=0.5,
                        check_n=50, exec_n=10)
    return Settings("full", [100, 1000], runs=5, warmup=1, settle_s=2.0, idle_s=10.0, status_samples=30,
                    log_bytes=1 << 30, log_timeout_s=600, crash_s=30.0, crash_warm_s=1.0,
                    check_n=1000, exec_n=100)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="nsbench", description="Run the nsvisor benchmark workloads.")
    p.add_argument("--mode", choices=("quick", "full"), default="full")
    p.add_argument("--bin-dir", required=True, help="directory with nsvisor and nsvisorctl")
    p.add_argument("--cache", required=True, help="bench cache directory (peers, tools)")
    p.add_argument("--spawnlimit", required=True)
    p.add_argument("--linewriter", required=True)
    p.add_argument("--probeloop", required=True)
    p.add_argument("--bench-dir", required=True, help="the bench/ directory (logs.sh, net.sh)")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--missing", action="append", default=[], metavar="TOOL=REASON",
                   help="a peer that could not be installed, and why (repeatable)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset of " + ",".join(WORKLOADS))
    p.add_argument("--tools", help="comma-separated subset of nsvisor,supervisord,horust")
    p.add_argument("--runs", type=int)
    p.add_argument("--warmup", type=int)
    p.add_argument("--ns", help="comma-separated program counts for the lifecycle workload")
    return p.parse_args(argv)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def _version(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return None


def _git_commit(path):
    return _version(["git", "-C", path, "describe", "--always", "--dirty"])


def _rotate(items, k):
    k %= max(1, len(items))
    return items[k:] + items[:k]


def _brief(rec):
    if "error" in rec:
        return "ERROR " + rec["error"]
    parts = []
    for key, fmt in (("start_s", "start {:.3f} s"), ("stop_s", "stop {:.3f} s"), ("rss_kb", "rss {} KiB"),
                     ("idle_ticks", "idle {} ticks"), ("log_mib_s", "{:.0f} MiB/s"),
                     ("crash_ticks", "crash cpu {} ticks"), ("crash_starts", "{} starts"),
                     ("start_all_s", "start all {:.3f} s"), ("cpu_share", "cpu {:.2%}")):
        if rec.get(key) is not None:
            parts.append(fmt.format(rec[key]))
    for key in ("status_cli_ms", "status_api_ms"):
        if rec.get(key):
            parts.append(f"{key[:-3]} p50 {workloads.median(rec[key]):.1f} ms")
    return ", ".join(parts)


class Run:
    """The results being gathered, written to disk after every trial."""

    def __init__(self, path, doc):
        self.path = path
        self.doc = doc

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.doc, f, indent=1)
        os.replace(tmp, self.path)

    def add(self, label, rec):
        self.doc["trials"].append(rec)
        log(f"  {label}: {_brief(rec)}")
        self.save()


def _checks(run, tool, cfg, args, total, counted):
    """The checks workload: tcp checks of cfg.check_n programs, exec checks of
    cfg.exec_n, each next to the same programs without checks, and the C floor
    for the tcp checks' connections. One listener serves every tcp check."""
    port = workloads._free_port()
    listener = subprocess.Popen([args.probeloop, "listen", str(port)])
    try:
        time.sleep(0.2)
        if listener.poll() is not None:
            log(f"checks: probeloop listen {port} exited with {listener.returncode}")
            return
        for r in range(total):
            log(f"checks run {r + 1}/{total}{' (warm-up)' if not counted(r) else ''}")
            trials = [("none", cfg.check_n), ("tcp", cfg.check_n), ("none", cfg.exec_n), ("exec", cfg.exec_n), ("floor", cfg.check_n)]
            for variant, n in _rotate(trials, r):
                base = {"workload": "checks", "n": n, "run": r, "counted": counted(r)}
                if variant == "floor":
                    rec = workloads.probe_floor(args.probeloop, port, n, cfg.idle_s)
                    run.add("probeloop", {**base, "tool": "probeloop", **rec})
                else:
                    rec = workloads.checks(tool, variant, n, port, cfg)
                    run.add(f"nsvisor {variant} n={n}", {**base, "tool": tool.name, **rec})
    finally:
        listener.kill()
        listener.wait()


def main(argv=None):
    args = parse_args(argv)
    for key in ("bin_dir", "cache", "spawnlimit", "linewriter", "probeloop", "bench_dir", "out"):
        if getattr(args, key):
            setattr(args, key, os.path.abspath(getattr(args, key)))
    cfg = settings(args.mode)
    if args.runs is not None:
        cfg.runs = args.runs
    if args.warmup is not None:
        cfg.warmup = args.warmup
    if args.ns:
        cfg.ns = [int(x) for x in args.ns.split(",")]
    chosen = set(args.workloads.split(","))
    unknown = chosen - set(WORKLOADS)
    if unknown:
        sys.exit(f"unknown workloads: {', '.join(sorted(unknown))}")

    # Many programs need many descriptors: give every daemon the hard limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    missing = dict(m.split("=", 1) for m in args.missing)
    venv_bin = os.path.join(args.cache, "venv", "bin")
    tools = [
        Nsvisor(args.bin_dir),
        Supervisord(venv_bin, missing.get("supervisord")),
        Horust(os.path.join(args.cache, "horust"), missing.get("horust")),
    ]
    if args.tools:
        keep = set(args.tools.split(","))
        for t in tools:
            if t.name not in keep and not t.missing:
                t.missing = "not selected (--tools)"
    ready = [t for t in tools if not t.missing]
    for t in tools:
        if t.missing:
            log(f"{t.name}: MISSING: {t.missing}")

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    doc = {
        "schema": 1,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "mode": cfg.mode,
        "settings": asdict(cfg),
        "machine": procfs.machine(),
        "load_before": procfs.loadavg(),
        "tools": {t.name: {"version": None if t.missing else t.version(), "missing": t.missing} for t in tools},
        "trials": [],
    }
    doc["tools"]["nsvisor"]["commit"] = _git_commit(repo)
    doc["tools"]["limit"] = {"version": "spawnlimit (posix_spawnp), " + (_version(["cc", "--version"]) or "cc")}
    doc["tools"]["cat"] = {"version": _version(["cat", "--version"])}
    run = Run(args.out, doc)
    run.save()

    with tempfile.TemporaryDirectory(prefix="nsvisor-bench-") as tmp_root:
        cfg.tmp_root = tmp_root
        total = cfg.warmup + cfg.runs

        def counted(r):
            return r >= cfg.warmup

        if "lifecycle" in chosen:
            for n in cfg.ns:
                with_status = n == max(cfg.ns)
                for r in range(total):
                    log(f"lifecycle n={n} run {r + 1}/{total}{' (warm-up)' if not counted(r) else ''}")
                    for name in _rotate(["limit"] + [t.name for t in ready], r):
                        base = {"workload": "lifecycle", "n": n, "tool": name, "run": r, "counted": counted(r)}
                        if name == "limit":
                            rec = workloads.limit(args.spawnlimit, n)
                        else:
                            tool = next(t for t in ready if t.name == name)
                            rec = workloads.lifecycle(tool, n, cfg, with_status)
                        run.add(name, {**base, **rec})

        if "logs" in chosen:
            for r in range(total):
                log(f"logs {cfg.log_bytes >> 20} MiB run {r + 1}/{total}{' (warm-up)' if not counted(r) else ''}")
                for name in _rotate(["cat"] + [t.name for t in ready], r):
                    base = {"workload": "logs", "tool": name, "run": r, "counted": counted(r)}
                    if name == "cat":
                        rec = workloads.logs_cat(args.linewriter, cfg.log_bytes, cfg)
                    else:
                        tool = next(t for t in ready if t.name == name)
                        rec = workloads.logs(tool, args.linewriter, cfg.log_bytes, cfg)
                    run.add(name, {**base, **rec})

        if "crash" in chosen:
            for r in range(total):
                log(f"crash loop {cfg.crash_s:g} s run {r + 1}/{total}{' (warm-up)' if not counted(r) else ''}")
                for tool in _rotate(ready, r):
                    base = {"workload": "crash", "tool": tool.name, "run": r, "counted": counted(r)}
                    run.add(tool.name, {**base, **workloads.crash(tool, cfg)})

        if "supervisorctl" in chosen:
            ctl = os.path.join(venv_bin, "supervisorctl")
            both = [t for t in ready if t.name in ("nsvisor", "supervisord")]
            if not os.access(ctl, os.X_OK) or len(both) < 2:
                log("supervisorctl: MISSING: needs supervisord's venv and both daemons")
            else:
                n = max(cfg.ns)
                for r in range(total):
                    log(f"supervisorctl n={n} run {r + 1}/{total}{' (warm-up)' if not counted(r) else ''}")
                    for tool in _rotate(both, r):
                        base = {"workload": "supervisorctl", "n": n, "tool": tool.name, "run": r, "counted": counted(r)}
                        run.add(tool.name, {**base, **workloads.supervisorctl(tool, ctl, n, cfg)})

        if "checks" in chosen and not tools[0].missing:
            _checks(run, tools[0], cfg, args, total, counted)

    for name, key, fn in (("logs.sh", "logs_sh", companions.logs_sh), ("net", "net", companions.net_sh)):
        if name in chosen and not tools[0].missing:
            script = os.path.join(args.bench_dir, "net.sh" if name == "net" else name)
            log(f"{os.path.basename(script)}")
            doc[key] = fn(script, args.bin_dir, cfg.mode)
            rec = doc[key]
            log("  " + ("MISSING: " + rec["missing"] if "missing" in rec else rec.get("error", "ok")))
            run.save()
    doc["load_after"] = procfs.loadavg()
    run.save()
    errors = sum(1 for t in doc["trials"] if "error" in t)
    log(f"wrote {args.out}: {len(doc['trials'])} trials, {errors} with errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
