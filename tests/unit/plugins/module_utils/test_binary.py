"""The binary runner: argument lists with a timeout that kills the whole process group, messages that say how a
command ended, private files under the task's temporary directory, and SIGTERM/SIGHUP as a clean exit."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils import binary

ROOT = Path(__file__).resolve().parents[4]


class TaskModule(object):
    """What Binary uses of AnsibleModule: get_bin_path and the task's temporary directory."""

    def __init__(self, path, tmpdir):
        self.path = path
        self.tmpdir = tmpdir

    def get_bin_path(self, name):
        return self.path


class Kube(object):
    params = {"kubeconfig": "/dev/null/kubeconfig"}


def script(tmp_path, body):
    path = tmp_path / "tool"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with open("/proc/%d/stat" % pid) as handle:
        return handle.read().split()[2] != "Z"


def test_timeout_kills_the_process_group(tmp_path):
    pid_file = tmp_path / "child.pid"
    tool = script(tmp_path, "sleep 60 &\necho $! > %s\nwait\n" % pid_file)
    started = time.monotonic()
    rc, _out, _err = binary.run_process([tool], dict(os.environ), timeout=1)
    assert rc is None and time.monotonic() - started < 10
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the binary's own child survived the kill"


def test_errors_say_how_the_command_ended():
    for rc, expected in (
        (None, "tool install -y did not finish within 3s and was killed (with everything it started)"),
        (-9, "tool install -y was killed by signal SIGKILL"),
        (2, "tool install -y failed (rc=2)"),
    ):
        assert binary._describe_end("tool", ["install", "-y"], rc, 3) == expected


def test_private_files_live_under_the_task_directory_and_go_away(tmp_path):
    task_tmp = tmp_path / "task"
    task_tmp.mkdir()
    tool = script(tmp_path, "exit 0\n")

    class Tool(binary.Binary):
        name = "tool"

    runner = Tool(TaskModule(tool, str(task_tmp)), Kube())
    path = runner.write_file("spec.yaml", "x: 1\n")
    assert Path(path).parent.parent == task_tmp and oct(os.stat(path).st_mode & 0o777) == "0o600"
    runner.cleanup()
    assert not Path(path).parent.exists()


def test_a_failing_binary_names_itself_and_its_output(tmp_path):
    class Tool(binary.Binary):
        name = "tool"

    runner = Tool(TaskModule(script(tmp_path, "echo broken >&2\nexit 3\n"), str(tmp_path)), Kube())
    with pytest.raises(binary.BinaryError) as err:
        runner.run(["install"], kube=False, timeout=10)
    assert err.value.message == "tool install failed (rc=3): broken"
    runner.cleanup()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_kill_the_binary_and_remove_private_files(tmp_path, signum):
    """A module process, cancelled while its binary runs, leaves neither the binary nor its files behind."""
    pid_file = tmp_path / "tool.pid"
    tool = script(tmp_path, "echo $$ > %s\nsleep 60\n" % pid_file)
    program = textwrap.dedent(
        """
        import json, sys
        sys.path[:0] = [%(root)r, %(collections)r]
        from ansible_collections.istio_ops.gateways.plugins.module_utils import binary

        class Module(object):
            tmpdir = %(tmp)r
            def get_bin_path(self, name):
                return %(tool)r
            def fail_json(self, **result):
                print(json.dumps(result)); sys.stdout.flush(); sys.exit(1)

        class Kube(object):
            params = {"host": "https://127.0.0.1:1", "api_key": "secret-token"}
            class configuration(object):
                host, verify_ssl, ssl_ca_cert, tls_server_name, proxy = "https://127.0.0.1:1", True, None, None, None
                cert_file = key_file = username = password = None
                @staticmethod
                def get_api_key_with_prefix(*a, **k):
                    return "Bearer secret-token"

        class Tool(binary.Binary):
            name = "tool"

        module = Module()
        binary.install_signal_handlers(module)
        runner = Tool(module, Kube())
        print(json.dumps({"dir": runner._tmpdir, "kube": runner.kube_args()})); sys.stdout.flush()
        runner.run(["install"], timeout=60)
        """
    ) % {
        "root": str(ROOT),
        "collections": str(ROOT / ".build" / "collections"),
        "tmp": str(tmp_path),
        "tool": tool,
    }
    proc = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True)
    first = json.loads(proc.stdout.readline())
    kubeconfig = first["kube"][1]
    assert os.path.exists(kubeconfig) and "secret-token" in Path(kubeconfig).read_text()
    deadline = time.monotonic() + 60  # a loaded CI machine can be slow to start the tool
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid_file.exists(), "the tool never started"
    proc.send_signal(signum)
    out, _err = proc.communicate(timeout=20)
    result = json.loads(out.strip().splitlines()[-1])
    assert proc.returncode == 1 and result["signal"] == signal.Signals(signum).name
    assert "interrupted by %s" % signal.Signals(signum).name in result["msg"]
    assert not os.path.exists(first["dir"]), "the private directory (with the token) survived"
    tool_pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while alive(tool_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(tool_pid), "the binary survived the cancel"
