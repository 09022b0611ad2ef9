"""The workloads, one function per kind of trial. Each trial starts from
nothing (a fresh temporary directory and daemon), measures, tears down, and
returns a dict of raw figures; a failure is returned as ``{"error": ...}``
with the daemon's log tail, never raised, so one broken tool cannot stop the
run or hide the others' figures.

- ``lifecycle``: start N ``sleep`` programs until all are RUNNING, let them
  settle, measure idle CPU ticks and RSS, time status round trips (CLI and
  in-process API), then SIGTERM the daemon and time until it has exited.
- ``limit``: the same start and stop through ``spawnlimit`` (posix_spawn).
- ``logs`` / ``logs_cat``: one program writes BYTES of 64-byte lines to a
  file sink, through the supervisor or through ``cat``.
- ``crash``: 10 programs that exit at once, restarted by policy, for a while:
  daemon CPU ticks and how many starts happened.
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
    return time.perf_counter()


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


def _time_calls(fn, samples):
    """Milliseconds of `samples` calls of fn, after one call that is not counted."""
    fn()
    out = []
    for _ in range(samples):
        t = now()
        fn()
        out.append((now() - t) * 1000)
    return out


def _status_samples(launched, n, samples):
    figures = {}
    argv = launched.tool.status_cli(launched)
    if argv:
        check = subprocess.run(argv, capture_output=True, timeout=120)
        lines = check.stdout.decode(errors="replace").count("\n")
        if lines < n:
            raise TrialError(f"{' '.join(argv[:1])} status printed {lines} lines for {n} programs: {check.stderr[-300:]!r}")
        figures["status_cli_ms"] = _time_calls(
            lambda: subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120), samples
        )
    call = launched.tool.status_api(launched)
    if call:
        if call() < n:
            raise TrialError("status API listed fewer programs than configured")
        figures["status_api_ms"] = _time_calls(call, samples)
    return figures


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


def lifecycle(tool, n, cfg, with_status):
    """Start n sleep programs, idle, RSS, status, graceful stop."""

    def body(d, state):
        marker = unique_marker()
        state["markers"].append(marker)
        progs = [Prog("p", ["sleep", marker], numprocs=n)]
        t0 = now()
        launched = tool.launch(d, progs)
        state["launched"] = launched
        rec = {"load": procfs.loadavg(), "spawned_s": wait_children(launched, n, "sleep", t0)}
        running = wait_running(launched, n, t0, timeout=now() - t0 + 30)
        rec["running_s"] = running
        rec["start_s"] = running if running is not None else rec["spawned_s"]
        rec["start_condition"] = "tool reports RUNNING" if running is not None else "children exec'd (no status means)"
        rec["self_reported_start_s"] = tool.self_reported_start(launched)

        time.sleep(cfg.settle_s)
        c0 = procfs.cpu_ticks(launched.pid)
        time.sleep(cfg.idle_s)
        c1 = procfs.cpu_ticks(launched.pid)
        rec["idle_ticks"] = c1 - c0
        rec["idle_window_s"] = cfg.idle_s
        rec["rss_kb"] = procfs.rss_kb(launched.pid)
        rec.update(procfs.rss_parts_kb(launched.pid))
        rec["threads"] = procfs.threads(launched.pid)
        if with_status:
            rec.update(_status_samples(launched, n, cfg.status_samples))

        t = now()
        code = launched.terminate(STOP_TIMEOUT_S)
        rec["stop_s"] = now() - t
        rec["exit_code"] = code
        rec["leftovers"] = _kill_leftovers(marker)
        if rec["leftovers"]:
            rec["error"] = f"{rec['leftovers']} programs still running after the daemon exited"
        return rec

    return _guard(tool, cfg.tmp_root, f"{tool.name}-{n}", body)


def limit(spawnlimit, n):
    """The posix_spawn floor for starting and stopping n sleep programs."""
    marker = unique_marker()
    try:
        out = subprocess.run([spawnlimit, str(n), "sleep", marker], capture_output=True, text=True, timeout=STOP_TIMEOUT_S)
        if out.returncode != 0:
            return {"error": f"spawnlimit failed: {out.stderr.strip()}"}
        fig = json.loads(out.stdout)
        return {"start_s": fig["spawn_s"], "stop_s": fig["stop_s"]}
    finally:
        _kill_leftovers(marker)


def mono():
    """CLOCK_MONOTONIC, the clock linewriter stamps its start with."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def _read_stamp(path):
    try:
        with open(path) as f:
            return float(f.read())
    except (OSError, ValueError):
        return None


