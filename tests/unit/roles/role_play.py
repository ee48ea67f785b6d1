"""Run a role in ansible-playbook without a cluster, for tests of what the role checks before any module runs."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
COLLECTIONS = ROOT / ".build" / "collections"
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def run_role(tmp_path, role, variables, tags=None):
    """ansible-playbook on a one-task play importing the role with these variables: (return code, output).
    `tags` selects tasks (the argument validation is tagged always). KUBECONFIG names a missing file, so a run
    that got past the role's asserts would fail at its first module rather than reach a cluster."""
    play = [
        {
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "tasks": [{"ansible.builtin.import_role": {"name": "istio_ops.gateways." + role}, "vars": variables}],
        }
    ]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(play))
    env = dict(
        os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0"
    )
    env["KUBECONFIG"] = str(tmp_path / "no-kubeconfig")
    done = subprocess.run(
        [str(PLAYBOOK), "-i", "localhost,", str(path)] + (["--tags", tags] if tags else []),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr
