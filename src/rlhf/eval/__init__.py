"""How a model is evaluated, for every verb and demo: pure metrics (win rates, KL summary,
diversity, reward-model agreement, best-of-k), KL estimates (kl.py), held-out NLL (nll.py),
response statistics and best-of-n picks (responses.py), over-optimisation fits (gao.py)."""
