"""Model backends: the code that loads a model format and serves it inside a model host.

Each backend is a class constructed with ``(manifest, weights_path, device)``; heavy
libraries are imported in the constructor, so importing this package costs nothing.
"""
