"""Turns a results JSON (written by ``nsbench.main``) into the benchmark page:
machine, tool versions, the table of targets with medians and ratios, the
full tables, and a PNG chart of start and stop time against N.

    python3 -m nsbench.report RESULTS.json PAGE.md [CHART.png]
    python3 -m nsbench.report --extra-sections RESULTS.json LINK   (supervisorctl and checks alone)

Every figure shown is a median over the counted runs, with min–max beside
it; status round trips show p50 and p99 over all counted samples. A tool
that was not installed or failed is shown as such, never left out.
"""

import json
import os
import sys

from .workloads import median, percentile

PEERS = ("supervisord", "horust")
SUPERVISORS = ("nsvisor",) + PEERS


class Results:
    def __init__(self, doc):
        self.doc = doc
        self.trials = doc["trials"]
        self.tools = doc["tools"]
        ns = sorted({t["n"] for t in self.trials if t["workload"] == "lifecycle"}) or doc["settings"]["ns"]
        self.ns = ns
        self.big = max(ns) if ns else None

    def counted(self, workload, tool, n=None):
        return [
            t
            for t in self.trials
            if t["workload"] == workload and t["tool"] == tool and t["counted"] and (n is None or t.get("n") == n)
        ]

    def values(self, workload, tool, key, n=None):
        return [t[key] for t in self.counted(workload, tool, n) if "error" not in t and t.get(key) is not None]

    def samples(self, workload, tool, key, n=None):
        out = []
        for t in self.counted(workload, tool, n):
            if "error" not in t:
                out.extend(t.get(key) or [])
        return out

    def errors(self, workload, tool, n=None):
        return [t["error"] for t in self.counted(workload, tool, n) if "error" in t]

    def missing(self, tool):
        info = self.tools.get(tool, {})
        return info.get("missing")


def fmt_num(v, unit):
    if v is None:
        return "—"
    if unit == "s":
        return f"{v:.3f} s" if v < 10 else f"{v:.1f} s"
    if unit == "ms":
        return f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"
    if unit == "MB":
        return f"{v:.1f} MB"
    if unit == "MiB/s":
        return f"{v:.0f} MiB/s"
    if unit == "%":
        return f"{v:.2f} %"
    return f"{v:g} {unit}".strip()


def cell(values, unit, errors=(), missing=None):
    """median (min–max), or why there is no figure."""
    if missing:
        return f"missing: {missing}"
    if not values:
        return f"failed: {errors[0]}" if errors else "no data"
    med = median(values)
    text = fmt_num(med, unit)
    if len(values) > 1 and min(values) != max(values):
        text += f" ({fmt_num(min(values), unit).split()[0]}–{fmt_num(max(values), unit)})"
    if errors:
        text += f" [{len(errors)} failed]"
    return text


def ratio(a, b):
    if a is None or b in (None, 0):
        return "—"
    r = a / b
    return f"{r:.2g}×" if r < 10 else f"{r:.0f}×"


# (label, workload, key, unit, scale) for the per-N lifecycle figures.
LIFECYCLE = [
    ("start, all RUNNING", "start_s", "s", 1),
    ("graceful stop (SIGTERM → daemon exited)", "stop_s", "s", 1),
    ("daemon RSS", "rss_kb", "MB", 1024 / 1e6),
    ("of which anonymous (heap, stacks; the rest is the mapped binary and libraries)", "rss_anon_kb", "MB", 1024 / 1e6),
    ("idle CPU ticks", "idle_ticks", "ticks", 1),
]


def lifecycle_values(res, tool, key, n, scale):
    return [v * scale for v in res.values("lifecycle", tool, key, n)]


