"""The figures of a results JSON, as the page's tables: ``Results`` (the
counted trials, per workload, tool and N), the formatting of one cell, the
lifecycle tables (one per figure, a row per N) and the targets table.

One statistic everywhere: the median over the counted runs of a tool, with
min–max beside it; a run that failed or hit the cap is said so in the cell,
never dropped. Status round trips take each run's p50 (and p99) first, then
the median of those over the runs. Costs per program are marginal: (the
median with N programs − the median with 1) / (N − 1), so a daemon's fixed
start-up cost does not hide what each program adds.
"""

from .workloads import median, percentile

PEERS = ("supervisord", "horust", "s6")
SUPERVISORS = ("nsvisor",) + PEERS
KB = 1024 / 1e6  # KiB -> MB
NOT_IN = "not measured (only start, stop, memory and idle CPU)"


class Results:
    def __init__(self, doc):
        self.doc = doc
        self.trials = doc["trials"]
        self.tools = doc["tools"]
        self.settings = doc["settings"]
        self.quick = doc["mode"] == "quick"
        ns = sorted({t["n"] for t in self.trials if t["workload"] == "lifecycle"}) or doc["settings"]["ns"]
        self.ns = ns
        self.big = max(ns) if ns else None

    def counted(self, workload, tool, n=None):
        return [t for t in self.trials if t["workload"] == workload and t["tool"] == tool and t["counted"]
                and (n is None or t.get("n") == n)]

    def values(self, workload, tool, key, n=None, scale=1):
        """key of each counted run that has it (a run over the stop cap has its start figures)."""
        return [t[key] * scale for t in self.counted(workload, tool, n)
                if ("error" not in t or t.get("capped")) and t.get(key) is not None]

    def per_run(self, workload, tool, key, n, pct):
        """The pct-th percentile of each counted run's samples of key."""
        return [percentile(t[key], pct) for t in self.counted(workload, tool, n)
                if ("error" not in t or t.get("capped")) and t.get(key)]

    def errors(self, workload, tool, n=None):
        return [t for t in self.counted(workload, tool, n) if "error" in t]

    def missing(self, tool):
        return self.tools.get(tool, {}).get("missing")

    def takes_part(self, tool, workload):
        return any(t["tool"] == tool and t["workload"] == workload for t in self.trials)

    def runs(self, workload, n=None):
        """How many counted runs each tool had (the most over the tools)."""
        counts = {}
        for t in self.trials:
            if t["workload"] == workload and t["counted"] and (n is None or t.get("n") == n):
                counts[t["tool"]] = counts.get(t["tool"], 0) + 1
        return max(counts.values()) if counts else 0


def fmt_num(v, unit):
    if v is None:
        return "—"
    if unit == "s":
        return f"{v:.3f} s" if v < 10 else f"{v:.1f} s"
    if unit == "ms":
        return f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"
    if unit == "MB":
        return f"{v:.2f} MB" if v < 10 else f"{v:.1f} MB"
    if unit == "KB":
        return f"{v:.2f} KB" if v < 10 else f"{v:.1f} KB" if v < 100 else f"{v:.0f} KB"
    if unit == "MiB/s":
        return f"{v:.0f} MiB/s"
    if unit == "%":
        return f"{v:.2f} %"
    if unit == "ticks":
        return f"{v:g} ticks"
    if unit == "":
        return f"{v:,.0f}" if v >= 10 else f"{v:.3g}"
    return f"{v:.3g} {unit}".strip()


def cell(values, unit, failed=(), missing=None):
    """median (min–max), or why there is no figure."""
    if missing:
        return f"missing: {missing}"
    if not values:
        if failed and all(t.get("fd_limited") for t in failed):
            return failed[0]["error"]
        if failed:
            return f"failed: {failed[0]['error']}"
        return "no data"
    text = fmt_num(median(values), unit)
    if len(values) > 1 and min(values) != max(values):
        text += f" ({fmt_num(min(values), unit).split()[0]}–{fmt_num(max(values), unit)})"
    if failed:
        text += f" [{len(failed)} of {len(values) + len(failed)} runs failed]"
    return text


