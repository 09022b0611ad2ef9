"""The page's chart: for every tool (and the limit), against N on log
scales, the start time, the stop time and the memory of the supervision
tree (top row), and the same as a cost per program (bottom row:
(with N − with 1) / (N − 1), from the medians), where a flat line is the
goal. Points are medians with min–max bars; a tool that hit the cap at
some N has no point there and says so in the legend.
"""

from .tables import per_program
from .workloads import median

STYLES = {"limit": ("posix_spawn limit", "k", ":"), "nsvisor": ("nsvisor", "tab:blue", "-"),
          "supervisord": ("supervisord", "tab:orange", "--"), "horust": ("horust", "tab:green", "-."),
          "s6": ("s6", "tab:red", (0, (3, 1, 1, 1, 1, 1)))}
# key, title, unit label, scale, whether the limit has it
PANELS = [("start_s", "start N programs (all exec'd)", "seconds", 1, True),
          ("stop_s", "graceful stop with N programs", "seconds", 1, True),
          ("pss_kb", "memory of the supervision tree (PSS)", "MB", 1024 / 1e6, False)]
PER_PROGRAM = {"start_s": ("ms", 1000), "stop_s": ("ms", 1000), "pss_kb": ("KB", 1.024)}


def chart(res, path):
    """Writes the PNG; returns why there is none (no figures, no matplotlib), or None."""
    if not any(t["workload"] == "lifecycle" and "error" not in t for t in res.trials):
        return "no lifecycle figures in this run"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return "matplotlib is not installed"
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.4))
    for col, (key, title, unit, scale, with_limit) in enumerate(PANELS):
        top, bottom = axes[0][col], axes[1][col]
        pp_unit, pp_scale = PER_PROGRAM[key]
        for tool, (label, color, ls) in STYLES.items():
            if tool == "limit" and not with_limit:
                continue
            capped = sorted({t["n"] for t in res.trials if t["workload"] == "lifecycle" and t["tool"] == tool
                             and t.get("capped")})
            name = label + (f" (over the cap at N = {', '.join(f'{n:,}' for n in capped)})" if capped else "")
            xs, ys, lo, hi = [], [], [], []
            for n in res.ns:
                vals = res.values("lifecycle", tool, key, n, scale)
                if vals and n not in capped:
                    m = median(vals)
                    xs.append(n), ys.append(m), lo.append(m - min(vals)), hi.append(max(vals) - m)
            if xs:
                top.errorbar(xs, ys, yerr=[lo, hi], label=name, color=color, linestyle=ls, marker="o", capsize=3)
            # Log scale: a cost that came out at or below zero (noise) has no point.
            pts = [(n, per_program(res, tool, key, n)) for n in res.ns[1:] if n not in capped]
            pts = [(n, v * pp_scale) for n, v in pts if v is not None and v > 0]
            px, py = [n for n, _ in pts], [v for _, v in pts]
            if px:
                bottom.plot(px, py, label=name, color=color, linestyle=ls, marker="o")
        top.set_title(title)
        top.set_ylabel(f"{unit} (log scale)")
        top.set_yscale("log")
        bottom.set_title(f"{title.split(' (')[0]}: per program")
        bottom.set_ylabel(f"{pp_unit} per program (log scale)")
        bottom.set_yscale("log")
        for ax, ns in ((top, res.ns), (bottom, res.ns[1:] or res.ns)):
            ax.set_xscale("log")
            ax.set_xticks(ns)
            ax.set_xticklabels([f"{n:,}" for n in ns])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel("N programs")
            ax.grid(True, which="both", alpha=0.3)
            if ax.has_data():
                ax.legend(fontsize="x-small")
    fig.suptitle(f"nsvisor benchmarks, {res.doc['date'][:10]}: medians with min–max; "
                 "per program = (with N − with 1) / (N − 1)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
