"""Turns a results JSON (written by ``nsbench.main``) into the benchmark page:
how to read it, machine and tool versions, the targets, where a peer beats
nsvisor, every table, and a PNG chart (start, stop and memory against N,
and each as a cost per program).

    python3 -m nsbench.report RESULTS.json PAGE.md [CHART.png]

The tables live in ``tables.py`` (lifecycle, targets) and ``sections.py``
(the other workloads and the companion scripts), the chart in ``chart.py``.
A tool that was not installed, failed, or hit the cap is shown as such,
never left out.
"""

import json
import os
import sys

from . import sections
from .chart import chart
from .tables import Results, lifecycle_tables, losses, status_table, targets_table


def _load(v):
    return ", ".join(f"{x:.2f}" for x in v) if v else "—"


def _tool_line(name, info):
    if info.get("missing"):
        return f"{name}: **missing** ({info['missing']})"
    v = info.get("version") or "version unknown"
    if info.get("commit") and info["commit"] not in v:
        v += f" (commit {info['commit']})"
    return f"{name}: {v}"


def _caps(d):
    caps = d.get("caps_s") or {}
    by_cap = {}
    for n, cap in caps.items():
        by_cap.setdefault(cap, []).append(int(n))
    return "; ".join(f"{cap:g} s at N = {', '.join(f'{n:,}' for n in sorted(ns))}" for cap, ns in sorted(by_cap.items()))


def _wall_line(d):
    wall = dict(d.get("wall_s") or {})
    total = wall.pop("total", None)
    if total is None:
        return []
    parts = ", ".join(f"{k} {v / 60:.1f}" for k, v in wall.items() if k != "between" and v >= 1)
    return [f"- **Duration**: {total / 60:.1f} min ({parts})"]


def _runs_line(res):
    s = res.settings
    per_n = []
    for n in res.ns:
        warm = s.get("warmup_at", {}).get(str(n), s.get("warmup_at", {}).get(n, s["warmup"]))
        runs = s.get("runs_at", {}).get(str(n), s.get("runs_at", {}).get(n, s["runs"]))
        per_n.append(f"N = {n:,}: {warm} + {runs}")
    return (f"{s['runs']} counted runs per workload, after {s['warmup']} warm-up for logs and supervisorctl"
            " (none for the crash loop and checks, whose windows open in a steady state);"
            " lifecycle, warm-up + counted: " + "; ".join(per_n))


def _limits_line(res):
    info = res.doc.get("rlimit_nofile")
    if not info:
        return []
    before, after = info["before"], info["set"]
    text = (f"- **Open files** (RLIMIT_NOFILE, soft / hard): {before[0]:,} / {before[1]:,} before; the harness "
            f"set {after[0]:,} / {after[1]:,} for itself, so for every tool it starts")
    if info.get("raised_hard"):
        text += " (it raised the hard limit, as root: the same for every tool)"
    elif info.get("raise_error"):
        text += (f" (the {info['wanted']:,} the largest N needs could not be set: {info['raise_error']};"
                 " a tool that needs more than the hard limit is not run at that N, and says so)")
    return [text + "."]


