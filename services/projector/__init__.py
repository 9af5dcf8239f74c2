"""The projector process: events topic -> SQL read models (see ``projections``)."""
