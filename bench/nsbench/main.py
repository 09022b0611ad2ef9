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
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

from . import companions, lifecycle, logflow, procfs, workloads
from .tools import S6, Horust, Nsvisor, Supervisord

WORKLOADS = ("lifecycle", "logs", "crash", "supervisorctl", "checks", "logs.sh", "net")


@dataclass
class Settings:
    mode: str
    ns: list
    runs: int  # counted runs of every workload, unless runs_at says otherwise for an N
    warmup: int
    settle_s: float
    idle_s: float
    status_samples: int
    status_budget_s: float  # per kind of status call and trial; at least 3 calls are timed
    log_bytes: int
    log_timeout_s: float
    crash_s: float
    check_n: int
    exec_n: int
    supervisorctl_n: int
    cap_s: float  # the most a tool may take to start (or stop) N programs
    cap_at: dict = field(default_factory=dict)  # N -> cap_s
    runs_at: dict = field(default_factory=dict)  # N -> counted runs
    warmup_at: dict = field(default_factory=dict)  # N -> warm-up runs
    tmp_root: str = field(default="", repr=False)

    def lifecycle_runs(self, n):
        return self.warmup_at.get(n, self.warmup), self.runs_at.get(n, self.runs)

    def cap(self, n):
        return self.cap_at.get(n, self.cap_s)


def settings(mode):
    if mode == "quick":
        return Settings("quick", [1, 50], runs=2, warmup=0, settle_s=0.2, idle_s=0.5, status_samples=3,
                        status_budget_s=1.0, log_bytes=16 << 20, log_timeout_s=120, crash_s=1.0,
                        check_n=50, exec_n=10, supervisorctl_n=50, cap_s=60, warmup_at={1: 1})
    return Settings("full", [1, 100, 1000, 10000], runs=3, warmup=1, settle_s=1.0, idle_s=10.0, status_samples=15,
                    status_budget_s=10.0, log_bytes=1 << 30, log_timeout_s=600, crash_s=10.0,
                    check_n=1000, exec_n=100, supervisorctl_n=1000, cap_s=300, cap_at={10000: 60},
                    warmup_at={100: 0, 1000: 0, 10000: 0})


