# Conveyor: start, stop, scale and inspect the stack. `make` alone lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# ---- Variables (override on the command line: make scale WORKERS=4) -------------
WORKERS ?= 1
SERVICE ?=
# A declared queue (queues.toml): `make scale QUEUE=email` scales its worker service.
QUEUE ?=
ARGS ?=
FORCE ?=
# `make audit AUDIT_ARGS=--allow-unaudited` passes where no advisory source can
# answer for an older pin (this build network: see docs/security.md).
AUDIT_ARGS ?= --allow-unaudited
# Seconds `make inspect` waits for workers to reply to each broadcast.
INSPECT_TIMEOUT ?= 2
PYTEST_ARGS ?=
PYTHON ?= python3
VENV ?= .venv
BUILD_DIR := .build
WHEELS := $(BUILD_DIR)/wheels
BENCH_WHEELS := $(BUILD_DIR)/bench-wheels
BASES_ENV := $(BUILD_DIR)/bases.env
# Tool versions (COMPOSE_VERSION, KUSTOMIZE_VERSION, ...): one file that .ci/run and
# `make doctor` read too.
include deploy/tool-versions.env

# Compose v2 (`docker compose`) by default, the standalone `docker-compose` otherwise
# (Compose v2's own binary; v1 cannot `up --wait`: make doctor says so); override with
# COMPOSE=... . Every call below goes through $(DC).
ifndef COMPOSE
COMPOSE := $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; \
	elif docker-compose version >/dev/null 2>&1; then echo docker-compose; fi)
endif
# One variable of .env, read by the project's one shell reader (quotes and comments as
# python-dotenv and compose read them). The environment and the command line win over
# .env: each use below looks in .env only for a variable they leave unset.
ENV_GET = bash deploy/scripts/env-file.sh get
# REDIS_TLS=true (in .env or the environment): Redis speaks TLS only, by adding
# deploy/compose/tls.yml to the compose files (COMPOSE_FILE, which compose reads). Every
# mode has one Redis user per role (deploy/redis/roles.acl).
REDIS_TLS ?= $(shell $(ENV_GET) REDIS_TLS .env 2>/dev/null)
CERTS_DIR ?= $(or $(CONVEYOR_CERTS_DIR),$(shell $(ENV_GET) CONVEYOR_CERTS_DIR .env 2>/dev/null),./certs)
comma := ,
empty :=
space := $(empty) $(empty)
# The compose files given (COMPOSE_FILE, else the base file), less the queue layers that
# a calling make added: they are rendered again below.
COMPOSE_GIVEN := $(filter-out $(BUILD_DIR)/compose.queues%,$(subst :, ,$(or $(COMPOSE_FILE),docker-compose.yml)))
ifeq ($(REDIS_TLS),true)
COMPOSE_GIVEN += $(filter-out $(COMPOSE_GIVEN),deploy/compose/tls.yml $(if $(filter worker,$(ROLE)),deploy/compose/remote-worker.yml))
endif
# The queues, declared once: queues.toml and the task project's [tool.conveyor.queues]
# (CONVEYOR_TASKS in .env: a folder with a pyproject.toml), merged and rendered before
# anything runs: .build/queues.json (the image's copy) and the compose layers that give
# each queue its worker service and Redis its queues (conveyor_core.queue_declarations).
# A declaration that cannot be used stops make here, naming the file, queue and setting.
CONVEYOR_TASKS ?= $(shell $(ENV_GET) CONVEYOR_TASKS .env 2>/dev/null)
QUEUES_RENDERED := $(shell PYTHONPATH=services/core $(PYTHON) -m conveyor_core.queue_declarations \
	render --tasks "$(CONVEYOR_TASKS)" --out $(BUILD_DIR) --compose-files "$(subst $(space),:,$(strip $(COMPOSE_GIVEN)))")
