"""agent.settings.resolvconf: reading a pod's resolv.conf like the stub resolvers (resolv.conf(5)).

Reference: reference/k8s-dns.md §3.1 (what the kubelet writes), §3.2–3.3 (options, ndots cap
15, `search`/`domain` last one wins), §3.6 (cluster domain from the `svc.<zone>` entry).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.settings import resolvconf

KUBELET = """\
nameserver 198.18.0.10
search shop.svc.cluster.local svc.cluster.local cluster.local
options ndots:5
"""


def test_kubelet_file() -> None:
    rc = resolvconf.parse(KUBELET)
    assert rc.nameservers == ("198.18.0.10",)
    assert rc.search == ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local")
    assert rc.ndots == 5
    assert rc.cluster_domain == "cluster.local"
    assert rc.host_search == ()


def test_empty_file_gives_libc_defaults() -> None:
    rc = resolvconf.parse("")
    assert rc == resolvconf.ResolvConf()
    assert (rc.nameservers, rc.search, rc.ndots) == ((), (), 1)
    assert rc.cluster_domain is None


@pytest.mark.parametrize(
    ("text", "nameservers", "search"),
    [
        pytest.param("# nameserver 1.1.1.1\n; nameserver 1.0.0.1\nnameserver 198.18.0.10\n", ("198.18.0.10",), (),
                     id="comment-lines"),
        pytest.param("nameserver 198.18.0.10 # primary\nnameserver 198.18.0.11;secondary\n",
                     ("198.18.0.10", "198.18.0.11"), (), id="trailing-comments"),
        pytest.param("   \n\t\nnameserver\t198.18.0.10\n\n", ("198.18.0.10",), (), id="blank-lines-and-tabs"),
        pytest.param("nameserver\nnameserver 198.18.0.10 extra words\n", ("198.18.0.10",), (),
                     id="nameserver-without-value-ignored"),
        pytest.param("nameserver 198.18.0.10\nnameserver fd00::10\nnameserver 198.18.0.12\n",
                     ("198.18.0.10", "fd00::10", "198.18.0.12"), (), id="several-in-order"),
        pytest.param("search a.example b.example\ndomain c.example\n", (), ("c.example",),
                     id="domain-after-search-wins"),
        pytest.param("domain c.example\nsearch a.example b.example\n", (), ("a.example", "b.example"),
                     id="search-after-domain-wins"),
        pytest.param("search a.example\nsearch b.example\n", (), ("b.example",), id="last-search-wins"),
        pytest.param("search Shop.SVC.Cluster.Local. svc.cluster.local.\n", (),
                     ("shop.svc.cluster.local", "svc.cluster.local"), id="search-normalised"),
        pytest.param("sortlist 130.155.160.0/255.255.240.0\nlookup file bind\n", (), (), id="unknown-keywords-ignored"),
        # The kubelet drops "." from the node's search list (conformance e2e uses one).
        pytest.param("search . corp.example\n", (), ("corp.example",), id="root-entry-dropped-as-the-kubelet-does"),
    ],
)
def test_lines(text: str, nameservers: tuple[str, ...], search: tuple[str, ...]) -> None:
    rc = resolvconf.parse(text)
    assert rc.nameservers == nameservers
    assert rc.search == search


@pytest.mark.parametrize(
    ("options", "ndots"),
    [
        pytest.param("options ndots:5", 5, id="ndots"),
        pytest.param("options ndots:0", 0, id="ndots-0"),
        pytest.param("options ndots:15", 15, id="ndots-15"),
        pytest.param("options ndots:16", 15, id="ndots-capped-at-15"),
        pytest.param("options ndots:99", 15, id="ndots-99-capped"),
        pytest.param("options timeout:1 attempts:3 rotate single-request-reopen", 1, id="other-options-ignored"),
        pytest.param("options ndots:2\noptions ndots:3", 3, id="later-options-line-wins"),
        pytest.param("options ndots:x timeout:3", 1, id="malformed-ndots-ignored"),
        pytest.param("options ndots: attempts:2", 1, id="empty-ndots-ignored"),
        pytest.param("options ndots timeout:abc attempts:", 1, id="all-malformed"),
        pytest.param("options ndots:2 ndots:bad", 2, id="malformed-does-not-reset"),
        pytest.param("options timeout:0.5", 1, id="timeout-alone"),
    ],
)
def test_options(options: str, ndots: int) -> None:
    rc = resolvconf.parse("nameserver 198.18.0.10\n" + options + "\n")
    assert rc.ndots == ndots


@pytest.mark.parametrize(
    ("search", "zone", "host"),
    [
        pytest.param("shop.svc.cluster.local svc.cluster.local cluster.local", "cluster.local", (), id="kubelet"),
        pytest.param("kube-system.svc.k8s.example.internal svc.k8s.example.internal k8s.example.internal "
                     "us-east-1.compute.internal corp.example", "k8s.example.internal",
                     ("us-east-1.compute.internal", "corp.example"), id="custom-zone-with-host-domains"),
        pytest.param("corp.example ec2.internal", None, ("corp.example", "ec2.internal"), id="node-resolv-conf"),
        # a namespace may be called "svc": the kubelet then writes svc.svc.<zone> first
        pytest.param("svc.svc.cluster.local svc.cluster.local cluster.local corp.example", "cluster.local",
                     ("corp.example",), id="namespace-named-svc"),
        # a host domain that happens to start with svc. does not shadow the cluster zone
        pytest.param("shop.svc.cluster.local svc.cluster.local cluster.local svc.corp.example corp.example",
                     "cluster.local", ("svc.corp.example", "corp.example"), id="host-domain-starting-with-svc"),
    ],
)
def test_cluster_domain_and_host_search(search: str, zone: str | None, host: tuple[str, ...]) -> None:
    rc = resolvconf.parse(f"nameserver 198.18.0.10\nsearch {search}\n")
    assert rc.cluster_domain == zone
    assert rc.host_search == host


def test_read(tmp_path: Path) -> None:
    p = tmp_path / "resolv.conf"
    p.write_bytes(KUBELET.encode() + b"# caf\xe9 \xff\n")  # undecodable bytes in a comment do not matter
    assert resolvconf.read(str(p)) == resolvconf.parse(KUBELET)


def test_read_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        resolvconf.read(str(tmp_path / "nope"))
