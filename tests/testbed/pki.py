"""The bed's certificates, keys and kubeconfigs, made with openssl (EC P-256, valid 30 days).

In the pki directory: a CA (ca.crt/ca.key); the kube-apiserver serving certificate with the SANs
a client may use (kubernetes..., localhost, 127.0.0.1, CP_IP, KUBERNETES_IP); client
certificates admin (group system:masters), kube-proxy (system:kube-proxy) and coredns
(system:coredns); and the ServiceAccount token signing key pair sa.key/sa.pub. Kubeconfigs are
written as JSON (which is YAML) with the certificates embedded.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

from tests.testbed.netns import run
from tests.testbed.topology import CLUSTER_DOMAIN, CP_IP, KUBERNETES_IP


def _openssl(*args: str) -> None:
    run(["openssl", *args])


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def make(d: Path) -> None:
    """Writes the CA, the leaf certificates and the ServiceAccount keys into directory `d`."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"),
        "-days", "30", "-sha256", "-subj", "/CN=svcprobe-testbed-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )

    def leaf(name: str, subject: str, eku: str, san: str = "") -> None:
        ext = d / f"{name}.ext"
        ext.write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage={eku}\n" + (f"subjectAltName={san}\n" if san else "")
        )
        _openssl(
            "req", "-new", *ec, "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"),
            "-subj", subject,
        )
        _openssl(
            "x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"),
            "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "30", "-sha256",
            "-extfile", str(ext), "-out", str(d / f"{name}.crt"),
        )

    sans = ",".join(
        [f"DNS:{n}" for n in ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                              f"kubernetes.default.svc.{CLUSTER_DOMAIN}", "localhost")]
        + [f"IP:{ip}" for ip in ("127.0.0.1", CP_IP, KUBERNETES_IP)]
    )
    leaf("apiserver", "/CN=kube-apiserver", "serverAuth", sans)
    leaf("admin", "/O=system:masters/CN=svcprobe-testbed-admin", "clientAuth")
    leaf("kube-proxy", "/CN=system:kube-proxy", "clientAuth")
    leaf("coredns", "/CN=system:coredns", "clientAuth")
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", str(d / "sa.key"))
    _openssl("pkey", "-in", str(d / "sa.key"), "-pubout", "-out", str(d / "sa.pub"))


def write_kubeconfig(
    path: Path, *, pki: Path, server: str, cert: str | None = None, token: str | None = None,
) -> Path:
    """Writes a kubeconfig for `server` (trusting pki/ca.crt) that authenticates with the
    client certificate pki/CERT.crt+key, a bearer token, or both; returns `path`."""
    user: dict[str, str] = {}
    if cert:
        user["client-certificate-data"] = _b64(pki / f"{cert}.crt")
        user["client-key-data"] = _b64(pki / f"{cert}.key")
    if token:
        user["token"] = token
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testbed", "cluster": {
            "server": server,
            "certificate-authority-data": _b64(pki / "ca.crt")}}],
        "users": [{"name": "testbed", "user": user}],
        "contexts": [{"name": "testbed", "context": {"cluster": "testbed", "user": "testbed"}}],
        "current-context": "testbed",
    }
    path.write_text(json.dumps(cfg, indent=1) + "\n")
    path.chmod(0o600)
    return path
