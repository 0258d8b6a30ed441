"""Command line: `svcprobe run | check | demo | config-reference`.

This is the only module that reads the process environment. Exit codes: 0 healthy,
1 some check failed (`check`), 2 bad usage or bad configuration/inventory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import yaml

from agent import __version__, settings as settings_mod
from agent.health import Health
from agent.inventory import static
from agent.inventory.source import Source, StaticSource

log = logging.getLogger("agent")

EXIT_OK, EXIT_FAILING, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration (flags override SVCPROBE_* variables, which override --config)")
    g.add_argument("--config", metavar="FILE", help="YAML configuration file")
    g.add_argument("--inventory", metavar="FILE",
                   help="static inventory: Service/EndpointSlice manifests (kubectl get svc,endpointslices -A -o yaml)")
    g.add_argument("--nameserver", metavar="IP[:PORT]", action="append",
                   help="DNS server of the resolver path (repeatable); default: from /etc/resolv.conf")
    g.add_argument("--cluster-domain", metavar="ZONE", help="cluster DNS zone (default: from resolv.conf, else cluster.local)")
    g.add_argument("--search", metavar="DOMAIN", action="append",
                   help="extra host search domain appended after the cluster ones (repeatable)")
    g.add_argument("--ndots", type=int, metavar="N", help="ndots of the emulated pod resolver")
    g.add_argument("--listen", metavar="HOST:PORT", help="HTTP listen address (default 0.0.0.0:9142)")
    g.add_argument("--log-level", choices=settings_mod.LOG_LEVELS, help="log level")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svcprobe", description="Kubernetes DNS and Service connectivity prober.")
    parser.add_argument("--version", action="version", version=f"svcprobe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    run = sub.add_parser("run", help="run the agent: sweep, export metrics, serve HTTP")
    _common(run)
    check = sub.add_parser("check", help="one sweep, then a report; exit 1 if anything fails")
    _common(check)
    check.add_argument("--output", choices=("table", "json"), default="table", help="report format")
    check.add_argument("--all", action="store_true", help="table: list every check, not only failing ones")
    demo = sub.add_parser("demo", help="self-contained sandbox on loopback: DNS server, backends, agent")
    demo.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:9142", help="agent HTTP address")
    demo.add_argument("--interval", type=float, default=10.0, metavar="SECONDS", help="sweep interval")
    demo.add_argument("--duration", type=float, default=0.0, metavar="SECONDS",
                      help="stop after this long (0: until Ctrl-C)")
    demo.add_argument("--log-level", choices=settings_mod.LOG_LEVELS, default="info")
    sub.add_parser("config-reference", help="print the configuration reference (Markdown)")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.inventory is not None:
        out["inventory.file"] = args.inventory
    if args.nameserver:
        out["dns.nameservers"] = tuple(args.nameserver)
    if args.cluster_domain is not None:
        out["dns.cluster_domain"] = args.cluster_domain
    if args.search:
        out["dns.search"] = tuple(args.search)
    if args.ndots is not None:
        out["dns.ndots"] = args.ndots
    if args.listen is not None:
        out["listen"] = args.listen
    if args.log_level is not None:
        out["log_level"] = args.log_level
    return out


def read_config_file(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise settings_mod.ConfigError(f"--config: {path} does not exist") from None
    except OSError as exc:
        raise settings_mod.ConfigError(f"--config: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise settings_mod.ConfigError(f"--config: {path} is not valid YAML{at}: "
                                       f"{getattr(exc, 'problem', None) or exc}") from None
    return {} if data is None else data


def load_settings(args: argparse.Namespace, env: dict[str, str]) -> settings_mod.Settings:
    from agent.runner import target_settings

    file_data = read_config_file(args.config) if args.config else None
    s = settings_mod.load(file_data=file_data, env=env, overrides=_overrides(args))
    target_settings(s)  # selector, Service references and addresses: fail now, naming the key
    return s


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
               "msg": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def open_source(s: settings_mod.Settings, health: Health, *, strict: bool) -> Source:
    """The inventory source for these settings: the static file when one is given, else the
    Kubernetes API. Raises UsageError on a bad static inventory."""
    if not s.inventory.file:
        from agent.discovery.source import KubeSource

        health.kube_discovery = True
        return KubeSource.from_settings(s.kubernetes, health)
    source = StaticSource(s.inventory.file, health, reload_seconds=s.inventory.reload_seconds)
    try:
        result = source.load_initial()
    except static.InventoryError as exc:
        raise UsageError(str(exc)) from None
    if result.errors and strict:
        raise UsageError(f"{len(result.errors)} malformed object(s) in the inventory (see above); fix them first")
    return source


async def _check(s: settings_mod.Settings, args: argparse.Namespace) -> int:
    from agent import report
    from agent.runner import Agent

    health = Health()
    source = open_source(s, health, strict=True)
    watch: asyncio.Task[None] | None = None
    try:
        if health.kube_discovery:
            watch = await _sync_from_api(source, s)
        agent = Agent(s, source, health)
        stats = await agent.check_once()
    finally:
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
    results = agent.store.snapshot()
    if args.output == "json":
        sys.stdout.write(report.to_json(results, stats) + "\n")
    else:
        sys.stdout.write(report.to_table(results, stats, show_all=args.all))
    return EXIT_FAILING if any(not r.passing for r in results) else EXIT_OK


async def _sync_from_api(source: Source, s: settings_mod.Settings) -> asyncio.Task[None]:
    """Start the list+watch and wait for the first full sync (`check` against a live cluster)."""
    from agent.discovery.source import DiscoveryConfigError, KubeSource

    assert isinstance(source, KubeSource)
    try:
        await source.connect()
    except DiscoveryConfigError as exc:
        raise UsageError(f"Kubernetes API: {exc}") from None
    task = asyncio.create_task(source.run(), name="svcprobe-discovery")
    try:
        synced = await source.wait_synced(SYNC_TIMEOUT)
    except DiscoveryConfigError as exc:
        await _stop(task)
        raise UsageError(f"Kubernetes API: {exc}") from None
    if not synced:
        await _stop(task)
        raise UsageError(f"Kubernetes API {source.server}: no full list of Services and EndpointSlices "
                         f"within {SYNC_TIMEOUT:.0f}s: {source.last_error or 'no answer'}")
    return task


SYNC_TIMEOUT = 60.0


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel and wait, so the API session is closed before we exit."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _run(s: settings_mod.Settings) -> int:
    from agent.runner import Agent

    health = Health()
    source = open_source(s, health, strict=True)
    if health.kube_discovery:
        from agent.discovery.source import DiscoveryConfigError, KubeSource

        assert isinstance(source, KubeSource)
        try:  # a bad kubeconfig or missing ServiceAccount is a configuration error: say so now
            await source.connect()
        except DiscoveryConfigError as exc:
            raise UsageError(f"Kubernetes API: {exc}") from None
    await Agent(s, source, health).run()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "config-reference":
        sys.stdout.write(settings_mod.reference_markdown())
        return EXIT_OK
    if args.command == "demo":
        from agent.demo import sandbox

        setup_logging(args.log_level)
        try:
            return asyncio.run(sandbox.main(listen=args.listen, interval=args.interval, duration=args.duration))
        except KeyboardInterrupt:
            return EXIT_OK
        except (settings_mod.ConfigError, OSError) as exc:
            print(f"svcprobe demo: {exc}", file=sys.stderr)
            return EXIT_USAGE
    try:
        s = load_settings(args, dict(os.environ))
    except settings_mod.ConfigError as exc:
        print(f"svcprobe: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(s.log_level if args.command == "run" else (args.log_level or "warning"), s.log_format)
    started = time.monotonic()
    try:
        if args.command == "check":
            return asyncio.run(_check(s, args))
        return asyncio.run(_run(s))
    except UsageError as exc:
        print(f"svcprobe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # e.g. the listen address is taken
        print(f"svcprobe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        log.info("interrupted after %.0fs", time.monotonic() - started)
        return EXIT_OK
