#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Compiles and runs the C programs shown in the EXAMPLES section of man pages.
#
# usage: tests/man_examples.sh CC LIBRARY INCLUDE_DIR PAGE...
#   e.g. tests/man_examples.sh cc build/libpysync.a include man/man3/*.3 man/man7/*.7
#
# In the .Sh EXAMPLES section of each PAGE, every .Bd -literal ... .Ed block that
# calls or defines main( is a complete C program (a Python "def main(" line does not
# count; other blocks, the Python originals, are left alone). The mdoc escapes of
# literal blocks are undone (\e \\ \& \- \(aq \(dq \(ga \(ti \(ha \(rs; any
# other escape is an error), the program is compiled with
#   CC -std=c11 -Wall -Wextra -Werror -IINCLUDE_DIR prog.c LIBRARY -pthread -lm
# and run with a 10 second timeout. The script fails if a program does not
# compile, exits non-zero or times out, or if a page has no program in EXAMPLES.
# CC may hold several words ("ccache gcc"). Relative paths are taken from the
# current directory. With MAN_EXAMPLES_VERBOSE=1 the output of every program is
# shown.
set -euo pipefail

TIMEOUT=10

if [ "$#" -lt 4 ]; then
    echo "usage: $0 CC LIBRARY INCLUDE_DIR PAGE..." >&2
    exit 2
fi
read -r -a cc <<< "$1"
library=$2
include=$3
shift 3

[ -f "$library" ] || { echo "man_examples: no library $library (run make first)" >&2; exit 2; }
[ -d "$include" ] || { echo "man_examples: no include directory $include" >&2; exit 2; }
command -v timeout >/dev/null || { echo "man_examples: timeout(1) is needed" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/man_examples.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# Writes the programs of page $1 to $2/prog-N.c and prints one line per program:
# "N<TAB>line of its .Bd". Exits 3 on an escape it does not know.
extract() {
    awk -v page="$1" -v dir="$2" '
    function fail(msg) {
        printf "%s:%d: %s\n", page, bd_line + nraw_at_error, msg > "/dev/stderr"
        bad = 1
        exit 3
    }
    # One pass from left to right, so that "\e-" is a backslash and a minus.
    function unescape(s, k,    out, i, rest, c) {
        out = ""
        while ((i = index(s, "\\")) > 0) {
            out = out substr(s, 1, i - 1)
            rest = substr(s, i + 1)
            c = substr(rest, 1, 1)
            if (c == "e" || c == "\\")        { out = out "\\"; s = substr(rest, 2) }
            else if (c == "&")                 { s = substr(rest, 2) }
            else if (c == "-")                 { out = out "-"; s = substr(rest, 2) }
            else if (substr(rest, 1, 3) == "(aq") { out = out "\047"; s = substr(rest, 4) }
            else if (substr(rest, 1, 3) == "(dq") { out = out "\""; s = substr(rest, 4) }
            else if (substr(rest, 1, 3) == "(ga") { out = out "`"; s = substr(rest, 4) }
            else if (substr(rest, 1, 3) == "(ti") { out = out "~"; s = substr(rest, 4) }
            else if (substr(rest, 1, 3) == "(ha") { out = out "^"; s = substr(rest, 4) }
            else if (substr(rest, 1, 3) == "(rs") { out = out "\\"; s = substr(rest, 4) }
            else {
                nraw_at_error = k
                fail("unsupported escape \\" substr(rest, 1, 3) " in an EXAMPLES program")
            }
        }
        return out s
    }
    function is_program(    k) {
        for (k = 1; k <= nraw; k++)
            if (raw[k] ~ /(^|[^A-Za-z0-9_])main[ \t]*\(/ && raw[k] !~ /^[ \t]*def[ \t]/)
                return 1
        return 0
    }
    /^\.Sh[ \t]/ {
        in_examples = ($0 ~ /^\.Sh[ \t]+"?EXAMPLES"?[ \t]*$/)
        next
    }
    !in_examples { next }
    !in_block && /^\.Bd[ \t]+-literal/ { in_block = 1; nraw = 0; bd_line = NR; next }
    in_block && /^\.Ed([ \t]|$)/ {
        in_block = 0
        if (!is_program())
            next
        n++
        file = dir "/prog-" n ".c"
        for (k = 1; k <= nraw; k++) {
            if (raw[k] ~ /^\.\\"/)
                continue                        # a roff comment
            if (raw[k] ~ /^[.\047]/) {
                nraw_at_error = k
                fail("a request or macro inside an EXAMPLES program")
            }
            print unescape(raw[k], k) > file
        }
        close(file)
        printf "%d\t%d\n", n, bd_line
        next
    }
    in_block { raw[++nraw] = $0 }
    END {
        if (bad)
            exit 3
        if (in_block) {
            printf "%s:%d: .Bd -literal without .Ed\n", page, bd_line > "/dev/stderr"
            exit 3
        }
    }' "$1"
}

pages=0 programs=0 failures=0
for page in "$@"; do
    pages=$((pages + 1))
    dir="$tmp/$pages"
    mkdir "$dir"
    if ! list=$(extract "$page" "$dir"); then
        echo "man examples: FAIL $page: cannot extract the EXAMPLES programs" >&2
        failures=$((failures + 1))
        continue
    fi
    if [ -z "$list" ]; then
        echo "man examples: FAIL $page: no C program (a block with main) in EXAMPLES" >&2
        failures=$((failures + 1))
        continue
    fi
    while IFS=$'\t' read -r n line; do
        programs=$((programs + 1))
        what="$page, program $n (.Bd -literal at line $line)"
        src="$dir/prog-$n.c" exe="$dir/prog-$n" log="$dir/prog-$n.log"
        if ! "${cc[@]}" -std=c11 -Wall -Wextra -Werror -I"$include" -o "$exe" "$src" \
                "$library" -pthread -lm >"$log" 2>&1; then
            echo "man examples: FAIL $what does not compile:" >&2
            sed 's/^/    /' "$log" >&2
            failures=$((failures + 1))
            continue
        fi
        rc=0
        (cd "$dir" && timeout -k 2 "$TIMEOUT" "$exe") </dev/null >"$log" 2>&1 || rc=$?
        if [ -n "${MAN_EXAMPLES_VERBOSE:-}" ]; then
            echo "== $what"
            cat "$log"
        fi
        if [ "$rc" -ne 0 ]; then
            if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
                echo "man examples: FAIL $what timed out after ${TIMEOUT}s; output:" >&2
            else
                echo "man examples: FAIL $what exited with status $rc; output:" >&2
            fi
            sed 's/^/    /' "$log" >&2
            failures=$((failures + 1))
        fi
    done <<< "$list"
done

if [ "$failures" -ne 0 ]; then
    echo "man examples: $failures failure(s) in $programs programs from $pages pages" >&2
    exit 1
fi
echo "man examples: $programs programs from $pages pages compiled and ran"
