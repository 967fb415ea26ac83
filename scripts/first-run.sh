#!/usr/bin/env bash
# The first minute of a new user, checked: in a clean clone of this repository, run the README's
# commands exactly as written there (taken from the README's "The two commands" section, not
# copied here): the default-image build, then its attested boot. Run as root (CI); the build
# command includes scripts/setup.sh, which needs root or sudo.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# The first line of the first and of the second ```sh block after "## The two commands".
mapfile -t cmds < <(awk '/^## The two commands/ {on = 1} on && /^```sh$/ {getline; print; n++} n == 2 {exit}' "$repo/README.md")
[ "${#cmds[@]}" = 2 ] && [ -n "${cmds[0]}" ] && [ -n "${cmds[1]}" ] \
  || { echo "first-run.sh: README.md has no build and boot command under '## The two commands'" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/clone"
cd "$work/clone"
for c in "${cmds[@]}"; do
  echo "first-run.sh: \$ $c"
  # Under a bound each: a hang fails, it does not stall CI.
  timeout 3000 bash -euo pipefail -c "$c" || { echo "first-run.sh: README command failed: $c" >&2; exit 1; }
done
echo "first-run.sh: the README's commands built and booted the default image"
