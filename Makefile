# The two commands of the README:
#   make demo   install what is missing, build, train the example Fashion-MNIST job
#   make test   install what is missing, build, run every test
#
# Everything comes from Debian 12 packages; nothing is downloaded at build time.

BUILD_DIR ?= build
JOBS ?= $(shell nproc)

# Build and test dependencies (docs/design.md, "Dependencies", says what each is for).
DEB_PACKAGES := cmake ninja-build ccache g++ clang pkg-config \
  libtorch-dev libopenblas0-openmp libgloo-dev libsentencepiece-dev python3-sentencepiece fortunes \
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc libre2-dev libssl-dev openssl \
  libabsl-dev libyaml-cpp-dev libcli11-dev libspdlog-dev nlohmann-json3-dev zlib1g-dev \
  libpcre2-dev libutf8proc-dev libgtest-dev libgmock-dev libsqlite3-dev prometheus-cpp-dev prometheus python3-kubernetes dataset-fashion-mnist \
  munge slurmctld slurmd slurm-client iproute2 curl \
  libcpp-httplib-dev libjs-chart.js chromium chromium-driver python3-selenium \
  python3-grpcio python3-protobuf python3-yaml python3-pytest python3-venv

.PHONY: all deps build demo test clean bench python

all: build

# Installs only the packages that are missing (dpkg-query is fast; apt-get is not).
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing missing packages:" $$missing; \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root, or install them: apt-get install" $$missing; exit 1; fi; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The Python client (python/, importable as `trainerd`) into a virtual environment that
# sees Debian's grpcio and protobuf: $(BUILD_DIR)/venv/bin/python then imports it.
# (Debian's pip installs into it, offline, with Debian's setuptools.)
python: build
	/usr/bin/python3 -m venv --system-site-packages --without-pip $(BUILD_DIR)/venv
	/usr/bin/python3 -m pip --python $(BUILD_DIR)/venv/bin/python install --quiet --no-build-isolation --no-index \
	  --no-deps ./python
	@rm -rf python/build python/*.egg-info
	@echo "installed: $(BUILD_DIR)/venv/bin/python -c 'import trainerd'"

demo: build
	BUILD_DIR=$(BUILD_DIR) scripts/demo.sh

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

bench: build
	./$(BUILD_DIR)/bench/trainer_bench
	./$(BUILD_DIR)/bench/checkpoint_bench
	cd $(BUILD_DIR) && TRAINERD_BUILD_DIR=$$(pwd) ./bench/daemon_bench
	cd $(BUILD_DIR) && ./bench/distributed_bench
	./$(BUILD_DIR)/bench/text_bench
	./$(BUILD_DIR)/bench/liger_bench
	./$(BUILD_DIR)/bench/tokenizer_bench
	cd $(BUILD_DIR) && TRAINERD_BUILD_DIR=$$(pwd) ./bench/transfer_bench
	./$(BUILD_DIR)/bench/galore_bench
	./$(BUILD_DIR)/bench/hf_bench
	./$(BUILD_DIR)/bench/lora_bench
	./$(BUILD_DIR)/bench/slurm_bench
	cd $(BUILD_DIR) && TRAINERD_BUILD_DIR=$$(pwd) ./bench/sweep_bench
	/usr/bin/python3 bench/web_console_bench.py $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)
