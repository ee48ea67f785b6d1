"""Run collection modules the way users do: one-task playbooks through ansible-playbook.

Each call writes a playbook, runs it with the JSON stdout callback and returns
the task's registered result, so tests see exactly what a user's play sees
(argument checking, no_log, check and diff mode, module_defaults).
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".build" / "collections"


class AnsibleRunner:
    def __init__(self, kubeconfig, extra_env=None):
        self.kubeconfig = str(kubeconfig)
        self.extra_env = dict(extra_env or {})

    def env(self, **overrides):
        env = dict(os.environ)
        env.update(
            ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
            ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
            ANSIBLE_STDOUT_CALLBACK="task_results",
            ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).resolve().parent / "callback_plugins"),
            ANSIBLE_LOCALHOST_WARNING="false",
            ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
            ANSIBLE_PYTHON_INTERPRETER=sys.executable,
            ANSIBLE_NOCOLOR="1",
            K8S_AUTH_KUBECONFIG=self.kubeconfig,
        )
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def playbook(self, text, extra_vars=None, env=None, verbosity=0, check=False, inventory="localhost,", args=()):
        """Run a playbook given as YAML text; return (returncode, parsed JSON output, raw stdout+stderr)."""
        with tempfile.TemporaryDirectory(prefix="istio-ops-it-") as tmp:
            path = Path(tmp) / "play.yml"
            path.write_text(text)
            argv = [
                str(Path(sys.executable).parent / "ansible-playbook"),
                "-i",
                str(inventory),
                "-c",
                "local",
                str(path),
            ]
            if extra_vars:
                vars_path = Path(tmp) / "vars.json"
                vars_path.write_text(json.dumps(extra_vars))
                argv += ["-e", "@" + str(vars_path)]
            if check:
                argv.append("--check")
            if verbosity:
                argv.append("-" + "v" * verbosity)
            argv += list(args)
            proc = subprocess.run(
                argv, capture_output=True, text=True, env=self.env(**(env or {})), timeout=900, check=False
            )
        raw = proc.stdout + proc.stderr
        documents = [line for line in proc.stdout.splitlines() if line.startswith('{"tasks"')]
        parsed = json.loads(documents[-1]) if documents else None
        return proc.returncode, parsed, raw

    def module(self, name, args=None, check=False, diff=False, env=None):
        """Run one module task; return its result dict (failed results included, never raised)."""
        return self.modules(name, args, [(check, diff)], env=env)[0]

    def modules(self, name, args, steps, env=None):
        """Run the module once per (check, diff) step, as tasks of one playbook (one ansible-playbook start, which
        costs the machine more than most module runs); return the results in order, failed ones included."""
        tasks = [
            {
                "name": "under test %d" % index,
                "istio_ops.gateways." + name: args or {},
                "check_mode": check,
                "diff": diff,
                "register": "result",
                "ignore_errors": True,
            }
            for index, (check, diff) in enumerate(steps)
        ]
        play = [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]
        rc, parsed, raw = self.playbook(yaml.safe_dump(play), env=env)
        if parsed is None or len(parsed["tasks"]) != len(steps):
            raise AssertionError("ansible-playbook produced no JSON for every step (rc=%s):\n%s" % (rc, raw[-4000:]))
        results = [task["hosts"]["localhost"] for task in parsed["tasks"]]
        for result in results:
            result["_raw"] = raw
        return results

    def role(self, name, role_vars, check=False, diff=False, env=None):
        """Run one of the collection's roles as users include it; return the run's outcome: `failed` and `msg` (of
        the first failed task), `changed` (any task changed something) and `tasks` (each task's result by name,
        a loop's results under `results`)."""
        task = {"name": "role under test", "ansible.builtin.include_role": {"name": "istio_ops.gateways." + name}}
        task["vars"] = role_vars
        play = [{"hosts": "localhost", "gather_facts": False, "diff": diff, "tasks": [task]}]
        rc, parsed, raw = self.playbook(yaml.safe_dump(play), env=env, check=check)
        if parsed is None:
            raise AssertionError("ansible-playbook produced no JSON (rc=%s):\n%s" % (rc, raw[-4000:]))
        # By the name the role gives them, without the "<collection>.<role> : " Ansible puts before it.
        tasks = {task["name"].split(" : ", 1)[-1]: task["hosts"]["localhost"] for task in parsed["tasks"]}
        failed = [result for result in tasks.values() if result.get("failed")]
        # A loop's failure says "One or more items failed": its failed items say why.
        reasons = [item.get("msg") for item in (failed[0].get("results") or []) if item.get("failed")] if failed else []
        return {
            "failed": rc != 0,
            "msg": "; ".join(reasons) or failed[0].get("msg") if failed else (raw[-4000:] if rc else None),
            "changed": parsed["stats"]["localhost"]["changed"] > 0,
            "tasks": tasks,
            "_raw": raw,
        }

    def four_steps(self, name, args):
        """Check mode, real, check again, real again: the results, for the changed/changed/not/not pattern."""
        return self.modules(name, args, [(True, True), (False, True), (True, True), (False, False)])


def assert_four_steps(results):
    for index, result in enumerate(results):
        assert not result.get("failed"), "step %d failed: %s" % (index, result.get("msg"))
    assert [r["changed"] for r in results] == [True, True, False, False], [r.get("objects") for r in results]
