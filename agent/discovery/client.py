"""The connection to the Kubernetes API server.

Configuration and credentials come from the official client's asyncio package
(`kubernetes.aio.config`): the pod's ServiceAccount (the client's hook re-reads the token file
every minute, so rotated tokens are picked up) or a kubeconfig file and context (tokens, token
files, client certificates, exec plugins, OIDC). Requests themselves are plain aiohttp GETs whose
JSON bodies are read by `agent.discovery.listwatch`, never deserialized into the client's typed
models. On a 401 the whole configuration is loaded again (token file re-read, exec plugin re-run)
before the next request.

This package is the only place that imports `kubernetes`. Credentials never reach a log line or
an error message: only the request path and the server's status are reported.
"""

from __future__ import annotations

import dataclasses
import os
import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp
from kubernetes.aio.client import Configuration
from kubernetes.aio.config import ConfigException, load_kube_config
from kubernetes.aio.config.incluster_config import (
    SERVICE_CERT_FILENAME,
    SERVICE_HOST_ENV_NAME,
    SERVICE_TOKEN_FILENAME,
    InClusterConfigLoader,
)

import agent


class DiscoveryConfigError(Exception):
    """The Kubernetes connection cannot be configured (bad kubeconfig, not in a cluster, ...)."""


@dataclasses.dataclass(frozen=True)
class ConnectionSpec:
    """Where the API server and the credentials come from.

    `kubeconfig` empty: the pod's ServiceAccount when `KUBERNETES_SERVICE_HOST` is set, else
    `$KUBECONFIG` (first existing file of the list) or `~/.kube/config`. The in-cluster paths
    and environment are parameters so that tests can point them at temporary files.
    """

    kubeconfig: str = ""
    context: str = ""
    token_path: str = SERVICE_TOKEN_FILENAME
    ca_path: str = SERVICE_CERT_FILENAME
    environ: Mapping[str, str] | None = None

    def describe(self) -> str:
        env = os.environ if self.environ is None else self.environ
        if self.kubeconfig or not env.get(SERVICE_HOST_ENV_NAME):
            path = self.kubeconfig or env.get("KUBECONFIG") or "~/.kube/config"
            return f"kubeconfig {path}" + (f" context {self.context}" if self.context else "")
        return "in-cluster ServiceAccount"


async def load_configuration(spec: ConnectionSpec) -> Configuration:
    """A fresh client Configuration for `spec`; raises DiscoveryConfigError."""
    env = os.environ if spec.environ is None else spec.environ
    cfg = type.__call__(Configuration)  # not the process-wide default
    try:
        if spec.kubeconfig or not env.get(SERVICE_HOST_ENV_NAME):
            path = spec.kubeconfig or env.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
            first = next((p for p in path.split(os.pathsep) if p and os.path.exists(
                os.path.expanduser(p))), None)
            if first is None:
                raise DiscoveryConfigError(
                    f"no kubeconfig at {path} and not running in a cluster "
                    f"({SERVICE_HOST_ENV_NAME} is not set)")
            await load_kube_config(config_file=path, context=spec.context or None,
                                   client_configuration=cfg, persist_config=False)
        else:
            InClusterConfigLoader(token_filename=spec.token_path, cert_filename=spec.ca_path,
                                  try_refresh_token=True, environ=env).load_and_set(cfg)
    except DiscoveryConfigError:
        raise
    except (ConfigException, OSError, ValueError, KeyError, TypeError) as exc:
        raise DiscoveryConfigError(f"{spec.describe()}: {exc}") from None
    if not cfg.host or not cfg.host.startswith(("http://", "https://")):
        raise DiscoveryConfigError(f"{spec.describe()}: no usable API server address")
    return cfg  # type: ignore[no-any-return]  # the kubernetes package is untyped


def _ssl_context(cfg: Configuration) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert, cadata=cfg.ca_cert_data)
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, keyfile=cfg.key_file)
    if not cfg.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class ApiClient:
    """GET requests to the API server with the configured credentials.

    `open()` loads the configuration; `reauthenticate()` loads it again (after a 401).
    """

    def __init__(self, spec: ConnectionSpec, *, connect_timeout: float = 10.0) -> None:
        self.spec = spec
        self.connect_timeout = connect_timeout
        self._cfg: Configuration | None = None
        self._session: aiohttp.ClientSession | None = None
        self._base = ""
        self._ssl: ssl.SSLContext | bool = True
        self._server_hostname: str | None = None
        self._proxy: str | None = None

    @property
    def server(self) -> str:
        return self._base

    async def open(self) -> None:
        await self._configure()
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"Accept": "application/json",
                         "User-Agent": f"svcprobe/{agent.__version__}"},
                # Proxies only from the kubeconfig (proxy-url), never from the environment.
                trust_env=False,
                read_bufsize=2**18,
            )

    async def reauthenticate(self) -> None:
        await self._configure()

    async def _configure(self) -> None:
        cfg = await load_configuration(self.spec)
        try:
            ctx = _ssl_context(cfg) if cfg.host.startswith("https://") else True
        except (OSError, ssl.SSLError) as exc:
            raise DiscoveryConfigError(f"{self.spec.describe()}: TLS set-up: {exc}") from None
        self._cfg = cfg
        self._base = cfg.host.rstrip("/")
        self._ssl = ctx
        self._server_hostname = cfg.tls_server_name or None
        self._proxy = cfg.proxy or None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _auth_headers(self) -> dict[str, str]:
        assert self._cfg is not None
        auth: Mapping[str, Any] = await self._cfg.auth_settings()  # runs the token refresh hook
        value = (auth.get("BearerToken") or {}).get("value")
        if value:
            return {"Authorization": str(value).strip()}
        if self._cfg.username or self._cfg.password:
            return {"Authorization": str(self._cfg.get_basic_auth_token())}
        return {}

    async def get(self, path: str, params: Mapping[str, str], *,
                  read_timeout: float) -> aiohttp.ClientResponse:
        """Start a GET; the caller reads (or streams) the body and releases the response.

        `read_timeout` bounds every wait for data from the server (headers and each chunk of
        the body), so a half-open connection fails instead of hanging."""
        if self._session is None:
            raise RuntimeError("ApiClient.open() first")
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout,
                                        sock_read=read_timeout)
        return await self._session.get(
            self._base + path, params=params, headers=await self._auth_headers(),
            ssl=self._ssl, server_hostname=self._server_hostname, proxy=self._proxy,
            timeout=timeout, allow_redirects=False)
