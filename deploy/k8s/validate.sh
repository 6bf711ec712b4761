#!/usr/bin/env bash
# Offline validation of sluice's Kubernetes manifests: for every overlay in deploy/k8s/overlays/
#   1. render it with `kubectl kustomize`;
#   2. validate every object against the Kubernetes 1.30–1.34 OpenAPI schemas, strictly (an
#      unknown field is an error), with kubernetes-validate;
#   3. run checkov's Kubernetes policies: zero failed checks allowed. A check may only be skipped
#      by a `checkov.io/skipN: CKV_ID=<reason>` annotation on the object it concerns, and a skip
#      without a reason fails too;
#   4. check that deploy/compose/docker-compose.yml is still what deploy/compose/generate.py makes
#      of the dev overlay (and that docker-compose accepts it, where installed);
#   5. render the dev overlay with each optional component of deploy/k8s/components/ (e.g.
#      cert-manager) and run 2 and 3 on that too (custom resources such as cert-manager's have no
#      schema here: kubernetes-validate skips them with a warning).
# Needs kubectl (for its built-in kustomize) and Python 3; the Python tools are pinned in
# tests/requirements.txt and installed by tests/venv.sh into ${SLUICE_VENV:-~/.cache/sluice/venv}.
# No network access besides that install: checkov runs with --skip-download.
#
#   deploy/k8s/validate.sh                 # every overlay
#   deploy/k8s/validate.sh dev             # just overlays/dev
#   KEEP_RENDERED=DIR deploy/k8s/validate.sh   # also keep the rendered YAML in DIR
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
k8s_versions=(1.30.0 1.31.0 1.32.0 1.33.0 1.34.0)

fail() { echo "validate.sh: FAILED: $*" >&2; exit 1; }

command -v kubectl >/dev/null 2>&1 \
  || fail "kubectl not found: install kubectl (v1.27+; its built-in kustomize renders the overlays)"

venv="$("$root/tests/venv.sh" | tail -n 1)" || fail "tests/venv.sh could not set up the Python tools"
[ -x "$venv/bin/kubernetes-validate" ] && [ -x "$venv/bin/checkov" ] \
  || fail "kubernetes-validate or checkov missing from $venv (delete it and run again)"

work="$(mktemp -d)"
tmp=""
trap 'rm -rf "$work" ${tmp:+"$tmp"}' EXIT
out="${KEEP_RENDERED:-$work}"
mkdir -p "$out"

