"""One adapter per supervisor under test (nsvisor, supervisord, horust, s6):
how to write its config for a list of programs, launch it, ask it how many
programs it has RUNNING, and time its status round trip. The workloads
(``workloads.py``) only talk to these adapters, so every tool goes through
exactly the same steps.

Programs are described once, tool-neutrally, by ``Prog``; each adapter
translates it into the tool's own config with the equivalent options
(start at once with no startsecs wait, SIGTERM to stop, 10 s grace, stderr
into stdout when asked). ``fds_needed`` says how many descriptors a daemon
needs for them, so the driver can tell when RLIMIT_NOFILE is too low.
"""

import os
import re
import resource
import shutil
import signal
import stat
import subprocess
from dataclasses import dataclass, field

from . import clients, procfs


@dataclass
class Prog:
    """A program group, tool-neutral."""

    name: str
    argv: list
    numprocs: int = 1
    autorestart: bool = False
    # File the program's stdout is written to; None: not kept anywhere.
    stdout_path: str = None
    # TOML lines added after the program's table (nsvisor only: its checks).
    nsvisor_toml: str = ""
    # stderr into the stdout stream (one pipe per program where the tool makes
    # pipes): the lifecycle sets it for every tool, see Tool.fds_needed.
    redirect_stderr: bool = False


