"""A real authoritative DNS server for tests and benchmarks: Knot DNS (``knotd``) on loopback.

Each :class:`KnotServer` runs its own ``knotd`` as a child process, with its own configuration,
run directory, storage and zone files in a private temporary directory, listening on a loopback
address (by default a random one in 127.53.0.0/16) and a free port, UDP and TCP on the same port.
The system's knot service is never used.

    from tests.support.knot import KnotServer, Record, zone_text

    zone = zone_text("cluster.local.", [
        Record("web.default.svc", "A", "198.18.0.10"),
        Record("_http._tcp.web.default.svc", "SRV", "0 100 80 web.default.svc.cluster.local."),
    ])
    with KnotServer({"cluster.local.": zone}) as knot:
        knot.address, knot.port              # ("127.53.x.y", 40123)
        knot.reload({"cluster.local.": zone_text("cluster.local.", [...], serial=2)})

``reload`` returns only once every zone is served from the new text (and removed zones are no
longer served), so a test can query right after it.

``servfail_zones=["broken.cluster.local."]`` also configures zones that have no zone file:
knotd cannot load them and answers SERVFAIL for every name in them (a real server failure, for
the tests of what resolvers do with one). ``port=53`` is what the C libraries' resolvers need
(a resolv.conf ``nameserver`` line has no port): with the default random 127.53.x.y address it
is almost always free.

Install knot with ``scripts/deps.d/20-knot.sh`` (Debian package ``knot``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.zone

__all__ = [
    "KnotError",
    "KnotNotInstalled",
    "KnotServer",
    "Record",
    "find_knot",
    "zone_text",
]

INSTALL_HINT = "install it with scripts/deps.d/20-knot.sh (Debian package 'knot')"
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


class KnotError(RuntimeError):
    """knotd could not be started, reloaded or stopped; the message carries its log's tail."""


class KnotNotInstalled(KnotError):
    """knotd or knotc is not installed."""


def find_knot() -> tuple[str, str]:
    """Paths of ``knotd`` and ``knotc``; looks in PATH and in the sbin directories."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRS])
    knotd = shutil.which("knotd", path=search)
    knotc = shutil.which("knotc", path=search)
    if not knotd or not knotc:
        missing = " and ".join(n for n, p in (("knotd", knotd), ("knotc", knotc)) if not p)
        raise KnotNotInstalled(f"{missing} not found in PATH or {', '.join(_SBIN_DIRS)}; {INSTALL_HINT}")
    return knotd, knotc


# --------------------------------------------------------------------------------------------
# Zone text


@dataclasses.dataclass(frozen=True)
class Record:
    """One resource record. ``owner`` is relative to the zone origin unless it ends with a dot;
    ``"@"`` is the apex. ``rdata`` is presentation format (``"198.18.0.10"``,
    ``"0 100 80 web.default.svc.cluster.local."``). ``ttl`` None means the zone's default."""

    owner: str
    rtype: str
    rdata: str
    ttl: int | None = None


RecordLike = Record | tuple[str, str, str] | tuple[str, str, str, int | None]


def _as_record(item: RecordLike) -> Record:
    if isinstance(item, Record):
        return item
    # The type says 3 or 4 items; callers in untyped test code may pass anything.
    if len(item) not in (3, 4):
        raise ValueError(f"a record is (owner, type, rdata[, ttl]), got {item!r}")
    return Record(*item)


def _absolute(name: str) -> str:
    return dns.name.from_text(name).to_text()


def zone_text(
    origin: str,
    records: Iterable[RecordLike],
    *,
    serial: int = 1,
    ttl: int = 30,
    negative_ttl: int = 30,
    mname: str | None = None,
    rname: str | None = None,
    nameserver: str | None = None,
) -> str:
    """Zone-file text for ``origin`` with an SOA and an apex NS record added, then ``records``.

    The SOA's MINIMUM (``negative_ttl``) is the TTL of negative answers. The apex NS defaults to
    ``ns.dns.<origin>`` (as CoreDNS names itself); it has no address record, so it does not add
    a name that answers A queries.
    """
    origin = _absolute(origin)
    mname = mname or f"ns.dns.{origin}"
    rname = rname or f"hostmaster.{origin}"
    nameserver = nameserver or mname
    if not 0 <= serial < 2**32:
        raise ValueError(f"SOA serial must be in 0..2**32-1, got {serial}")
    lines = [
        f"$ORIGIN {origin}",
        f"$TTL {ttl}",
        f"@ SOA {mname} {rname} {serial} 7200 1800 86400 {negative_ttl}",
        f"@ NS {nameserver}",
    ]
    for item in records:
        rec = _as_record(item)
        rtype = rec.rtype.upper()
        try:
            dns.rdatatype.from_text(rtype)
        except dns.rdatatype.UnknownRdatatype:
            raise ValueError(f"record {rec.owner!r}: unknown type {rec.rtype!r}") from None
        if rtype == "SOA" and rec.owner in ("@", origin):
            raise ValueError("zone_text() writes the apex SOA itself; pass serial=... instead")
        ttl_field = "" if rec.ttl is None else f" {int(rec.ttl)}"
        lines.append(f"{rec.owner}{ttl_field} IN {rtype} {rec.rdata}")
    return "\n".join(lines) + "\n"


