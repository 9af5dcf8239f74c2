"""One module per command: what it checks and which events it decides.

Each ``decide_*`` function is pure: the aggregate (job and the runs the command names),
the command and the time in; events or a rejection out. ``services.domain.decide`` picks
the one for a command after the checks every command shares.
"""
