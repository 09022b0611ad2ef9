"""The lifecycle workload, the one run at every N: start N ``sleep``
programs, let them settle, measure idle CPU and memory of the supervision
tree, time status round trips, then SIGTERM the daemon and time until every
process has exited; and ``limit``, the same start and stop done by
``spawnlimit`` (posix_spawn), the floor, timed the same way.

Start and stop are timed from the kernel's process events (``procwatch``),
so the clock stops at the last program's exec (start) or the last exit of
the daemon and everything it started (stop), with no polling while the tool
works. Without root the proc connector is not available: /proc is polled
instead, and the record says so (``timing``).

- ``start_s``: launch until all N programs have exec'd ``sleep``, for every
  tool the same condition;
- ``running_s``: launch until the tool itself reports all N RUNNING (None
  when it has no way to say: horust);
- ``stop_s``: SIGTERM to the daemon until the daemon and every process it
  started (programs and, for s6, each s6-supervise) have exited.

Each phase has a cap (``caps``): a tool that exceeds it gets a record with
``capped`` (the phase) and an error saying how far it got.
"""

import json
import os
import signal
import subprocess
import time

from . import procfs, procwatch
from .tools import Prog
from .workloads import (POLL_S, TrialError, _guard, _kill_leftovers, _time_calls, now, run_exact, unique_marker,
                        wait_exact, wait_running)

PROGRAM = "sleep"


class Capped(TrialError):
    def __init__(self, phase, cap_s, detail):
        super().__init__(f"{phase} exceeded the {cap_s:g} s cap ({detail})")
        self.phase = phase
        self.detail = detail


def _poll_programs(launched, n, t0, cap_s):
    """Without process events: seconds until n ``sleep`` processes are under the daemon."""
    while True:
        found = sum(1 for p in procfs.tree(launched.pid) if p != launched.pid and procfs.comm(p) == PROGRAM)
        if found >= n:
            return now() - t0
        if launched.proc.poll() is not None:
            raise TrialError(f"daemon exited with {launched.proc.returncode} while starting ({found}/{n} up)")
        if now() - t0 > cap_s:
            raise Capped("start", cap_s, f"{found:,} of {n:,} programs up")
        time.sleep(POLL_S)


def _wait_start(watch, launched, n, t0_ns, cap_s):
    if watch is None:
        return _poll_programs(launched, n, t0_ns / 1e9, cap_s)
    last, got = watch.wait_programs(n, cap_s - (time.monotonic_ns() - t0_ns) / 1e9, lambda: launched.proc.poll() is None)
    if last is not None:
        return (last - t0_ns) / 1e9
    if launched.proc.poll() is not None:
        raise TrialError(f"daemon exited with {launched.proc.returncode} while starting ({got}/{n} up)")
    raise Capped("start", cap_s, f"{got:,} of {n:,} programs up")


def _stop(watch, launched, n, cap_s):
    """SIGTERM to the daemon; seconds until it and everything under it exited."""
    pids = watch.descendants(launched.pid) if watch is not None else []
    t0 = time.monotonic_ns()
    launched.proc.send_signal(signal.SIGTERM)
    try:
        code = wait_exact(launched.proc, cap_s)
    except subprocess.TimeoutExpired:
        raise Capped("stop", cap_s, "the daemon had not exited") from None
    if watch is None:
        return (time.monotonic_ns() - t0) / 1e9, code, []
    left_s = max(1.0, cap_s - (time.monotonic_ns() - t0) / 1e9)
    last, alive = watch.wait_exits(pids, left_s)
    if last is None:
        # Processes outliving the daemon are leftovers, not a slow stop.
        return (time.monotonic_ns() - t0) / 1e9, code, alive
    return (last - t0) / 1e9, code, []


def _status_samples(launched, n, cfg):
    figures = {}
    argv = launched.tool.status_cli(launched)
    if argv:
        check = subprocess.run(argv, capture_output=True, timeout=300)
        lines = check.stdout.decode(errors="replace").count("\n")
        if lines < n:
            raise TrialError(f"{os.path.basename(argv[0])} status printed {lines} lines for {n} programs: {check.stderr[-300:]!r}")
        figures["status_cli_ms"] = _time_calls(
            lambda: run_exact(argv, 300),
            cfg.status_samples, cfg.status_budget_s)
    call = launched.tool.status_api(launched)
    if call:
        if call() < n:
            raise TrialError("status API listed fewer programs than configured")
        figures["status_api_ms"] = _time_calls(call, cfg.status_samples, cfg.status_budget_s)
    return figures


def lifecycle_progs(n, marker="0"):
    """The lifecycle's programs. stderr goes into stdout, so nsvisor and
    supervisord keep one pipe per program instead of two (horust and s6 let
    the programs inherit their own output): 10,000 programs then fit in a
    20,000-descriptor limit, the same set-up for every tool."""
    return [Prog("p", [PROGRAM, marker], numprocs=n, redirect_stderr=True)]


def _open_watch():
    try:
        return procwatch.ProcWatch(PROGRAM).__enter__()
    except procwatch.Unavailable:
        return None