def targets_table(res):
    big = res.big
    quick = res.doc["mode"] == "quick"
    idle_s = res.doc["settings"]["idle_s"]
    rows = []

    def med(tool, key, n=big, scale=1, workload="lifecycle"):
        vals = [v * scale for v in res.values(workload, tool, key, n)]
        return median(vals), vals

    limit_start, _ = med("limit", "start_s")
    cat_rate, _ = med("cat", "log_mib_s", n=None, workload="logs")

    def verdict(ok):
        if ok is None:
            return "no data"
        if quick:
            return "n/a (quick run)"
        return "met" if ok else "**missed**"

    def row(label, target, key, unit, ok_fn, scale=1, workload="lifecycle", n=big, pct=None):
        cells = []
        nsv = None
        for tool in SUPERVISORS:
            if pct:
                s = res.samples(workload, tool, key, n)
                v = percentile(s, pct) if s else None
                text = fmt_num(v, unit) if v is not None else cell([], unit, res.errors(workload, tool, n), res.missing(tool))
                if v is None and not res.missing(tool) and not res.errors(workload, tool, n):
                    text = "n/a (no status command)" if tool == "horust" else "no data"
            else:
                vals = [x * scale for x in res.values(workload, tool, key, n)]
                v = median(vals)
                text = cell(vals, unit, res.errors(workload, tool, n), res.missing(tool))
            if tool == "nsvisor":
                nsv = v
            elif v is not None and nsv is not None:
                text += f", {ratio(v, nsv)}"
            cells.append(text)
        ok = ok_fn(nsv) if nsv is not None else None
        rows.append([label, target] + cells + [verdict(ok)])

    row(f"start {big:,} programs", "≤ 1.5× posix_spawn limit"
        + (f" ({fmt_num(limit_start * 1.5, 's')})" if limit_start else ""),
        "start_s", "s", lambda v: limit_start is not None and v <= 1.5 * limit_start)
    row(f"stop {big:,} programs", "≤ 0.3 s", "stop_s", "s", lambda v: v <= 0.3)
    row(f"RSS with {big:,} programs", "≤ 10 MB", "rss_kb", "MB", lambda v: v <= 10, scale=1024 / 1e6)
    row(f"idle CPU with {big:,} programs", f"0 ticks / {idle_s:g} s", "idle_ticks", "ticks", lambda v: v == 0)
    row("log throughput", "≥ 0.8× cat" + (f" ({fmt_num(0.8 * cat_rate, 'MiB/s')})" if cat_rate else ""),
        "log_mib_s", "MiB/s", lambda v: cat_rate is not None and v >= 0.8 * cat_rate, workload="logs", n=None)
    row(f"status with {big:,} programs, p50", "≤ 10 ms", "status_cli_ms", "ms", lambda v: v <= 10, pct=50)

    head = ["", "target", "nsvisor", "supervisord (÷ nsvisor)", "horust (÷ nsvisor)", "nsvisor vs target"]
    return table(head, rows)


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def lifecycle_tables(res):
    out = []
    for label, key, unit, scale in LIFECYCLE:
        rows = []
        for n in res.ns:
            r = [f"{n:,}"]
            tools = ("limit",) + SUPERVISORS if key in ("start_s", "stop_s") else SUPERVISORS
            for tool in tools:
                vals = lifecycle_values(res, tool, key, n, scale)
                r.append(cell(vals, unit, res.errors("lifecycle", tool, n), res.missing(tool)))
            rows.append(r)
        head = ["N"] + (["posix_spawn limit"] if key in ("start_s", "stop_s") else []) + list(SUPERVISORS)
        out += [f"**{label}**", "", table(head, rows), ""]
    return "\n".join(out)


def status_table(res):
    n = res.big
    rows = []
    for key, what in (("status_cli_ms", "CLI (`nsvisorctl status` / `supervisorctl status`), process start to exit"),
                      ("status_api_ms", "API round trip in-process (HTTP `GET /v1/programs` / XML-RPC `getAllProcessInfo`)")):
        r = [what]
        for tool in SUPERVISORS:
            s = res.samples("lifecycle", tool, key, n)
            if res.missing(tool):
                r.append(f"missing: {res.missing(tool)}")
            elif s:
                r.append(f"{fmt_num(percentile(s, 50), 'ms')} / {fmt_num(percentile(s, 99), 'ms')} ({len(s)} samples)")
            elif res.errors("lifecycle", tool, n):
                r.append(f"failed: {res.errors('lifecycle', tool, n)[0]}")
            else:
                r.append("n/a (no status command)" if tool == "horust" else "no data")
        rows.append(r)
    return table([f"p50 / p99 with {n:,} programs"] + list(SUPERVISORS), rows)


def logs_table(res):
    rows = []
    cat = median(res.values("logs", "cat", "log_mib_s"))
    for tool in ("cat",) + SUPERVISORS:
        rate = res.values("logs", tool, "log_mib_s")
        cpu = res.values("logs", tool, "sink_cpu_s")
        m = median(rate)
        rows.append([
            "`cat` (limit)" if tool == "cat" else tool,
            cell(rate, "MiB/s", res.errors("logs", tool), res.missing(tool)),
            ratio(m, cat) if tool != "cat" else "1×",
            cell(cpu, "s") if cpu else "—",
        ])
    size = res.doc["settings"]["log_bytes"]
    return table([f"{size / 2**20:g} MiB of 64-byte lines into a file", "throughput", "÷ cat", "CPU of the copier (daemon or cat)"], rows)


