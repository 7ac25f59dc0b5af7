# Sourced by tools/test.sh, tools/demo.sh and tools/bench.sh: installs the
# Debian packages fcn needs, only those missing, quietly.
FCN_PACKAGES=(build-essential cmake pkg-config libopenblas-dev libopencv-dev nlohmann-json3-dev catch2
  libcli11-dev libspdlog-dev libfmt-dev libpng-dev libmatio-dev openmpi-bin libopenmpi-dev
  python3-torch python3-torchvision python3-numpy python3-pil python3-scipy
  libdnnl-dev libprotobuf-dev protobuf-compiler python3-protobuf python3-onnx libopencv-dnn-dev pybind11-dev
  chromium)

fcn_install_deps() {
  local missing=()
  for pkg in "${FCN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}
