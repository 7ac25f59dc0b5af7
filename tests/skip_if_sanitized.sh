# Sourced by the tests/cli scripts whose programs load libfcn (the installed
# example, python3): in a sanitizer build (fcn --version says "sanitizers:
# address") such a program would have to be built with ASan too and load it
# first, so the test exits 77 (skipped) there.
# Usage: source tests/skip_if_sanitized.sh path/to/fcn
if [[ $("$1" --version) == *"sanitizers: address"* ]]; then
  echo "SKIP: a sanitizer build (FCN_SANITIZE): libfcn needs ASan loaded first, which a plain program does not do"
  exit 77
fi
