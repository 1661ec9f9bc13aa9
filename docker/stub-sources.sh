#!/bin/sh
# Placeholder sources for the Dockerfile's dependency stage (and for the CI
# check that reproduces it): with only the manifests copied, give every
# workspace member an empty library and every target path a manifest names
# an empty `main`, so `cargo build` compiles the dependencies alone. It
# reads the manifests, so a new member or binary needs no edit here; a new
# member's Cargo.toml must still be copied by the Dockerfile (CI checks).
set -eu
mkdir -p src
[ -f src/lib.rs ] || : > src/lib.rs
members=$(sed -n 's/^members = \[\(.*\)\]/\1/p' Cargo.toml | tr -d '" ' | tr ',' ' ')
for member in $members; do
  mkdir -p "$member/src"
  [ -f "$member/src/lib.rs" ] || : > "$member/src/lib.rs"
done
for manifest in Cargo.toml */Cargo.toml; do
  dir=$(dirname "$manifest")
  for target in $(sed -n 's/^path = "\(.*\.rs\)"$/\1/p' "$manifest"); do
    mkdir -p "$dir/$(dirname "$target")"
    [ -f "$dir/$target" ] || echo 'fn main() {}' > "$dir/$target"
  done
done
