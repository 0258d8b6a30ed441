"""Running checks: the DNS engine (`dns`), TCP connects (`tcp`), the DNS query budget
(`budget`), judging answers against expectations (`answers`), and the `Prober` that puts
them together for the scheduler."""
