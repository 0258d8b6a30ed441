"""The static inventory: Kubernetes manifests in a YAML or JSON file.

Accepts exactly what `kubectl get svc,endpointslices -A -o yaml` prints (a `v1 List`), plain
multi-document YAML, JSON, and Lists nested in either. Objects of other kinds are skipped
with a warning; malformed Services and EndpointSlices are reported by name and field.

Input is bounded: YAML aliases are refused (kubectl never writes them, and a few hundred bytes
of nested aliases expand to gigabytes), and a file nested too deeply or holding a number too
long to convert is reported as unusable rather than crashing the reader.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import yaml

from agent import model
from agent.inventory import parse


class InventoryError(Exception):
    """The inventory file cannot be used at all (missing, unreadable, not YAML/JSON)."""


class _NoAliasLoader(yaml.SafeLoader):
    """The safe loader, refusing aliases (`*name`) instead of expanding them."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not accepted in an inventory",
                                              event.start_mark)
        return super().compose_node(parent, index)


@dataclasses.dataclass(frozen=True)
class LoadResult:
    inventory: model.Inventory
    warnings: tuple[str, ...]  # skipped objects of other kinds
    errors: tuple[str, ...]  # malformed Services / EndpointSlices, each naming the field

    @property
    def ok(self) -> bool:
        return not self.errors


def _objects(doc: Any, where: str) -> Iterator[tuple[str, Any]]:
    if doc is None:
        return
    if isinstance(doc, dict) and isinstance(doc.get("items"), list) and (
        doc.get("kind") in (None, "List") or str(doc.get("kind", "")).endswith("List")
    ):
        for i, item in enumerate(doc["items"]):
            yield from _objects(item, f"{where} items[{i}]")
        return
    yield where, doc


def parse_documents(text: str, *, source: str = "<inventory>",
                    label_keys: frozenset[str] | None = None) -> LoadResult:
    try:
        docs = list(yaml.load_all(text, Loader=_NoAliasLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InventoryError(f"{source}: not valid YAML/JSON{at}: {problem}") from None
    except RecursionError:
        raise InventoryError(f"{source}: nested too deeply to be Kubernetes objects") from None
    except ValueError as exc:  # e.g. an integer too long to convert
        raise InventoryError(f"{source}: unusable value: {str(exc)[:200]}") from None

    services: list[model.Service] = []
    slices: list[model.EndpointSlice] = []
    warnings: list[str] = []
    errors: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for n, doc in enumerate(docs):
        for where, obj in _objects(doc, f"document {n + 1}"):
            try:
                parsed = parse.parse_object(obj, label_keys=label_keys)
            except parse.UnsupportedKind as exc:
                warnings.append(f"{source}: {where}: skipped {exc} "
                                "(not a v1 Service or discovery.k8s.io/v1 EndpointSlice)")
                continue
            except parse.ObjectError as exc:
                errors.append(f"{source}: {where}: {exc}")
                continue
            kind = "Service" if isinstance(parsed, model.Service) else "EndpointSlice"
            ident = (kind, *parsed.key)
            if ident in seen:
                errors.append(f"{source}: {where}: {kind} {parsed.key[0]}/{parsed.key[1]} appears more than once")
                continue
            seen.add(ident)
            if isinstance(parsed, model.Service):
                services.append(parsed)
            else:
                slices.append(parsed)
    return LoadResult(model.Inventory(services, slices), tuple(warnings), tuple(errors))


def load_file(path: str, *, label_keys: frozenset[str] | None = None) -> LoadResult:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise InventoryError(f"{path}: inventory file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{path}: cannot read inventory file: {exc}") from None
    return parse_documents(text, source=path, label_keys=label_keys)


def file_stamp(path: str) -> tuple[int, int, int] | None:
    """What changes when the file is rewritten (for cheap reload polling)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
