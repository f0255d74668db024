"""Training data: the shapes world, real webdataset shards, caption policies, prepared latents."""
