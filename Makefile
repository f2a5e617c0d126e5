# forge-deploy: the container image. The tests and the dev setup are scripts/test and
# scripts/bootstrap; this file only builds images.
.PHONY: image base-image docker-engine screenshots

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

# The pages in Debian's chromium (tests/ui): PNGs into .forge-test/screenshots/ (gitignored).
screenshots:
	.venv/bin/pytest tests/ui -q