def crash_table(res):
    rows = []
    win = res.doc["settings"]["crash_s"]
    for tool in SUPERVISORS:
        miss, errs = res.missing(tool), res.errors("crash", tool)
        rows.append([
            tool,
            cell(res.values("crash", tool, "crash_ticks"), "ticks", errs, miss),
            cell(res.values("crash", tool, "crash_starts"), "", errs, miss),
            cell(res.values("crash", tool, "crash_child_ticks"), "ticks", errs, miss),
        ])
    return table(["10 programs exiting at once", f"daemon CPU ticks / {win:g} s", f"starts / {win:g} s", "CPU ticks of the programs"], rows)


def supervisorctl_table(res):
    """The real supervisorctl against nsvisor and against supervisord."""
    n = res.big
    if not any(t["workload"] == "supervisorctl" for t in res.trials):
        return "Not measured in this run."
    rows = []
    base_status = percentile(res.samples("supervisorctl", "nsvisor", "status_ms", n), 50)
    base_start = median(res.values("supervisorctl", "nsvisor", "start_all_s", n))
    for tool in ("nsvisor", "supervisord"):
        s = res.samples("supervisorctl", tool, "status_ms", n)
        p50 = percentile(s, 50)
        start = res.values("supervisorctl", tool, "start_all_s", n)
        errs = res.errors("supervisorctl", tool, n)
        rows.append([
            tool,
            (f"{fmt_num(p50, 'ms')} / {fmt_num(percentile(s, 99), 'ms')}" if s else cell([], "ms", errs, res.missing(tool)))
            + (f", {ratio(p50, base_status)}" if tool != "nsvisor" and p50 else ""),
            cell(start, "s", errs, res.missing(tool))
            + (f", {ratio(median(start), base_start)}" if tool != "nsvisor" and start else ""),
        ])
    return table([f"supervisorctl 4.3.0, {n:,} programs", "`status` p50 / p99 (÷ nsvisor)", "`start all` after `stop all` (÷ nsvisor)"], rows)


def checks_table(res):
    """tcp and exec checks next to the same programs without, and the C floor."""
    trials = [t for t in res.trials if t["workload"] == "checks" and t["counted"]]
    if not trials:
        return "Not measured in this run."

    def vals(variant, n, key, scale=1):
        return [t[key] * scale for t in trials
                if t.get("variant") == variant and t.get("n") == n and "error" not in t and t.get(key) is not None]

    def errs(variant, n):
        return [t["error"] for t in trials if t.get("variant") == variant and t.get("n") == n and "error" in t]

    def pct(values):
        return [v * 100 for v in values]

    settings = res.doc["settings"]
    tcp_n, exec_n = settings["check_n"], settings["exec_n"]
    rows = []
    floor = median(vals("probe_floor", tcp_n, "cpu_share"))
    for label, variant, n in (
        (f"{tcp_n:,} programs, no checks", "none", tcp_n),
        (f"{tcp_n:,} programs, one `tcp` check each every 1 s", "tcp", tcp_n),
        (f"{exec_n:,} programs, no checks", "none", exec_n),
        (f"{exec_n:,} programs, one `exec` check (`/bin/true`) each every 1 s", "exec", exec_n),
    ):
        share = vals(variant, n, "cpu_share")
        rows.append([
            label,
            cell(pct(share), "%", errs(variant, n)),
            cell(pct(vals(variant, n, "cpu_share_with_children")), "%") if variant == "exec" else "—",
            ratio(median(share), floor) if variant == "tcp" else "—",
            cell(vals(variant, n, "rss_kb", 1024 / 1e6), "MB", errs(variant, n)),
        ])
    rows.append([
        f"`probeloop`: {tcp_n:,} connect + close back to back once a second, from C (the floor)",
        cell(pct(vals("probe_floor", tcp_n, "cpu_share")), "%", errs("probe_floor", tcp_n)),
        "—", "1×", "—",
    ])
    out = table(["workload", "daemon CPU (% of one core)", "with the checks' processes", "÷ floor", "daemon RSS"], rows)
    tcp, none = median(vals("tcp", tcp_n, "cpu_share")), median(vals("none", tcp_n, "cpu_share"))
    grew = median(vals("tcp", tcp_n, "rss_kb", 1024 / 1e6))
    base = median(vals("none", tcp_n, "rss_kb", 1024 / 1e6))
    anon = median(vals("tcp", tcp_n, "rss_anon_kb", 1024 / 1e6))
    anon_base = median(vals("none", tcp_n, "rss_anon_kb", 1024 / 1e6))
    if tcp is not None and none is not None and grew is not None and base is not None:
        cost = (tcp - none) * 100
        quick = res.doc["mode"] == "quick"
        verdict = "n/a (quick run)" if quick else "met" if cost < 2 else "**missed**"
        out += (f"\n\nTargets at {tcp_n:,} programs: `tcp` checks under 2 % of one core: {cost:.2f} % "
                f"more than without checks, {verdict}"
                + (f" (the C floor for the same connections is {floor * 100:.2f} %)" if floor else "")
                + f"; RSS growth under 2 MB: {grew - base:+.2f} MB, {'n/a (quick run)' if quick else 'met' if grew - base < 2 else '**missed**'}"
                + (f" (of which anonymous memory, the daemon's own: {anon - anon_base:+.2f} MB; the rest is"
                   " pages of the binary's code that the checks touch)" if anon is not None and anon_base is not None else "")
                + ".")
    return out