def ratio(a, b):
    if a is None or b in (None, 0):
        return "—"
    r = a / b
    return f"{r:.2g}×" if r < 10 else f"{r:.0f}×"


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# key, label, unit, scale, with the limit column, phase a cap applies to
LIFECYCLE = [
    ("start_s", "start: launch until all N programs have exec'd (every tool alike)", "s", 1, True, "start"),
    ("running_s", "start: launch until the tool reports all N RUNNING", "s", 1, False, "start"),
    ("stop_s", "graceful stop: SIGTERM to the daemon until it and every process it started have exited", "s", 1, True, "stop"),
    ("pss_kb", "memory: PSS of the supervision tree (shared pages counted once)", "MB", KB, False, "start"),
    ("pss_anon_kb", "of which anonymous (heap, stacks)", "MB", KB, False, "start"),
    ("rss_kb", "RSS, summed over the supervision tree", "MB", KB, False, "start"),
    ("rss_anon_kb", "of which anonymous", "MB", KB, False, "start"),
    ("rss_file_kb", "of which file-backed (binary, libraries)", "MB", KB, False, "start"),
    ("idle_ticks", "idle CPU: clock ticks of the supervision tree in the idle window", "ticks", 1, False, "start"),
    ("idle_cpu_ms", "idle CPU: on-CPU time of the supervision tree in the idle window (schedstat)", "ms", 1, False, "start"),
]


def capped_figure(res, tool, key, n, phase, unit="s", scale=1):
    """(median or None, cell) of a lifecycle figure that a cap bounds in some
    counted run; None when no cap is involved.

    For the figure of the capped phase itself (the start's, or the stop's),
    a run over the cap counts as a time longer than the cap: the median is
    still known while fewer than half of the runs went over (two runs of 45
    and 53 s and one over 60 s: 53 s). A figure measured after a start that
    went over the cap has no value in that run: it is not given."""
    trials = res.counted("lifecycle", tool, n)
    own = phase == "stop" or key in ("start_s", "running_s")
    over = [t for t in trials if t.get("capped") == phase and own]
    if over:
        first = next((t for t in over if not t.get("skipped")), over[0])
        detail = first.get("cap_detail", first["error"])
        cap = f"{first.get('cap_s', 0):g} s"
        vals = [t[key] * scale for t in trials if "error" not in t and t.get(key) is not None]
        if len(vals) + len(over) == len(trials) and len(trials) // 2 < len(vals):
            mid = median(vals + [float("inf")] * len(over))
            return mid, (f"{fmt_num(mid, unit)} ({fmt_num(min(vals), unit)} to over the cap;"
                         f" {len(over)} of {len(trials)} runs over the {cap} cap: {detail})")
        return None, f"> {cap} (over the cap: {detail})"
    if any(t.get("capped") == "start" for t in trials):
        return None, "not measured (start over the cap)"
    return None


def capped_cell(res, tool, key, n, phase):
    """The cell of :func:`capped_figure` without units, or None."""
    capped = capped_figure(res, tool, key, n, phase)
    return capped[1] if capped else None


def lifecycle_cell(res, tool, key, n, unit, scale, phase):
    """The cell of one lifecycle figure. phase: the cap that bounds this figure
    ("start", "stop"), or "start" for what is measured after the start."""
    if tool != "limit" and res.missing(tool):
        return f"missing: {res.missing(tool)}"
    capped = capped_figure(res, tool, key, n, phase, unit, scale)
    if capped:
        return capped[1]
    vals = res.values("lifecycle", tool, key, n, scale)
    failed = [t for t in res.errors("lifecycle", tool, n) if not t.get("capped")]
    if not vals and not failed and key == "running_s" and res.values("lifecycle", tool, "start_s", n):
        return "n/a (no status query)"
    return cell(vals, unit, failed)


def lifecycle_tables(res):
    out = []
    for key, label, unit, scale, with_limit, phase in LIFECYCLE:
        tools = (("limit",) if with_limit else ()) + SUPERVISORS
        rows = [[f"{n:,}"] + [lifecycle_cell(res, tool, key, n, unit, scale, phase) for tool in tools] for n in res.ns]
        head = ["N"] + (["posix_spawn limit"] if with_limit else []) + list(SUPERVISORS)
        out += [f"**{label}**", "", table(head, rows), ""]
    out += ["**memory per program: (with N − with 1 program) / (N − 1), from the medians**", "",
            per_program_table(res), ""]
    return "\n".join(out)


def per_program(res, tool, key, n, scale=1):
    """Marginal cost of one program at N: (median at N − median at 1) / (N − 1)."""
    base = res.ns[0] if res.ns else None
    if n == base or base is None:
        return None
    if capped_cell(res, tool, key, n, "start") or capped_cell(res, tool, key, base, "start"):
        return None  # Not measured in every run: not the same median.
    hi, lo = median(res.values("lifecycle", tool, key, n, scale)), median(res.values("lifecycle", tool, key, base, scale))
    if hi is None or lo is None:
        return None
    return (hi - lo) / (n - base)


