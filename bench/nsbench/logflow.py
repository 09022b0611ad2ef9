"""The log-throughput workload: one program (``linewriter``) writes BYTES
of 64-byte lines as fast as it can; how fast do they reach a file?

- ``logs``: through the supervisor's file sink (no rotation);
- ``logs_splice``: the limit, ``splicecopy`` moving the pipe into the file
  with splice(2) and the pipe buffer nsvisor uses;
- ``logs_cat``: ``cat > file``, the everyday reference.

The clock runs from the writer's first write (it stamps the time itself)
until the file holds every byte; the copier's CPU time is kept too.
"""

import os
import shutil
import subprocess
import time

from . import procfs
from .tools import Prog
from .workloads import POLL_S, STOP_TIMEOUT_S, TrialError, _guard, _trial_dir


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


def _logs_copier(argv_of, label, linewriter, size, cfg):
    """The writer piped into a copier (argv_of(path)) that writes the file."""
    d = _trial_dir(cfg.tmp_root, label)
    try:
        path, stamp = os.path.join(d, "out.log"), os.path.join(d, "stamp")
        with open(path, "wb") as sink:
            writer = subprocess.Popen([linewriter, "--stamp", stamp, str(size)], stdout=subprocess.PIPE)
            copier = subprocess.Popen(argv_of(path), stdin=writer.stdout, stdout=sink)
            writer.stdout.close()
        try:
            elapsed = _wait_log(path, size, stamp, lambda: copier.returncode is None, cfg.log_timeout_s)
        finally:
            writer.wait()
            # Reap the copier ourselves to read its CPU time.
            _, status, usage = os.wait4(copier.pid, 0)
            copier.returncode = os.waitstatus_to_exitcode(status)
        if copier.returncode != 0:
            raise TrialError(f"{label} exited with {copier.returncode}")
        ticks = round((usage.ru_utime + usage.ru_stime) * procfs.TICKS_PER_SECOND)
        return _log_result(size, elapsed, ticks)
    except TrialError as e:
        return {"error": str(e)}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def logs_cat(linewriter, size, cfg):
    """The everyday reference: linewriter | cat > file."""
    return _logs_copier(lambda path: ["cat"], "cat", linewriter, size, cfg)


def logs_splice(splicecopy, pipe_bytes, linewriter, size, cfg):
    """The limit: linewriter | splicecopy PIPE_BYTES file (splice, nsvisor's pipe size)."""
    return _logs_copier(lambda path: [splicecopy, str(pipe_bytes), path], "splicecopy", linewriter, size, cfg)


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
