# Thin wrapper over scripts/setup.sh, CMake presets and ctest. The two commands a new user needs:
#   make demo   install missing packages, build, run the main job on the built-in default
#   make test   same set-up and build, then every test
PRESET ?= default
BUILD_DIR ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
MR := $(BUILD_DIR)/bin/metareward

.PHONY: all setup configure build test fuzz demo docs format clean

all: build

setup:
	@bash scripts/setup.sh

configure: setup
	@test -f $(BUILD_DIR)/build.ninja || cmake --preset $(PRESET)

build: configure
	cmake --build --preset $(PRESET) -j $(JOBS)

# The npm test (tests/npm: the official openai client against `metareward serve`) needs Node.js
# and tests/npm/node_modules: scripts/setup_npm.sh installs them when missing or stale.
# After ctest, the sanitizer leg (scripts/sanitizer_leg.sh, docs/fuzzing.md): the libtorch-free
# suites under clang ASan + UBSan in build-fuzz/, and a 3 s smoke run of every fuzz harness.
test: build
	@bash scripts/setup_npm.sh
	ctest --preset $(PRESET) -j $(JOBS)
	JOBS=$(JOBS) bash scripts/sanitizer_leg.sh

# Every libFuzzer harness for FUZZ_SECONDS each (build-fuzz/, preset fuzz); docs/fuzzing.md.
FUZZ_SECONDS ?= 60
fuzz: setup
	JOBS=$(JOBS) bash scripts/sanitizer_leg.sh --no-tests --fuzz-seconds $(FUZZ_SECONDS)

# Meta-Rewarding on the oracle testbed: 3 iterations from the committed seed model, the HTML
# report, and the per-iteration evaluation table (scripts/demo.sh).
demo: build
	bash scripts/demo.sh $(MR)

docs: build
	env -u METAREWARD_PLUGIN_PATH $(MR) plugins describe --all --markdown > docs/config_reference.md

format:
	git ls-files '*.cpp' '*.hpp' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR)
