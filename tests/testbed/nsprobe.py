"""Tiny probe run *inside* a test bed namespace: `ip netns exec NS python nsprobe.py ...`.

Prints one JSON object. Independent of the agent, so the bed can be checked on its own.

    nsprobe.py dns NAME [QTYPE] [--server IP] [--tcp]   one query straight to a server (no search)
    nsprobe.py resolve NAME [QTYPE]                      dnspython stub resolver: /etc/resolv.conf,
                                                         search list and ndots, like a pod
    nsprobe.py getaddrinfo NAME                          the C library's resolver (glibc)
    nsprobe.py tcp IP PORT [--timeout S]                 connect, read the backend's banner line
    nsprobe.py http URL [--timeout S]                    GET; status and body
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
import time


def _rrsets(msg) -> list[dict]:
    out = []
    for rrset in msg.answer:
        for rr in rrset:
            out.append({"name": rrset.name.to_text(), "type": _type_name(rrset.rdtype),
                        "ttl": rrset.ttl, "data": rr.to_text()})
    return out


def _type_name(rdtype) -> str:
    import dns.rdatatype

    return dns.rdatatype.to_text(rdtype)


def cmd_dns(a) -> dict:
    import dns.exception
    import dns.message
    import dns.query
    import dns.rcode

    q = dns.message.make_query(a.name, a.qtype)
    t0 = time.monotonic()
    try:
        if a.tcp:
            r = dns.query.tcp(q, a.server, port=a.port, timeout=a.timeout)
        else:
            r = dns.query.udp(q, a.server, port=a.port, timeout=a.timeout)
    except dns.exception.Timeout:
        return {"result": "timeout", "seconds": time.monotonic() - t0}
    except OSError as e:
        return {"result": "error", "error": f"{type(e).__name__}: {e}"}
    return {"result": "ok", "rcode": dns.rcode.to_text(r.rcode()), "answers": _rrsets(r),
            "seconds": time.monotonic() - t0}


def cmd_resolve(a) -> dict:
    import dns.resolver

    res = dns.resolver.Resolver()  # reads the namespace's /etc/resolv.conf
    res.lifetime = a.timeout
    try:
        ans = res.resolve(a.name, a.qtype, search=True)
    except dns.resolver.NXDOMAIN:
        return {"result": "nxdomain"}
    except dns.resolver.NoAnswer:
        return {"result": "nodata"}
    except dns.resolver.LifetimeTimeout:
        return {"result": "timeout"}
    except dns.resolver.NoNameservers as e:
        return {"result": "servfail", "error": str(e)}
    return {"result": "ok", "qname": ans.qname.to_text(), "answers": _rrsets(ans.response),
            "search": [n.to_text() for n in res.search], "nameservers": list(res.nameservers)}


def cmd_getaddrinfo(a) -> dict:
    try:
        infos = socket.getaddrinfo(a.name, None, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as e:
        return {"result": "error", "error": str(e)}
    return {"result": "ok", "addresses": sorted({i[4][0] for i in infos})}


def cmd_tcp(a) -> dict:
    t0 = time.monotonic()
    try:
        with socket.create_connection((a.ip, a.port), timeout=a.timeout) as s:
            s.settimeout(a.timeout)
            banner = b""
            try:
                while not banner.endswith(b"\n") and len(banner) < 4096:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    banner += chunk
            except OSError:
                pass
            return {"result": "ok", "banner": banner.decode(errors="replace").strip(),
                    "seconds": time.monotonic() - t0}
    except ConnectionRefusedError:
        return {"result": "refused", "seconds": time.monotonic() - t0}
    except TimeoutError:  # socket.timeout is an alias of it
        return {"result": "timeout", "seconds": time.monotonic() - t0}
    except OSError as e:
        return {"result": "unreachable" if e.errno in (101, 113) else "error",
                "error": f"{type(e).__name__}: {e}", "seconds": time.monotonic() - t0}


def cmd_http(a) -> dict:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(a.url, timeout=a.timeout) as r:
            return {"result": "ok", "status": r.status, "body": r.read().decode(errors="replace")}
    except urllib.error.HTTPError as e:
        return {"result": "ok", "status": e.code, "body": e.read().decode(errors="replace")}
    except (OSError, urllib.error.URLError) as e:
        return {"result": "error", "error": str(e)}


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dns")
    d.add_argument("name")
    d.add_argument("qtype", nargs="?", default="A")
    d.add_argument("--server", required=True)
    d.add_argument("--port", type=int, default=53)
    d.add_argument("--tcp", action="store_true")
    d.add_argument("--timeout", type=float, default=2.0)
    r = sub.add_parser("resolve")
    r.add_argument("name")
    r.add_argument("qtype", nargs="?", default="A")
    r.add_argument("--timeout", type=float, default=5.0)
    g = sub.add_parser("getaddrinfo")
    g.add_argument("name")
    t = sub.add_parser("tcp")
    t.add_argument("ip")
    t.add_argument("port", type=int)
    t.add_argument("--timeout", type=float, default=2.0)
    h = sub.add_parser("http")
    h.add_argument("url")
    h.add_argument("--timeout", type=float, default=5.0)
    a = ap.parse_args()
    out = {"dns": cmd_dns, "resolve": cmd_resolve, "getaddrinfo": cmd_getaddrinfo,
           "tcp": cmd_tcp, "http": cmd_http}[a.cmd](a)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