def per_program_table(res):
    rows = []
    for n in res.ns[1:]:
        for key, what in (("pss_kb", "PSS"), ("pss_anon_kb", "anonymous (PSS)")):
            r = [f"{n:,}", what]
            for tool in SUPERVISORS:
                v = per_program(res, tool, key, n, 1024 / 1000)
                r.append("missing" if res.missing(tool) else fmt_num(v, "KB") if v is not None else "—")
            rows.append(r)
    return table(["N", "per program"] + list(SUPERVISORS), rows)


def status_table(res):
    rows = []
    for n in res.ns:
        for key, what in (("status_cli_ms", "CLI"), ("status_api_ms", "API")):
            r = [f"{n:,}", what]
            for tool in SUPERVISORS:
                if res.missing(tool):
                    r.append(f"missing: {res.missing(tool)}")
                    continue
                p50, p99 = res.per_run("lifecycle", tool, key, n, 50), res.per_run("lifecycle", tool, key, n, 99)
                failed = res.errors("lifecycle", tool, n)
                if p50:
                    samples = sum(len(t.get(key) or []) for t in res.counted("lifecycle", tool, n))
                    r.append(f"{cell(p50, 'ms')} / {cell(p99, 'ms')} ({samples} calls)"
                             + (f" [{len(failed)} runs failed]" if failed else ""))
                elif failed:
                    r.append(lifecycle_cell(res, tool, key, n, "ms", 1, "start"))
                else:
                    r.append("n/a (no status query of all programs)")
            rows.append(r)
    return table(["N", "round trip: p50 / p99"] + list(SUPERVISORS), rows)


def _median(res, workload, tool, key, n=None, scale=1):
    return median(res.values(workload, tool, key, n, scale))


def targets_table(res):
    big = res.big
    idle_s = res.settings["idle_s"]
    rows = []
    limit_start = _median(res, "lifecycle", "limit", "start_s", big)
    limit_stop = _median(res, "lifecycle", "limit", "stop_s", big)
    splice = _median(res, "logs", "splice", "log_mib_s")

    def verdict(ok):
        if ok is None:
            return "no data"
        if res.quick:
            return "n/a (quick run)"
        return "met" if ok else "**missed**"

    def row(label, target, figure, ok_fn, unit):
        """figure(tool) -> (value or None, text)."""
        cells, nsv = [], None
        for tool in SUPERVISORS:
            v, text = figure(tool)
            if tool == "nsvisor":
                nsv = v
            elif v is not None and nsv is not None:
                text += f", {ratio(v, nsv)}"
            cells.append(text)
        rows.append([label, target] + cells + ["—" if ok_fn is None else verdict(ok_fn(nsv) if nsv is not None else None)])

    def lifecycle_fig(key, unit, scale=1, phase="start", n=big):
        def fig(tool):
            text = lifecycle_cell(res, tool, key, n, unit, scale, phase)
            capped = capped_figure(res, tool, key, n, phase, unit, scale)
            if capped:
                return capped[0], text  # A ratio only from a median the caps leave known.
            return median(res.values("lifecycle", tool, key, n, scale)), text
        return fig

    def status_fig(tool):
        p50 = res.per_run("lifecycle", tool, "status_cli_ms", big, 50)
        if res.missing(tool):
            return None, f"missing: {res.missing(tool)}"
        if not p50:
            failed = res.errors("lifecycle", tool, big)
            return None, lifecycle_cell(res, tool, "status_cli_ms", big, "ms", 1, "start") if failed \
                else "n/a (no status query of all programs)"
        return median(p50), cell(p50, "ms")

    def per_program_fig(n):
        def fig(tool):
            if res.missing(tool):
                return None, f"missing: {res.missing(tool)}"
            v = per_program(res, tool, "pss_anon_kb", n, 1024 / 1000)
            return v, fmt_num(v, "KB") if v is not None else "—"
        return fig

    def logs_fig(tool):
        if not res.takes_part(tool, "logs"):
            return None, f"missing: {res.missing(tool)}" if res.missing(tool) else NOT_IN
        vals = res.values("logs", tool, "log_mib_s")
        return median(vals), cell(vals, "MiB/s", res.errors("logs", tool), res.missing(tool))

    if big is not None:
        row(f"start {big:,} programs (all exec'd)", "≤ 1.5× posix_spawn limit"
            + (f" ({fmt_num(1.5 * limit_start, 's')})" if limit_start else ""), lifecycle_fig("start_s", "s"),
            lambda v: limit_start is not None and v <= 1.5 * limit_start, "s")
        row(f"graceful stop, {big:,} programs", "≤ 1.5× the limit's stop"
            + (f" ({fmt_num(1.5 * limit_stop, 's')})" if limit_stop else ""), lifecycle_fig("stop_s", "s", phase="stop"),
            lambda v: limit_stop is not None and v <= 1.5 * limit_stop, "s")
        row(f"RSS with {big:,} programs (summed over the tree)", "≤ 30 MB", lifecycle_fig("rss_kb", "MB", KB),
            lambda v: v <= 30, "MB")
        row(f"memory with {big:,} programs: PSS of the tree", "— (the fair comparison)",
            lifecycle_fig("pss_kb", "MB", KB), None, "MB")
        row(f"`status` with {big:,} programs, p50 (CLI)", "≤ 50 ms", status_fig, lambda v: v <= 50, "ms")
        row(f"idle CPU with {big:,} programs", f"0 ticks in {idle_s:g} s", lifecycle_fig("idle_ticks", "ticks"),
            lambda v: v == 0, "ticks")
        for n in [n for n in res.ns if n >= 1000] or res.ns[-1:]:
            if n != res.ns[0]:
                row(f"anonymous memory per program at {n:,}", "≤ 2 KB", per_program_fig(n), lambda v: v <= 2, "KB")
    row("log throughput", "≥ 0.8× the splice limit" + (f" ({fmt_num(0.8 * splice, 'MiB/s')})" if splice else ""),
        logs_fig, lambda v: splice is not None and v >= 0.8 * splice, "MiB/s")
    head = ["", "target", "nsvisor"] + [f"{p} (÷ nsvisor)" for p in PEERS] + ["nsvisor vs target"]
    return table(head, rows)


