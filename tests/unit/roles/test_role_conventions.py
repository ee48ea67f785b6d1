"""Role conventions: argument specs in step with defaults, every variable prefixed, no shell where a module exists."""

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[3] / "roles"
ROLE_NAMES = sorted(p.name for p in ROLES.iterdir() if (p / "tasks" / "main.yml").exists())


def load(path):
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_argument_specs_match_defaults(role):
    defaults = load(ROLES / role / "defaults" / "main.yml")
    options = load(ROLES / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    # A required variable has no default (the caller must name it); every other one has exactly one.
    required = sorted(name for name, spec in options.items() if spec.get("required"))
    assert not set(required) & set(defaults), "required variables %s must not have defaults" % required
    assert sorted(defaults) == sorted(set(options) - set(required)), (
        "defaults/main.yml and meta/argument_specs.yml list other variables"
    )
    for name in required:
        assert "default" not in options[name], "%s is required and documents a default" % name
        assert options[name].get("description"), "%s has no description" % name
    for name, value in defaults.items():
        assert options[name].get("default") == value, "%s: default %r documented as %r" % (
            name,
            value,
            options[name].get("default"),
        )
        assert options[name].get("description"), "%s has no description" % name


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_public_variables_are_prefixed_with_the_role_name(role):
    for name in load(ROLES / role / "defaults" / "main.yml"):
        assert name.startswith(role + "_"), name


def tasks_in(items):
    """Every task, blocks (block/rescue/always) included."""
    for task in items or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from tasks_in(task.get(key))


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_no_shell_or_command_tasks(role):
    for path in (ROLES / role / "tasks").glob("*.yml"):
        for task in tasks_in(yaml.safe_load(path.read_text())):
            used = set(task) & {"ansible.builtin.shell", "ansible.builtin.command", "shell", "command"}
            assert not used, "%s: %s uses %s" % (path.name, task.get("name"), used)


def test_every_role_has_a_molecule_scenario():
    scenarios = ROLES.parent / "extensions" / "molecule"
    assert all((scenarios / role / "molecule.yml").exists() for role in ROLE_NAMES)
