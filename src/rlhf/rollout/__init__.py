"""Generation engines and the log-probabilities of what they generated."""
