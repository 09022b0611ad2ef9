"""Runs the benchmark scripts that live next to the harness and belong to
other parts of nsvisor, and turns their printed tables into figures:

- ``bench/logs.sh``: log throughput of nsvisor's sink set-ups (file only,
  file + console, file + ``tail -f``) next to ``cat``;
- ``bench/net.sh``: sandbox creation and removal per program next to the
  equivalent ``ip`` commands, and port-mapped TCP throughput next to a direct
  connection and to ``socat`` (root only).

Each script is run once per benchmark run with its own repetitions (set
through its environment variables); its whole output is kept in the JSON so
the page can show it even when a line could not be parsed.
"""

import os
import re
import subprocess

TIMEOUT_S = 3600


def _run(script, env, need_root=False):
    if not os.path.exists(script):
        return {"missing": f"{os.path.relpath(script)} is not there"}
    if need_root and os.geteuid() != 0:
        return {"missing": "needs root"}
    try:
        out = subprocess.run(["bash", script], capture_output=True, text=True, timeout=TIMEOUT_S,
                             env={**os.environ, **env})
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {TIMEOUT_S} s"}
    rec = {"env": env, "exit_code": out.returncode, "output": out.stdout, "stderr_tail": out.stderr[-2000:]}
    if out.returncode != 0:
        rec["error"] = f"exited with {out.returncode}: {out.stderr.strip()[-300:]}"
    return rec


def _floats(text):
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text)]


def logs_sh(script, bin_dir, mode):
    """bench/logs.sh: rows {setup: {mb_s, vs_cat, cpu_s_per_gib, wall_s: [...]}}."""
    env = {"NSVISOR_BIN": os.path.join(bin_dir, "nsvisor"), "NSVISORCTL_BIN": os.path.join(bin_dir, "nsvisorctl"),
           "SIZE_MB": "16" if mode == "quick" else "1024", "RUNS": "1" if mode == "quick" else "5"}
    rec = _run(script, env)
    rows = {}
    for line in rec.get("output", "").splitlines():
        m = re.match(r"^(cat|file\S*)\s+(\d+)\s+([\d.]+)x\s+([\d.]+)\s+(.*)$", line)
        if m:
            rows[m.group(1)] = {"mb_s": float(m.group(2)), "vs_cat": float(m.group(3)),
                                "cpu_s_per_gib": float(m.group(4)), "wall_s": _floats(m.group(5))}
    rec["rows"] = rows
    if "output" in rec and not rows and "error" not in rec:
        rec["error"] = "printed no table the harness could read"
    return rec


def net_sh(script, bin_dir, mode):
    """bench/net.sh: per-sandbox create/remove ms (ip vs nsvisor) and TCP Gbit/s up and down (direct, mapped, socat)."""
    env = {"NSVISOR_BIN": os.path.join(bin_dir, "nsvisor"), "NSVISORCTL_BIN": os.path.join(bin_dir, "nsvisorctl")}
    env.update({"N": "5", "SECS": "1", "ROUNDS": "1"} if mode == "quick" else {"N": "100", "SECS": "5", "ROUNDS": "5"})
    rec = _run(script, env, need_root=True)
    fig = {}
    direction = "upload"
    for line in rec.get("output", "").splitlines():
        m = re.match(r"^(ip commands|nsvisor)\s+([\d.]+)\s+([\d.]+)\s*$", line)
        if m:
            key = "ip" if m.group(1) == "ip commands" else "nsvisor"
            fig[f"sandbox_create_ms_{key}"] = float(m.group(2))
            fig[f"sandbox_remove_ms_{key}"] = float(m.group(3))
        m = re.match(r"^-- (upload|download)$", line)
        if m:
            direction = m.group(1)
        m = re.match(r"^(direct to the sandbox address|nsvisor port mapping|socat forward)\s+([\d.]+)\s+(.*)$", line)
        if m:
            key = {"direct to the sandbox address": "direct", "nsvisor port mapping": "nsvisor",
                   "socat forward": "socat"}[m.group(1)]
            fig[f"tcp_{direction}_gbit_s_{key}"] = float(m.group(2))
            fig[f"tcp_{direction}_gbit_s_{key}_rounds"] = _floats(m.group(3))
        m = re.match(r"^nsvisor / (direct|socat)\s+=\s+([\d.]+)", line)
        if m:
            fig[f"tcp_{direction}_ratio_nsvisor_{m.group(1)}"] = float(m.group(2))
    rec["figures"] = fig
    if "output" in rec and not fig and "error" not in rec:
        rec["error"] = "printed no figures the harness could read"
    return rec
