"""The real glibc and musl resolvers as test oracles: ``getaddrinfo`` with a resolv.conf the test
chooses.

A small C client (``gai_client.c`` next to this file) is built once with ``gcc`` (glibc, linked
dynamically: glibc's DNS code lives behind NSS) and once with ``musl-gcc`` (musl, static) into
``${SVCPROBE_CACHE:-~/.cache/svcprobe}/libc/``, under a name carrying a hash of its source and
build command, so an edited client is rebuilt. Each :func:`resolve` call runs one client process
in a private mount namespace (``unshare --mount``, needs root) where

- ``/etc/resolv.conf`` is the test's text (both libcs read it once per process),
- ``/etc/hosts`` is empty, and ``/etc/nsswitch.conf`` says ``hosts: dns`` (glibc: neither files
  nor myhostname/resolve/mdns can answer),
- an nscd socket directory, if any, is hidden under an empty tmpfs,

and the client's environment holds only PATH and LC_ALL (no LOCALDOMAIN, RES_OPTIONS or
HOSTALIASES). The real /etc files are never written: the bind mounts live and die with the
namespace. Every ``nameserver`` line must name an address in 127.0.0.0/8 (a ``nameserver`` line
has no port, so the DNS server must listen on port 53: ``KnotServer(..., port=53)``), and a
resolv.conf without one is refused, so no query can reach the machine's real resolver.

    from tests.support.libc import resolve, resolv_conf_text

    conf = resolv_conf_text(knot.address, search=["ns.svc.cluster.local", "svc.cluster.local"],
                            ndots=5)
    resolve("musl", [("A", "web"), ("AAAA", "web.ns.svc.cluster.local.")], conf)
    # [LibcAnswer(code='OK', addresses=frozenset({'198.18.0.10'})), LibcAnswer(code='EAI_NONAME', ...)]

Install the compilers with ``scripts/deps.d/30-libc.sh`` (gcc, libc6-dev, musl, musl-dev,
musl-tools).
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import hashlib
import ipaddress
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "FLAVOURS",
    "INSTALL_HINT",
    "LibcAnswer",
    "LibcError",
    "LibcToolingMissing",
    "LibcUnavailable",
    "client_path",
    "resolv_conf_text",
    "resolve",
    "unavailable_reason",
    "version",
]

FLAVOURS = ("glibc", "musl")
QTYPES = {"A": "4", "AAAA": "6"}
INSTALL_HINT = "install them with scripts/deps.d/30-libc.sh (gcc, libc6-dev, musl, musl-dev, musl-tools)"

SOURCE = Path(__file__).with_name("gai_client.c")
CACHE = Path(os.environ.get("SVCPROBE_CACHE") or Path.home() / ".cache" / "svcprobe") / "libc"

_COMPILERS = {"glibc": "gcc", "musl": "musl-gcc"}
_FLAGS = {
    "glibc": ["-O2", "-Wall", "-Wextra"],
    "musl": ["-O2", "-Wall", "-Wextra", "-static"],
}
_SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
_CHILD_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
_MAX_NAME = 4000  # the client reads lines of up to 4095 bytes
_SANDBOX_FAILED = 97  # exit status of the namespace script when a bind mount is not in place

# Run by `sh -c` inside the new mount namespace: $1 resolv.conf, $2 hosts, $3 nsswitch.conf,
# $4 the client. Bind mounts are private to the namespace (--propagation private); cmp proves
# each file is the test's before the client runs.
_SANDBOX_SCRIPT = """\
set -e
mount --bind "$1" /etc/resolv.conf
mount --bind "$2" /etc/hosts
mount --bind "$3" /etc/nsswitch.conf
for d in /run/nscd /var/run/nscd; do
    if [ -d "$d" ] && ! [ -L "$d" ]; then mount -t tmpfs -o size=64k svcprobe-no-nscd "$d"; fi
done
if ! cmp -s "$1" /etc/resolv.conf || ! cmp -s "$2" /etc/hosts || ! cmp -s "$3" /etc/nsswitch.conf; then
    echo "gai sandbox: the bind mounts over /etc are not in effect" >&2
    exit 97
