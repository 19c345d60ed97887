"""Learned models: the VLA policy, the world model and the reward model."""
