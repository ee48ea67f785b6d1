# Copyright: istio_ops.gateways contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one istioctl runner of the collection.

How it runs (argument lists, timeouts, the module's connection, private
files, job cancels) is binary.Binary's; this file adds istioctl's commands.

What istioctl prints without changing anything is cached on disk (see
OutputCache): its version, and `manifest generate`, which a converged run
would otherwise spend most of its time on.
"""

import hashlib
import json
import os
import re
import tempfile
import time
from stat import S_IMODE, S_ISDIR, S_ISREG, S_IWGRP, S_IWOTH

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - reported by the module
    HAS_YAML = False

from ansible_collections.istio_ops.gateways.plugins.module_utils.binary import (
    DEFAULT_TIMEOUT,
    Binary,
    BinaryError,
    kill_after,
)
from ansible_collections.istio_ops.gateways.plugins.module_utils.errors import GatewayError

_VERSION_RE = re.compile(r"(\d+)\.(\d+)")
# A line of istioctl's own log (timestamp, tab, level, tab), which some commands print on stdout among the YAML.
_LOG_LINE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T[0-9:.]+Z?\t(debug|info|warn|warning|error|fatal)\t")

# ISTIO_OPS_GATEWAYS_CACHE: a directory for the cache, or "off"; default $XDG_CACHE_HOME (~/.cache)/istio-ops-gateways.
CACHE_ENV = "ISTIO_OPS_GATEWAYS_CACHE"
CACHE_MAX_AGE = 30 * 24 * 3600  # entries unused this long are removed when a new one is written
# Environment istioctl reads while rendering (operator/pkg/render: GKE detection); part of the cache key.
_RENDER_ENV = ("AUTO_GKE_DETECTION",)


class IstioctlError(BinaryError):
    pass


def major_minor(version):
    """(major, minor) of an Istio version string such as 1.30.2 or 1.31-alpha.abc, or None."""
    match = _VERSION_RE.search(version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


class OutputCache(object):
    """istioctl output on disk, keyed by everything that output depends on.

    A scheduled run of a converged gateway renders the same IstioOperator with the same istioctl against
    the same cluster every time; `manifest generate` then costs a process start and a chart render for an
    answer already known. An entry's key is a SHA-256 of the istioctl binary's identity (real path,
    size, mtime, inode), the command's inputs and, for renders, the API server's version (the only thing
    `--cluster-specific` reads that changes the output; its CNI checks only warn). Entries are 0600 JSON
    files in a 0700 directory, written atomically, so parallel runs share them safely. A cache that
    cannot be read or written is skipped: the command runs as it always did.

    Whoever can write to the directory decides what a cached render says, so a directory (or an entry)
    that is not the current user's, or that group or others may write to, is not used: `warn` is told
    why and istioctl runs instead.
    """

    def __init__(self, directory=None, warn=None):
        setting = os.environ.get(CACHE_ENV, "")
        if directory is None and setting.lower() not in ("off", "false", "no", "0"):
            base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
            directory = os.path.expanduser(setting) if setting else os.path.join(base, "istio-ops-gateways")
        self.directory = directory
        self.refused = []  # why the directory or an entry was not trusted
        self._warn = warn
        self._trusted = False  # the directory passed the owner and mode checks

    @staticmethod
    def key(*parts):
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()

    @staticmethod
    def untrusted(info, what):
        """Why a file with this os.stat result must not decide istioctl's output, or None."""
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            return "%s belongs to uid %d, not to the user running the module (uid %d)" % (
                what,
                info.st_uid,
                os.getuid(),
            )
        if info.st_mode & (S_IWGRP | S_IWOTH):
            return "%s is writable by group or others (mode %04o)" % (what, S_IMODE(info.st_mode))
        return None

    def _refuse(self, why):
        self.refused.append(why)
        if self._warn:
            self._warn(
                "istioctl output cache not used: %s; istioctl runs instead. Make it private (owned by this user, "
                "chmod go-w) or set %s to a private directory, or to off" % (why, CACHE_ENV)
            )

    def _directory_trusted(self):
        """Whether the directory exists and is safe; an unsafe one is refused for the rest of the run."""
        if self._trusted:
            return True
        try:
            info = os.stat(self.directory)
        except OSError:
            return False  # not made yet: nothing to read; put() creates it
        directory = "directory " + self.directory
        problem = self.untrusted(info, directory) if S_ISDIR(info.st_mode) else directory + " is not a directory"
        if problem:
            self._refuse(problem)
            self.directory = None
            return False
        self._trusted = True
        return True

    def get(self, key):
        if not self.directory or not self._directory_trusted():
            return None
        path = os.path.join(self.directory, key + ".json")
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        try:
            with os.fdopen(fd) as handle:
                info = os.fstat(handle.fileno())
                entry = "entry " + path
                problem = self.untrusted(info, entry) if S_ISREG(info.st_mode) else entry + " is not a regular file"
                if problem:
                    self._refuse(problem)
                    return None
                value = json.load(handle)
            os.utime(path)  # recently used: keep it past the age limit
            return value
        except (OSError, ValueError):
            return None

    def put(self, key, value):
        if not self.directory:
            return
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):  # e.g. a YAML timestamp; not worth caching
            return
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            if not self._directory_trusted():
                return
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")  # 0600
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.replace(tmp, os.path.join(self.directory, key + ".json"))
            self._prune()
        except OSError:
            pass

    def _prune(self):
        cutoff = time.time() - CACHE_MAX_AGE
        for name in os.listdir(self.directory):
            path = os.path.join(self.directory, name)
            try:
                if os.path.getmtime(path) < cutoff:
                    os.unlink(path)
            except OSError:
                pass


