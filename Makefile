# The two set-up commands: `make run` (the demo on embedded defaults) and `make test` (every check).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export FORETELL_HOME ?= $(CURDIR)/.foretell

.PHONY: run test test-ray lint typecheck layers unit bench grpc-stubs clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("foretell needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

DEMO := $(FORETELL_HOME)/demo
DEMO_CUSTOMERS ?= 1000000
PORT ?= 8000

run: $(STAMP)
	$(BIN)/foretell demo init --customers $(DEMO_CUSTOMERS)
	$(BIN)/python examples/tour.py
	@echo
	@echo "== the same models from the CLI"
	$(BIN)/foretell predict churn@production --input $(DEMO)/customers.parquet \
		--id-column customer_id --extra ignore --limit 5
	echo '[{"user_id": 17}, {"user_id": 42}]' | $(BIN)/foretell predict movies@production --input - --k 5
	@echo
	@echo "== entity tables: what a live prediction for one key reads (events change them)"
	$(BIN)/foretell entities load customers $(DEMO)/customers.parquet --key customer_id --model churn
	$(BIN)/foretell entities load users $(DEMO)/ratings.parquet --key user_id --model movies \
		--interactions ratings --item movie_id --value rating --domain rating=1:5
	@echo
	@echo "== the nightly batch: churn scores for every customer, top-10 films for every user, also into the store"
	rm -rf $(DEMO)/nightly
	$(BIN)/foretell batch run churn@production --input $(DEMO)/customers.parquet \
		--output $(DEMO)/nightly/churn --id-column customer_id --passthrough plan --to-store
	$(BIN)/python examples/show_output.py $(DEMO)/nightly/churn 3
	$(BIN)/foretell batch run movies@production --input $(DEMO)/users.parquet --output $(DEMO)/nightly/movies \
		--id-column user_id --to-store
	$(BIN)/python examples/show_output.py $(DEMO)/nightly/movies 3
	$(BIN)/python examples/hybrid_tour.py
	@echo
	@echo "== the ledger: every prediction for customer C-0000042, whichever way it was made (foretell ledger show)"
	$(BIN)/foretell ledger show churn --key C-0000042
	@echo
	@echo "== a day of traffic (compressed into seconds), the outcomes of yesterday's scores, and what monitoring sees"
	$(BIN)/python examples/day_tour.py
	$(BIN)/foretell labels load churn $(DEMO)/outcomes.parquet --key customer_id --label churned
	$(BIN)/foretell monitor churn --since 2h --report $(DEMO)/monitor.html
	@echo
	@echo "== when to use which, on the traffic that happened: the day's figures from the ledger, priced on this machine"
	$(BIN)/foretell advise churn@production --from-ledger $$(cat $(DEMO)/day-window.txt) --quick \
		--write-config $(DEMO)/serve-recommended.toml
	@echo
	@echo "== a safe rollout: a retrained churn version in shadow, its status after a burst of traffic, then promoted"
	$(BIN)/python examples/rollout_tour.py
	@echo
	@echo "== or for a workload you describe, measured on this machine (about a minute; --quick for ten seconds):"
	@echo "   $(BIN)/foretell advise churn@production --preset nightly-churn --report advice.html"
	@$(BIN)/python examples/serve_examples.py $(PORT)
	@echo "== the dashboard (models, jobs, live, store, rollout, monitor): http://127.0.0.1:$(PORT)/ui/"
	$(BIN)/foretell serve churn@production movies@production --port $(PORT)

test: lint typecheck layers unit

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

# src/ strictly (pyproject.toml), then tests/ (tests/mypy.ini) one folder at a time: test folders are not
# packages, and each has its own conftest.py. About 5 s with a warm cache, 30 s cold.
typecheck: $(STAMP)
	$(BIN)/mypy
	@for dir in $$(find tests -name '*.py' | sed 's|/[^/]*$$||' | sort -u); do \
		$(BIN)/mypy --config-file tests/mypy.ini --no-error-summary $$dir/*.py \
			|| { echo "typecheck: mypy found errors in $$dir/ (settings: tests/mypy.ini)"; exit 1; }; \
	done

layers: $(STAMP)
	$(BIN)/lint-imports

# Coverage of the code the test process runs itself (pyproject.toml, [tool.coverage]); the CLI and server
# subprocesses are not traced. The floor is what the suite met when it was set, so a change that drops
# tests or leaves code unexercised shows.
COVERAGE_FLOOR ?= 87

unit: $(STAMP)
	rm -f .coverage .coverage.*
	$(BIN)/pytest -q -p no:cacheprovider --cov --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR)

# The tests that run on Ray (a local Ray instance of 2 CPUs, started by the tests); `make test` runs them too.
test-ray: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m ray

# The Open Inference Protocol's gRPC stubs (foretell.grpc.stubs), committed: regenerate after editing the .proto.
GRPC_PROTO := src/foretell/grpc/stubs/grpc_predict_v2.proto

# The messages go in a descriptor pool of their own, not protobuf's default one: tritonclient.grpc (and any other
# KServe V2 client) defines the same `inference.*` names there, and a process holding both would fail to import ours.
grpc-stubs: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I src --python_out=src --pyi_out=src $(GRPC_PROTO)
	sed -i 's/^DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(/POOL = _descriptor_pool.DescriptorPool()\nDESCRIPTOR = POOL.AddSerializedFile(/' src/foretell/grpc/stubs/grpc_predict_v2_pb2.py
	sed -i 's/^DESCRIPTOR: _descriptor.FileDescriptor$$/POOL: _descriptor_pool.DescriptorPool\nDESCRIPTOR: _descriptor.FileDescriptor/; s/^from google.protobuf import descriptor as _descriptor$$/&\nfrom google.protobuf import descriptor_pool as _descriptor_pool/' src/foretell/grpc/stubs/grpc_predict_v2_pb2.pyi

bench: $(STAMP)
	$(BIN)/python benchmarks/predict_overhead.py

clean:
	rm -rf $(VENV) .foretell .pytest_cache .mypy_cache .ruff_cache