ifneq ($(.SHELLSTATUS),0)
$(error the queue declarations are refused (above); $(PYTHON) 3.11+ reads them)
endif
QUEUE_PAIRS := $(filter-out compose:%,$(QUEUES_RENDERED))
QUEUE_NAMES := $(foreach pair,$(QUEUE_PAIRS),$(firstword $(subst =, ,$(pair))))
QUEUE_SERVICES := $(foreach pair,$(QUEUE_PAIRS),$(lastword $(subst =, ,$(pair))))
# Every compose call reads these (an assignment on make's command line included).
override export COMPOSE_FILE := $(subst $(space),:,$(strip $(COMPOSE_GIVEN) $(patsubst compose:%,%,$(filter compose:%,$(QUEUES_RENDERED)))))
# ROLE=worker: this host runs the workers only, for the Redis of another host (TLS).
ROLE ?= all
UP_SERVICES = $(if $(filter worker,$(ROLE)),--no-deps $(QUEUE_SERVICES))

# The development mailbox (an SMTP sink) runs only while the e-mail goes to it: its
# compose profile is on when SMTP_HOST (the environment, else .env, else the settings'
# default) is `mailbox`. With SMTP_HOST pointed at a real server it never starts.
ifeq ($(origin SMTP_HOST),undefined)
SMTP_HOST := $(shell $(ENV_GET) SMTP_HOST .env 2>/dev/null)
endif
MAILBOX_ON := $(if $(filter mailbox,$(or $(SMTP_HOST),mailbox)),true)
# Other profiles given in COMPOSE_PROFILES stay; `mailbox` is this rule's alone (a make
# run from another one, e.g. by the tests, must not inherit it).
OTHER_PROFILES := $(filter-out mailbox,$(subst $(comma),$(space),$(COMPOSE_PROFILES)))
export COMPOSE_PROFILES := $(subst $(space),$(comma),$(strip $(OTHER_PROFILES) $(if $(MAILBOX_ON),mailbox)))

# Base images chosen by `make bases` (public, or built from Debian when air-gapped);
# expanded when a recipe runs, so it sees a file made earlier in the same run.
DC = env $(shell cat $(BASES_ENV) 2>/dev/null) $(COMPOSE)
# Stopping and removing covers the mailbox whatever SMTP_HOST says now.
DC_ALL = $(DC) --profile mailbox
# Celery commands (inspect, purge) run in the producer container: it has the app and
# the broker credentials, and is there even when the workers are scaled to zero. As the
# producer's role (which `exec` does not get from the entrypoint): its Redis user may
# not put back other workers' unacknowledged messages, so it must not try to.
CELERY = $(DC) exec -T -e CONVEYOR_ROLE=producer producer celery --app conveyor_core.celery_app
# No buildx on Debian's Docker 20.10: build with compose's own builder, without a warning.
export COMPOSE_BAKE ?= false

##@ Help
.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m [VAR=value]\n"} \
		/^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
		/^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

# The environment the doctor reads: the compose command chosen above, the Python of .venv.
DOCTOR = COMPOSE="$(COMPOSE)" PYTHON="$(PYTHON)" REDIS_TLS="$(REDIS_TLS)" bash deploy/scripts/doctor.sh

.PHONY: doctor
doctor: ## Check this machine (Docker Engine, Compose v2, Python 3.11, ...): names what is missing or too old
	@$(DOCTOR) all

# What `make up` needs, checked before anything is built; quiet unless something is amiss.
.PHONY: doctor-up
doctor-up:
	@$(DOCTOR) up --quiet

##@ Run
.PHONY: up
up: doctor-up docker-check role-check env mail-check $(if $(filter true,$(REDIS_TLS)),certs) images ## Build and start the stack; wait until every service is healthy (ROLE=worker: workers only)
	@# Compose keeps a container of a service whose profile is off: remove a mailbox
	@# left from before SMTP_HOST pointed elsewhere.
	$(if $(MAILBOX_ON)$(UP_SERVICES),,$(DC_ALL) rm --stop --force mailbox)
	@if [[ "$(REDIS_TLS)" == true && "$(ROLE)" != worker ]]; then $(MAKE) redis-tls-key; fi
	$(DC) up --detach --wait $(if $(UP_SERVICES),$(UP_SERVICES),--remove-orphans)
	@if [[ "$(ROLE)" != worker ]]; then $(MAKE) urls; fi

