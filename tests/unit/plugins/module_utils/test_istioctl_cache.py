import os
import stat

import pytest

from ansible_collections.istio_ops.gateways.plugins.module_utils.istioctl import CACHE_ENV, Istioctl, OutputCache


def test_round_trip_private_files(tmp_path):
    cache = OutputCache(str(tmp_path / "cache"))
    key = cache.key("manifest", ["/bin/istioctl", 1, 2, 3], "iop", "v1.35.4")
    assert cache.get(key) is None
    cache.put(key, [{"kind": "Service"}])
    assert cache.get(key) == [{"kind": "Service"}]
    assert stat.S_IMODE(os.stat(tmp_path / "cache").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "cache" / (key + ".json")).st_mode) == 0o600


def test_key_changes_with_every_input():
    base = ("manifest", ["/bin/istioctl", 1, 2, 3], "iop", "v1.35.4")
    keys = {OutputCache.key(*base)}
    for index in range(1, len(base)):
        changed = list(base)
        changed[index] = "other"
        keys.add(OutputCache.key(*changed))
    assert len(keys) == len(base)


def test_off_switch_disables_reads_and_writes(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = OutputCache()
    cache.put("k", {"a": 1})
    assert cache.get("k") is None and not list(tmp_path.iterdir())


def test_unwritable_directory_is_skipped(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = OutputCache(str(blocker / "cache"))
    cache.put("k", {"a": 1})  # no exception: the command simply runs uncached
    assert cache.get("k") is None


# -- trust (issue 12, item 7) -------------------------------------------------------------------------------
def filled_cache(tmp_path, warnings=None):
    cache = OutputCache(str(tmp_path / "cache"), warn=(warnings.append if warnings is not None else None))
    cache.put("k", {"objects": [{"kind": "Service"}]})
    return cache


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777, 0o720])
def test_group_or_world_writable_directory_is_refused(tmp_path, mode):
    filled_cache(tmp_path)
    os.chmod(tmp_path / "cache", mode)
    warnings = []
    cache = OutputCache(str(tmp_path / "cache"), warn=warnings.append)
    assert cache.get("k") is None
    assert "writable by group or others" in warnings[0] and CACHE_ENV in warnings[0]
    cache.put("k2", {"a": 1})  # refused for the rest of the run: nothing written either
    assert not (tmp_path / "cache" / "k2.json").exists() and len(warnings) == 1


def test_directory_of_another_user_is_refused(tmp_path, monkeypatch):
    filled_cache(tmp_path)
    monkeypatch.setattr(os, "getuid", lambda: os.stat(tmp_path).st_uid + 1)
    warnings = []
    assert OutputCache(str(tmp_path / "cache"), warn=warnings.append).get("k") is None
    assert "belongs to uid" in warnings[0] and "not to the user running the module" in warnings[0]


def test_writable_entry_is_refused_but_others_are_used(tmp_path):
    warnings = []
    cache = filled_cache(tmp_path, warnings)
    cache.put("good", {"objects": []})
    os.chmod(tmp_path / "cache" / "k.json", 0o666)
    assert cache.get("k") is None and "entry" in warnings[0] and "mode 0666" in warnings[0]
    assert cache.get("good") == {"objects": []}


def test_entry_of_another_user_is_refused(tmp_path, monkeypatch):
    warnings = []
    cache = filled_cache(tmp_path, warnings)
    real_fstat = os.fstat

    def foreign_fstat(fd):
        result = real_fstat(fd)
        return os.stat_result(
            (result.st_mode, result.st_ino, result.st_dev, result.st_nlink, result.st_uid + 1) + tuple(result)[5:]
        )

    monkeypatch.setattr(os, "fstat", foreign_fstat)
    assert cache.get("k") is None and "belongs to uid" in warnings[0]


def test_symlinked_entry_is_not_followed(tmp_path):
    cache = filled_cache(tmp_path)
    planted = tmp_path / "planted.json"
    planted.write_text('{"objects": []}')
    os.symlink(planted, tmp_path / "cache" / "evil.json")
    assert cache.get("evil") is None


class RenderingIstioctl(Istioctl):
    """Istioctl with a stub run() and a fixed cache key: only manifest_generate is under test."""

    def __init__(self, cache):
        self.cache = cache
        self.cached = []
        self.runs = []
        self.last_render_cached = False

    def _manifest_key(self, iop_path):
        return "render"

    def run(self, args, **kwargs):
        self.runs.append(args)
        return "apiVersion: v1\nkind: Service\nmetadata: {name: gw, namespace: ns}\n"


def test_render_without_cache_runs_istioctl_and_refreshes_a_planted_entry(tmp_path):
    cache = OutputCache(str(tmp_path / "cache"))
    cache.put("render", {"objects": []})  # planted: "the gateway has no objects"
    runner = RenderingIstioctl(cache)
    assert runner.manifest_generate("iop.yaml") == [] and runner.last_render_cached and runner.runs == []
    fresh = runner.manifest_generate("iop.yaml", use_cache=False)
    assert [o["kind"] for o in fresh] == ["Service"] and not runner.last_render_cached and len(runner.runs) == 1
    assert cache.get("render") == {"objects": fresh}


@pytest.mark.parametrize("entry", [{"objects": "x"}, {"objects": [1]}, ["a"], {"other": []}])
def test_a_malformed_entry_is_ignored(tmp_path, entry):
    cache = OutputCache(str(tmp_path / "cache"))
    cache.put("render", entry)
    runner = RenderingIstioctl(cache)
    assert [o["kind"] for o in runner.manifest_generate("iop.yaml")] == ["Service"] and len(runner.runs) == 1