def _quote(word):
    """A word for a command string that tools split shell-like (supervisord, horust)."""
    if re.fullmatch(r"[A-Za-z0-9_./:=@%+-]+", word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def command_line(argv):
    return " ".join(_quote(w) for w in argv)


def _toml_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Launched:
    """A tool's daemon running in its trial directory."""

    tool: "Tool"
    dir: str
    proc: subprocess.Popen
    extra: dict = field(default_factory=dict)

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.tool.running(self)

    def terminate(self, timeout):
        """SIGTERM the daemon and wait for it; returns its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self):
        """SIGKILL the daemon and every process under it, all frozen first (an
        s6-supervise outlives its parent and would restart its program)."""
        for pid in procfs.freeze_tree(self.proc.pid) if self.proc.poll() is None else []:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Tool:
    """Base adapter. ``missing`` is None when the tool can run, else why not."""

    name = "?"
    missing = None
    # The workloads this tool takes part in (s6 only in the lifecycle).
    workloads = ("lifecycle", "logs", "crash", "supervisorctl")

    def version(self):
        return None

    def _require(self, daemon, missing_reason):
        """Marks the tool missing: for missing_reason, or when daemon is not executable."""
        if missing_reason:
            self.missing = missing_reason
        elif not os.access(daemon, os.X_OK):
            self.missing = f"not installed ({daemon} missing)"

    def launch(self, tdir, progs):
        argv = self.write_config(tdir, progs)
        out = open(os.path.join(tdir, "daemon.out"), "wb")
        err = open(os.path.join(tdir, "daemon.err"), "wb")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=tdir)
        finally:
            out.close()
            err.close()
        return Launched(self, tdir, proc)

    def write_config(self, tdir, progs):
        raise NotImplementedError

    # Descriptors the daemon keeps per program, with and without redirect_stderr.
    fds_per_program = (0, 0)

    def fds_needed(self, progs):
        """Descriptors the daemon needs for progs (a margin for its own included)."""
        return 64 + sum(p.numprocs * self.fds_per_program[0 if p.redirect_stderr else 1] for p in progs)

    def running(self, launched):
        """How many programs the tool itself reports RUNNING; None: it has no way to say."""
        return None

    def status_cli(self, launched):
        """argv of the tool's status command, or None."""
        return None

    def status_api(self, launched):
        """A callable doing one in-process status round trip, or None."""
        return None

    def self_reported_start(self, launched):
        """Seconds the daemon says starting its programs took, if it says so."""
        return None

    def daemon_log(self, launched):
        """Paths of the daemon's own logs, to show when a trial fails."""
        return [os.path.join(launched.dir, "daemon.err"), os.path.join(launched.dir, "daemon.out")]


class Nsvisor(Tool):
    name = "nsvisor"
    fds_per_program = (1, 2)  # the read end of each output pipe

    def __init__(self, bin_dir):
        self.daemon = os.path.join(bin_dir, "nsvisor")
        self.ctl = os.path.join(bin_dir, "nsvisorctl")
        for b in (self.daemon, self.ctl):
            if not os.access(b, os.X_OK):
                self.missing = f"{b} not built"

    def version(self):
        try:
            return subprocess.run([self.daemon, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return None

    def write_config(self, tdir, progs):
        sock = os.path.join(tdir, "nsvisor.sock")
        lines = ["[supervisor]", f"socket = {_toml_str(sock)}", ""]
        for p in progs:
            lines += [
                f"[programs.{p.name}]",
                "command = [" + ", ".join(_toml_str(w) for w in p.argv) + "]",
                f"numprocs = {p.numprocs}",
                "startsecs = 0",
                f'autorestart = "{"always" if p.autorestart else "never"}"',
                'stdout_console = "off"',
                'stderr_console = "off"',
                "stopwaitsecs = 10",
            ]
            if p.redirect_stderr:
                lines.append("redirect_stderr = true")
            if p.stdout_path:
                lines += [f"stdout_logfile = {_toml_str(p.stdout_path)}", "stdout_logfile_maxbytes = 0"]
            if p.nsvisor_toml:
                lines.append(p.nsvisor_toml)
            lines.append("")
        conf = os.path.join(tdir, "nsvisor.toml")
        with open(conf, "w") as f:
            f.write("\n".join(lines))
        return [self.daemon, "-c", conf]

    def self_reported_start(self, launched):
        # The daemon logs "spawned N programs in X ms" once the start-up spawns are done.
        try:
            with open(os.path.join(launched.dir, "daemon.err"), "rb") as f:
                text = re.sub(r"\x1b\[[0-9;]*m", "", f.read().decode(errors="replace"))
        except OSError:
            return None
        m = re.search(r"spawned \d+ programs in ([\d.]+) ms", text)
        return float(m.group(1)) / 1000 if m else None

    def _sock(self, launched):
        return os.path.join(launched.dir, "nsvisor.sock")

    def running(self, launched):
        try:
            status, body = clients.nsvisor_get(self._sock(launched), "/v1/programs")
        except OSError:
            return 0
        if status != 200 or not isinstance(body, list):
            return 0
        return sum(1 for p in body if p.get("state") == "RUNNING")

    def restarts(self, launched):
        _, body = clients.nsvisor_get(self._sock(launched), "/v1/programs")
        return sum(p.get("restarts", 0) for p in body)

    def status_cli(self, launched):
        return [self.ctl, "-s", self._sock(launched), "status"]

    def status_api(self, launched):
        sock = self._sock(launched)

        def call():
            status, body = clients.nsvisor_get(sock, "/v1/programs")
            if status != 200:
                raise RuntimeError(f"GET /v1/programs answered {status}")
            return len(body)

        return call


class Supervisord(Tool):
    name = "supervisord"
    fds_per_program = (2, 3)  # stdin, stdout (and stderr) pipes

    def __init__(self, venv_bin, missing_reason=None):
        self.daemon = os.path.join(venv_bin, "supervisord")
        self.ctl = os.path.join(venv_bin, "supervisorctl")
        self._require(self.daemon, missing_reason)

    def version(self):
        try:
            return "supervisord " + subprocess.run([self.daemon, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            return None

    def write_config(self, tdir, progs):
        # minfds is what supervisord insists on at start: what it needs, but
        # no more than it can get (a shortfall then shows as programs failing).
        minfds = min(max(1024, self.fds_needed(progs)), resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        conf = [
            "[unix_http_server]",
            f"file={tdir}/supervisor.sock",
            "[supervisord]",
            "nodaemon=true",
            f"logfile={tdir}/supervisord.log",
            f"pidfile={tdir}/supervisord.pid",
            f"childlogdir={tdir}",
            f"minfds={minfds}",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "[supervisorctl]",
            f"serverurl=unix://{tdir}/supervisor.sock",
        ]
        for p in progs:
            conf += [
                f"[program:{p.name}]",
                # supervisord expands %(...)s in commands: escape literal percent signs.
                "command=" + command_line(p.argv).replace("%", "%%"),
                f"numprocs={p.numprocs}",
                "process_name=%(program_name)s_%(process_num)d" if p.numprocs > 1 else "",
                "startsecs=0",
                f"autorestart={'true' if p.autorestart else 'false'}",
                "stopwaitsecs=10",
                f"stdout_logfile={p.stdout_path or 'NONE'}",
                "stdout_logfile_maxbytes=0",
                "stdout_logfile_backups=0",
                "stderr_logfile=NONE",
                "redirect_stderr=true" if p.redirect_stderr else "",
            ]
        path = os.path.join(tdir, "supervisord.conf")
        with open(path, "w") as f:
            f.write("\n".join(c for c in conf if c) + "\n")
        return [self.daemon, "-c", path]

    def running(self, launched):
        try:
            infos = clients.supervisord_proxy(os.path.join(launched.dir, "supervisor.sock")).supervisor.getAllProcessInfo()
        except (OSError, Exception):  # not listening yet, or still starting
            return 0
        return sum(1 for i in infos if i.get("statename") == "RUNNING")

    def status_cli(self, launched):
        return [self.ctl, "-c", os.path.join(launched.dir, "supervisord.conf"), "status"]

    def status_api(self, launched):
        proxy = clients.supervisord_proxy(os.path.join(launched.dir, "supervisor.sock"))

        def call():
            return len(proxy.supervisor.getAllProcessInfo())

        return call

    def daemon_log(self, launched):
        return [os.path.join(launched.dir, "supervisord.log")] + super().daemon_log(launched)


class Horust(Tool):
    name = "horust"

    def __init__(self, root, missing_reason=None):
        self.root = root
        self.daemon = os.path.join(root, "bin", "horust")
        self._require(self.daemon, missing_reason)

    def version(self):
        # horust 0.1.14 has no --version: read what cargo install recorded.
        try:
            with open(os.path.join(self.root, ".crates.toml")) as f:
                m = re.search(r'"horust (\S+)', f.read())
            return f"horust {m.group(1)}" if m else None
        except OSError:
            return None

    def write_config(self, tdir, progs):
        services = os.path.join(tdir, "services")
        os.makedirs(services, exist_ok=True)
        for p in progs:
            body = [f"command = {_toml_str(command_line(p.argv))}"]
            if p.stdout_path:
                # A size makes horust copy the output through a pipe (like the others)
                # instead of handing the file to the program; larger than the run's output.
                body += [f"stdout = {_toml_str(p.stdout_path)}", 'stdout-rotate-size = "64GB"']
            body += ["[restart]", f'strategy = "{"always" if p.autorestart else "never"}"', 'backoff = "0s"']
            body += ["[termination]", 'signal = "TERM"', 'wait = "10s"']
            text = "\n".join(body) + "\n"
            for i in range(p.numprocs):
                with open(os.path.join(services, f"{p.name}-{i}.toml"), "w") as f:
                    f.write(text)
        return [
            self.daemon,
            "--services-path",
            services,
            "--uds-folder-path",
            os.path.join(tdir, "uds"),
            "--config-path",
            os.path.join(tdir, "horust.toml"),
        ]


class S6(Tool):
    """s6 (skarnet.org): ``s6-svscan`` on a scan directory with one service
    directory per program; it starts one ``s6-supervise`` per service, which
    runs the service's ``run`` file (an execline script that execs the
    program). Its supervision tree is s6-svscan plus every s6-supervise."""

    name = "s6"
    workloads = ("lifecycle",)

    def __init__(self, missing_reason=None):
        self.daemon = shutil.which("s6-svscan") or "/usr/bin/s6-svscan"
        self.execlineb = shutil.which("execlineb") or "/usr/bin/execlineb"
        self._require(self.daemon, missing_reason)
        if not self.missing and not os.access(self.execlineb, os.X_OK):
            self.missing = f"not installed ({self.execlineb} missing)"

    def version(self):
        try:
            out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "s6"], capture_output=True, text=True, timeout=30)
            return f"s6 {out.stdout.strip()}" if out.returncode == 0 else "s6"
        except OSError:
            return "s6"

    def _services(self, launched):
        return os.path.join(launched.dir, "scan")

    def write_config(self, tdir, progs):
        scan = os.path.join(tdir, "scan")
        os.makedirs(scan, exist_ok=True)
        total = 0
        for p in progs:
            if p.stdout_path or p.autorestart:
                raise ValueError("the s6 adapter only runs plain long-running programs")
            # execlineb -P: no arguments; the script is one command line.
            script = f"#!{self.execlineb} -P\n{command_line(p.argv)}\n"
            for i in range(p.numprocs):
                sdir = os.path.join(scan, f"{p.name}-{i}")
                os.mkdir(sdir)
                run = os.path.join(sdir, "run")
                with open(run, "w") as f:
                    f.write(script)
                os.chmod(run, stat.S_IRWXU)
                total += 1
        # -c: how many services s6-svscan keeps (its default is lower than our N).
        return [self.daemon, "-c", str(total + 16), scan]

    @staticmethod
    def status_up(path):
        """Whether an s6-supervise status file says the service is up, read as
        s6-svstat reads it (s6 2.11: 12-byte stamp, 12-byte ready stamp,
        64-bit pid, 16-bit wait status, flags: bit 1 = finishing); None when
        it cannot be read yet."""
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError:
            return None
        if len(raw) < 35:
            return None
        pid = int.from_bytes(raw[24:32], "big")
        return pid != 0 and not raw[34] & 0x02

    def running(self, launched):
        scan = self._services(launched)
        state = launched.extra.setdefault("up", set())
        for name in os.listdir(scan):
            if name in state or name.startswith("."):
                continue
            if self.status_up(os.path.join(scan, name, "supervise", "status")):
                state.add(name)
        return len(state)

    def check_status_reading(self, launched):
        """s6-svstat's own answer for one service, to prove status_up reads the file right."""
        scan = self._services(launched)
        first = min(name for name in os.listdir(scan) if not name.startswith("."))
        out = subprocess.run(["s6-svstat", "-o", "up", os.path.join(scan, first)], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() == "true"