def raise_nofile(want):
    """Raises this process's RLIMIT_NOFILE, which every tool it starts
    inherits: the hard limit to ``want`` when allowed (root with
    CAP_SYS_RESOURCE), then the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    info = {"before": [soft, hard], "wanted": want, "raised_hard": False}
    if want > hard:
        try:
            with open("/proc/sys/fs/nr_open") as f:
                want = min(want, int(f.read()))
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            info["raised_hard"] = True
        except (OSError, ValueError) as e:  # ValueError: EPERM, "not allowed to raise maximum limit"
            info["raise_error"] = str(e)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    info["set"] = list(resource.getrlimit(resource.RLIMIT_NOFILE))
    return info


def fd_shortfall(tool, n, info):
    """Why tool cannot run n lifecycle programs under the limit in info, or None."""
    need, hard = tool.fds_needed(lifecycle.lifecycle_progs(n)), info["set"][1]
    if need <= hard:
        return None
    return f"needs {need:,} open files, the hard limit is {hard:,}"


def nsvisor_pipe_bytes(repo):
    """The pipe buffer nsvisor asks for its programs' output (PIPE_SIZE in
    supervisor/src/logs/mod.rs): the splice limit uses the same."""
    path = os.path.join(repo, "supervisor", "src", "logs", "mod.rs")
    with open(path) as f:
        m = re.search(r"const PIPE_SIZE: Option<usize> = Some\(([\d_ *]+)\);", f.read())
    if not m:
        raise SystemExit(f"cannot find PIPE_SIZE in {path}: pass --pipe-bytes")
    value = 1
    for factor in m.group(1).replace("_", "").split("*"):
        value *= int(factor)
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(prog="nsbench", description="Run the nsvisor benchmark workloads.")
    p.add_argument("--mode", choices=("quick", "full"), default="full")
    p.add_argument("--bin-dir", required=True, help="directory with nsvisor and nsvisorctl")
    p.add_argument("--cache", required=True, help="bench cache directory (peers, tools)")
    p.add_argument("--spawnlimit", required=True)
    p.add_argument("--linewriter", required=True)
    p.add_argument("--probeloop", required=True)
    p.add_argument("--splicecopy", required=True)
    p.add_argument("--pipe-bytes", type=int, help="pipe buffer of the splice limit (default: nsvisor's PIPE_SIZE)")
    p.add_argument("--bench-dir", required=True, help="the bench/ directory (logs.sh, net.sh)")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--missing", action="append", default=[], metavar="TOOL=REASON",
                   help="a peer that could not be installed, and why (repeatable)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset of " + ",".join(WORKLOADS))
    p.add_argument("--tools", help="comma-separated subset of nsvisor,supervisord,horust,s6")
    p.add_argument("--runs", type=int, help="counted runs of every workload and N")
    p.add_argument("--warmup", type=int, help="warm-up runs of every workload and N")
    p.add_argument("--ns", help="comma-separated program counts for the lifecycle workload")
    p.add_argument("--cap", type=float, help="seconds a tool may take to start (or stop) N programs, at every N")
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
    for key, fmt in (("start_s", "start {:.3f} s"), ("running_s", "RUNNING {:.3f} s"), ("stop_s", "stop {:.3f} s"),
                     ("rss_kb", "rss {} KiB"), ("pss_kb", "pss {} KiB"),
                     ("idle_ticks", "idle {} ticks"), ("log_mib_s", "{:.0f} MiB/s"),
                     ("crash_ticks", "crash cpu {} ticks"), ("crash_starts", "{} starts"),
                     ("crash_cpu_ms_per_start", "{:.2f} ms cpu/start"),
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
        self.started = self.last = time.monotonic()
        doc["wall_s"] = {}  # workload (or companion) -> seconds the run spent on it

    def spent(self, what):
        """Counts the time since the last mark towards what."""
        t = time.monotonic()
        self.doc["wall_s"][what] = self.doc["wall_s"].get(what, 0) + t - self.last
        self.doc["wall_s"]["total"] = t - self.started
        self.last = t

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.doc, f, indent=1)
        os.replace(tmp, self.path)

    def add(self, label, rec):
        self.spent(rec["workload"])
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
        if not _listening(listener, port):
            log(f"checks: probeloop listen {port} exited with {listener.returncode} or never listened")
            run.doc["checks_error"] = f"probeloop listen {port} did not come up"
            return
        for r in range(total):
            log(f"checks run {r + 1}/{total}{' (warm-up)' if not counted(r) else ''}")
            trials = [("none", cfg.check_n), ("tcp", cfg.check_n), ("none", cfg.exec_n), ("exec", cfg.exec_n), ("floor", cfg.check_n)]
            for variant, n in _rotate(trials, r):
                base = {"workload": "checks", "n": n, "run": r, "counted": counted(r)}
                if variant == "floor":
                    rec = workloads.probe_floor(args.probeloop, port, n, max(1.0, cfg.idle_s))
                    run.add("probeloop", {**base, "tool": "probeloop", **rec})
                else:
                    rec = workloads.checks(tool, variant, n, port, cfg)
                    run.add(f"nsvisor {variant} n={n}", {**base, "tool": tool.name, **rec})
    finally:
        listener.kill()
        listener.wait()


def _listening(proc, port, timeout_s=10):
    """Until something accepts on 127.0.0.1:port (False if proc exits first or it times out)."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(workloads.POLL_S)
    return False


