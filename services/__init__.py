"""jobledger's runnable processes (api, processor, executor, projector, cli) and the pure
domain core they share (``services.domain``)."""
