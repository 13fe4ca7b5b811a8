"""The error a user gets for a wrong model path or model setting."""


class ModelError(ValueError):
    """A model path or model setting a user gave is wrong."""