fi
GAI_CLIENT_SANDBOX=1 exec "$4"
"""


class LibcError(RuntimeError):
    """The client could not be built or run, or answered something unexpected."""


class LibcToolingMissing(LibcError):
    """A compiler, unshare, mount or one of the /etc files to cover is missing."""


class LibcUnavailable(LibcError):
    """This machine cannot run the clients at all (not Linux, or not root); tests skip."""


@dataclasses.dataclass(frozen=True)
class LibcAnswer:
    """What ``getaddrinfo`` returned for one query: ``code`` is ``"OK"``, ``"EAI_NONAME"``,
    ``"EAI_NODATA"``, ``"EAI_AGAIN"``, ``"EAI_FAIL"``, ... (or the number, as text, when the
    client has no symbol for it) and ``addresses`` the distinct numeric addresses (empty unless
    OK)."""

    code: str
    addresses: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        return self.code == "OK"


def unavailable_reason() -> str | None:
    """Why the clients cannot run here (tests skip with this), or None when they can."""
    if not sys.platform.startswith("linux"):
        return f"the libc resolver clients need Linux mount namespaces (this is {sys.platform})"
    if os.geteuid() != 0:
        return "the libc resolver clients need root (unshare --mount, bind mounts over /etc)"
    return None


def _which(name: str) -> str | None:
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRS]))


def _require(name: str) -> str:
    path = _which(name)
    if path is None:
        raise LibcToolingMissing(f"{name} not found in PATH or {', '.join(_SBIN_DIRS)}; {INSTALL_HINT}")
    return path


def _check_flavour(flavour: str) -> None:
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}, not {flavour!r}")


def client_path(flavour: str) -> Path:
    """The client built for ``flavour`` ("glibc" or "musl"), compiled into the cache when the
    source or the build command changed (the hash of both is in the file name)."""
    _check_flavour(flavour)
    compiler = _require(_COMPILERS[flavour])
    source = SOURCE.read_bytes()
    flags = _FLAGS[flavour]
    digest = hashlib.sha256(
        b"\0".join([source, _COMPILERS[flavour].encode(), *(f.encode() for f in flags)])
    ).hexdigest()[:16]
    target = CACHE / f"gai-client-{flavour}-{digest}"
    if os.access(target, os.X_OK):
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    # Built under a temporary name, then renamed: concurrent builders never see a partial file.
    fd, tmp_name = tempfile.mkstemp(prefix=f".gai-client-{flavour}-", dir=CACHE)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        cmd = [compiler, *flags, "-o", str(tmp), str(SOURCE)]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired as exc:
            raise LibcError(f"{' '.join(cmd)} took over {exc.timeout:.0f}s") from exc
        if res.returncode != 0:
            hint = f"; is {'musl-dev' if flavour == 'musl' else 'libc6-dev'} installed? {INSTALL_HINT}"
            raise LibcError(f"building the {flavour} client failed: {' '.join(cmd)}\n"
                            f"{(res.stdout + res.stderr).strip()}{hint}")
        tmp.chmod(0o755)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    for old in CACHE.glob(f"gai-client-{flavour}-*"):
        if old != target:
            old.unlink(missing_ok=True)
    return target


@functools.cache
def version(flavour: str) -> str:
    """The version of the C library the ``flavour`` client is built against ("2.36", "1.2.3").

    glibc: the system's (the client links it dynamically). musl: what musl's dynamic loader
    (Debian package ``musl``, from the same source as ``musl-dev``'s libc.a) prints when run
    without arguments."""
    _check_flavour(flavour)
    if flavour == "glibc":
        found = os.confstr("CS_GNU_LIBC_VERSION") if sys.platform.startswith("linux") else None
        match = re.fullmatch(r"glibc (\S+)", found or "")
        if match is None:
            raise LibcToolingMissing(f"not a glibc system (confstr says {found!r}); {INSTALL_HINT}")
        return match.group(1)
    for loader in sorted(glob.glob("/lib/ld-musl-*.so.1") + glob.glob("/usr/lib/*-linux-musl/libc.so")):
        try:
            res = subprocess.run([loader], capture_output=True, text=True, timeout=10)
        except OSError:
            continue
        match = re.search(r"^Version (\S+)", res.stdout + res.stderr, re.MULTILINE)
        if match:
            return match.group(1)
    raise LibcToolingMissing(f"musl's dynamic loader (/lib/ld-musl-*.so.1) not found; {INSTALL_HINT}")


def resolv_conf_text(
    nameservers: str | Iterable[str],
    *,
    search: Sequence[str] = (),
    ndots: int | None = None,
    options: Sequence[str] = ("timeout:1", "attempts:1"),
    extra_lines: Sequence[str] = (),
) -> str:
    """A resolv.conf: ``nameserver`` lines, a ``search`` line (when ``search`` is not empty), an
    ``options`` line with ``ndots:N`` (when given) and ``options``, then ``extra_lines`` as
    they are. The short default timeout keeps a test whose server does not answer quick."""
    servers = [nameservers] if isinstance(nameservers, str) else list(nameservers)
    lines = [f"nameserver {server}" for server in servers]
    if search:
        lines.append("search " + " ".join(search))
    opts = ([f"ndots:{ndots}"] if ndots is not None else []) + list(options)
    if opts:
        lines.append("options " + " ".join(opts))
    lines.extend(extra_lines)
    return "\n".join(lines) + "\n"


def _check_resolv_conf(text: str) -> None:
    """Every nameserver the text names is in 127.0.0.0/8, and there is at least one."""
    found = 0
    for line in text.splitlines():
        words = line.split()
        # Both libcs only read `nameserver` at the very start of a line; checking indented
        # ones as well costs nothing.
        if not words or words[0] != "nameserver":
            continue
        address = words[1] if len(words) > 1 else ""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"resolv.conf line {line!r}: nameserver must be an IPv4 address in "
                             "127.0.0.0/8") from None
        if ip.version != 4 or ip not in ipaddress.ip_network("127.0.0.0/8"):
            raise ValueError(f"resolv.conf line {line!r}: only nameservers in 127.0.0.0/8 are allowed")
        found += 1
    if not found:
        raise ValueError("resolv.conf has no nameserver line (the libcs would fall back to 127.0.0.1; "
                         "name the loopback server explicitly)")


def _query_lines(queries: Sequence[tuple[str, str]]) -> str:
    lines = []
    for qtype, name in queries:
        family = QTYPES.get(qtype)
        if family is None:
            raise ValueError(f"query type must be one of {sorted(QTYPES)}, not {qtype!r}")
        if not name or len(name) > _MAX_NAME or any(c.isspace() for c in name) or "\0" in name:
            raise ValueError(f"query name must be 1..{_MAX_NAME} characters without whitespace: {name!r}")
        lines.append(f"{family} {name}\n")
    return "".join(lines)


def _parse(line: str) -> LibcAnswer:
    code, *addresses = line.split()
    return LibcAnswer(code, frozenset(addresses))


def resolve(
    flavour: str,
    queries: Sequence[tuple[str, str]],
    resolv_conf: str,
    *,
    timeout: float | None = None,
) -> list[LibcAnswer]:
    """Ask ``flavour``'s ``getaddrinfo`` each of ``queries`` — ``(qtype, name)`` with qtype
    ``"A"`` (AF_INET) or ``"AAAA"`` (AF_INET6) and the name as an application passes it (a
    trailing dot makes it absolute) — in one process that sees ``resolv_conf`` as
    /etc/resolv.conf. One answer per query, in order.

    ``timeout`` bounds the whole process (default: 20 s plus 10 s a query, far beyond what
    ``options timeout:1 attempts:1`` needs)."""
    _check_flavour(flavour)
    reason = unavailable_reason()
    if reason:
        raise LibcUnavailable(reason)
    _check_resolv_conf(resolv_conf)
    stdin = _query_lines(queries)
    if not queries:
        return []
    unshare, sh = _require("unshare"), _require("sh")
    for tool in ("mount", "cmp"):  # run by the namespace script
        _require(tool)
    for target in ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf"):
        if not os.path.exists(target):
            raise LibcToolingMissing(f"{target} does not exist (or is a dangling link): there is nothing "
                                     "to bind-mount the test's file over")
    client = client_path(flavour)
    if timeout is None:
        timeout = 20.0 + 10.0 * len(queries)
    with tempfile.TemporaryDirectory(prefix="svcprobe-libc-") as tmp:
        work = Path(tmp)
        (work / "resolv.conf").write_text(resolv_conf)
        (work / "hosts").write_text("")
        (work / "nsswitch.conf").write_text("hosts: dns\n")
        cmd = [unshare, "--mount", "--propagation", "private", "--", sh, "-c", _SANDBOX_SCRIPT,
               "gai-sandbox", str(work / "resolv.conf"), str(work / "hosts"),
               str(work / "nsswitch.conf"), str(client)]
        try:
            res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout,
                                 env={"PATH": _CHILD_PATH, "LC_ALL": "C"}, cwd=work)
        except subprocess.TimeoutExpired as exc:
            raise LibcError(f"the {flavour} client did not finish {len(queries)} queries in {timeout:.0f}s; "
                            f"answered so far: {exc.stdout!r}") from exc
    if res.returncode == _SANDBOX_FAILED:
        raise LibcError(f"the {flavour} client's sandbox is not in place: {res.stderr.strip()}")
    if res.returncode != 0:
        raise LibcError(f"the {flavour} client exited with status {res.returncode} "
                        f"(unshare --mount and mount --bind need root): {res.stderr.strip()}")
    lines = res.stdout.splitlines()
    if len(lines) != len(queries) or any(not line or line == "BADINPUT" for line in lines):
        raise LibcError(f"the {flavour} client answered {lines!r} to {len(queries)} queries "
                        f"{list(queries)!r}; stderr: {res.stderr.strip()}")
    return [_parse(line) for line in lines]
