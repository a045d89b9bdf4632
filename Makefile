# The two commands of the README: `make run` (the whole gateway on this host) and `make test`.
# Each installs what it needs first (scripts/bootstrap.sh is idempotent and cached).
.PHONY: setup run test test-fast lint bench eval image bundle qemu image-yocto clean

VENV := .venv
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= 2

setup:
	@scripts/bootstrap.sh

run: setup
	$(VENV)/bin/endcap run

test: setup lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile tests

lint: setup
	$(VENV)/bin/ruff check $(wildcard services ota provisioning models image) tests bench

test-fast: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not system" tests/unit

bench: setup
	$(PY) -m bench

# The offers model's full evaluation on Complete Journey (~3 min): baselines, blend, calibration gate.
eval: setup
	$(VENV)/bin/endcap-model report --tune --out-dir build/eval

# The Debian dev image (docs/image.md): GPT A/B disk for QEMU, a verity bundle of its rootfs signed through
# endcap-ota with a throwaway PKI, and an interactive boot (q35, OVMF, TCG, swtpm as the guest's TPM).
IMAGE := PYTHONPATH=image/debian $(PY) -m endcap_image
VERSION ?= 1.0.0
image: setup
	$(IMAGE) build --version $(VERSION)

bundle: setup
	$(IMAGE) bundle --version $(VERSION)

qemu: setup
	$(IMAGE) qemu --version $(VERSION)

# The production image for Jetson Orin, on a real Yocto build host (docs/yocto.md; not runnable here).
MACHINE ?= jetson-orin-nano-devkit-nvme
image-yocto:
	kas build image/yocto/kas/$(MACHINE).yml

clean:
	rm -rf $(VENV) .stamps build *.egg-info
