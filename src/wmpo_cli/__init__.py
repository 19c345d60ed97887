"""wmpo: World-Model-based Policy Optimization toolkit (arXiv 2511.09515)."""

__version__ = "0.1.0"