# ROLE=worker needs TLS: its Redis is another host's. Checked before anything is made.
.PHONY: role-check
role-check:
	@if [[ "$(ROLE)" != all && "$(ROLE)" != worker ]]; then \
		echo "ROLE must be all or worker, got '$(ROLE)'" >&2; exit 2; fi
	@if [[ "$(ROLE)" == worker && "$(REDIS_TLS)" != true ]]; then \
		echo "ROLE=worker reaches Redis on another host: set REDIS_TLS=true (docs/deploy.md)" >&2; exit 2; fi

# Before the build, what the e-mail worker's start-up check would refuse later (the rule
# is WorkerSettings.email_problems'): production e-mail going to the development mailbox.
.PHONY: mail-check
mail-check:
	@. deploy/scripts/env-file.sh; env_file_export .env 2>/dev/null || true; \
	if [[ "$(MAILBOX_ON)" == true && "$${CONVEYOR_ENV:-production}" == production ]]; then \
		echo "CONVEYOR_ENV is production and SMTP_HOST is mailbox, the development sink that" \
			"delivers nothing: set SMTP_HOST (and SMTP_PORT, SMTP_SECURITY, SMTP_USER," \
			"SMTP_PASSWORD) to your SMTP server, or CONVEYOR_ENV=development (docs/email.md)" >&2; \
		exit 2; fi

.PHONY: down
down: docker-check ## Stop and remove the containers (keeps volumes: queued tasks survive)
	$(DC_ALL) down --remove-orphans

.PHONY: stop
stop: docker-check ## Stop gracefully: SIGTERM, workers finish running tasks first
	$(DC_ALL) stop

# Redis is left running: a SIGKILLed Redis loses its last second of writes, the one loss
# docs/reliability.md says nothing covers. `make stop` stops it gracefully.
.PHONY: kill
kill: docker-check ## SIGKILL every service but Redis (unfinished tasks run again after VISIBILITY_TIMEOUT, 10 min)
	$(DC_ALL) kill --signal SIGKILL $$($(DC_ALL) config --services | grep -vx redis)

.PHONY: restart
restart: docker-check .env ## Graceful stop, then start again and wait (SERVICE=redis for one)
	$(DC) stop $(SERVICE)
	$(DC) up --detach --wait --no-build $(SERVICE)

.PHONY: scale
# The service to scale: SERVICE, else QUEUE's worker service, else the default queue's.
SCALED = $(or $(SERVICE),$(if $(QUEUE),$(lastword $(subst =, ,$(filter $(QUEUE)=%,$(QUEUE_PAIRS)))),worker))
scale: docker-check .env ## Run WORKERS workers of a queue: make scale WORKERS=3 [QUEUE=email] (or SERVICE=...)
	@[[ "$(WORKERS)" =~ ^[0-9]+$$ ]] || { echo "WORKERS must be a whole number, got '$(WORKERS)'" >&2; exit 2; }
	@[[ -n "$(SCALED)" ]] || { echo "QUEUE=$(QUEUE) is not a declared queue; declared: $(QUEUE_NAMES)" >&2; exit 2; }
	$(DC) up --detach --wait --no-build --no-recreate $(if $(filter worker,$(ROLE)),--no-deps) \
		--scale $(SCALED)=$(WORKERS) $(SCALED)

.PHONY: ps
ps: docker-check ## List the containers and their health
	$(DC) ps

.PHONY: logs
logs: docker-check ## Follow logs (SERVICE=worker for one service)
	$(DC) logs --follow --tail=200 $(SERVICE)

.PHONY: urls
urls: ## Print where the API, its docs, Flower and the mailbox (while SMTP_HOST=mailbox) are
	@. deploy/scripts/env-file.sh; env_file_export .env || true; \
	host=$${CONVEYOR_BIND_ADDRESS:-127.0.0.1}; \
	echo "API:      http://$$host:$${PRODUCER_PORT:-8000}/api/v1  (Bearer CONVEYOR_API_KEY from .env)"; \
	echo "API docs: http://$$host:$${PRODUCER_PORT:-8000}/docs"; \
	echo "Flower:   http://$$host:$${FLOWER_PORT:-5555}  (user $${FLOWER_USER:-admin}, FLOWER_PASSWORD in .env)"; \
	if [[ "$(MAILBOX_ON)" == true ]]; then \
		echo "Mailbox:  http://$$host:$${MAILBOX_PORT:-8025}  (user $${MAILBOX_USER:-admin}, MAILBOX_PASSWORD in .env)"; \
	else echo "E-mail:   sent to $(SMTP_HOST) (no development mailbox)"; fi

