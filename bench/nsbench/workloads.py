"""The workloads, one function per kind of trial. Each trial starts from
nothing (a fresh temporary directory and daemon), measures, tears down, and
returns a dict of raw figures; a failure is returned as ``{"error": ...}``
with the daemon's log tail, never raised, so one broken tool cannot stop the
run or hide the others' figures.

The lifecycle (``lifecycle.py``) and log throughput (``logflow.py``) have
modules of their own; this one holds the shared trial machinery and:

- ``crash``: 10 programs that exit at once, restarted by policy, for a
  window that opens once there have been as many restarts as programs: the
  daemon's CPU over the window, how many starts happened, and so its CPU
  per start.
- ``supervisorctl``: the real supervisorctl (from the supervisor package)
  against nsvisor's control socket (its XML-RPC) and against supervisord,
  with N programs: ``status`` round trips, then ``start all`` after a
  ``stop all``.
- ``checks`` (nsvisor only; no peer has per-program checks to compare):
  N programs each with a ``tcp`` readiness check every second against one
  listener, or M with an ``exec`` check (``/bin/true``) every second, next to
  the same programs without checks: the daemon's CPU share and RSS over a
  window once every program is ready. ``probe_floor``: ``probeloop`` making
  the same number of connections a second from C, the least any checker
  can spend on them.
"""

import itertools
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

from . import procfs
from .tools import Prog

POLL_S = 0.005  # how often readiness conditions are polled
START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 180

_marker = itertools.count(int(time.time()) % 100000 * 10)


def unique_marker():
    """A `sleep` duration no other process uses: finds a trial's leftovers."""
    return str(100_000_000 + next(_marker))


def now():
    return time.monotonic()


class TrialError(Exception):
    pass


def _tail(paths, limit=2000):
    out = []
    for p in paths:
        try:
            with open(p, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - limit))
                text = f.read().decode(errors="replace").strip()
            if text:
                out.append(f"--- {os.path.basename(p)}\n{text}")
        except OSError:
            pass
    return "\n".join(out)


def _kill_leftovers(marker):
    pids = procfs.processes_with_arg(marker)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


def wait_children(launched, n, comm, t0, timeout=START_TIMEOUT_S):
    """Seconds from t0 until the daemon has n children that exec'd ``comm``."""
    seen = set()
    deadline = t0 + timeout
    while True:
        for pid in procfs.children(launched.pid):
            if pid not in seen and procfs.comm(pid) == comm:
                seen.add(pid)
        if len(seen) >= n:
            return now() - t0
        if launched.proc.poll() is not None:
            raise TrialError(f"daemon exited with {launched.proc.returncode} while starting ({len(seen)}/{n} up)")
        if now() > deadline:
            raise TrialError(f"only {len(seen)}/{n} programs up after {timeout} s")
        time.sleep(POLL_S)


def wait_running(launched, n, t0, timeout=START_TIMEOUT_S):
    """Seconds from t0 until the tool reports n programs RUNNING; None if it cannot say."""
    deadline = t0 + timeout
    while True:
        count = launched.running()
        if count is None:
            return None
        if count >= n:
            return now() - t0
        if launched.proc.poll() is not None:
            raise TrialError(f"daemon exited with {launched.proc.returncode} ({count}/{n} RUNNING)")
        if now() > deadline:
            raise TrialError(f"only {count}/{n} RUNNING after {timeout} s")
        time.sleep(POLL_S)


def wait_exact(proc, timeout):
    """``proc.wait(timeout)``, but sees the exit the moment it happens.

    ``Popen.wait`` with a timeout polls, sleeping 1, 2, 4 ... up to 50 ms
    between looks, so a command that takes 34 ms is seen to end at 63.5 ms
    and timings bunch at 31.5, 63.5, 113.5, 163.5 ... ms. A pidfd becomes
    readable when the process exits, with no polling."""
    try:
        fd = os.pidfd_open(proc.pid)
    except ProcessLookupError:  # already reaped
        return proc.wait()
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    if not ready:
        raise subprocess.TimeoutExpired(proc.args, timeout)
    return proc.wait()


