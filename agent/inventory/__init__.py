"""Where the inventory comes from: Kubernetes objects parsed into `agent.model`."""
