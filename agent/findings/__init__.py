"""Findings: where DNS or Service connectivity broke, from the results of a sweep (per agent)
and across the agents of a cluster (`svcprobe diagnose`)."""

from agent.findings.analysis import Topology, analyze
from agent.findings.kinds import LOOK_AT, NODE_KINDS, Finding, Kind, Severity, Suspect
from agent.findings.tracker import FindingTracker

__all__ = ["LOOK_AT", "NODE_KINDS", "Finding", "FindingTracker", "Kind", "Severity", "Suspect", "Topology",
           "analyze"]