def lifecycle(tool, n, cfg, cap_s):
    """Start n sleep programs, idle CPU, memory, status, graceful stop."""

    def body(d, state):
        marker = unique_marker()
        state["markers"].append(marker)
        progs = lifecycle_progs(n, marker)
        watch = _open_watch()
        rec = {"load": procfs.loadavg(), "timing": "proc connector" if watch else "polling /proc", "cap_s": cap_s}
        try:
            t0_ns = time.monotonic_ns()
            launched = tool.launch(d, progs)
            state["launched"] = launched
            rec["start_s"] = _wait_start(watch, launched, n, t0_ns, cap_s)
            t0 = t0_ns / 1e9
            try:
                running = wait_running(launched, n, t0, timeout=max(now() - t0 + 30, cap_s))
            except TrialError as e:
                running, rec["running_error"] = None, str(e)
            rec["running_s"] = running
            rec["self_reported_start_s"] = tool.self_reported_start(launched)
            if running is not None and hasattr(tool, "check_status_reading") and not tool.check_status_reading(launched):
                raise TrialError("s6-svstat disagrees with the harness's reading of a status file")

            time.sleep(cfg.settle_s)
            sup = procfs.tree(launched.pid, exclude_comm=PROGRAM)
            c0, ns0 = procfs.tree_cpu_ticks(sup), procfs.tree_cpu_ns(sup)
            time.sleep(cfg.idle_s)
            c1, ns1 = procfs.tree_cpu_ticks(sup), procfs.tree_cpu_ns(sup)
            rec["idle_ticks"] = c1 - c0
            rec["idle_cpu_ms"] = (ns1 - ns0) / 1e6
            rec["idle_window_s"] = cfg.idle_s
            rec["daemon_rss_kb"] = procfs.rss_kb(launched.pid)
            mem = procfs.tree_memory_kb(sup)
            rec["tree_procs"] = mem.pop("procs")
            rec.update(mem)
            rec["threads"] = procfs.threads(launched.pid)
            rec["daemon_fds"] = procfs.fd_count(launched.pid)
            rec.update(_status_samples(launched, n, cfg))

            rec["stop_s"], rec["exit_code"], alive = _stop(watch, launched, n, cap_s)
        except Capped as e:
            return {**rec, "capped": e.phase, "cap_detail": e.detail, "error": str(e)}
        except procwatch.EventsLost as e:
            raise TrialError(str(e)) from None
        finally:
            if watch is not None:
                watch.__exit__(None, None, None)
        rec["leftovers"] = max(len(alive), _kill_leftovers(marker))
        if rec["leftovers"]:
            rec["error"] = f"{rec['leftovers']} processes still running after the daemon exited"
        return rec

    return _guard(tool, cfg.tmp_root, f"{tool.name}-{n}", body)


class _Spawned:
    """spawnlimit running under the harness, shaped like a tool's ``Launched``."""

    def __init__(self, proc):
        self.proc = proc

    @property
    def pid(self):
        return self.proc.pid


def limit(spawnlimit, n, cfg, cap_s):
    """The posix_spawn floor for starting and stopping n sleep programs,
    timed from outside exactly as the tools are: from its launch until all n
    exec'd, and from SIGTERM until it and every copy exited, with the same
    process-event watch running (its events cost the harness CPU, on the
    same 2 cores, for the limit as for the tools). spawnlimit's own clocks
    are kept beside (``self_reported_*``)."""
    marker = unique_marker()
    watch = _open_watch()
    rec = {"load": procfs.loadavg(), "timing": "proc connector" if watch else "polling /proc", "cap_s": cap_s}
    proc = None
    try:
        t0_ns = time.monotonic_ns()
        proc = subprocess.Popen([spawnlimit, "--wait", str(n), PROGRAM, marker], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        launched = _Spawned(proc)
        rec["start_s"] = _wait_start(watch, launched, n, t0_ns, cap_s)
        # Its line comes once every copy is started and SIGTERM is blocked,
        # so the SIGTERM below is its cue to stop, not its death.
        started = json.loads(proc.stdout.readline() or "{}")
        if "spawn_s" not in started:
            raise TrialError(f"spawnlimit failed: {proc.stderr.read().strip()}")
        rec["self_reported_start_s"] = started["spawn_s"]
        time.sleep(cfg.settle_s)
        rec["stop_s"], rec["exit_code"], alive = _stop(watch, launched, n, cap_s)
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise TrialError(f"spawnlimit failed: {err.strip()}")
        rec["self_reported_stop_s"] = json.loads(out)["stop_s"]
        if alive:
            rec["error"] = f"{len(alive)} processes still running after spawnlimit exited"
        return rec
    except Capped as e:
        return {**rec, "capped": e.phase, "cap_detail": e.detail, "error": str(e)}
    except (TrialError, procwatch.EventsLost, ValueError) as e:
        return {**rec, "error": str(e)}
    finally:
        if watch is not None:
            watch.__exit__(None, None, None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_leftovers(marker)