.PHONY: flower
flower: ## Print Flower's URL and user (the password is FLOWER_PASSWORD in .env)
	@. deploy/scripts/env-file.sh; env_file_export .env || true; \
	echo "http://$${CONVEYOR_BIND_ADDRESS:-127.0.0.1}:$${FLOWER_PORT:-5555}  user: $${FLOWER_USER:-admin}  password: FLOWER_PASSWORD in .env"

##@ Inspect and operate
.PHONY: cli
cli: docker-check ## Run the conveyor CLI in the producer container: make cli ARGS="submit add 2 3 --wait 10"
	@tty=; [ -t 0 ] && [ -t 1 ] || tty=-T; \
	$(DC) exec $$tty producer conveyor $(ARGS)

.PHONY: inspect
inspect: docker-check ## Workers' ping, active, reserved and stats, and queue lengths
	@for what in ping active reserved stats; do \
		echo "== $$what"; \
		$(CELERY) inspect $$what --timeout $(INSPECT_TIMEOUT) || true; \
	done
	@echo "== queue lengths"
	@$(MAKE) queues

.PHONY: queues
queues: docker-check ## Print each queue's length (messages waiting, all priorities)
	@$(DC) exec -T producer conveyor queues

.PHONY: redis-audit
redis-audit: docker-check ## Key counts by kind in Redis (queues, unacked, results without expiry, reply queues) so leaks show
	@$(DC) exec -T producer python -m conveyor_producer.audit $(ARGS)

.PHONY: dlq
dlq: docker-check ## List the dead-letter store (failed, quarantined, unrunnable tasks)
	@$(DC) exec -T producer conveyor dlq list $(ARGS)

.PHONY: dlq-replay
dlq-replay: docker-check ## Submit dead letters again: all, or ID=<entry id>
	@$(DC) exec -T producer conveyor dlq replay $(ID)

.PHONY: dlq-purge
dlq-purge: docker-check ## Delete every dead letter (asks first; FORCE=1 does not ask)
	@if [ "$(FORCE)" != 1 ]; then \
		read -r -p "Delete every dead letter? [y/N] " answer; \
		[[ "$$answer" =~ ^[yY]$$ ]] || { echo "nothing purged"; exit 0; }; \
	fi; \
	$(DC) exec -T producer conveyor dlq purge

.PHONY: purge
purge: docker-check ## Delete every waiting task (asks first; FORCE=1 does not ask)
	@if [ "$(FORCE)" != 1 ]; then \
		read -r -p "Delete every task waiting in the queues? [y/N] " answer; \
		[[ "$$answer" =~ ^[yY]$$ ]] || { echo "nothing purged"; exit 0; }; \
	fi; \
	$(DC) exec -T producer conveyor purge

.PHONY: shell
shell: docker-check ## Open a shell in a container (SERVICE=producer by default)
	$(DC) exec $(or $(SERVICE),producer) sh

.PHONY: redis-cli
redis-cli: docker-check ## Open redis-cli on the stack's Redis as the `operator` user (password not shown; TLS when on)
	$(DC) exec redis conveyor-redis cli $(ARGS)

.PHONY: certs
certs: ## Make the private CA and Redis's TLS certificate in certs/ (REDIS_TLS_NAMES=host,ip for remote workers; ROLE=worker: only check the copied ca.crt)
	@REDIS_TLS_NAMES="$(or $(REDIS_TLS_NAMES),$(shell $(ENV_GET) REDIS_TLS_NAMES .env 2>/dev/null))" \
		bash deploy/scripts/make-certs.sh $(if $(filter worker,$(ROLE)),--client) "$(CERTS_DIR)"

