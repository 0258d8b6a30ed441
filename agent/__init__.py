"""svcprobe: in-cluster DNS and Service connectivity diagnostic agent."""

__version__ = "0.1.0"
