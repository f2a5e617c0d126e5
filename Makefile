# forge-deploy: the container image and the reliability suite. The tests and the dev setup are
# scripts/test and scripts/bootstrap.
.PHONY: image base-image docker-engine reliability

IMAGE ?= forge-runner:dev

# The runner image (images/runner/Dockerfile): builds the Debian base first when it is missing,
# hands the host's extra CA certificates to the build as a BuildKit secret.
image: docker-engine
	images/runner/build $(IMAGE)

# debian:bookworm-slim made locally with debootstrap, only when the engine does not have it.
base-image: docker-engine
	images/base/build

docker-engine:
	scripts/docker-engine

# The reliability suite, every case (bench/reliability): one table of cases tried, passed,
# lost, duplicated, stuck and leaked per kind, written to bench/results/reliability.json.
# RELIABILITY_ARGS="--sample 5 --seed 7" for a sample, "--only fault" for one kind.
reliability: image
	.venv/bin/python -m bench.reliability $(RELIABILITY_ARGS)