def parse_zone(origin: str, text: str) -> dns.zone.Zone:
    """Parse zone text as knotd will (origin = zone name); raises KnotError naming the zone."""
    try:
        return dns.zone.from_text(text, origin=origin, relativize=False, check_origin=True)
    except dns.exception.DNSException as exc:
        raise KnotError(f"zone {origin}: invalid zone text: {exc}") from exc


def _zone_serial(zone: dns.zone.Zone) -> int:
    assert zone.origin is not None  # parse_zone gives the origin
    soa = zone.get_rdataset(zone.origin, dns.rdatatype.SOA)
    assert soa is not None  # check_origin guarantees it
    return int(soa[0].serial)


# --------------------------------------------------------------------------------------------
# Addresses


def _random_loopback() -> str:
    return f"127.53.{random.randint(0, 255)}.{random.randint(1, 254)}"


def _family(address: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def _is_free(address: str, port: int) -> bool:
    """Whether ``port`` on ``address`` is free for both UDP and TCP right now. The probe
    sockets do not use SO_REUSEPORT, so the bind fails if another knotd (which binds with
    SO_REUSEPORT and would share the port's queries) is there."""
    try:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(_family(address), kind) as sock:
                if kind == socket.SOCK_STREAM:  # ignore TIME_WAIT leftovers, as knotd does
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((address, port))
    except OSError:
        return False
    return True


def _free_port(address: str) -> int:
    """A port free for both UDP and TCP on ``address`` right now."""
    for _ in range(50):
        with socket.socket(_family(address), socket.SOCK_DGRAM) as udp:
            udp.bind((address, 0))
            port: int = udp.getsockname()[1]
        if _is_free(address, port):
            return port
    raise KnotError(f"no port free for both UDP and TCP on {address}")


def _check_loopback(address: str) -> str:
    ip = ipaddress.ip_address(address)
    if not ip.is_loopback:
        raise ValueError(f"KnotServer listens on loopback addresses only, not {address}")
    return str(ip)


# --------------------------------------------------------------------------------------------
# The server


def _terminate(proc: subprocess.Popen[bytes], timeout: float, directory: str | None = None) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def _zone_file_name(zone: str) -> str:
    stem = zone.rstrip(".") or "root"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem) + ".zone"


