#!/usr/bin/env bash
# Out-of-tree plugin check: install this build into a scratch prefix, build the example plugin
# project (docs/examples/external_plugin) against it with find_package(metareward), and load it.
#
# usage: run.sh BUILD_DIR EXAMPLE_DIR WORK_DIR GENERATOR CXX_COMPILER
set -euo pipefail
build_dir=$1 example_dir=$2 work=$3 generator=$4 cxx=$5
unset METAREWARD_PLUGIN_PATH  # The result must not depend on the caller's environment.

fail() { echo "FAIL: $*" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix

echo "== install $build_dir -> $prefix"
cmake --install "$build_dir" --prefix "$prefix" >"$work/install.log"
[ -x "$prefix/bin/metareward" ] || fail "metareward not installed"

echo "== configure + build the example plugin (text-level: libtorch must not be looked up)"
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S "$example_dir" -B "$work/build" -G "$generator" -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON "${launcher[@]}" \
  >"$work/configure.log" || { cat "$work/configure.log"; fail "configure"; }
cmake --build "$work/build" >"$work/build.log" || { cat "$work/build.log"; fail "build"; }
plugin=$work/build/plugins/libmr_example_yes_no.so
[ -f "$plugin" ] || fail "$plugin not built"

echo "== describe it with --plugin-dir"
out=$("$prefix/bin/metareward" --plugin-dir "$work/build/plugins" plugins describe yes_no)
echo "$out"
grep -q '^yes_no (judge_rubric plugin, version 1.0.0)$' <<<"$out" || fail "describe header"
grep -q "library: mr-example-yes-no 1.0.0 ($plugin)" <<<"$out" || fail "describe library"
grep -q '^  question ' <<<"$out" || fail "describe: no 'question' key"
grep -q '^  strict  *bool  *false' <<<"$out" || fail "describe: no 'strict' key"

echo "== without --plugin-dir it is not found"
if "$prefix/bin/metareward" plugins describe yes_no 2>"$work/err.txt"; then
  fail "found without --plugin-dir before it was installed"
fi
grep -q "unknown plugin 'yes_no'" "$work/err.txt" || fail "unexpected error: $(cat "$work/err.txt")"

echo "== installed plugins are found without --plugin-dir"
cmake --install "$work/build" --prefix "$prefix" >>"$work/install.log"
list=$("$prefix/bin/metareward" plugins list)
echo "$list"
grep -q "^  yes_no  *1.0.0  *Binary judge rubric" <<<"$list" || fail "installed example not listed"
grep -q "$prefix/lib/metareward/plugins/libmr_example_yes_no.so" <<<"$list" ||
  fail "example not loaded from the install dir"
if [ -d "$build_dir/plugins" ] && ls "$build_dir"/plugins/*.so >/dev/null 2>&1; then
  # Shipped plugins are installed too, and found there (not in the build tree).
  grep -q "from .*($prefix/lib/metareward/plugins/" <<<"$list" || fail "no installed plugins"
  if grep -q "$build_dir/plugins" <<<"$list"; then fail "installed binary searched the build tree"; fi
fi
echo "PASS"