LOG_STALL_S = 10  # a sink that writes nothing for this long has failed


def _wait_log(path, size, stamp, alive, timeout):
    """Seconds from the writer's first write until path holds size bytes."""
    deadline = mono() + timeout
    last_size, last_change = -1, mono()
    while True:
        try:
            got = os.stat(path).st_size
            if got != last_size:
                last_size, last_change = got, mono()
            if got >= size:
                done = mono()
                start = _read_stamp(stamp)
                if start is None:
                    raise TrialError("linewriter wrote no start stamp")
                return done - start
        except FileNotFoundError:
            pass
        if not alive():
            raise TrialError(f"writer or sink ended before {os.path.basename(path)} reached {size} bytes")
        if mono() > deadline or mono() > last_change + LOG_STALL_S:
            raise TrialError(f"{os.path.basename(path)} stopped at {max(last_size, 0)} of {size} bytes")
        time.sleep(POLL_S)


def _log_result(size, elapsed, cpu_ticks):
    return {
        "bytes": size,
        "log_s": elapsed,
        "log_mib_s": size / elapsed / 2**20,
        "sink_cpu_s": cpu_ticks / procfs.TICKS_PER_SECOND if cpu_ticks is not None else None,
    }


def logs_cat(linewriter, size, cfg):
    """The limit: linewriter | cat > file."""
    d = _trial_dir(cfg.tmp_root, "cat")
    try:
        path, stamp = os.path.join(d, "out.log"), os.path.join(d, "stamp")
        with open(path, "wb") as sink:
            writer = subprocess.Popen([linewriter, "--stamp", stamp, str(size)], stdout=subprocess.PIPE)
            cat = subprocess.Popen(["cat"], stdin=writer.stdout, stdout=sink)
            writer.stdout.close()
        try:
            elapsed = _wait_log(path, size, stamp, lambda: cat.returncode is None, cfg.log_timeout_s)
        finally:
            writer.wait()
            # Reap cat ourselves to read its CPU time.
            _, status, usage = os.wait4(cat.pid, 0)
            cat.returncode = os.waitstatus_to_exitcode(status)
        ticks = round((usage.ru_utime + usage.ru_stime) * procfs.TICKS_PER_SECOND)
        return _log_result(size, elapsed, ticks)
    except TrialError as e:
        return {"error": str(e)}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def logs(tool, linewriter, size, cfg):
    """One program writes size bytes of lines into the tool's file sink."""

    def body(d, state):
        path, stamp = os.path.join(d, "writer.log"), os.path.join(d, "stamp")
        argv = [linewriter, "--stamp", stamp, "--linger", str(size)]
        # The stamp path is unique to this trial: it finds a writer the tool
        # left behind (one killed with SIGKILL does not stop its children).
        state["markers"].append(stamp)
        launched = tool.launch(d, [Prog("w", argv, stdout_path=path)])
        state["launched"] = launched
        c0 = procfs.cpu_ticks(launched.pid)
        elapsed = _wait_log(path, size, stamp, lambda: launched.proc.poll() is None, cfg.log_timeout_s)
        c1 = procfs.cpu_ticks(launched.pid)
        rec = _log_result(size, elapsed, c1 - c0)
        launched.terminate(STOP_TIMEOUT_S)
        return rec

    return _guard(tool, cfg.tmp_root, f"{tool.name}-logs", body)


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

        time.sleep(cfg.crash_warm_s)
        c0, k0, s0 = procfs.cpu_ticks(launched.pid), procfs.children_cpu_ticks(launched.pid), count()
        time.sleep(cfg.crash_s)
        c1, k1, s1 = procfs.cpu_ticks(launched.pid), procfs.children_cpu_ticks(launched.pid), count()
        if launched.proc.poll() is not None:
            raise TrialError(f"daemon exited with {launched.proc.returncode} during the crash loop")
        rec = {
            "crash_window_s": cfg.crash_s,
            "crash_ticks": c1 - c0,
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
            lambda: subprocess.run(base + ["status"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120),
            cfg.status_samples)}
        stop = subprocess.run(base + ["stop", "all"], capture_output=True, timeout=STOP_TIMEOUT_S)
        if stop.returncode != 0:
            raise TrialError(f"supervisorctl stop all: exit {stop.returncode}: {stop.stdout[-300:]!r}")
        t = now()
        start = subprocess.run(base + ["start", "all"], capture_output=True, timeout=START_TIMEOUT_S)
        rec["start_all_s"] = now() - t
        if start.returncode != 0:
            raise TrialError(f"supervisorctl start all: exit {start.returncode}: {start.stdout[-300:]!r}")
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
