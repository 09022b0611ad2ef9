"""The page's sections beyond the lifecycle: log throughput, crash loop,
the real supervisorctl, checks, and the companion scripts' figures
(``bench/logs.sh``, ``bench/net.sh``). Same statistic as the lifecycle
tables (``tables.py``): median over the counted runs, min–max beside it.
"""

from .tables import NOT_IN, SUPERVISORS, cell, ratio, table
from .workloads import median


def logs_table(res):
    rows = []
    splice = median(res.values("logs", "splice", "log_mib_s"))
    cat = median(res.values("logs", "cat", "log_mib_s"))
    for tool in ("splice", "cat") + SUPERVISORS:
        if tool in SUPERVISORS and not res.takes_part(tool, "logs"):
            rows.append([tool, f"missing: {res.missing(tool)}" if res.missing(tool) else NOT_IN, "—", "—", "—"])
            continue
        rate = res.values("logs", tool, "log_mib_s")
        cpu = res.values("logs", tool, "sink_cpu_s")
        m = median(rate)
        rows.append([
            {"splice": "`splicecopy` (the limit)", "cat": "`cat` (reference)"}.get(tool, tool),
            cell(rate, "MiB/s", res.errors("logs", tool), res.missing(tool)),
            ratio(m, splice), ratio(m, cat),
            cell(cpu, "s") if cpu else "—",
        ])
    size = res.doc["settings"]["log_bytes"]
    return table([f"{size / 2**20:g} MiB of 64-byte lines into a file", "throughput", "÷ splice limit", "÷ cat",
                  "CPU of the copier (daemon, splicecopy or cat)"], rows)


def crash_table(res):
    rows = []
    win = res.doc["settings"]["crash_s"]
    for tool in SUPERVISORS:
        miss, errs = res.missing(tool), res.errors("crash", tool)
        if not miss and not res.takes_part(tool, "crash"):
            rows.append([tool, NOT_IN] + ["—"] * 3)
            continue
        rows.append([
            tool,
            cell(res.values("crash", tool, "crash_starts"), "", errs, miss),
            cell(res.values("crash", tool, "crash_cpu_ms"), "ms", errs, miss),
            cell(res.values("crash", tool, "crash_cpu_ms_per_start"), "ms", errs, miss),
            cell(res.values("crash", tool, "crash_child_ticks"), "ticks", errs, miss),
        ])
    return table(["10 programs exiting at once", f"starts in {win:g} s (the policy)", f"daemon CPU in {win:g} s",
                  "daemon CPU per start (the cost)", "CPU ticks of the programs"], rows)


def supervisorctl_table(res):
    """The real supervisorctl against nsvisor and against supervisord."""
    n = res.doc["settings"].get("supervisorctl_n", res.big)
    if not any(t["workload"] == "supervisorctl" for t in res.trials):
        return "Not measured in this run."
    rows = []
    base_status = median(res.per_run("supervisorctl", "nsvisor", "status_ms", n, 50))
    base_start = median(res.values("supervisorctl", "nsvisor", "start_all_s", n))
    for tool in ("nsvisor", "supervisord"):
        p50s, p99s = res.per_run("supervisorctl", tool, "status_ms", n, 50), res.per_run("supervisorctl", tool, "status_ms", n, 99)
        p50 = median(p50s)
        start = res.values("supervisorctl", tool, "start_all_s", n)
        errs = res.errors("supervisorctl", tool, n)
        rows.append([
            tool,
            (f"{cell(p50s, 'ms')} / {cell(p99s, 'ms')}" if p50s else cell([], "ms", errs, res.missing(tool)))
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
        return [t for t in trials if t.get("variant") == variant and t.get("n") == n and "error" in t]

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
    splice = rec.get("rows", {}).get("splice", {}).get("mb_s")
    rows = [r[:2] + [ratio(float(r[1]), splice) if splice else "—"] + r[2:] for r in rows]
    text = (f"`bench/logs.sh`, {env.get('SIZE_MB', '?')} MiB, median of {env.get('RUNS', '?')} runs per set-up "
            "(nsvisor's sink set-ups next to the splice limit and `cat`):\n\n")
    text += table(["set-up", "MB/s", "÷ splice", "÷ cat", "CPU per GiB"], rows) if rows else "No figures."
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
                         _fmt_any(nsv), f"`ip -batch`: {_fmt_any(ip)}", ratio(ip, nsv) + " (`ip -batch` ÷ nsvisor)"])
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
