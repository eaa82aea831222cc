"""Models: the store of manifests on disk and the hosts that keep loaded models resident.

Nodes never load a model: they ask their context (``ctx.model(kind, id)``) for a handle to
a host, which loads the model once and serves every later request.
"""