HEADLINE = {"start_s": "start (all exec'd)", "running_s": "start (all RUNNING)", "stop_s": "graceful stop",
            "pss_kb": "memory (PSS of the supervision tree)", "idle_ticks": "idle CPU ticks"}


def losses(res):
    """Where a peer's median beats nsvisor's (lower is better for each):
    one line per peer and figure, with every N where it does."""
    units = {key: (unit, scale) for key, _, unit, scale, _, _ in LIFECYCLE}
    out = []
    for tool in PEERS:
        for key, label in list(HEADLINE.items()) + [("per_program_pss", "memory (PSS) per program")]:
            wins = []
            for n in res.ns:
                if key == "per_program_pss":
                    unit = "KB"
                    a, b = per_program(res, tool, "pss_kb", n, 1.024), per_program(res, "nsvisor", "pss_kb", n, 1.024)
                else:
                    unit, scale = units[key]
                    a = median(res.values("lifecycle", tool, key, n, scale))
                    b = median(res.values("lifecycle", "nsvisor", key, n, scale))
                # A marginal cost at or below zero is noise between two runs, not a win.
                if a is not None and b is not None and 0 < a < b and fmt_num(a, unit) != fmt_num(b, unit):
                    wins.append(f"N = {n:,}: {fmt_num(a, unit)} against {fmt_num(b, unit)}")
            if wins:
                out.append(f"- **{tool}** does better than nsvisor on {label}: " + "; ".join(wins) + ".")
    for tool in PEERS:
        for workload, key, unit, label, higher in (("crash", "crash_cpu_ms_per_start", "ms", "daemon CPU per start in the crash loop", False),
                                                   ("logs", "log_mib_s", "MiB/s", "log throughput", True)):
            a = median(res.values(workload, tool, key))
            b = median(res.values(workload, "nsvisor", key))
            if a is not None and b is not None and (a > b if higher else a < b) and fmt_num(a, unit) != fmt_num(b, unit):
                out.append(f"- **{tool}** does better than nsvisor on {label}: {fmt_num(a, unit)} against {fmt_num(b, unit)}.")
    if not out:
        return "None in this run: on every figure measured for several tools, nsvisor's median is the best."
    if any("memory (PSS" in line for line in out):
        out.append(_fixed_memory(res))
    return "\n".join(out)


def _fixed_memory(res):
    """What nsvisor's memory with one program is made of (a peer that wins at
    small N wins on this fixed cost, not per program)."""
    def mb(key):
        return fmt_num(median(res.values("lifecycle", "nsvisor", key, 1, KB)), "MB")

    def cheaper_per_program(n):
        ours = per_program(res, "nsvisor", "pss_kb", n)
        theirs = [per_program(res, t, "pss_kb", n) for t in PEERS]
        return ours is not None and all(v is None or ours < v for v in theirs)
    line = (f"- nsvisor's fixed memory: with 1 program its RSS is {mb('rss_kb')}, of which "
            f"{mb('rss_file_kb')} file-backed (the pages of its static binary that it has touched) "
            f"and {mb('rss_anon_kb')} anonymous (heap, the runtime's thread stacks)")
    if all(cheaper_per_program(n) for n in res.ns[1:]):
        line += "; per program it costs less than every peer at every N (the table below)"
    return line + "."
