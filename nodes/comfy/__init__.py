"""ComfyUI's core nodes under their own names, inputs and semantics, on our model hosts.

Values follow ComfyUI's conventions (see ``value``): IMAGE is a float tensor B×H×W×C in
0..1, MASK B×H×W, LATENT a dict holding raw VAE latents in ``samples``. MODEL, CLIP and VAE
are small handles naming a resident model host, never the weights themselves.
"""
