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


DYNAMIC_INCLUDES = ("ansible.builtin.include_tasks", "include_tasks", "ansible.builtin.include_role", "include_role")


@pytest.mark.parametrize(
    "path",
    sorted(ROLES.glob("*/tasks/*.yml")) + sorted((ROLES.parent / "playbooks").rglob("*.yml")),
    ids=lambda p: str(p.relative_to(ROLES.parent)),
)
def test_tags_on_a_dynamic_include_reach_what_it_includes(path):
    """A tag on include_tasks / include_role selects the include alone: `--tags` would run it and skip every task
    it includes. Its tags must be in `apply` too."""
    document = yaml.safe_load(path.read_text()) or []
    plays = [item for item in document if isinstance(item, dict)]
    tasks = [t for item in plays for key in ("tasks", "pre_tasks", "post_tasks") for t in item.get(key) or []]
    for task in tasks_in(tasks if "hosts" in (plays[0] if plays else {}) else plays):
        action = next((key for key in DYNAMIC_INCLUDES if key in task), None)
        if action and task.get("tags"):
            applied = (task[action].get("apply") or {}).get("tags") if isinstance(task[action], dict) else None
            assert set(task["tags"]) <= set(applied or []), "%s: %r has tags %s but apply.tags %s" % (
                path.name,
                task.get("name"),
                task["tags"],
                applied,
            )