# certs/redis.key is 0600, so Redis's user cannot read a bind mount of it: a one-off
# root container (the only one, with just the capabilities to read and hand it over)
# copies it into the redis-tls-key volume, 0400 and owned by Redis's user (tls.yml).
.PHONY: redis-tls-key
redis-tls-key: docker-check
	@$(DC) run --rm --no-deps --user 0 --cap-add CHOWN --cap-add DAC_OVERRIDE --cap-add FOWNER \
		--entrypoint sh --volume "$(abspath $(CERTS_DIR))/redis.key:/run/redis.key:ro" redis \
		-c 'install -o redis -g redis -m 0400 /run/redis.key /etc/conveyor/tls-key/redis.key'

##@ Beyond one machine (docs/deploy.md)
.PHONY: swarm-up
swarm-up: docker-check env images ## Deploy on Docker Swarm (a single-node swarm if none), WORKERS replicas: TLS, per-role users, same ports
	@PYTHONPATH=services/core $(VENV)/bin/python -m conveyor_core.queue_declarations swarm \
		--queues $(BUILD_DIR)/queues.json --out $(BUILD_DIR)/swarm/stack.yml >/dev/null
	WORKERS=$(WORKERS) SWARM_STACK_FILE=$(BUILD_DIR)/swarm/stack.yml bash deploy/scripts/swarm.sh up

.PHONY: swarm-scale
swarm-scale: docker-check ## Run WORKERS workers of a queue on the swarm: make swarm-scale WORKERS=3 [QUEUE=email]
	@[[ -n "$(SCALED)" ]] || { echo "QUEUE=$(QUEUE) is not a declared queue; declared: $(QUEUE_NAMES)" >&2; exit 2; }
	bash deploy/scripts/swarm.sh scale $(WORKERS) $(SCALED)

.PHONY: swarm-down
swarm-down: docker-check ## Remove the swarm stack (volumes stay)
	bash deploy/scripts/swarm.sh down

# A kustomize binary (the pinned one .ci/run installs), else kubectl's built-in one.
KUSTOMIZE ?= $(shell if command -v kustomize >/dev/null; then echo kustomize build; \
	elif command -v kubectl >/dev/null; then echo kubectl kustomize; fi)

.PHONY: k8s-render
k8s-render: ## Print the Kubernetes manifests: OVERLAY=dev or production (default both)
	@[[ -n "$(KUSTOMIZE)" ]] || { echo "k8s-render needs kustomize ($(KUSTOMIZE_VERSION)+) or kubectl ($(KUBECTL_MIN)+)" >&2; exit 2; }
	@first=1; for overlay in $(or $(OVERLAY),dev production); do \
		[[ $$first == 1 ]] || echo ---; first=0; \
		$(KUSTOMIZE) deploy/k8s/overlays/$$overlay; done

.PHONY: k8s-secrets
k8s-secrets: env certs ## Print the Secrets for Kubernetes from .env and certs/: make k8s-secrets NAMESPACE=conveyor | kubectl apply -f -
	@bash deploy/scripts/k8s-secrets.sh $(or $(NAMESPACE),conveyor-dev)

##@ Build
.PHONY: build
build: docker-check images ## Build the images (air-gapped bases from Debian when no registry answers)

# env first: compose needs every generated secret, one added since .env was made too.
.PHONY: images
images: env bases $(WHEELS)/.complete task-project
	$(DC) build

.PHONY: dev
dev: ## The stack with CONVEYOR_TASKS mounted: producer and workers restart when one of its files changes
	@if [[ -z "$(CONVEYOR_TASKS)" ]]; then \
		echo "make dev needs CONVEYOR_TASKS (in .env or here): the task project to mount" >&2; exit 2; fi
	@$(MAKE) up CONVEYOR_TASKS="$(CONVEYOR_TASKS)" \
		COMPOSE_FILE="$(or $(COMPOSE_FILE),docker-compose.yml):deploy/compose/dev.yml"

.PHONY: new-tasks
new-tasks: venv ## Write a new task project that passes its own tests: make new-tasks NAME=billing [DEST=../billing-tasks]
	@$(VENV)/bin/python -m conveyor.scaffold "$(NAME)" $(DEST)

