import os
import stat

from ansible_collections.istio_ops.gateways.plugins.module_utils.istioctl import CACHE_ENV, OutputCache


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
