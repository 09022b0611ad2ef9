"""Runs the benchmark scripts that live next to the harness and belong to
other parts of nsvisor, and turns their printed tables into figures:

- ``bench/logs.sh``: log throughput of nsvisor's sink set-ups (file only,
  file + console, file + ``tail -f``) next to ``splicecopy`` (the limit)
  and ``cat``;
- ``bench/net.sh``: sandbox creation and removal per program next to the
  same steps done by ``ip -batch``, and TCP throughput and connections per
  second through nsvisor's port modes next to a direct connection and to
  ``socat`` (root only); it writes a JSON document, kept whole.

Each script is run once per benchmark run with its own repetitions (set
through its environment variables); its whole output is kept in the JSON so
the page can show it even when a line could not be parsed. A script that
exits non-zero, or prints nothing the harness can read, is an ``error``
(``nsbench.check`` then fails the run).
"""

import json
import os
import re
import subprocess
import tempfile

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


def logs_sh(script, bin_dir, mode, args):
    """bench/logs.sh: rows {setup: {mb_s, vs_cat, cpu_s_per_gib, wall_s: [...]}}."""
    env = {"NSVISOR_BIN": os.path.join(bin_dir, "nsvisor"), "NSVISORCTL_BIN": os.path.join(bin_dir, "nsvisorctl"),
           "SPLICECOPY_BIN": args.splicecopy, "PIPE_BYTES": str(args.pipe_bytes_used),
           "SIZE_MB": "16" if mode == "quick" else "1024", "RUNS": "1" if mode == "quick" else "3"}
    rec = _run(script, env)
    rows = {}
    for line in rec.get("output", "").splitlines():
        m = re.match(r"^(cat|splice|file\S*)\s+(\d+)\s+([\d.]+)x\s+([\d.]+)\s+(.*)$", line)
        if m:
            rows[m.group(1)] = {"mb_s": float(m.group(2)), "vs_cat": float(m.group(3)),
                                "cpu_s_per_gib": float(m.group(4)), "wall_s": _floats(m.group(5))}
    rec["rows"] = rows
    if "output" in rec and not rows and "error" not in rec:
        rec["error"] = "printed no table the harness could read"
    return rec


def net_sh(script, bin_dir, mode, args):
    """bench/net.sh: its whole JSON document (every round of every path) under
    ``json``, and under ``figures`` the medians the page shows: per-sandbox
    create/remove ms (``ip -batch`` vs nsvisor), TCP Gbit/s up and down and
    connections per second through each path (direct, nsvisor's proxy and nat
    port modes, socat). ``nsvisor`` in the old key names is the proxy mode."""
    env = {"NSVISOR_BIN": os.path.join(bin_dir, "nsvisor"), "NSVISORCTL_BIN": os.path.join(bin_dir, "nsvisorctl")}
    env.update({"N": "5", "SECS": "1", "CPS_SECS": "1", "ROUNDS": "1"} if mode == "quick"
               else {"N": "100", "SECS": "4", "CPS_SECS": "4", "ROUNDS": "3"})
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net.json")
        rec = _run(script, {**env, "JSON": path}, need_root=True)
        rec["env"] = env
        doc = None
        if "missing" not in rec:
            try:
                with open(path) as f:
                    doc = json.load(f)
            except (OSError, ValueError) as e:
                rec.setdefault("error", f"wrote no JSON document: {e}")
    if doc is None:
        rec["figures"] = {}
        return rec
    rec["json"] = doc
    if "error" in doc:
        rec.setdefault("error", doc["error"])
    figs, ratios = doc.get("figures", {}), doc.get("ratios", {})

    def stat(table, name, path):
        return table.get(name, {}).get(path, {})

    fig = {}
    for what in ("create", "remove"):
        for key, path in (("ip", "ip-batch"), ("nsvisor", "nsvisor")):
            s = stat(figs, f"sandbox_{what}_ms", path)
            if s:
                fig[f"sandbox_{what}_ms_{key}"] = s["median"]
                fig[f"sandbox_{what}_ms_{key}_rounds"] = s["rounds"]
    for direction in ("upload", "download"):
        name = f"tcp_{direction}_gbit_s"
        for key, path in (("direct", "direct"), ("nsvisor", "proxy"), ("nat", "nat"), ("socat", "socat"),
                          ("socat_autobuf", "socat-autobuf")):
            s = stat(figs, name, path)
            if s:
                fig[f"tcp_{direction}_gbit_s_{key}"] = s["median"]
                fig[f"tcp_{direction}_gbit_s_{key}_rounds"] = s["rounds"]
        for key, pair in (("direct", "proxy / direct"), ("socat", "proxy / socat")):
            s = stat(ratios, name, pair)
            if s:
                fig[f"tcp_{direction}_ratio_nsvisor_{key}"] = s["median"]
    for path, s in figs.get("connections_per_s", {}).items():
        fig[f"connections_per_s_{path.replace('-', '_')}"] = s["median"]
        fig[f"connections_per_s_{path.replace('-', '_')}_rounds"] = s["rounds"]
    rec["figures"] = fig
    if not fig and "error" not in rec:
        rec["error"] = "its JSON document has no figures"
    return rec
