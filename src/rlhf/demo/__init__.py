"""`rlhf demo`: the whole pipeline on the built-in toy world."""

from rlhf.demo.pipeline import run_demo

__all__ = ["run_demo"]