# A team's task project (CONVEYOR_TASKS in .env: a folder with a pyproject.toml), built
# into the one image every role runs: its wheel and its locked dependencies (docs/tasks.md).
.PHONY: task-project
task-project: $(VENV)/.complete
	@bash deploy/scripts/task-project.sh "$(CONVEYOR_TASKS)" $(BUILD_DIR)/tasks $(VENV)

.PHONY: bases
bases: docker-check ## Find or build the Python and Redis base images
	@bash deploy/base-images/build-bases.sh $(BASES_ENV)

$(WHEELS)/.complete: requirements.lock deploy/scripts/wheelhouse.sh
	@rm -rf $(WHEELS)
	bash deploy/scripts/wheelhouse.sh requirements.lock $(WHEELS)
	@touch $@

# Phony, so it runs even when .env exists: a copied .env.example's empty secrets get filled.
.PHONY: .env
.env: | .env.example
	@bash deploy/scripts/init-env.sh .env.example .env

.PHONY: env
env: ## Create .env, or fill in every generated secret it leaves empty or lacks (never changes one that is set)
	@bash deploy/scripts/init-env.sh .env.example .env

# Every lock carries the sha256 of each file a pin may install; pip installs them with
# --require-hashes (images, .venv), so a package swapped on the index is refused.
LOCK_FILES = requirements.lock requirements-dev.lock bench/requirements.lock
UV_COMPILE = $(VENV)/bin/uv pip compile --universal --python-version 3.11 --generate-hashes --quiet

.PHONY: lock
lock: $(VENV)/.complete ## Re-resolve the lock files (with hashes) from pyproject.toml and bench/requirements.in
	$(VENV)/bin/pip install --quiet uv
	echo 'setuptools>=75' | $(UV_COMPILE) pyproject.toml - -o requirements.lock
	echo 'setuptools>=75' | $(UV_COMPILE) pyproject.toml - --extra dev -o requirements-dev.lock
	$(UV_COMPILE) bench/requirements.in -c requirements.lock -o bench/requirements.lock

##@ Quality
$(VENV)/.complete: requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

.PHONY: venv
venv: $(VENV)/.complete ## Create the local virtualenv for tests and linters

.PHONY: test
test: doctor venv docker-check .env images bench-image ## Run every test: unit, manifests, integration (real Redis + workers), e2e (whole stack, chaos, quick bench)
	$(VENV)/bin/pytest -p no:cacheprovider --durations=0 --durations-min=2 $(PYTEST_ARGS)

.PHONY: chaos
chaos: venv docker-check .env images ## Chaos suite: TASKS=20000 with worker SIGKILLs, Redis and producer restarts (CHAOS_ARGS=--no-persistence: negative control)
	$(VENV)/bin/python -m tests.chaos.run --tasks $(or $(TASKS),20000) --kills $(or $(KILLS),10) $(CHAOS_ARGS)

.PHONY: chaos-email
chaos-email: venv docker-check .env images ## E-mails under faults: EMAILS=1000, 451 refusals, an e-mail worker SIGKILLed; each must arrive once
	$(VENV)/bin/python -m tests.chaos.emails --emails $(or $(EMAILS),1000) $(CHAOS_ARGS)

.PHONY: email-rate
email-rate: venv docker-check .env images ## E-mails per second through one e-mail worker (EMAILS=500, DELAY_MS=0: mailbox reply delay)
	$(VENV)/bin/python -m tests.chaos.emails --rate --emails $(or $(EMAILS),500) --delay-ms $(or $(DELAY_MS),0)

##@ Benchmark
.PHONY: bench
bench: venv docker-check env mail-check images bench-image ## Benchmark against stock Celery, Dramatiq and the Redis ceiling; writes bench/results/ (docs/performance.md)
	PYTHONPATH=bench $(VENV)/bin/python -m conveyor_bench $(BENCH_ARGS)

.PHONY: bench-quick
bench-quick: ## The same, with small N: a smoke run whose figures mean nothing
	@$(MAKE) bench BENCH_ARGS="--quick $(BENCH_ARGS)"

.PHONY: bench-image
bench-image: $(BENCH_WHEELS)/.complete
	$(DC) -f docker-compose.yml -f bench/compose.bench.yml --profile bench build bench-agent

