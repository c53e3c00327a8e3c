# Sourced by the benches that compare two builds of strata.
#
# strata_build BASE WORK: prints the path of a strata binary for BASE, which
# is a binary already, or a git revision to build: a release build in a
# worktree under WORK (one build folder for every revision, so a second
# revision builds incrementally), the binary copied to WORK/strata-REV.
strata_build() {
    local base=$1 work=$2
    if [ -x "$base" ]; then
        echo "$base"
        return
    fi
    local rev tree
    rev=$(git rev-parse --short "$base")
    tree="$work/tree-$rev"
    [ -d "$tree" ] || git worktree add --detach "$tree" "$rev" >/dev/null
    cargo build --release --quiet --manifest-path "$tree/Cargo.toml" --target-dir "$work/build"
    cp "$work/build/release/strata" "$work/strata-$rev"
    echo "$work/strata-$rev"
}
