"""Command line: `svcprobe run | check | diagnose | demo | config-reference`.

This is the only module that reads the process environment. Exit codes: `check` 0 healthy,
1 some check failed; `run` 0 after SIGTERM/SIGINT, 1 when a task of the agent died; both 2
for bad usage or a bad configuration or inventory.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import yaml

from agent import __version__, runner, settings as settings_mod
from agent.discovery.source import Source

log = logging.getLogger("agent")

# `check`: 0 healthy, 1 something failing, 2 bad usage, configuration or inventory.
# `diagnose`: 0 no verdict, 1 verdicts or agents not heard from, 2 no source usable.
# `run`: 0 after SIGTERM/SIGINT, 1 when a task of the agent died (logged with its traceback), 2 as above.
EXIT_OK, EXIT_FAILING, EXIT_USAGE = 0, 1, 2
EXIT_CRASHED = 1


def _config_flags(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    g = p.add_argument_group("configuration (flags override SVCPROBE_* variables, which override --config)")
    g.add_argument("--config", metavar="FILE", help="YAML configuration file")
    g.add_argument("--inventory", metavar="FILE",
                   help="static inventory: Service/EndpointSlice manifests (kubectl get svc,endpointslices -A -o yaml) "
                        "instead of the Kubernetes API")
    g.add_argument("--log-level", choices=settings_mod.LOG_LEVELS, help="log level")
    return g


def _cluster_flags(p: argparse.ArgumentParser, *, selection: bool) -> None:
    g = p.add_argument_group("cluster (as kubectl)")
    g.add_argument("--kubeconfig", metavar="FILE",
                   help="kubeconfig file (default: in-cluster ServiceAccount, else $KUBECONFIG or ~/.kube/config)")
    g.add_argument("--context", metavar="NAME", help="kubeconfig context (default: the current one)")
    if selection:
        g.add_argument("-n", "--namespace", metavar="NS", action="append",
                       help="only Services in this namespace (repeatable; canaries are always probed)")
        g.add_argument("-l", "--selector", metavar="SELECTOR",
                       help="only Services whose labels match, e.g. 'tier=web,env!=dev'")
        g.add_argument("--service", metavar="NS/NAME", action="append",
                       help="only this Service (repeatable)")


def _dns_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--nameserver", metavar="IP[:PORT]", action="append",
                   help="DNS server of the resolver path (repeatable); default: from /etc/resolv.conf")
    g.add_argument("--cluster-domain", metavar="ZONE",
                   help="cluster DNS zone (default: from resolv.conf, else cluster.local)")
    g.add_argument("--search", metavar="DOMAIN", action="append",
                   help="extra host search domain appended after the cluster ones (repeatable)")
    g.add_argument("--ndots", type=int, metavar="N", help="ndots of the emulated pod resolver")


def _output_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", choices=("table", "json"), default="table", help="report format")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svcprobe", description="Kubernetes DNS and Service connectivity prober.")
    parser.add_argument("--version", action="version", version=f"svcprobe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run", help="run the agent: sweep, export metrics, serve HTTP")
    g = _config_flags(run)
    _dns_flags(g)
    g.add_argument("--listen", metavar="HOST:PORT", help="HTTP listen address (default 0.0.0.0:9142)")
    _cluster_flags(run, selection=True)

    check = sub.add_parser(
        "check", help="one sweep of the whole (selected) cluster, then a report; exit 1 if anything fails",
        description="One sweep, then a report: findings first, then a row per Service and the failing checks. "
                    "Probes every selected Service, whatever the agents' sharding, unless --share.")
    _dns_flags(_config_flags(check))
    _cluster_flags(check, selection=True)
    _output_flag(check)
    check.add_argument("--all", action="store_true", help="table: list every check, not only failing ones")
    check.add_argument("--share", action="store_true",
                       help="probe only this agent's share, as `svcprobe run` does (sharding settings)")

    diagnose = sub.add_parser(
        "diagnose", help="merge every agent's findings into cluster verdicts; exit 1 if there are any",
        description="Gather the findings of every agent and say where the cluster is broken. Sources: "
                    "--prometheus (the svcprobe_finding series), --agent URLs, or by default the agents "
                    "listed by their headless Service (sharding.peers_service) in the Kubernetes API "
                    "or a static --inventory.")
    src = diagnose.add_mutually_exclusive_group()
    src.add_argument("--prometheus", metavar="URL", help="Prometheus base URL (e.g. http://localhost:9090)")
    src.add_argument("--agent", metavar="URL", action="append", help="an agent's base URL (repeatable)")
    diagnose.add_argument("--agents-service", metavar="NAMESPACE/NAME",
                          help="the agents' headless Service (default: sharding.peers_service)")
    _config_flags(diagnose)
    _cluster_flags(diagnose, selection=False)
    _output_flag(diagnose)
    diagnose.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per request")
    diagnose.add_argument("--stale-after", type=float, default=300.0, metavar="SECONDS",
                          help="--prometheus: an agent whose last sweep is older is not heard")

    demo = sub.add_parser("demo", help="self-contained sandbox on loopback: DNS server, backends, agent")
    demo.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:9142", help="agent HTTP address")
    demo.add_argument("--interval", type=float, default=10.0, metavar="SECONDS", help="sweep interval")
    demo.add_argument("--duration", type=float, default=0.0, metavar="SECONDS",
                      help="stop after this long (0: until Ctrl-C)")
    demo.add_argument("--log-level", choices=settings_mod.LOG_LEVELS, default="info")
    sub.add_parser("config-reference", help="print the configuration reference (Markdown)")
    return parser


# Flag -> setting, for the flags a command has (argparse leaves the others out of `args`).
_FLAG_SETTINGS = {
    "inventory": "inventory.file",
    "log_level": "log_level",
    "kubeconfig": "kubernetes.kubeconfig",
    "context": "kubernetes.context",
    "namespace": "selection.namespaces",
    "selector": "selection.label_selector",
    "service": "selection.services",
    "nameserver": "dns.nameservers",
    "cluster_domain": "dns.cluster_domain",
    "search": "dns.search",
    "ndots": "dns.ndots",
    "listen": "listen",
    "agents_service": "sharding.peers_service",
}


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for flag, key in _FLAG_SETTINGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            out[key] = tuple(value) if isinstance(value, list) else value
    if args.command == "check" and not args.share:
        out["sharding.replicas"] = 0  # the whole selected cluster, whatever the agents' sharding
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
    file_data = read_config_file(args.config) if args.config else None
    return settings_mod.load(file_data=file_data, env=env, overrides=_overrides(args))


# What every LogRecord has; anything else was passed as `extra` and becomes a field.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: `ts` in RFC 3339 (UTC), level, logger, msg, and the event's
    own fields (`event`, `namespace`, `service`, `kind`, ...)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds")
        out: dict[str, Any] = {"ts": ts.replace("+00:00", "Z"), "level": record.levelname.lower(),
                               "logger": record.name, "msg": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


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


class _Progress:
    """`check` on a terminal: what it is doing, on one stderr line."""

    def __init__(self) -> None:
        self.total = self.done = 0
        self._shown = 0.0

    def say(self, text: str) -> None:
        sys.stderr.write(f"\r\x1b[K{text}")
        sys.stderr.flush()

    def planned(self, checks: int) -> None:
        self.total = checks
        self.say(f"probing: 0/{checks} checks")

    def result(self, _: object) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self._shown >= 0.2 or self.done == self.total:
            self._shown = now
            self.say(f"probing: {self.done}/{self.total} checks")

    def clear(self) -> None:
        self.say("")


async def _check(s: settings_mod.Settings, args: argparse.Namespace, env: dict[str, str]) -> int:
    from agent import report

    progress = _Progress() if sys.stderr.isatty() else None
    agent = runner.build(s)
    watch: asyncio.Task[None] | None = None
    try:
        if agent.health.kube_discovery:
            if progress:
                progress.say("listing Services and EndpointSlices from the Kubernetes API ...")
            watch = await _sync_from_api(agent.source)
        stats = await agent.check_once(on_plan=progress.planned if progress else None,
                                       on_result=progress.result if progress else None)
    finally:
        if watch is not None:
            await _stop(watch)
        if progress:
            progress.clear()
    results = agent.store.snapshot()
    findings = agent.findings.current
    notes = []
    t = agent.current_assignment()
    if args.share:
        notes.append(report.share_note(t.owned, t.selected, len(t.canaries), s.sharding.replicas, len(t.peers)))
    topology = agent.topology()
    outside = report.outside_cluster_note(
        results, in_cluster=bool(env.get("KUBERNETES_SERVICE_HOST")),
        resolver=[h for h, _ in settings_mod.nameserver_addresses(s)], dns_service_ips=topology.dns_service_ips)
    if outside:
        notes.append(outside)
    if args.output == "json":
        sys.stdout.write(report.to_json(results, stats, findings, notes) + "\n")
    else:
        sys.stdout.write(report.to_table(results, stats, show_all=args.all, findings=findings, notes=notes))
    return EXIT_FAILING if any(not r.passing for r in results) else EXIT_OK


SYNC_TIMEOUT = 60.0


async def _sync_from_api(source: Source) -> asyncio.Task[None]:
    """Start the list+watch and wait for the first full sync (`check` against a live cluster)."""
    from agent.discovery.client import DiscoveryConfigError
    from agent.discovery.kube import KubeSource

    assert isinstance(source, KubeSource)
    await runner.connect(source)
    task = asyncio.create_task(source.run(), name="svcprobe-discovery")
    try:
        synced = await source.wait_synced(SYNC_TIMEOUT)
    except DiscoveryConfigError as exc:
        await _stop(task)
        raise runner.SourceError(f"Kubernetes API: {exc}") from None
    if not synced:
        await _stop(task)
        raise runner.SourceError(f"Kubernetes API {source.server}: no full list of Services and EndpointSlices "
                                 f"within {SYNC_TIMEOUT:.0f}s: {source.last_error or 'no answer'}")
    return task


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel and wait, so the API session is closed before we exit."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _diagnose(args: argparse.Namespace) -> int:
    from agent import diagnose

    if args.prometheus:
        unused = [f"--{flag.replace('_', '-')}" for flag in ("inventory", "kubeconfig", "context", "agents_service",
                                                             "config") if getattr(args, flag) is not None]
        if unused:
            raise diagnose.DiagnoseError(f"{', '.join(unused)}: not used with --prometheus (Prometheus has "
                                         "every agent's findings); drop them")
        gathered = await diagnose.from_prometheus(args.prometheus, timeout=args.timeout,
                                                  stale_after=args.stale_after)
    else:
        urls = args.agent or await _agent_urls(load_settings(args, dict(os.environ)))
        gathered = await diagnose.from_agents(urls, timeout=args.timeout)
    if not gathered.nodes:
        raise diagnose.DiagnoseError(f"no agent could be heard ({gathered.source}): "
                                     + "; ".join(gathered.silent[:5]))
    sys.stdout.write(diagnose.to_json(gathered) + "\n" if args.output == "json" else diagnose.to_text(gathered))
    return EXIT_FAILING if gathered.verdicts() or gathered.silent else EXIT_OK


async def _agent_urls(s: settings_mod.Settings) -> list[str]:
    """The agents' URLs from their headless Service, read from the API or the static inventory."""
    from agent import diagnose
    from agent.health import Health

    peers = settings_mod.service_refs(s).peers_service
    if peers is None:
        raise diagnose.DiagnoseError("which Service lists the agents? Give --agents-service NAMESPACE/NAME "
                                     "(or --agent URL, or --prometheus URL)")
    health = Health()
    source = runner.open_source(s, health, strict=False)
    watch = await _sync_from_api(source) if health.kube_discovery else None
    try:
        return diagnose.agent_urls(source.inventory, peers, settings_mod.parse_listen(s.listen)[1])
    finally:
        if watch is not None:
            await _stop(watch)


