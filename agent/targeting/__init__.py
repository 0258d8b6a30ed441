"""What this agent probes: selection (namespaces, labels, opt-out annotations), sharding
(rendezvous hashing over the agents), canaries and DNS paths (`assignment`), and the
convergence grace window after a Service changed (`convergence`). Pure: no I/O."""
