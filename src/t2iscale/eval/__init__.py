"""Evaluation: generate images for a prompt set, then score them (TIFA, CLIP score, FID), linked by files."""
