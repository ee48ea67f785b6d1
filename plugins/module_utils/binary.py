# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the collection runs a binary (istioctl, helm): argument lists, a timeout, the module's connection.

- Never a shell; every run has a timeout, after which the process group is killed and the error says so.
- The binary reaches the cluster the Python client reaches (connection.py decides: the user's own
  kubeconfig and context, or a 0600 kubeconfig written from the resolved connection, with the proxy
  environment removed so that only that kubeconfig decides).
- Private files (that kubeconfig, with its token; rendered specs) live in a 0700 directory under the
  module's own temporary directory, which Ansible removes after the task even when the module is
  killed. SIGTERM and SIGHUP (an AWX job cancel) become a clean failure: the running binary's process
  group is killed and the directory removed before the module exits.
"""

import atexit
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from ansible_collections.istio_ops.gateways.plugins.module_utils import connection
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import GatewayError

DEFAULT_TIMEOUT = 120  # seconds, for commands that only read or render


def kill_after(wait):
    """Seconds after which a command that waits `wait` seconds itself (e.g. --readiness-timeout) is killed."""
    wait = int(wait or DEFAULT_TIMEOUT)
    return wait + min(60, max(10, wait))


_PRIVATE_DIRS = []  # every private directory of this process, removed on exit and on SIGTERM/SIGHUP
_RUNNING = set()  # Popen objects of binaries running now
_HANDLERS = {}


class BinaryError(GatewayError):
    def __init__(self, message, command=None, rc=None, stdout="", stderr=""):
        super(BinaryError, self).__init__(message, command=command, rc=rc, stdout=stdout, stderr=stderr)


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def run_process(argv, env, timeout):
    """(rc, stdout, stderr) of argv in a session of its own; rc None when it was killed after `timeout` s."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group, so a kill reaches what it started too
        close_fds=True,
    )
    _RUNNING.add(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        rc = None
    finally:
        _RUNNING.discard(proc)
    return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def cleanup_all():
    """Kill running binaries and remove every private directory (at exit and on SIGTERM/SIGHUP)."""
    for proc in list(_RUNNING):
        _kill_group(proc)
    while _PRIVATE_DIRS:
        shutil.rmtree(_PRIVATE_DIRS.pop(), ignore_errors=True)


atexit.register(cleanup_all)


def install_signal_handlers(module):
    """SIGTERM/SIGHUP: kill what runs, remove private files, fail the task saying why (once per process)."""

    def on_signal(signum, _frame):
        cleanup_all()
        name = signal.Signals(signum).name
        module.fail_json(
            msg="interrupted by %s (a job cancel?): the running command was stopped and temporary credentials "
            "removed; run again to converge" % name,
            signal=name,
        )

    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signum not in _HANDLERS:
            _HANDLERS[signum] = signal.signal(signum, on_signal)


def _describe_end(name, args, rc, timeout):
    what = "%s %s" % (name, " ".join(args[:2]))
    if rc is None:
        return "%s did not finish within %ss and was killed (with everything it started)" % (what, timeout)
    if rc < 0:
        return "%s was killed by signal %s" % (what, signal.Signals(-rc).name)
    return "%s failed (rc=%s)" % (what, rc)


class Binary(object):
    """One binary, run against the module's cluster. Subclasses name it and add its commands."""

    name = None  # the executable's name on PATH
    install_hint = ""  # how to get it, for the error when it is missing
    path_option = "binary_path"  # the module option that points at it
    error_class = BinaryError

    def __init__(self, module, kube, binary_path=None):
        self.module = module
        self.kube = kube
        self.path = self._find(binary_path)
        self.commands = []  # what ran, for the result
        base = getattr(module, "tmpdir", None)  # the task's own temporary directory, which Ansible removes
        self._tmpdir = tempfile.mkdtemp(prefix="istio_ops_", dir=base)  # 0700
        _PRIVATE_DIRS.append(self._tmpdir)
        self._kube_args = None
        self._passthrough = connection.passes_through(kube.params)

    def _find(self, binary_path):
        if binary_path:
            if not (os.path.isfile(binary_path) and os.access(binary_path, os.X_OK)):
                raise self.error_class(
                    "%s: %r is not an executable file; point it at a %s binary%s"
                    % (self.path_option, binary_path, self.name, self.install_hint)
                )
            return binary_path
        found = self.module.get_bin_path(self.name)
        if not found:
            raise self.error_class(
                "%s: %s was not found on PATH; install it%s or set %s"
                % (self.path_option, self.name, self.install_hint, self.path_option)
            )
        return found

    def cleanup(self):
        shutil.rmtree(self._tmpdir, ignore_errors=True)
        if self._tmpdir in _PRIVATE_DIRS:
            _PRIVATE_DIRS.remove(self._tmpdir)

    def kube_args(self):
        """--kubeconfig (and --context) for the resolved connection, then impersonation."""
        if self._kube_args is None:
            params = self.kube.params
            if self._passthrough:
                args = connection.passthrough_args(params)
            else:
                path = os.path.join(self._tmpdir, "kubeconfig")
                if os.path.exists(path):
                    os.unlink(path)
                write_private(path, json.dumps(connection.binary_kubeconfig(self.kube.configuration)))
                args = ["--kubeconfig", path]
            self._kube_args = args + connection.impersonation_args(params)
        return list(self._kube_args)

    def write_file(self, name, text):
        """A 0600 file in the runner's private directory (rendered specs, values)."""
        path = os.path.join(self._tmpdir, name)
        if os.path.exists(path):
            os.unlink(path)
        write_private(path, text)
        return path

    def environment(self):
        env = dict(os.environ)
        for name in connection.binary_environment(self._passthrough):
            env.pop(name, None)
        return env

    def run(self, args, timeout=DEFAULT_TIMEOUT, kube=True):
        """Run the binary with args (and the connection's flags); return stdout. Raise on failure or timeout."""
        command = [self.path] + list(args) + (self.kube_args() if kube else [])
        started = time.monotonic()
        rc, out, err = run_process(command, self.environment(), timeout)
        self.commands.append({"argv": command, "rc": rc, "seconds": round(time.monotonic() - started, 3)})
        if rc != 0:
            raise self.error_class(
                "%s: %s" % (_describe_end(self.name, args, rc, timeout), (err or out).strip()[-2000:] or "no output"),
                command=command,
                rc=rc,
                stdout=out,
                stderr=err,
            )
        return out
