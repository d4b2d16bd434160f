#!/usr/bin/env bash
# Which commit the CI performance gate compares HEAD with.
#
#   benchmarks/gate_base.sh resolve [HEAD]   print the base commit's sha (stdout)
#   benchmarks/gate_base.sh mark [REF]       record REF (default HEAD) in
#                                            benchmarks/gate-base and commit it
#
# The gate compares the submitted HEAD with the last commit whose CI passed,
# so that a slowdown spread over several commits (each a little slower than
# its parent) is still caught. Git history alone cannot tell which commit that
# was -- a submission may hold many commits and merges, and CI runs in a fresh
# clone with no record of earlier runs -- so the repository keeps it:
# benchmarks/gate-base holds the sha of the last landed main (every landed
# submission passed CI). Record it once per submission, before or after your
# commits: `benchmarks/gate_base.sh mark <sha of main as it landed>`, or, at
# the start of the work while HEAD is still the landed main, just
# `benchmarks/gate_base.sh mark`.
#
# `resolve` reads the file from HEAD's committed tree and uses its sha when it
# names a commit that is a proper ancestor of HEAD. Otherwise (no file, empty,
# unknown commit, not an ancestor) it falls back to HEAD's first parent, as the
# gate did before, and says so on stderr. A stale record (an older landed
# commit) is still a commit that passed CI: the gate then spans more commits,
# which is stricter, never looser. ASV_GATE_BASE=<commit> overrides the file.
#
# To land a deliberate slowdown: commit it, then `mark HEAD`; the marking
# commit is then compared with the slow commit.
#
# Exit status: 0 a base was printed, 3 HEAD has no base at all (root commit),
# 2 usage error.
set -uo pipefail

RECORD=benchmarks/gate-base

usage() { sed -n '2,6p' "$0" >&2; exit 2; }

root=$(git rev-parse --show-toplevel) || exit 2
cd "$root" || exit 2

commit_of() { git rev-parse --verify --quiet "${1}^{commit}"; }

# A proper ancestor of HEAD, as a full sha, or nothing.
valid_base() {  # valid_base CANDIDATE HEAD_SHA
    local sha
    sha=$(commit_of "$1") || return 1
    [ "$sha" != "$2" ] || return 1
    git merge-base --is-ancestor "$sha" "$2" 2>/dev/null || return 1
    echo "$sha"
}

resolve() {
    local head_ref=${1:-HEAD} head base recorded
    head=$(commit_of "$head_ref") || { echo "gate_base: '$head_ref' is not a commit" >&2; exit 2; }
    if [ -n "${ASV_GATE_BASE:-}" ]; then
        if base=$(valid_base "$ASV_GATE_BASE" "$head"); then
            echo "gate_base: ${base:0:10} from ASV_GATE_BASE" >&2
            echo "$base"; return 0
        fi
        echo "gate_base: ASV_GATE_BASE='$ASV_GATE_BASE' is not a proper ancestor of" \
             "${head:0:10}; ignored" >&2
    fi
    # The first word of the first line that is neither blank nor a comment.
    recorded=$(git show "$head:$RECORD" 2>/dev/null \
               | sed -e 's/#.*//' | awk 'NF { print $1; exit }')
    if [ -n "$recorded" ]; then
        if base=$(valid_base "$recorded" "$head"); then
            echo "gate_base: ${base:0:10} from $RECORD (last landed commit," \
                 "$(git rev-list --count "$base..$head") commit(s) before HEAD)" >&2
            echo "$base"; return 0
        fi
        echo "gate_base: $RECORD names '$recorded', not a proper ancestor of" \
             "${head:0:10} here; falling back to the parent" >&2
    else
        echo "gate_base: no commit recorded in $RECORD; falling back to the parent" >&2
    fi
    if base=$(commit_of "$head^"); then
        echo "gate_base: ${base:0:10} = first parent of ${head:0:10}" >&2
        echo "$base"; return 0
    fi
    echo "gate_base: ${head:0:10} has no parent: nothing to compare with" >&2
    return 3
}

mark() {
    local ref=${1:-HEAD} sha
    sha=$(commit_of "$ref") || { echo "gate_base: '$ref' is not a commit" >&2; exit 2; }
    cat > "$RECORD" <<EOF
# The commit the CI performance gate compares HEAD with: the last landed main
# (every landed submission passed CI). Update with benchmarks/gate_base.sh mark
# (see benchmarks/README.md, "CI gate").
$sha
EOF
    git add "$RECORD" || exit 2
    # Only the record goes into this commit, whatever else is staged.
    local subject
    subject=$(git log -1 --format=%s "$sha" | cut -c1-50)
    git commit --quiet -m "benchmarks/gate-base: gate against ${sha:0:10} ($subject)" \
        -- "$RECORD" || exit 2
    echo "gate_base: recorded ${sha:0:10} in $RECORD (committed)"
}

[ $# -ge 1 ] || usage
cmd=$1; shift
case "$cmd" in
    resolve) resolve "$@" ;;
    mark) mark "$@" ;;
    *) usage ;;
esac
