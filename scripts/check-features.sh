#!/usr/bin/env bash
# Fails when a crate that both `cargo run` (the product: gdo without dev-dependencies)
# and `cargo test --workspace` build resolves with different features in the two: the
# test build would then compile it, and everything above it, a second time.
set -euo pipefail
cd "$(dirname "$0")/.."

tree() { cargo tree --locked --offline "$@" -f '{p} [{f}]' --prefix none | sed 's/ (\*)$//' | sort -u; }
product=$(tree -p gdo -e no-dev)
tests=$(tree --workspace)

# `name vX` of every crate in the product, then each test-build line of those crates
# that the product lacks.
diffs=$(awk 'NR == FNR { seen[$1 " " $2] = 1; line[$0] = 1; next }
             (($1 " " $2) in seen) && !($0 in line)' \
        <(printf '%s\n' "$product") <(printf '%s\n' "$tests"))
if [ -n "$diffs" ]; then
    echo "check-features: the test build resolves these crates with other features than the product:" >&2
    printf '%s\n' "$diffs" >&2
    echo "name the features in Cargo.toml's [dependencies] (see the comment above hyper there)" >&2
    exit 1
fi
echo "check-features: $(printf '%s\n' "$product" | wc -l) crates, same features in the product and the test build"