if [ $# -gt 0 ]; then overlays=("$@"); else
  overlays=()
  for d in "$here"/overlays/*/; do overlays+=("$(basename "$d")"); done
fi
[ ${#overlays[@]} -gt 0 ] || fail "no overlays in $here/overlays"

# Steps 2 and 3 for one rendered file: check NAME RENDERED WHAT.
check() {
  local name="$1" rendered="$2" what="$3"
  # 2. Schemas, strict, every supported Kubernetes version.
  kv_args=()
  for v in "${k8s_versions[@]}"; do kv_args+=(-k "$v"); done
  if ! "$venv/bin/kubernetes-validate" --strict --quiet "${kv_args[@]}" "$rendered" >"$work/kv.out" 2>&1; then
    cat "$work/kv.out" >&2
    fail "kubernetes-validate --strict: $what does not match the Kubernetes ${k8s_versions[*]} schemas (errors above)"
  fi
  local unchecked
  unchecked="$(grep -c "Couldn't find schema" "$work/kv.out" || true)"
  if [ "$unchecked" -gt 0 ]; then
    echo "validate.sh: $what: kubernetes-validate --strict passed for Kubernetes ${k8s_versions[*]} ($(( unchecked / ${#k8s_versions[@]} )) custom resources have no schema here and were not checked)"
  else
    echo "validate.sh: $what: kubernetes-validate --strict passed for Kubernetes ${k8s_versions[*]}"
  fi

  # 3. Policies. checkov exits 1 on failed checks; the JSON report says what and why.
  mkdir -p "$work/checkov-$name"
  cp "$rendered" "$work/checkov-$name/$name.yaml"
  "$venv/bin/checkov" --file "$work/checkov-$name/$name.yaml" --framework kubernetes \
    --skip-download --output json >"$work/checkov.json" 2>"$work/checkov.err" || true
  "$venv/bin/python" - "$work/checkov.json" "$what" <<'PY' || fail "checkov: $what has failed or unjustified policy checks (listed above)"
import json, sys
path, what = sys.argv[1], sys.argv[2]
try:
    report = json.load(open(path))
except ValueError:
    sys.exit(f"checkov wrote no JSON report for {what}")
if isinstance(report, list):  # one report per framework; only kubernetes was asked for
    report = next((r for r in report if r.get("check_type") == "kubernetes"), {})
results = report.get("results", {})
summary = report.get("summary", {})
bad = 0
for c in results.get("failed_checks", []):
    print(f"  FAILED {c['check_id']} {c['resource']}: {c['check_name']}", file=sys.stderr)
    bad += 1
for c in results.get("skipped_checks", []):
    reason = (c.get("check_result") or {}).get("suppress_comment", "").strip()
    if not reason or reason.lower().startswith("no comment"):
        print(f"  SKIPPED WITHOUT A REASON {c['check_id']} {c['resource']}", file=sys.stderr)
        bad += 1
    else:
        print(f"  skipped {c['check_id']} {c['resource']}: {reason}")
if summary.get("parsing_errors"):
    print(f"  {summary['parsing_errors']} file(s) checkov could not parse", file=sys.stderr)
    bad += 1
if not summary.get("passed"):
    print("  checkov ran no check", file=sys.stderr)
    bad += 1
print(f"validate.sh: {what}: checkov {summary.get('checkov_version', '?')}: "
      f"{summary.get('passed', 0)} passed, {summary.get('failed', 0)} failed, {summary.get('skipped', 0)} skipped")
sys.exit(1 if bad else 0)
PY
}

for overlay in "${overlays[@]}"; do
  dir="$here/overlays/$overlay"
  [ -f "$dir/kustomization.yaml" ] || fail "no overlay '$overlay' ($dir/kustomization.yaml missing)"
  rendered="$out/$overlay.yaml"

  # 1. Render.
  kubectl kustomize "$dir" >"$rendered" 2>"$work/kustomize.err" \
    || fail "kubectl kustomize overlays/$overlay: $(head -n 1 "$work/kustomize.err")"
  objects="$(grep -c '^kind:' "$rendered" || true)"
  [ "$objects" -gt 0 ] || fail "overlays/$overlay rendered no objects"
  echo "validate.sh: overlays/$overlay: rendered $objects objects"

  check "$overlay" "$rendered" "overlays/$overlay"
done

# 4. deploy/compose/docker-compose.yml is what generate.py makes of the dev overlay today, and
#    docker-compose (when installed) accepts it.
compose="$root/deploy/compose"
if [ -f "$out/dev.yaml" ] && [ -f "$compose/docker-compose.yml" ]; then
  "$venv/bin/python" "$compose/generate.py" "$out/dev.yaml" --out "$work/compose" --host-cpus 2 \
    --source "kubectl kustomize deploy/k8s/overlays/dev" 2>"$work/generate.err" \
    || fail "deploy/compose/generate.py on overlays/dev: $(tail -n 1 "$work/generate.err")"
  for f in docker-compose.yml probes.json cert-hosts.txt .env configmaps; do
    diff -r "$compose/$f" "$work/compose/$f" >"$work/compose.diff" 2>&1 || {
      cat "$work/compose.diff" >&2
      fail "deploy/compose/$f is stale: regenerate it (deploy/compose/README.md)"
    }
  done
  if command -v docker-compose >/dev/null 2>&1; then
    docker-compose -f "$compose/docker-compose.yml" config -q 2>"$work/compose.err" \
      || fail "docker-compose config rejects deploy/compose/docker-compose.yml: $(head -n 1 "$work/compose.err")"
  fi
  echo "validate.sh: deploy/compose/docker-compose.yml matches overlays/dev"
fi

# 5. Optional components, each with the dev overlay.
for component in "$here"/components/*/; do
  [ -f "$component/kustomization.yaml" ] && [ -f "$out/dev.yaml" ] || continue
  c="$(basename "$component")"
  # kustomize wants relative paths: a kustomization next to overlays/ and components/.
  tmp="$(mktemp -d "$here/.validate-$c.XXXXXX")"
  printf 'resources: [../overlays/dev]\ncomponents: [../components/%s]\n' "$c" >"$tmp/kustomization.yaml"
  rendered="$out/dev+$c.yaml"
  kubectl kustomize "$tmp" >"$rendered" 2>"$work/kustomize.err" || fail "kubectl kustomize overlays/dev + components/$c: $(head -n 1 "$work/kustomize.err")"
  rm -rf "$tmp"; tmp=""
  echo "validate.sh: overlays/dev + components/$c: rendered $(grep -c '^kind:' "$rendered" || true) objects"
  check "dev-$c" "$rendered" "overlays/dev + components/$c"
done

echo "validate.sh: OK (${overlays[*]})"
