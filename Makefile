# Thin wrappers over CMake presets and scripts/. See README.md.
.PHONY: build test demo bench deps servers-start servers-stop clean asan tsan fuzz package

build:
	bash scripts/install-deps
	cmake --preset release >/dev/null
	cmake --build --preset release

test:
	bash scripts/test

demo:
	bash scripts/demo

# build/package/gantry_<version>_amd64.deb (cmake/package.cmake; docs/operations.md installs it)
package: build
	cpack --config build/release/CPackConfig.cmake -B build/package
	@ls -l build/package/*.deb

bench:
	bash bench/run all

deps:
	bash scripts/install-deps

fuzz:
	bash scripts/fuzz $(or $(SECONDS),60)

asan:
	cmake --preset asan >/dev/null && cmake --build --preset asan && ctest --preset asan -j2

tsan:
	cmake --preset tsan >/dev/null && cmake --build --preset tsan && ctest --preset tsan -j2

clean:
	bash scripts/servers clean || true
	rm -rf build
