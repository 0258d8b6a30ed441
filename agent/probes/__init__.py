"""Probe engines: DNS (dnspython messages, shared UDP sockets) and TCP connects."""
