"""`svcprobe demo`: a self-contained sandbox on loopback (DNS server, TCP backends, agent)."""