def _lifecycle(run, cfg, args, ready, nofile):
    """Every N: the limit and each tool, interleaved. A peer that exceeded the
    cap is not run again at that N (its later runs say so); a tool that
    needs more open files than the limit allows is not run at that N."""
    tools = [t for t in ready if "lifecycle" in t.workloads]
    for n in cfg.ns:
        short = {t.name: fd_shortfall(t, n, nofile) for t in tools}
        for name, why in short.items():
            if why:
                log(f"lifecycle n={n} {name}: NOT RUN: {why}")
        warmup, runs = cfg.lifecycle_runs(n)
        capped = {}
        for r in range(warmup + runs):
            counted = r >= warmup
            log(f"lifecycle n={n} run {r + 1}/{warmup + runs}{'' if counted else ' (warm-up)'}")
            for name in _rotate(["limit"] + [t.name for t in tools], r):
                base = {"workload": "lifecycle", "n": n, "tool": name, "run": r, "counted": counted}
                if short.get(name):
                    rec = {"error": f"not run: {short[name]}", "skipped": True, "fd_limited": True}
                elif name in capped:
                    first = capped[name]
                    rec = {"capped": first["capped"], "cap_s": first.get("cap_s"), "cap_detail": "not run again",
                           "skipped": True, "error": f"not run again: {first['error']} in run {first['run'] + 1}"}
                elif name == "limit":
                    rec = lifecycle.limit(args.spawnlimit, n, cfg, cfg.cap(n))
                else:
                    tool = next(t for t in tools if t.name == name)
                    rec = lifecycle.lifecycle(tool, n, cfg, cfg.cap(n))
                    if "capped" in rec and name != "nsvisor":
                        capped[name] = {**rec, "run": r}
                run.add(name, {**base, **rec})


