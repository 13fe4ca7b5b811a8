"""The real-model task: make a chat model decline harmful requests and keep answering their benign
look-alikes. Prompt families written for this project (``harmful.py``, ``benign.py``) with a
held-out split by template and filler (``family.py``, ``prompts.py``), the gold rule the simulated
raters perceive (``gold.py``), demonstrations (``demonstrations.py``) and what alignment may cost
(``general.py``). ``rlhf demo --preset smollm`` runs the pipeline on it (rlhf.demo.smollm)."""
