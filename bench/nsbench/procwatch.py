"""Process events from the kernel's proc connector (netlink, root only):
every fork, exec and exit of this process's descendants, each with the
kernel's CLOCK_MONOTONIC timestamp. The lifecycle workload times start and
stop with it: no polling of /proc while a tool is starting or stopping, so
the harness takes no CPU from the tool it measures, and the clock stops at
the moment of the last exec (or exit), not at the next poll.

    with ProcWatch("sleep") as w:
        t0 = time.monotonic_ns()
        ...launch...
        last_exec_ns, pids = w.wait_programs(n, timeout_s, alive)

A process is followed when its parent is followed, from this process down
(fork events come before the child runs, so none is missed). ``programs``
are followed processes whose exec made them ``comm`` (their last exec's
time is kept). Events the kernel drops (a full socket buffer) set ``lost``;
the waits then raise, since a count could be short.
"""

import errno
import os
import socket
import struct
import threading
import time

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
NLMSG_DONE = 3
EV_FORK = 0x1
EV_EXEC = 0x2
EV_EXIT = 0x80000000
HEADER = 16 + 20  # nlmsghdr + cn_msg, then struct proc_event
RCVBUF = 64 << 20


class Unavailable(Exception):
    """The proc connector cannot be used here (not root, or not in this kernel)."""


class EventsLost(Exception):
    pass


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().decode(errors="replace").strip()
    except OSError:
        return None


class ProcWatch:
    def __init__(self, comm):
        self.comm = comm
        self.parent = {os.getpid(): None}  # followed tgid -> parent tgid
        self.programs = {}  # tgid -> ns of the exec that made it `comm`
        self.exits = {}  # followed tgid -> ns of its exit
        self.lost = False
        self.cond = threading.Condition()
        self.sock = None
        self.thread = None
        self.stopping = False

    def _control(self, op):
        payload = struct.pack("=I", op)
        cn = struct.pack("=IIIIHH", CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
        self.sock.send(struct.pack("=IHHII", 16 + len(cn), NLMSG_DONE, 0, 0, os.getpid()) + cn)

    def __enter__(self):
        if os.geteuid() != 0:
            raise Unavailable("the proc connector needs root")
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE
            except OSError:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            self.sock.bind((0, CN_IDX_PROC))
            self._control(PROC_CN_MCAST_LISTEN)
        except OSError as e:
            if self.sock:
                self.sock.close()
            raise Unavailable(f"cannot listen to the proc connector: {e}") from e
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._read, name="procwatch", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.thread.join()
        try:
            self._control(PROC_CN_MCAST_IGNORE)
        except OSError:
            pass
        self.sock.close()
        return False

    def _read(self):
        while not self.stopping:
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                continue
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    with self.cond:
                        self.lost = True
                        self.cond.notify_all()
                    continue
                return
            off = 0
            while off + HEADER + 16 <= len(data):
                length = struct.unpack_from("=I", data, off)[0]
                if length < HEADER + 16:
                    break
                self._event(data, off + HEADER)
                off += (length + 3) & ~3

    def _event(self, data, off):
        what, _cpu, ts = struct.unpack_from("=IIQ", data, off)
        off += 16
        if what == EV_FORK:
            _ppid, ptgid, cpid, ctgid = struct.unpack_from("=iiii", data, off)
            if cpid == ctgid and ptgid in self.parent:
                with self.cond:
                    self.parent[ctgid] = ptgid
        elif what == EV_EXEC:
            pid, tgid = struct.unpack_from("=ii", data, off)
            if tgid in self.parent and _comm(tgid) == self.comm:
                with self.cond:
                    self.programs[tgid] = ts
                    self.cond.notify_all()
        elif what == EV_EXIT:
            pid, tgid = struct.unpack_from("=ii", data, off)
            if pid == tgid and tgid in self.parent:
                with self.cond:
                    self.exits[tgid] = ts
                    self.cond.notify_all()

    def _wait(self, done, timeout_s, alive):
        """Waits until done() (under the lock); False on timeout or when alive() fails."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while not done():
                if self.lost:
                    raise EventsLost("the kernel dropped process events (socket buffer full)")
                left = deadline - time.monotonic()
                if left <= 0 or (alive is not None and not alive()):
                    return False
                self.cond.wait(min(left, 0.1))
        return True

    def wait_programs(self, n, timeout_s, alive=None):
        """(ns of the n-th program's exec or None on timeout, how many exec'd)."""
        ok = self._wait(lambda: len(self.programs) >= n, timeout_s, alive)
        with self.cond:
            return (max(self.programs.values()) if ok else None), len(self.programs)

    def descendants(self, pid):
        """Followed descendants of pid that have not exited, pid first if alive."""
        with self.cond:
            kids = {}
            for child, parent in self.parent.items():
                kids.setdefault(parent, []).append(child)
            out, todo = [], [pid]
            while todo:
                p = todo.pop()
                if p not in self.exits:
                    out.append(p)
                todo.extend(kids.get(p, ()))
            return out

    def wait_exits(self, pids, timeout_s):
        """(ns of the last exit among pids or None on timeout, pids still alive)."""
        ok = self._wait(lambda: all(p in self.exits for p in pids), timeout_s, None)
        with self.cond:
            left = [p for p in pids if p not in self.exits]
            return (max(self.exits[p] for p in pids) if ok and pids else None), left
