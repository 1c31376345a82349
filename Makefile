# panthor-testbed: the two commands a newcomer needs.
#   make run   set up .venv (if missing) and run the default fuzz campaign
#   make test  set up .venv with the test extra, lint, type-check, run the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# mypy resolves `panthor_testbed` through this link (the package root is the repo root).
MYPY_ROOT := $(VENV)/mypy-root

.PHONY: run test test-stress lint typecheck bench mutate clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	mkdir -p $(MYPY_ROOT) && ln -sfn ../.. $(MYPY_ROOT)/panthor_testbed
	touch $(STAMP)

run: $(STAMP)
	@$(BIN)/panthor-testbed fuzz $(ARGS); status=$$?; \
	if [ $$status -eq 1 ]; then echo "make run: the campaign found failures (replay files above)"; \
	elif [ $$status -ne 0 ]; then exit $$status; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	MYPYPATH=$(MYPY_ROOT) $(BIN)/mypy -p panthor_testbed

test: lint typecheck
	$(BIN)/pytest -q

# The longer CI stress set (slow fuzz tests).
test-stress: $(STAMP)
	$(BIN)/pytest -q -m slow

# Mutation testing of one model module (docs/mutation.md), e.g.
#   make mutate MODULE=sched/dma_buf/dma_fence.py TESTS="tests/sched/test_dma_fence.py" ARGS="--sample 40 --seed 1"
mutate: $(STAMP)
	@test -n "$(MODULE)" -a -n "$(TESTS)" || { echo 'usage: make mutate MODULE=path.py TESTS="tests ..." [ARGS="--sample N --seed S"]'; exit 2; }
	$(BIN)/python tools/mutate.py --module $(MODULE) --tests "$(TESTS)" $(ARGS)

bench: $(STAMP)
	$(BIN)/panthor-testbed bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
