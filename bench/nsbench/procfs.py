"""What the harness reads from /proc: a process's children and the tree
under it, command name, resident and proportional memory, CPU ticks,
leftover processes of a trial, and a description of the machine.
Read-only; every function tolerates processes that vanish while being read
(they are simply not counted).
"""

import os
import platform
import re
import signal
import time

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def children(pid):
    """Pids of the direct children of ``pid`` (all of its threads)."""
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tids:
        text = _read(f"/proc/{pid}/task/{tid}/children")
        if text:
            out.extend(int(p) for p in text.split())
    return out


def comm(pid):
    """The command name of ``pid`` (``sleep`` once it has exec'd sleep), or None."""
    text = _read(f"/proc/{pid}/comm")
    return text.strip() if text is not None else None


def tree(pid, exclude_comm=None):
    """pid and every descendant of it, except processes named exclude_comm
    (and what is under them): a supervisor's own processes without its programs."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p != pid and exclude_comm is not None and comm(p) == exclude_comm:
            continue
        out.append(p)
        todo.extend(children(p))
    return out


def state(pid):
    """The one-letter state of pid (R, S, T, Z...), or None when gone."""
    f = _stat_fields(pid)
    return f[0] if f else None


def freeze_tree(pid, timeout_s=10.0):
    """SIGSTOPs pid and every process under it, again and again until no new
    one appears (a stopped process cannot fork), and returns them all: then
    they can be killed without leaving an orphan that goes on forking."""
    seen = set()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        new = [p for p in tree(pid) if p not in seen]
        if not new:
            break
        for p in new:
            try:
                os.kill(p, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        seen.update(new)
        while time.monotonic() < deadline and any(state(p) not in (None, "T", "t", "Z", "X") for p in new):
            time.sleep(0.001)
    return list(seen)


def cmdline(pid):
    text = _read(f"/proc/{pid}/cmdline")
    return text.split("\0")[:-1] if text else []


def _stat_fields(pid):
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    # The command name is in parentheses and may contain spaces: split after it.
    return text[text.rindex(")") + 2 :].split()


def cpu_ticks(pid):
    """utime + stime of ``pid`` (all threads), in clock ticks; None when gone."""
    f = _stat_fields(pid)
    # After the name: state is field 3, so utime (14) and stime (15) are at 11, 12.
    return int(f[11]) + int(f[12]) if f else None


def children_cpu_ticks(pid):
    """cutime + cstime: CPU of the children ``pid`` has reaped, in clock ticks."""
    f = _stat_fields(pid)
    return int(f[13]) + int(f[14]) if f else None


def rss_kb(pid):
    """VmRSS of ``pid`` in KiB, or None when gone."""
    text = _read(f"/proc/{pid}/status")
    m = re.search(r"^VmRSS:\s+(\d+)\s+kB", text or "", re.M)
    return int(m.group(1)) if m else None


def rss_parts_kb(pid):
    """RssAnon and RssFile of ``pid`` in KiB (what VmRSS is made of), or {}."""
    text = _read(f"/proc/{pid}/status") or ""
    found = re.findall(r"^Rss(Anon|File|Shmem):\s+(\d+)", text, re.M)
    return {f"rss_{k.lower()}_kb": int(v) for k, v in found}


def tree_cpu_ticks(pids):
    """utime + stime summed over pids (those still there)."""
    return sum(t for t in (cpu_ticks(p) for p in pids) if t is not None)


def tree_cpu_ns(pids):
    """On-CPU nanoseconds summed over every thread of pids (/proc/PID/task/TID/schedstat)."""
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for tid in tids:
            text = _read(f"/proc/{pid}/task/{tid}/schedstat")
            if text:
                total += int(text.split()[0])
    return total


SMAPS_KEYS = {"Pss": "pss_kb", "Pss_Anon": "pss_anon_kb", "Pss_File": "pss_file_kb"}


def tree_memory_kb(pids):
    """Memory of a set of processes in KiB: ``pss_kb``, ``pss_anon_kb`` and
    ``pss_file_kb`` summed from /proc/PID/smaps_rollup (each shared page is
    divided among the processes mapping it, so pages shared between them
    count once), and ``rss_kb``, ``rss_anon_kb``, ``rss_file_kb`` summed
    from /proc/PID/status (shared pages counted once per process; file
    includes shmem); ``procs``: how many processes were read."""
    out = {k: 0 for k in ("rss_kb", "rss_anon_kb", "rss_file_kb", *SMAPS_KEYS.values())}
    procs = 0
    for pid in pids:
        text = _read(f"/proc/{pid}/smaps_rollup")
        parts = rss_parts_kb(pid)
        rss = rss_kb(pid)
        if not text or rss is None:
            continue
        procs += 1
        for key, value in re.findall(r"^(\w+):\s+(\d+) kB", text, re.M):
            if key in SMAPS_KEYS:
                out[SMAPS_KEYS[key]] += int(value)
        out["rss_kb"] += rss
        out["rss_anon_kb"] += parts.get("rss_anon_kb", 0)
        out["rss_file_kb"] += parts.get("rss_file_kb", 0) + parts.get("rss_shmem_kb", 0)
    out["procs"] = procs
    return out


def fd_count(pid):
    """How many descriptors pid has open, or None when gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def threads(pid):
    text = _read(f"/proc/{pid}/status")
    m = re.search(r"^Threads:\s+(\d+)", text or "", re.M)
    return int(m.group(1)) if m else None


def processes_with_arg(marker):
    """Pids of every process whose command line contains the word ``marker``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and marker in cmdline(int(name)):
            found.append(int(name))
    return found


def loadavg():
    text = _read("/proc/loadavg") or "0 0 0"
    return [float(x) for x in text.split()[:3]]


def machine():
    """Cores, memory, kernel and CPU model of this machine."""
    meminfo = _read("/proc/meminfo") or ""
    mem = re.search(r"^MemTotal:\s+(\d+)", meminfo, re.M)
    cpu = re.search(r"^model name\s*:\s*(.+)$", _read("/proc/cpuinfo") or "", re.M)
    return {
        "cores": os.cpu_count(),
        "memory_mib": int(mem.group(1)) // 1024 if mem else None,
        "kernel": platform.release(),
        "cpu": cpu.group(1).strip() if cpu else platform.machine(),
        "arch": platform.machine(),
        "in_container": os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv"),
    }
