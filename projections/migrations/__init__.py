"""The read models' Alembic migration environment: ``env.py``, the revision template and
``versions/``. Applied by ``projections.migrate``; new revisions are written with
``python -m projections.migrations new "what changed"`` (see ``__main__``)."""