def main(argv=None):
    args = parse_args(argv)
    for key in ("bin_dir", "cache", "spawnlimit", "linewriter", "probeloop", "splicecopy", "bench_dir", "out"):
        if getattr(args, key):
            setattr(args, key, os.path.abspath(getattr(args, key)))
    cfg = settings(args.mode)
    if args.runs is not None:
        cfg.runs, cfg.runs_at = args.runs, {}
    if args.warmup is not None:
        cfg.warmup, cfg.warmup_at = args.warmup, {}
    if args.ns:
        cfg.ns = [int(x) for x in args.ns.split(",")]
    if args.cap is not None:
        cfg.cap_s, cfg.cap_at = args.cap, {}
    chosen = set(args.workloads.split(","))
    unknown = chosen - set(WORKLOADS)
    if unknown:
        sys.exit(f"unknown workloads: {', '.join(sorted(unknown))}")

    repo = os.path.dirname(args.bench_dir)
    pipe_bytes = args.pipe_bytes or nsvisor_pipe_bytes(repo)
    args.pipe_bytes_used = pipe_bytes

    missing = dict(m.split("=", 1) for m in args.missing)
    venv_bin = os.path.join(args.cache, "venv", "bin")
    tools = [
        Nsvisor(args.bin_dir),
        Supervisord(venv_bin, missing.get("supervisord")),
        Horust(os.path.join(args.cache, "horust"), missing.get("horust")),
        S6(missing.get("s6")),
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
    # Many programs need many descriptors: every tool inherits these limits.
    nofile = raise_nofile(max([t.fds_needed(lifecycle.lifecycle_progs(max(cfg.ns))) for t in ready] + [1024]))

    doc = {
        "schema": 2,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "mode": cfg.mode,
        "settings": asdict(cfg),
        "machine": procfs.machine(),
        "load_before": procfs.loadavg(),
        "rlimit_nofile": nofile,
        "pipe_bytes": pipe_bytes,
        "caps_s": {str(n): cfg.cap(n) for n in cfg.ns},
        "tools": {t.name: {"version": None if t.missing else t.version(), "missing": t.missing} for t in tools},
        "trials": [],
    }
    doc["tools"]["nsvisor"]["commit"] = _git_commit(repo)
    cc = _version(["cc", "--version"]) or "cc"
    doc["tools"]["limit"] = {"version": f"spawnlimit (posix_spawnp), {cc}"}
    doc["tools"]["splice"] = {"version": f"splicecopy (splice, {pipe_bytes >> 10} KiB pipe), {cc}"}
    doc["tools"]["cat"] = {"version": _version(["cat", "--version"])}
    run = Run(args.out, doc)
    run.save()

    with tempfile.TemporaryDirectory(prefix="nsvisor-bench-") as tmp_root:
        cfg.tmp_root = tmp_root
        total = cfg.warmup + cfg.runs

        def counted(r):
            return r >= cfg.warmup

        if "lifecycle" in chosen:
            _lifecycle(run, cfg, args, ready, nofile)

        if "logs" in chosen:
            for r in range(total):
                log(f"logs {cfg.log_bytes >> 20} MiB run {r + 1}/{total}{' (warm-up)' if not counted(r) else ''}")
                for name in _rotate(["splice", "cat"] + [t.name for t in ready if "logs" in t.workloads], r):
                    base = {"workload": "logs", "tool": name, "run": r, "counted": counted(r)}
                    if name == "cat":
                        rec = logflow.logs_cat(args.linewriter, cfg.log_bytes, cfg)
                    elif name == "splice":
                        rec = logflow.logs_splice(args.splicecopy, pipe_bytes, args.linewriter, cfg.log_bytes, cfg)
                    else:
                        tool = next(t for t in ready if t.name == name)
                        rec = logflow.logs(tool, args.linewriter, cfg.log_bytes, cfg)
                    run.add(name, {**base, **rec})

        # The crash loop and the checks measure over a window that opens once
        # the daemon is in its steady state: no warm-up runs.
        if "crash" in chosen:
            for r in range(cfg.runs):
                log(f"crash loop {cfg.crash_s:g} s run {r + 1}/{cfg.runs}")
                for tool in _rotate([t for t in ready if "crash" in t.workloads], r):
                    base = {"workload": "crash", "tool": tool.name, "run": r, "counted": True}
                    run.add(tool.name, {**base, **workloads.crash(tool, cfg)})

        if "supervisorctl" in chosen:
            ctl = os.path.join(venv_bin, "supervisorctl")
            both = [t for t in ready if t.name in ("nsvisor", "supervisord")]
            if not os.access(ctl, os.X_OK) or len(both) < 2:
                log("supervisorctl: MISSING: needs supervisord's venv and both daemons")
            else:
                n = cfg.supervisorctl_n
                for r in range(total):
                    log(f"supervisorctl n={n} run {r + 1}/{total}{' (warm-up)' if not counted(r) else ''}")
                    for tool in _rotate(both, r):
                        base = {"workload": "supervisorctl", "n": n, "tool": tool.name, "run": r, "counted": counted(r)}
                        run.add(tool.name, {**base, **workloads.supervisorctl(tool, ctl, n, cfg)})

        if "checks" in chosen and not tools[0].missing:
            _checks(run, tools[0], cfg, args, cfg.runs, lambda r: True)

    for name, key, fn in (("logs.sh", "logs_sh", companions.logs_sh), ("net", "net", companions.net_sh)):
        if name in chosen and not tools[0].missing:
            script = os.path.join(args.bench_dir, "net.sh" if name == "net" else name)
            log(f"{os.path.basename(script)}")
            run.spent("between")
            doc[key] = fn(script, args.bin_dir, cfg.mode, args)
            run.spent(name)
            rec = doc[key]
            log("  " + ("MISSING: " + rec["missing"] if "missing" in rec else rec.get("error", "ok")))
            run.save()
    doc["load_after"] = procfs.loadavg()
    run.spent("between")
    run.save()
    errors = sum(1 for t in doc["trials"] if "error" in t)
    log(f"wrote {args.out}: {len(doc['trials'])} trials, {errors} with errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