HOW_TO_READ = """## How to read this page

Every figure is the **median of the counted runs** of one tool, with the
lowest and highest run in parentheses; every tool in a row has the same
number of counted runs, run interleaved (each run goes through every tool,
in an order that rotates), so slow drifts of the machine hit all alike. A
ratio after a peer's figure is the peer's median divided by nsvisor's
(above 1: nsvisor does better). A run that failed, or a tool that took
longer than the cap to start or to stop ({cap}), is written as such in
its cell; a peer over the cap at some N is not run again at that N.

The **anchors** are not supervisors but the best this machine can do, so a
target against them can be missed:

- **posix_spawn limit** (start and stop): `bench/spawnlimit.c` starts the N
  programs with `posix_spawn` from C, one after another (each call returns
  once the child has exec'd); when it receives SIGTERM, it sends each
  SIGTERM and reaps them all. No supervisor can start or stop the same
  programs with less work; the targets allow 1.5× of it. It is timed from
  outside exactly as the supervisors are (from its launch until all N have
  exec'd; from its SIGTERM until it and every program have exited, read from
  the kernel's process events), so the harness's own work during a start or
  a stop weighs on it as on them; its own clocks are in the JSON beside. Its programs have no output pipe; a supervisor
  that keeps their output makes one per program at start and closes it as
  each exits, and that is part of its figures.
- **splice limit** (log throughput): `bench/splicecopy.c` moves the
  program's pipe into the file with `splice(2)`, no copy through user space,
  with the pipe buffer nsvisor uses ({pipe_kib} KiB). `cat` is the everyday
  reference beside it. The target is 0.8× of the limit.
- **probeloop floor** (checks): C making the same TCP connections a second.
- **`ip -batch`** (network sandboxes): the same namespaces, veths and
  addresses made by `ip` reading a batch file.

Why the comparisons are fair: every tool runs the same programs (`sleep`,
no start delay, SIGTERM to stop, output to files) on the same machine in
the same run; **start** stops for every tool at the same moment, when the
kernel reports the N-th program's exec (the tool's own view, "all RUNNING
as the tool reports it", is a second row); **stop** runs from SIGTERM to the
daemon until it and every process it started have exited (for s6 that
includes each s6-supervise); **memory** is that of the whole supervision
tree (s6: s6-svscan plus every s6-supervise) as PSS, so pages shared
between those processes count once, next to RSS; **idle CPU** is that of
the whole tree. Start and stop are timed from the kernel's process events
(the proc connector), so the harness does not poll while a tool works.
**Per program** figures are marginal: (median with N − median with 1
program) / (N − 1), which leaves out each daemon's fixed start-up cost; a
flat line against N is the goal.
"""


def page(res, chart_name):
    d, m = res.doc, res.doc["machine"]
    settings = d["settings"]
    lines = [
        "# Benchmarks",
        "",
        "How nsvisor compares with supervisord, horust and s6, and with the limits of",
        "the machine. Regenerate this page with `bench/run.sh`; the raw figures of",
        "every trial are in the JSON next to it.",
        "",
        HOW_TO_READ.format(cap=_caps(d), pipe_kib=(d.get("pipe_bytes") or 0) >> 10),
        "## This run",
        "",
        f"- **Date**: {d['date']} ({d['mode']} run: {_runs_line(res)})",
        f"- **Machine**: {m['cpu']}, {m['cores']} cores, {m['memory_mib'] / 1024:.1f} GiB memory, Linux {m['kernel']}"
        + (" (in a container)" if m.get("in_container") else ""),
        f"- **Load average** (1, 5, 15 min): before {_load(d.get('load_before'))}, after {_load(d.get('load_after'))}",
        *_wall_line(d),
        "- **Tools**: " + "; ".join(_tool_line(name, info) for name, info in d["tools"].items()),
        *_limits_line(res),
        "",
        "## Targets",
        "",
        targets_table(res),
        "",
        "## Where a peer does better than nsvisor",
        "",
        losses(res),
        "",
    ]
    if chart_name:
        lines += ["## Start, stop and memory against N", "", f"![start, stop and memory against N]({chart_name})", ""]
    lines += [
        "## All figures",
        "",
        "### Start, stop, memory and idle CPU",
        "",
        lifecycle_tables(res),
        "### Status round trip",
        "",
        "Each run's p50 and p99 over its calls (up to "
        f"{settings['status_samples']} per run, fewer once {settings.get('status_budget_s', 0):g} s are spent, at least 3),"
        " then the median of those over the runs. CLI: `nsvisorctl status` / `supervisorctl status`, process start"
        " to exit (seen on a pidfd the moment it exits: waiting with `Popen.wait(timeout)`, which polls every"
        " 1, 2, 4 ... 50 ms, would round each call up to 31.5, 63.5, 113.5 ... ms); API: one in-process round trip (HTTP `GET /v1/programs` / XML-RPC `getAllProcessInfo`).",
        "",
        status_table(res),
        "",
        "### Log throughput",
        "",
        sections.logs_table(res),
        "",
        "### Crash loop",
        "",
        sections.crash_table(res),
        "",
        "### supervisorctl",
        "",
        sections.supervisorctl_table(res),
        "",
        "### Checks",
        "",
        sections.checks_table(res),
        "",
        "### Log sink set-ups",
        "",
        sections.logs_sh_section(res),
        "",
        "### Network",
        "",
        sections.net_section(res),
        "",
        METHOD.format(settle=settings["settle_s"], idle=settings["idle_s"], crash=settings["crash_s"],
                      bytes=settings["log_bytes"] / 2**20, supervisorctl_n=settings.get("supervisorctl_n", 0)),
    ]
    errs = [t for t in d["trials"] if "error" in t]
    companions = [(name, d[key]) for name, key in (("bench/logs.sh", "logs_sh"), ("bench/net.sh", "net"))
                  if isinstance(d.get(key), dict) and "error" in d[key]]
    if errs or companions:
        lines += ["", "## Failed trials", ""]
        for t in errs:
            where = f"{t['workload']}" + (f" N={t['n']:,}" if "n" in t else "")
            lines.append(f"- {t['tool']}, {where}, run {t['run'] + 1}: {t['error']}")
        for name, rec in companions:
            lines.append(f"- {name}: {rec['error']}")
    return "\n".join(lines) + "\n"


