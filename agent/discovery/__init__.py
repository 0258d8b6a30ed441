"""Inventory sources: a static manifest file (`static`) or the live cluster (`kube`).

`kube` (with `listwatch` and `client`) is the only code that imports the `kubernetes`
client, for configuration and credentials; it is imported only when the agent discovers
from the API. Objects are read as raw JSON into `agent.model` by `agent.inventory.parse`.
"""