class KnotServer:
    """knotd on a loopback address, serving ``zones`` (zone name -> zone-file text).

    ``address``/``port`` default to a random 127.53.x.y and a free port. ``cpu`` pins knotd to
    that CPU (via ``taskset``). Worker counts default to 1 each, which is plenty for tests.
    """

    def __init__(
        self,
        zones: Mapping[str, str],
        *,
        address: str | None = None,
        port: int | None = None,
        udp_workers: int = 1,
        tcp_workers: int = 1,
        background_workers: int = 1,
        cpu: int | None = None,
        timeout: float = 15.0,
        log_level: str = "info",
        servfail_zones: Iterable[str] = (),
    ) -> None:
        self._knotd, self._knotc_path = find_knot()
        self.address = _check_loopback(address) if address else None
        self.port = port
        self.udp_workers = udp_workers
        self.tcp_workers = tcp_workers
        self.background_workers = background_workers
        self.cpu = cpu
        self.timeout = timeout
        self.log_level = log_level
        self._zones: dict[str, str] = {}
        self._serials: dict[str, int] = {}
        self._servfail_zones = tuple(dict.fromkeys(_absolute(name) for name in servfail_zones))
        self._set_zones(zones)
        self._dir: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes], float, str | None], KnotServer] | None = None

    # -- public state ------------------------------------------------------------------------

    @property
    def nameserver(self) -> tuple[str, int]:
        """(address, port) to send queries to."""
        if self.address is None or self.port is None:
            raise KnotError("KnotServer is not started")
        return self.address, self.port

    @property
    def zones(self) -> dict[str, str]:
        """The zones being served now (absolute name -> text), as last given."""
        return dict(self._zones)

    @property
    def servfail_zones(self) -> tuple[str, ...]:
        """Zones configured without a zone file, answered SERVFAIL (absolute names)."""
        return self._servfail_zones

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def workdir(self) -> Path:
        if self._dir is None:
            raise KnotError("KnotServer is not started")
        return Path(self._dir)

    def log_text(self) -> str:
        """Everything knotd has logged so far."""
        if self._dir is None:
            return ""
        try:
            return (self.workdir / "knotd.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> KnotServer:
        if self._proc is not None:
            raise KnotError("KnotServer already started")
        cmd = [self._knotd]
        if self.cpu is not None:
            taskset = shutil.which("taskset")
            if taskset is None:
                raise KnotError("cpu= needs taskset (util-linux)")
            cmd = [taskset, "-c", str(self.cpu), *cmd]
        if self.address is None:
            self.address = _random_loopback()
        if self.port is None:
            self.port = _free_port(self.address)
        elif not _is_free(self.address, self.port):
            raise KnotError(f"{self.address} port {self.port} is in use (UDP or TCP)")
        self._dir = tempfile.mkdtemp(prefix="svcprobe-knot-")
        work = self.workdir
        try:
            for sub in ("run", "storage", "zones"):
                (work / sub).mkdir()
            self._write_zone_files()
            self._write_config()
            cmd += ["-c", str(work / "knot.conf")]
            # Same process group as the caller: whatever kills the test run's group kills knotd.
            with open(work / "knotd.log", "wb") as log:
                self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            self._dir = None
            raise
        # Also stopped (and its files removed) when this object is collected or the interpreter
        # exits without stop().
        self._finalizer = weakref.finalize(self, _terminate, self._proc, 10.0, self._dir)
        try:
            self._wait_served(self._serials, gone=(), timeout=self.timeout)
            self._wait_servfail(self.timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop knotd (SIGTERM, then SIGKILL) and remove its directory. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if self._finalizer is not None:
                self._finalizer.detach()
            _terminate(proc, timeout)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> KnotServer:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"{self.address}@{self.port}" if self.port else "not started"
        return f"<KnotServer {where} zones={sorted(self._zones)} running={self.running}>"

    # -- changing what is served -------------------------------------------------------------

    def reload(self, zones: Mapping[str, str], timeout: float | None = None) -> None:
        """Serve exactly ``zones`` from now on: changed zones are reloaded, new ones added,
        missing ones removed. Returns once every zone answers its SOA with the new serial and
        removed zones are refused. The serial need not change: the reload is forced."""
        self._require_running()
        timeout = self.timeout if timeout is None else timeout
        old = set(self._zones)
        self._set_zones(zones)
        removed = old - set(self._zones)
        self._write_zone_files()
        self._write_config()
        # Re-read the configuration (adds and drops zones), then force every zone to be read
        # from its file and wait for that (-b) so even an unchanged serial gets the new text.
        self._knotc("reload")
        if self._zones:
            self._knotc("-b", "zone-reload", *self._zones)
        for name in removed:
            try:
                (self.workdir / "zones" / _zone_file_name(name)).unlink()
            except FileNotFoundError:
                pass
        self._wait_served(self._serials, gone=removed, timeout=timeout)

    def set_zone(self, name: str, text: str, timeout: float | None = None) -> None:
        """Add or replace one zone, keeping the others."""
        self.reload({**self._zones, _absolute(name): text}, timeout=timeout)

    def remove_zone(self, name: str, timeout: float | None = None) -> None:
        zones = dict(self._zones)
        zones.pop(_absolute(name))
        self.reload(zones, timeout=timeout)

    # -- queries (for readiness checks and convenience) --------------------------------------

    def query(self, qname: str, rdtype: str = "A", *, tcp: bool = False,
              timeout: float = 2.0) -> dns.message.Message:
        """One query to this server with dnspython; returns the dns.message.Message."""
        address, port = self.nameserver
        q = dns.message.make_query(qname, rdtype)
        if tcp:
            return dns.query.tcp(q, address, port=port, timeout=timeout)
        return dns.query.udp(q, address, port=port, timeout=timeout)

    def served_serial(self, zone: str, timeout: float = 1.0) -> int | None:
        """The SOA serial the server answers for ``zone`` now, None if it does not serve it."""
        zone = _absolute(zone)
        try:
            resp = self.query(zone, "SOA", timeout=timeout)
        except (dns.exception.Timeout, OSError):
            return None
        if resp.rcode() != dns.rcode.NOERROR or not resp.flags & dns.flags.AA:
            return None
        for rrset in resp.answer:
            if rrset.rdtype == dns.rdatatype.SOA and rrset.name.to_text() == zone:
                return int(rrset[0].serial)
        return None

    # -- internals ---------------------------------------------------------------------------

    def _refuses(self, zone: str) -> bool:
        """True once the server answers, but not authoritatively, for ``zone``."""
        try:
            resp = self.query(zone, "SOA", timeout=0.25)
        except (dns.exception.Timeout, OSError):
            return False
        return resp.rcode() != dns.rcode.NOERROR or not resp.flags & dns.flags.AA

    def _set_zones(self, zones: Mapping[str, str]) -> None:
        new: dict[str, str] = {}
        serials: dict[str, int] = {}
        for name, text in zones.items():
            absname = _absolute(name)
            if absname in new:
                raise ValueError(f"zone {absname} given twice")
            if absname in self._servfail_zones:
                raise ValueError(f"zone {absname} is one of servfail_zones; it has no zone text")
            serials[absname] = _zone_serial(parse_zone(absname, text))
            new[absname] = text
        self._zones, self._serials = new, serials

    def _write_zone_files(self) -> None:
        zdir = self.workdir / "zones"
        for name, text in self._zones.items():
            path = zdir / _zone_file_name(name)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text)
            os.replace(tmp, path)

    def _write_config(self) -> None:
        work = self.workdir
        listen = f"{self.address}@{self.port}"
        zone_entries = "".join(
            f'  - domain: "{name}"\n    file: "{work / "zones" / _zone_file_name(name)}"\n'
            for name in self._zones
        )
        # A file that is never written: knotd fails to load the zone and answers SERVFAIL.
        zone_entries += "".join(
            f'  - domain: "{name}"\n    file: "{work / "zones" / _zone_file_name(name)}.absent"\n'
            for name in self._servfail_zones
        )
        conf = f"""\
# Written by tests/support/knot.py; one private knotd per KnotServer.
server:
    rundir: "{work / "run"}"
    pidfile: "{work / "run" / "knot.pid"}"
    listen: {listen}
    udp-workers: {self.udp_workers}
    tcp-workers: {self.tcp_workers}
    background-workers: {self.background_workers}

log:
  - target: stderr
    any: {self.log_level}

database:
    storage: "{work / "storage"}"

control:
    listen: "{work / "run" / "knot.sock"}"

template:
  - id: default
    storage: "{work / "zones"}"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none

"""
        if zone_entries:
            conf += "\nzone:\n" + zone_entries
        tmp = work / "knot.conf.tmp"
        tmp.write_text(conf)
        os.replace(tmp, work / "knot.conf")

    def _knotc(self, *args: str) -> str:
        work = self.workdir
        cmd = [self._knotc_path, "-c", str(work / "knot.conf"), "-s", str(work / "run" / "knot.sock"),
               "-t", str(max(1, int(self.timeout))), *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout + 5)
        out = (res.stdout + res.stderr).strip()
        if res.returncode != 0 or "error:" in out:
            raise KnotError(f"knotc {' '.join(args)} failed: {out}\n{self._log_tail()}")
        return out

    def _require_running(self) -> None:
        if self._proc is None:
            raise KnotError("KnotServer is not started")
        if self._proc.poll() is not None:
            raise KnotError(f"knotd exited with status {self._proc.returncode}\n{self._log_tail()}")

    def _wait_served(self, serials: Mapping[str, int], gone: Iterable[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = dict(serials)
        gone = set(gone)
        last: dict[str, int | None] = {}
        control = self.workdir / "run" / "knot.sock"
        while True:
            self._require_running()
            # knotd binds its control socket once it serves; before that a UDP query would only
            # wait for its timeout (an unconnected UDP socket never sees the port-unreachable).
            ready = control.exists()
            for name, serial in list(pending.items()):
                last[name] = self.served_serial(name, timeout=0.25) if ready else None
                if last[name] == serial:
                    del pending[name]
            for name in list(gone):
                if ready and self._refuses(name):
                    gone.discard(name)
            if not pending and not gone:
                return
            if time.monotonic() > deadline:
                what = [f"{n} serial {last.get(n)} (want {s})" for n, s in pending.items()]
                what += [f"{n} still served (should be removed)" for n in gone]
                raise KnotError(
                    f"knotd at {self.address}@{self.port} not serving after {timeout:.0f}s: "
                    f"{'; '.join(what)}\n{self._log_tail()}"
                )
            time.sleep(0.05)

    def _wait_servfail(self, timeout: float) -> None:
        """Wait until every servfail zone is answered SERVFAIL (knotd tried and failed to load it)."""
        deadline = time.monotonic() + timeout
        for name in self._servfail_zones:
            while True:
                self._require_running()
                try:
                    if self.query(name, "SOA", timeout=0.25).rcode() == dns.rcode.SERVFAIL:
                        break
                except (dns.exception.Timeout, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise KnotError(f"knotd at {self.address}@{self.port} does not answer SERVFAIL for "
                                    f"{name} after {timeout:.0f}s\n{self._log_tail()}")
                time.sleep(0.05)

    def _log_tail(self, lines: int = 25) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return "knotd log (tail):\n  " + "\n  ".join(tail) if tail else "knotd log: (empty)"
