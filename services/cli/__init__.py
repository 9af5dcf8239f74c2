"""The ``jobledger`` command: run the whole stack locally, hash keys."""
