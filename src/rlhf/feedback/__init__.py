"""Human feedback: the ranking server (`rlhf label`), its database, assignment, agreement
statistics, and import/export in the project's data formats (docs/labeling.md).

Nothing here imports torch: the server runs on a machine that has no use for it.
"""
