"""Install the peer collections (`make peers`): kubernetes.core, taken from the pinned `ansible` package.

Users compare this collection with kubernetes.core, so the tests and the benchmark run it too. The whole
`ansible` package would bring ~100 collections and its own ansible-core, so pip downloads its wheel only
(pins.txt: version and hash), the collections in PEERS are extracted into the cache, keyed by the version,
and linked into .build/collections, where ANSIBLE_COLLECTIONS_PATH points. A complete cache only checks
the links. kubernetes.core depends on no other collection (MANIFEST.json); its Python requirements
(kubernetes, requests-oauthlib, jsonpatch) are in requirements-dev.txt.
"""

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from tests.testbed.common import REPO_ROOT, cache_root, fmt_elapsed, log

PINS = Path(__file__).resolve().with_name("pins.txt")
# awx.awx: docs/awx/controller.yml (job templates and surveys as code) is syntax-checked and linted against it.
PEERS = ["kubernetes/core", "awx/awx"]
LINK_ROOT = REPO_ROOT / ".build" / "collections" / "ansible_collections"


def say(msg):
    log(msg, source="peers")


def pinned_version(pins=PINS):
    """The version in the `ansible==X` line of pins.txt."""
    match = re.search(r"^ansible==(\S+)", pins.read_text(), re.MULTILINE)
    if not match:
        raise SystemExit(f"{pins}: no ansible==VERSION line")
    return match.group(1)


def download_wheel(version, dest):
    """The pinned wheel into DEST, checked against the hash in pins.txt; its path."""
    say(f"downloading ansible {version} (one wheel, ~54 MB, no dependencies)")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--progress-bar=off"]
        + ["--disable-pip-version-check", "--require-hashes", "-r", str(PINS), "-d", str(dest)],
        check=True,
    )
    [wheel] = dest.glob(f"ansible-{version}-*.whl")
    return wheel


def extract(wheel, collection, dest):
    """Only ansible_collections/NS/NAME/ of the wheel, into DEST; the number of files."""
    prefix = f"ansible_collections/{collection}/"
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.startswith(prefix) and not m.endswith("/")]
        if not members:
            raise SystemExit(f"{wheel.name} has no {prefix}")
        for member in members:
            if ".." in Path(member).parts:
                raise SystemExit(f"{wheel.name}: refusing member {member}")
            target = dest / member[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
    return len(members)


def fill_cache(entry, version, missing):
    """Extract the MISSING collections into ENTRY; each appears there only once complete (a rename)."""
    entry.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="download-", dir=entry) as tmp:
        wheel = download_wheel(version, Path(tmp))
        for collection in missing:
            partial = Path(tmp) / collection
            count = extract(wheel, collection, partial)
            final = entry / "ansible_collections" / collection
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(partial, final)
            say(f"extracted {collection.replace('/', '.')} {manifest_version(final)} ({count} files) into {final}")


def manifest_version(path):
    return json.loads((path / "MANIFEST.json").read_text())["collection_info"]["version"]


def link(collection, target):
    """.build/collections/ansible_collections/NS/NAME -> TARGET; a directory there is not ours to replace."""
    path = LINK_ROOT / collection
    if path.is_symlink():
        if path.readlink() == target:
            return False
        path.unlink()
    elif path.exists():
        raise SystemExit(f"{path} exists and is not a link; remove it so `make peers` can link {target}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return True


def main():
    start = time.monotonic()
    version = pinned_version()
    entry = cache_root() / "peers" / f"ansible-{version}"
    entry.mkdir(parents=True, exist_ok=True)
    with open(entry / "lock", "w") as lock:  # the cache is shared by every checkout of the user
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = [c for c in PEERS if not (entry / "ansible_collections" / c / "MANIFEST.json").exists()]
        if missing:
            for leftover in entry.glob("download-*"):  # of a run that was killed
                shutil.rmtree(leftover, ignore_errors=True)
            fill_cache(entry, version, missing)
    for collection in PEERS:
        target = entry / "ansible_collections" / collection
        name = "%s %s" % (collection.replace("/", "."), manifest_version(target))
        state = "linked" if link(collection, target) else "up to date"
        origin = "downloaded" if collection in missing else "cached"
        say(f"{name} from ansible {version} ({origin}): {state} in {LINK_ROOT / collection}")
    say(f"done in {fmt_elapsed(time.monotonic() - start)}")


if __name__ == "__main__":
    main()