def _script_state(rec, script):
    if rec is None:
        return f"Not run (`{script}` was not selected)."
    if "missing" in rec:
        return f"Not measured: {rec['missing']}."
    return None


def _raw(rec):
    out = rec.get("output", "").strip()
    return f"<details><summary>its output</summary>\n\n```\n{out}\n```\n</details>" if out else ""


def logs_sh_section(res):
    rec = res.doc.get("logs_sh")
    state = _script_state(rec, "bench/logs.sh")
    if state:
        return state
    env = rec.get("env", {})
    rows = [[name, f"{r['mb_s']:.0f}", f"{r['vs_cat']:.2f}×", f"{r['cpu_s_per_gib']:.2f} s"]
            for name, r in rec.get("rows", {}).items()]
    text = (f"`bench/logs.sh`, {env.get('SIZE_MB', '?')} MiB, median of {env.get('RUNS', '?')} runs per set-up "
            "(nsvisor's sink set-ups next to `cat`):\n\n")
    text += table(["set-up", "MB/s", "÷ cat", "CPU per GiB"], rows) if rows else "No figures."
    if "error" in rec:
        text += f"\n\n`bench/logs.sh` failed: {rec['error']}"
    return text + "\n\n" + _raw(rec)


def net_section(res):
    rec = res.doc.get("net")
    state = _script_state(rec, "bench/net.sh")
    if state:
        return state
    f, env = rec.get("figures", {}), rec.get("env", {})
    rows = []
    if "sandbox_create_ms_nsvisor" in f:
        for what, key in (("create", "sandbox_create_ms"), ("remove", "sandbox_remove_ms")):
            ip, nsv = f.get(f"{key}_ip"), f.get(f"{key}_nsvisor")
            rows.append([f"sandbox {what}, ms per program ({env.get('N', '?')} programs)", "—",
                         _fmt_any(nsv), f"`ip` commands: {_fmt_any(ip)}", ratio(ip, nsv) + " (ip ÷ nsvisor)"])
    for direction in ("upload", "download"):
        k = f"tcp_{direction}_"
        if f"{k}gbit_s_nsvisor" not in f:
            continue
        ratio_direct = f.get(f"{k}ratio_nsvisor_direct")
        rows.append([f"port-mapped TCP {direction}, Gbit/s (iperf3, 1 stream)", "≥ 0.8× direct",
                     _fmt_any(f[f"{k}gbit_s_nsvisor"]),
                     f"direct: {_fmt_any(f.get(f'{k}gbit_s_direct'))}, socat: {_fmt_any(f.get(f'{k}gbit_s_socat'))}",
                     f"{_fmt_any(ratio_direct)}× of direct, "
                     f"{_fmt_any(f.get(f'{k}ratio_nsvisor_socat'))}× of socat (median of per-round ratios)"
                     + ("" if ratio_direct is None else ", met" if ratio_direct >= 0.8 else ", missed")])
    text = table(["figure", "target", "nsvisor", "anchors", "ratio"], rows) if rows else "No figures."
    if "error" in rec:
        text += f"\n\n`bench/net.sh` failed: {rec['error']}"
    return text + "\n\n" + _raw(rec)


