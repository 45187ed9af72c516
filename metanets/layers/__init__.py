"""Graph layers shared by the metanetworks, the hypernetworks and the learned analyses.

One operator per module, the file named after what it computes; each layer's docstring states the
symmetry it respects. Import layers from their modules (``weightzoo.metanets.layers.<module>``).
"""
