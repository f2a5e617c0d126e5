# forge-deploy: the container images and the reliability suite. The tests and the dev setup
# are scripts/test and scripts/bootstrap.
.PHONY: image base-image docker-engine screenshots reliability

IMAGE ?= forge-runner:dev
DISPATCHER_IMAGE ?= forge-dispatcher:dev
POSTGRES_IMAGE ?= forge-postgres:dev

# The images, each from images/NAME/Dockerfile through images/build-image (the host's extra CA
# certificates handed to the build as a BuildKit secret, never in a layer): the runner (the
# Debian base first when it is missing), the dispatcher on top of it, and the compose stack's
# PostgreSQL (compose.yaml).
image: docker-engine
	RUNNER_IMAGE=$(IMAGE) images/dispatcher/build $(DISPATCHER_IMAGE)
	images/postgres/build $(POSTGRES_IMAGE)

# debian:bookworm-slim made locally with debootstrap, only when the engine does not have it.
base-image: docker-engine
	images/base/build

docker-engine:
	scripts/docker-engine

# The pages in Debian's chromium (tests/ui): the README's PNGs into docs/screenshots/ (the
# list, a running, a live, a cancelled and a failed deploy at 1280 and 375 px, and the timeline).
# scripts/test runs the same tests and leaves its PNGs in .forge-test/screenshots/ (gitignored).
screenshots:
	FORGE_SCREENSHOTS=docs/screenshots .venv/bin/pytest tests/ui -q

# The reliability suite, every case (bench/reliability): one table of cases tried, passed,
# lost, duplicated, stuck and leaked per kind, written to bench/results/reliability.json.
# The kinds run two at a time, each in a world of its own (RELIABILITY_JOBS=1: one world, the
# kinds' cases round-robin). RELIABILITY_ARGS="--sample 5 --seed 7" for a sample, "--only fault"
# for some kinds.
RELIABILITY_JOBS ?= 2
reliability: image
	.venv/bin/python -m bench.reliability --jobs $(RELIABILITY_JOBS) $(RELIABILITY_ARGS)
