"""One explicit training loop per stage, on `accelerate`."""