def run_exact(argv, timeout):
    """Runs argv with its output discarded, waiting with :func:`wait_exact`;
    returns its exit code. Killed if it outlives ``timeout``."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return wait_exact(proc, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def _time_calls(fn, samples, budget_s=None):
    """Milliseconds of up to ``samples`` calls of fn, after one untimed call;
    with budget_s, stops early once that much time is spent (after 3 calls)."""
    fn()
    out, spent = [], 0.0
    while len(out) < samples and (budget_s is None or len(out) < 3 or spent < budget_s):
        t = now()
        fn()
        out.append((now() - t) * 1000)
        spent += out[-1] / 1000
    return out


def _trial_dir(tmp_root, label):
    return tempfile.mkdtemp(prefix=f"{label}-", dir=tmp_root)


def _guard(tool, tmp_root, label, body):
    """Runs body(dir) → dict; turns failures into an error record and always cleans up."""
    d = _trial_dir(tmp_root, label)
    state = {"launched": None, "markers": []}
    try:
        return body(d, state)
    except (TrialError, OSError, subprocess.SubprocessError) as e:
        rec = {"error": str(e)}
        if state["launched"] is not None:
            rec["log_tail"] = _tail(tool.daemon_log(state["launched"]))
        return rec
    finally:
        if state["launched"] is not None:
            state["launched"].kill()
        for m in state["markers"]:
            _kill_leftovers(m)
        shutil.rmtree(d, ignore_errors=True)


def crash(tool, cfg, programs=10):
    """programs that exit at once, restarted by policy: daemon CPU and starts over a window."""

    def body(d, state):
        starts = os.path.join(d, "starts")
        # No quoting or $ in the command: horust expands variables in its files.
        argv = ["sh", "-c", f"echo >> {starts}; exit 1"]
        state["markers"].append(argv[2])
        launched = tool.launch(d, [Prog("c", argv, numprocs=programs, autorestart=True)])
        state["launched"] = launched

        def count():
            try:
                with open(starts, "rb") as f:
                    return f.read().count(b"\n")
            except FileNotFoundError:
                return 0

        # The window opens once there have been as many restarts as programs
        # (the loop runs as it will from then on).
        deadline = now() + 60
        while count() < 2 * programs:
            if launched.proc.poll() is not None:
                raise TrialError(f"daemon exited with {launched.proc.returncode} before the crash loop ran")
            if now() > deadline:
                raise TrialError(f"only {count()} starts of {programs} programs in 60 s")
            time.sleep(POLL_S)
        pids = [launched.pid]
        c0, k0, n0, s0 = (procfs.cpu_ticks(launched.pid), procfs.children_cpu_ticks(launched.pid),
                          procfs.tree_cpu_ns(pids), count())
        time.sleep(cfg.crash_s)
        c1, k1, n1, s1 = (procfs.cpu_ticks(launched.pid), procfs.children_cpu_ticks(launched.pid),
                          procfs.tree_cpu_ns(pids), count())
        if launched.proc.poll() is not None:
            raise TrialError(f"daemon exited with {launched.proc.returncode} during the crash loop")
        rec = {
            "crash_window_s": cfg.crash_s,
            "crash_ticks": c1 - c0,
            "crash_cpu_ms": (n1 - n0) / 1e6,
            "crash_cpu_ms_per_start": (n1 - n0) / 1e6 / (s1 - s0) if s1 > s0 else None,
            "crash_child_ticks": k1 - k0,
            "crash_starts": s1 - s0,
            "crash_starts_total": s1,
            "rss_kb": procfs.rss_kb(launched.pid),
        }
        launched.terminate(STOP_TIMEOUT_S)
        return rec

    return _guard(tool, cfg.tmp_root, f"{tool.name}-crash", body)


def supervisorctl(tool, ctl, n, cfg):
    """`supervisorctl status` and `start all` against tool's socket, n programs."""

    def body(d, state):
        marker = unique_marker()
        state["markers"].append(marker)
        launched = tool.launch(d, [Prog("p", ["sleep", marker], numprocs=n)])
        state["launched"] = launched
        t0 = now()
        wait_children(launched, n, "sleep", t0)
        if wait_running(launched, n, t0, timeout=now() - t0 + 60) is None:
            raise TrialError("no way to see the programs RUNNING")
        sock = os.path.join(d, "nsvisor.sock" if tool.name == "nsvisor" else "supervisor.sock")
        base = [ctl, "-s", f"unix://{sock}"]
        check = subprocess.run(base + ["status"], capture_output=True, timeout=120)
        lines = check.stdout.decode(errors="replace").count(" RUNNING ")
        if lines < n:
            raise TrialError(f"supervisorctl status showed {lines} RUNNING of {n}: {check.stderr[-300:]!r}")
        rec = {"status_ms": _time_calls(
            lambda: run_exact(base + ["status"], 120),
            cfg.status_samples, cfg.status_budget_s)}
        stop = subprocess.run(base + ["stop", "all"], capture_output=True, timeout=STOP_TIMEOUT_S)
        if stop.returncode != 0:
            raise TrialError(f"supervisorctl stop all: exit {stop.returncode}: {stop.stdout[-300:]!r}")
        t = now()
        code = run_exact(base + ["start", "all"], START_TIMEOUT_S)
        rec["start_all_s"] = now() - t
        if code != 0:
            raise TrialError(f"supervisorctl start all: exit {code} (its output is not kept while it is timed)")
        launched.terminate(STOP_TIMEOUT_S)
        rec["leftovers"] = _kill_leftovers(marker)
        return rec

    return _guard(tool, cfg.tmp_root, f"{tool.name}-supervisorctl-{n}", body)


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(launched, n, timeout):
    """Until the daemon reports n programs RUNNING and ready."""
    from . import clients

    sock = os.path.join(launched.dir, "nsvisor.sock")
    deadline = now() + timeout
    while now() < deadline:
        if launched.proc.poll() is not None:
            raise TrialError(f"daemon exited with {launched.proc.returncode}")
        try:
            status, body = clients.nsvisor_get(sock, "/v1/programs")
        except OSError:
            status, body = None, None
        if status == 200 and isinstance(body, list):
            if sum(1 for p in body if p.get("state") == "RUNNING" and p.get("ready")) >= n:
                return
        time.sleep(0.05)
    raise TrialError(f"not all {n} programs ready within {timeout} s")