$(BENCH_WHEELS)/.complete: bench/requirements.lock deploy/scripts/wheelhouse.sh
	@rm -rf $(BENCH_WHEELS)
	bash deploy/scripts/wheelhouse.sh bench/requirements.lock $(BENCH_WHEELS)
	@touch $@

.PHONY: test-unit
test-unit: venv ## Unit tests only: pure Python, no Docker CLI needed
	$(VENV)/bin/pytest -p no:cacheprovider -m unit $(PYTEST_ARGS)

.PHONY: test-manifests
test-manifests: venv docker-check .env ## Render compose and Kubernetes files and check them (compose plugin, kustomize)
	$(VENV)/bin/pytest -p no:cacheprovider -m manifests $(PYTEST_ARGS)

.PHONY: test-integration
test-integration: venv docker-check .env images ## Integration tests: a real Redis container and real Celery workers
	$(VENV)/bin/pytest -p no:cacheprovider -m integration $(PYTEST_ARGS)

.PHONY: test-e2e
test-e2e: venv docker-check .env images bench-image ## End-to-end tests: the whole compose stack, driven as a user would
	$(VENV)/bin/pytest -p no:cacheprovider -m e2e $(PYTEST_ARGS)

SHELL_SCRIPTS = services/entrypoint.sh deploy/base-images/*.sh deploy/scripts/*.sh deploy/redis/*.sh .ci/run
DOCKERFILES = services/Dockerfile deploy/base-images/redis.Dockerfile deploy/redis/Dockerfile bench/Dockerfile
# Placeholder secrets: enough for compose to render the configuration.
RENDER_ENV = REDIS_PASSWORD=x CONVEYOR_API_KEY=x FLOWER_PASSWORD=x REDIS_PRODUCER_PASSWORD=x \
	REDIS_WORKER_PASSWORD=x REDIS_EMAIL_PASSWORD=x REDIS_RECONCILER_PASSWORD=x \
	REDIS_FLOWER_PASSWORD=x MAILBOX_PASSWORD=x
# Checks render every service, the mailbox's profile too.
RENDER = env -u COMPOSE_FILE $(RENDER_ENV) COMPOSE_PROFILES=mailbox $(COMPOSE)

.PHONY: lint
lint: venv ## ruff, mypy, shellcheck, hadolint, yamllint and compose config
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services tests bench examples/webhooks clients/python clients/cli
	shellcheck $(SHELL_SCRIPTS)
	$(VENV)/bin/hadolint $(DOCKERFILES)
	$(VENV)/bin/yamllint -s docker-compose.yml bench/compose.bench.yml deploy/compose deploy/swarm
	$(RENDER) config --quiet
	$(RENDER) -f docker-compose.yml -f deploy/compose/tls.yml config --quiet

.PHONY: audit
audit: venv ## Security audit: hadolint, shellcheck, the compose policy (docs/security.md) and known vulnerabilities in every lock file
	$(VENV)/bin/hadolint $(DOCKERFILES)
	shellcheck $(SHELL_SCRIPTS)
	$(RENDER) config --format json | $(VENV)/bin/python deploy/audit/compose_policy.py
	$(RENDER) -f docker-compose.yml -f deploy/compose/tls.yml config --format json \
		| $(VENV)/bin/python deploy/audit/compose_policy.py
	$(VENV)/bin/python deploy/audit/dependencies.py $(LOCK_FILES) $(AUDIT_ARGS)

##@ Clean up
.PHONY: clean
clean: ## Remove containers, volumes (queued tasks and results too!) and build files
	-$(DC_ALL) down --volumes --remove-orphans
	rm -rf $(BUILD_DIR) .pytest_cache .mypy_cache .ruff_cache

.PHONY: docker-check
docker-check:
	@command -v docker >/dev/null || { echo "Docker is not installed: see README.md, Prerequisites" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "The Docker daemon is not running (or you may not use it): start it, e.g. 'sudo dockerd &'" >&2; exit 1; }
	@[ -n "$(COMPOSE)" ] || { echo "Neither 'docker compose' (v2) nor 'docker-compose' works: install Compose v2, see README.md" >&2; exit 1; }