class Istioctl(Binary):
    """Runs one istioctl binary against the module's cluster."""

    name = "istioctl"
    install_hint = " whose version matches the control plane"
    error_class = IstioctlError

    def __init__(self, module, kube, binary_path=None):
        super(Istioctl, self).__init__(module, kube, binary_path)
        self.cached = []  # what the output cache answered instead, for the result
        self.cache = OutputCache(warn=getattr(module, "warn", None))
        self.last_render_cached = False  # whether the last manifest_generate answer came from the cache
        self._version = None

    def environment(self):
        env = super(Istioctl, self).environment()
        env["ISTIOCTL_XDS_ADDRESS"] = ""  # never talk to an istiod found in the environment
        return env

    def _identity(self):
        """What tells one istioctl binary from another without running it."""
        real = os.path.realpath(self.path)
        stat = os.stat(real)
        return [real, stat.st_size, stat.st_mtime_ns, stat.st_ino]

    def version(self):
        """The client version istioctl reports (no cluster access)."""
        if self._version is None:
            key = self.cache.key("version", self._identity())
            cached = self.cache.get(key)
            if cached is not None:
                self._version = cached["version"]
                self.cached.append("version")
                return self._version
            out = self.run(["version", "--remote=false", "-o", "json"], kube=False)
            try:
                self._version = json.loads(out)["clientVersion"]["version"]
            except (ValueError, KeyError, TypeError):
                match = re.search(r"(\d+\.\d+[^\s\"]*)", out)
                if not match:
                    raise IstioctlError("cannot read the istioctl version from %r" % out[:200])
                self._version = match.group(1)
            self.cache.put(key, {"version": self._version})
        return self._version

    def manifest_generate(self, iop_path, use_cache=True):
        """The objects `istioctl install -f iop_path` would apply, as dicts (fresh ones on every call).

        use_cache=False runs istioctl whatever the cache holds (and refreshes the entry): a decision to
        delete must never rest on a cached render alone. `last_render_cached` tells where the answer came from.
        """
        key = self._manifest_key(iop_path)
        cached = self.cache.get(key) if key and use_cache else None
        objects = cached.get("objects") if isinstance(cached, dict) else None
        if isinstance(objects, list) and all(isinstance(o, dict) for o in objects):
            self.cached.append("manifest generate")
            self.last_render_cached = True
            return objects
        out = self.run(["manifest", "generate", "-f", iop_path, "--cluster-specific"])
        objects = [doc for doc in yaml.safe_load_all(out) if doc]
        if key:
            self.cache.put(key, {"objects": objects})
        self.last_render_cached = False
        return objects

    def _manifest_key(self, iop_path):
        """The cache key of a render, or None (no cache, or the server's version cannot be read)."""
        if not self.cache.directory:
            return None
        try:
            server = self.kube.server_version()
        except GatewayError:
            return None  # istioctl will say what is wrong with the connection
        with open(iop_path) as handle:
            iop = handle.read()
        env = {name: os.environ.get(name) for name in _RENDER_ENV}
        return self.cache.key("manifest generate --cluster-specific", self._identity(), iop, server, env)

    def tag_generate(self, tag, revision, istio_namespace):
        """The webhook configurations `istioctl tag set TAG --revision REVISION --overwrite` would apply, as dicts
        (generate writes nothing; --overwrite lets it render a tag that exists already)."""
        out = self.run(
            ["tag", "generate", tag, "--revision", revision, "--overwrite", "--istioNamespace", istio_namespace]
        )
        # istioctl logs to stdout: without watch permissions (docs/rbac), "watch error ... cannot watch" lines come
        # between the documents. They are not YAML; they are passed on as warnings.
        logged = [line for line in out.splitlines(True) if _LOG_LINE_RE.match(line)]
        for line in logged:
            self.module.warn("istioctl tag generate logged: %s" % line.strip().replace("\t", " "))
        documents = "".join(line for line in out.splitlines(True) if line not in logged)
        try:
            return [doc for doc in yaml.safe_load_all(documents) if doc]
        except yaml.YAMLError as exc:
            raise GatewayError(
                "binary_path: istioctl tag generate printed what is not YAML (%s); use the istioctl of the revision, "
                "and see the output above" % str(exc).splitlines()[0],
                stdout=out[-2000:],
            )

    def install(self, iop_path, wait_timeout=None):
        args = ["install", "-y", "-f", iop_path]
        if wait_timeout:
            args += ["--readiness-timeout", "%ss" % int(wait_timeout)]
        return self.run(args, timeout=kill_after(wait_timeout))

    def uninstall(self, iop_path=None, purge=False, istio_namespace=None, timeout=DEFAULT_TIMEOUT):
        args = ["uninstall", "-y"]
        if purge:
            args.append("--purge")
        if iop_path:
            args += ["-f", iop_path]
        if istio_namespace:
            args += ["--istioNamespace", istio_namespace]
        return self.run(args, timeout=kill_after(timeout))