async def _run(s: settings_mod.Settings) -> int:
    agent = runner.build(s)
    await runner.connect(agent.source)
    await agent.run()
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
    if args.command == "diagnose":
        from agent.diagnose import DiagnoseError

        setup_logging(args.log_level or "warning")
        try:
            return asyncio.run(_diagnose(args))
        except settings_mod.ConfigError as exc:
            print(f"svcprobe diagnose: configuration error: {exc}", file=sys.stderr)
        except (DiagnoseError, runner.SourceError) as exc:
            print(f"svcprobe diagnose: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        s = load_settings(args, dict(os.environ))
    except settings_mod.ConfigError as exc:
        print(f"svcprobe: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(s.log_level if args.command == "run" else (args.log_level or "warning"), s.log_format)
    started = time.monotonic()
    try:
        runner.ensure_fd_limit(s)
    except runner.LimitError as exc:
        print(f"svcprobe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "check":
            return asyncio.run(_check(s, args, dict(os.environ)))
        return asyncio.run(_run(s))
    except runner.SourceError as exc:
        print(f"svcprobe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except runner.TaskDied as exc:
        log.critical("svcprobe %s stopped after %.0fs because a task ended: %s", args.command,
                     time.monotonic() - started, exc)
        return EXIT_CRASHED
    except OSError as exc:  # e.g. the listen address is taken
        print(f"svcprobe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        log.info("interrupted after %.0fs", time.monotonic() - started)
        return EXIT_OK