def _fmt_any(v):
    if v is None:
        return "—"
    if isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v):
        m = median(v)
        return f"{m:.4g} ({min(v):.4g}–{max(v):.4g})"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def chart(res, path):
    """Start and stop time against N, per tool (median, min–max bars).

    Returns why there is no chart (no lifecycle figures, no matplotlib), or None.
    """
    if not any(t["workload"] == "lifecycle" and "error" not in t for t in res.trials):
        return "no start or stop figures in this run"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return "matplotlib is not installed"
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    styles = {"limit": ("posix_spawn limit", "k", ":"), "nsvisor": ("nsvisor", "tab:blue", "-"),
              "supervisord": ("supervisord", "tab:orange", "--"), "horust": ("horust", "tab:green", "-.")}
    for ax, (key, title) in zip(axes, (("start_s", "start N programs until all RUNNING"),
                                       ("stop_s", "graceful stop with N programs"))):
        for tool, (label, color, ls) in styles.items():
            xs, ys, lo, hi = [], [], [], []
            for n in res.ns:
                vals = res.values("lifecycle", tool, key, n)
                if vals:
                    m = median(vals)
                    xs.append(n)
                    ys.append(m)
                    lo.append(m - min(vals))
                    hi.append(max(vals) - m)
            if xs:
                ax.errorbar(xs, ys, yerr=[lo, hi], label=label, color=color, linestyle=ls, marker="o", capsize=3)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(res.ns)
        ax.set_xticklabels([f"{n:,}" for n in res.ns])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("N programs")
        ax.set_ylabel("seconds (log scale)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(f"nsvisor benchmarks, {res.doc['date'][:10]} (median, min–max)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def page(res, chart_name):
    d, m = res.doc, res.doc["machine"]
    settings = d["settings"]
    lines = [
        "# Benchmarks",
        "",
        "How nsvisor compares with supervisord and horust, and with the limits of the",
        "machine: a C `posix_spawn` loop for starting and stopping processes, and `cat`",
        "through a pipe into a file for log throughput. Every tool runs every workload in",
        "the same run, interleaved, so the ratios hold even though absolute figures",
        "change from machine to machine. Regenerate this page with `bench/run.sh`.",
        "",
        f"- **Date**: {d['date']} ({d['mode']} run: {settings['warmup']} warm-up + {settings['runs']} counted runs per figure)",
        f"- **Machine**: {m['cpu']}, {m['cores']} cores, {m['memory_mib'] / 1024:.1f} GiB memory, Linux {m['kernel']}"
        + (" (in a container)" if m.get("in_container") else ""),
        f"- **Load average** (1, 5, 15 min): before {_load(d.get('load_before'))}, after {_load(d.get('load_after'))}",
        "- **Tools**: " + "; ".join(_tool_line(name, info) for name, info in d["tools"].items()),
        "",
        "Figures are medians over the counted runs, with min–max in parentheses;",
        "status round trips are p50 / p99 over all counted samples.",
        "A ratio after a peer's figure is the peer's median divided by nsvisor's.",
        "",
        "## Targets",
        "",
        targets_table(res),
        "",
    ]
    if chart_name:
        lines += ["## Start and stop time against N", "", f"![start and stop time against N]({chart_name})", ""]
    lines += [
        "## All figures",
        "",
        "### Start, stop, memory and idle CPU",
        "",
        lifecycle_tables(res),
        "### Status round trip",
        "",
        status_table(res),
        "",
        "### Log throughput",
        "",
        logs_table(res),
        "",
        "### Crash loop",
        "",
        crash_table(res),
        "",
        "### supervisorctl",
        "",
        supervisorctl_table(res),
        "",
        "### Checks",
        "",
        checks_table(res),
        "",
        "### Log sink set-ups",
        "",
        logs_sh_section(res),
        "",
        "### Network",
        "",
        net_section(res),
        "",
        METHOD.format(settle=settings["settle_s"], idle=settings["idle_s"], samples=settings["status_samples"],
                      crash=settings["crash_s"], bytes=settings["log_bytes"] / 2**20),
    ]
    errs = [t for t in d["trials"] if "error" in t]
    if errs:
        lines += ["", "## Failed trials", ""]
        for t in errs:
            where = f"{t['workload']}" + (f" N={t['n']}" if "n" in t else "")
            lines.append(f"- {t['tool']}, {where}, run {t['run'] + 1}: {t['error']}")
    return "\n".join(lines) + "\n"


def _load(v):
    return ", ".join(f"{x:.2f}" for x in v) if v else "—"


def _tool_line(name, info):
    if info.get("missing"):
        return f"{name}: **missing** ({info['missing']})"
    v = info.get("version") or "version unknown"
    if info.get("commit"):
        v += f" (commit {info['commit']})"
    return f"{name}: {v}"


METHOD = """## Method

Run `bench/run.sh` (all workloads, takes about half an hour on 2 cores) or
`bench/run.sh --quick` (N = 20 and 50, short windows, 1 warm-up + 2 runs, the
debug build, a few minutes; it proves the harness works, its figures mean little). The script builds the release
binaries, installs the peers into `bench/cache/` if they are missing, runs
the workloads and writes every raw figure to `bench/results/DATE.json`.

- **Start**: the clock starts just before the daemon is launched with a config
  of N `sleep` programs (no start delay: `startsecs = 0`, horust has none). It
  stops when the tool itself reports all N RUNNING (nsvisor: `GET /v1/programs`,
  supervisord: XML-RPC `getAllProcessInfo`), polled every 5 ms but only once all
  N children are seen to have exec'd `sleep` in /proc, so polling does not slow the
  start. horust has no status query in its binary: for it the clock stops when all
  N children have exec'd. The limit is `bench/spawnlimit.c`, which `posix_spawn`s N
  copies of `sleep` (each call returns once the child has exec'd).
- **Stop**: SIGTERM to the daemon, time until it has exited and been reaped. The
  programs exit at once on SIGTERM. The limit sends SIGTERM to its N children and
  reaps them. Programs left running after the daemon exited count as a failure.
- **Memory and idle CPU**: after all are RUNNING and {settle:g} s of settling, the
  daemon's CPU ticks (utime + stime from /proc/PID/stat, all threads) over {idle:g} s,
  then its VmRSS.
- **Status**: {samples} timed calls per run after one untimed call, with all N programs
  running: the CLI as a user runs it (from process start to exit) and one in-process
  API round trip.
- **Logs**: `bench/linewriter.c` writes {bytes:g} MiB of 64-byte lines as fast as it can into
  its stdout; the supervisor's file sink (no rotation) or `cat > file` copies it. The
  clock runs from the writer's first write (it records the time itself) until the
  file holds every byte.
- **Crash loop**: 10 programs that exit with status 1 at once (`sh -c 'echo >> FILE;
  exit 1'`), restarted by policy (`autorestart`; horust `strategy = "always"`, no backoff),
  for {crash:g} s: the daemon's CPU ticks and how many starts happened.
- **supervisorctl**: the real `supervisorctl` of the supervisor package, the same for
  both daemons (`-s unix://SOCKET`; nsvisor answers its XML-RPC on its control
  socket), with N programs: {samples} timed `status` calls (process start to exit),
  then `stop all` and one timed `start all`.
- **Checks**: N `sleep` programs, each with one `tcp` readiness check every second
  against one listener (`bench/probeloop.c listen`), or with one `exec` check running
  `/bin/true` every second, next to the same programs without checks; once all are
  ready and after {settle:g} s of settling, the daemon's CPU over {idle:g} s (and, for `exec`,
  the CPU of the reaped check processes too) and its VmRSS. The floor is
  `bench/probeloop.c connect`: one C thread making the same number of
  connections back to back once a second with blocking sockets (checks that
  fall due together), its own CPU time.
- **Network**: `bench/net.sh`, when present, measures sandbox creation and port-mapped
  TCP throughput; its figures are copied as it reports them.

All daemons get their output sent to files, programs' console output off where the
tool has the option. A tool that is not installed, or a trial that fails, is shown as
such in the tables, never left out.
"""


def extra_sections(res, json_name):
    """The supervisorctl and checks figures alone, with where they come from
    (for a page whose other figures come from another run)."""
    d, m = res.doc, res.doc["machine"]
    s = d["settings"]
    tools = "; ".join(_tool_line(name, info) for name, info in d["tools"].items()
                      if name in ("nsvisor", "supervisord"))
    return "\n".join([
        f"Recorded run: [`{json_name}`]({json_name}), {d['date']},"
        f" {s['warmup']} warm-up + {s['runs']} counted runs, {m['cores']} cores ({m['cpu']});"
        f" load average before {_load(d.get('load_before'))}, after {_load(d.get('load_after'))}."
        f" Tools: {tools}.",
        "",
        "#### supervisorctl",
        "",
        supervisorctl_table(res),
        "",
        "#### Checks",
        "",
        checks_table(res),
        "",
    ])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 3 and argv[0] == "--extra-sections":
        with open(argv[1]) as f:
            print(extra_sections(Results(json.load(f)), argv[2]))
        return 0
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