METHOD = """## Method

`bench/run.sh` installs what it needs (Debian packages with apt-get, the
peers into `bench/cache/`), builds nsvisor and the C anchors, runs every
workload and writes the JSON, this page and its chart. `bench/run.sh
--quick` is the smoke run of the test suite: small N, short windows, its
figures mean little.

- **Start**: the clock starts just before the daemon is launched with a config
  of N `sleep` programs (no start delay: `startsecs = 0`; horust and s6 have
  none). First row: until the kernel reports the N-th exec of `sleep` under
  the daemon. Second row: until the tool reports all N RUNNING (nsvisor:
  `GET /v1/programs`; supervisord: XML-RPC `getAllProcessInfo`; s6: every
  service's `supervise/status` says up, read as `s6-svstat` reads it, checked
  against `s6-svstat` itself; horust has no status query), polled only once
  all have exec'd.
- **Stop**: SIGTERM to the daemon (s6-svscan: the same as `s6-svscanctl -t`),
  until the daemon and every process under it have exited. The programs exit
  at once on SIGTERM. Processes left after that count as a failure.
- **Memory and idle CPU**: after all are up and {settle:g} s of settling, the CPU of
  the supervision tree (the daemon and its processes other than the programs)
  over {idle:g} s, in clock ticks (utime + stime) and in nanoseconds on CPU
  (schedstat); then its memory: PSS from `/proc/PID/smaps_rollup` and RSS
  from `/proc/PID/status`, summed over the tree.
- **Status**: with all N programs running, the CLI as a user runs it and one
  in-process API round trip, each after one untimed call.
- **Logs**: `bench/linewriter.c` writes {bytes:g} MiB of 64-byte lines as fast as it can;
  the supervisor's file sink (no rotation), `splicecopy` or `cat > file` moves
  them. The clock runs from the writer's first write (it stamps the time itself)
  until the file holds every byte.
- **Crash loop**: 10 programs that exit with status 1 at once (`sh -c 'echo >> FILE;
  exit 1'`), restarted by policy (`autorestart`; horust `strategy = "always"`, no
  backoff). The window of {crash:g} s opens once there have been as many restarts as
  programs: the daemon's CPU over it, how many starts the policy allowed, and the CPU
  per start, which is the cost apart from the policy.
- **supervisorctl**: the real `supervisorctl` of the supervisor package against both
  daemons (`-s unix://SOCKET`; nsvisor answers its XML-RPC), with {supervisorctl_n:,}
  programs: timed `status` calls, then `stop all` and one timed `start all`.
- **Checks**: N `sleep` programs with one `tcp` readiness check each every second
  (against `bench/probeloop.c listen`), or one `exec` check (`/bin/true`), next to
  the same programs without checks: the daemon's CPU over {idle:g} s once all are
  ready, and its RSS. The floor is `bench/probeloop.c connect` making the same
  connections from C.
- **Log sink set-ups** and **Network**: `bench/logs.sh` and `bench/net.sh`, run by the
  harness; a failure of either fails `bench/run.sh`.
"""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3):
        print("usage: python3 -m nsbench.report RESULTS.json PAGE.md [CHART.png]", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        res = Results(json.load(f))
    chart_name = None
    if len(argv) == 3:
        why_not = chart(res, argv[2])
        if why_not is None:
            chart_name = os.path.relpath(argv[2], os.path.dirname(os.path.abspath(argv[1])))
        else:
            print(f"no chart: {why_not}", file=sys.stderr)
    with open(argv[1], "w") as f:
        f.write(page(res, chart_name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
