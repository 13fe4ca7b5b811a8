"""Human feedback: the ranking server (`rlhf label`), its database, assignment, agreement
statistics, and import/export in the project's data formats (docs/labeling.md).

Nothing here imports torch: the server runs on a machine that has no use for it. The AI-feedback
code beside it (``judge/``: AI judges and `rlhf judge`; ``constitution.py``, ``revise.py``:
Constitutional AI, docs/ai-feedback.md) loads torch only where it runs a model (``judge/local.py``,
the revision loop).
"""
