#!/usr/bin/env bash
# OpenBLAS kernel selection seen from outside: `fcn --version` reports the
# kernel; a user's OPENBLAS_CORETYPE is kept; when OpenBLAS (pretending, via
# the test-only FCN_BLAS_PRETEND_CORENAME) chose a kernel far below the CPU,
# fcn re-executes itself in place (execve: same pid) with a better one.
# Usage: tests/cli/blas_kernel.sh path/to/fcn
set -euo pipefail
fcn=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
# A clean environment for each run: none of the variables fcn reacts to.
run() { env -u OPENBLAS_CORETYPE -u FCN_BLAS_REEXEC -u FCN_BLAS_PRETEND_CORENAME "$@" timeout 60 "$fcn" --version; }
kernel_line() { grep '^BLAS: OpenBLAS, kernel ' || fail "no kernel line in --version"; }

# 1. The user's choice is kept, even a poor one, and reported as theirs.
line=$(run OPENBLAS_CORETYPE=Prescott FCN_BLAS_PRETEND_CORENAME=Prescott | kernel_line)
# (on a CPU with AVX the report adds which kernel it supports and how to get it)
[[ $line == "BLAS: OpenBLAS, kernel Prescott (OPENBLAS_CORETYPE set by user"*"), "*" threads" ]] || fail "user kernel: $line"
if grep -qw avx /proc/cpuinfo 2>/dev/null; then
  [[ $line == *"; this CPU supports "*", a faster kernel: unset OPENBLAS_CORETYPE), "* ]] || fail "no better-kernel hint: $line"
fi

# 2. Nothing set: OpenBLAS's own choice, or fcn's if OpenBLAS chose poorly here.
line=$(run | kernel_line)
[[ $line == *"(chosen by OpenBLAS)"* || $line == *"(selected by fcn; OpenBLAS chose "* ]] || fail "default: $line"

# 3. The re-exec guard stops a loop: with it set, fcn never re-executes.
line=$(run FCN_BLAS_REEXEC=Prescott FCN_BLAS_PRETEND_CORENAME=Prescott | kernel_line)
[[ $line == *"(chosen by OpenBLAS"* ]] || fail "guard: $line"

# 4. OpenBLAS "chose" Prescott on a CPU with AVX: fcn re-executes with a better
#    kernel (the pid stays the same: execve replaces the image in place).
if grep -qw avx /proc/cpuinfo 2>/dev/null; then
  out=$(run FCN_BLAS_PRETEND_CORENAME=Prescott)
  line=$(kernel_line <<<"$out")
  [[ $line == *" (selected by fcn; OpenBLAS chose Prescott), "*" threads" ]] || fail "re-exec: $line"
  [[ $line != "BLAS: OpenBLAS, kernel Prescott "* ]] || fail "re-exec kept Prescott: $line"
  [[ $(grep -c '^fcn ' <<<"$out") == 1 ]] || fail "re-exec printed the version twice: $out"
fi
echo "ok"