def checks(tool, variant, n, port, cfg):
    """n sleep programs with one check each (variant tcp / exec) or none:
    daemon CPU share and RSS over a window once all are ready."""

    def body(d, state):
        marker = unique_marker()
        state["markers"].append(marker)
        extra = {
            "none": "",
            "tcp": f"[[programs.p.checks]]\ntcp = {port}\nperiod = 1",
            "exec": '[[programs.p.checks]]\nexec = ["/bin/true"]\nperiod = 1',
        }[variant]
        launched = tool.launch(d, [Prog("p", ["sleep", marker], numprocs=n, nsvisor_toml=extra)])
        state["launched"] = launched
        _wait_ready(launched, n, START_TIMEOUT_S)
        time.sleep(cfg.settle_s)
        c0, k0 = procfs.cpu_ticks(launched.pid), procfs.children_cpu_ticks(launched.pid)
        t0 = now()
        time.sleep(cfg.idle_s)
        c1, k1 = procfs.cpu_ticks(launched.pid), procfs.children_cpu_ticks(launched.pid)
        window = now() - t0
        hz = os.sysconf("SC_CLK_TCK")
        rec = {
            "variant": variant,
            "window_s": window,
            "ticks": c1 - c0,
            "child_ticks": k1 - k0,
            "cpu_share": (c1 - c0) / hz / window,
            "cpu_share_with_children": (c1 - c0 + k1 - k0) / hz / window,
            "rss_kb": procfs.rss_kb(launched.pid),
            "threads": procfs.threads(launched.pid),
        }
        rec.update(procfs.rss_parts_kb(launched.pid))
        launched.terminate(STOP_TIMEOUT_S)
        return rec

    return _guard(tool, cfg.tmp_root, f"{tool.name}-checks-{variant}", body)


def probe_floor(probeloop, port, rate, seconds):
    """probeloop's own CPU share for rate connects a second to port."""
    out = subprocess.run([probeloop, "connect", str(port), str(rate), str(round(seconds))],
                         capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        return {"error": f"probeloop failed: {out.stderr.strip()}"}
    fig = json.loads(out.stdout)
    if fig["failed"]:
        return {"error": f"probeloop: {fig['failed']} of {fig['connects']} connects failed"}
    return {"variant": "probe_floor", "window_s": fig["wall_s"], "cpu_share": fig["cpu_s"] / fig["wall_s"],
            "connects": fig["connects"]}


def percentile(values, p):
    """The p-th percentile (nearest rank) of values."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def median(values):
    return statistics.median(values) if values else None
