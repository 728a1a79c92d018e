#!/usr/bin/env bash
# Rolls out a release: migrations first, then the API.
#
#   deploy/kubernetes/rollout.sh [OVERLAY]     (default: overlays/production)
#
# 1. applies everything but the API objects (namespace, service account,
#    config, network policy and the migration Job) and waits for the Job;
# 2. applies the whole overlay and waits for the Deployment.
# A failed migration stops here, with the old pods still serving.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
overlay="${1:-$here/overlays/production}"
ns="${PASSERELLE_NAMESPACE:-passerelle}"
timeout_s="${MIGRATION_TIMEOUT_SECONDS:-3600}"

if ! kubectl get secret passerelle-secrets --namespace "$ns" >/dev/null; then
  echo "rollout: create the Secret passerelle-secrets in namespace $ns first (deploy/README.md)" >&2
  exit 1
fi

# A Job's pod template is immutable: the previous release's Job must go.
kubectl delete job passerelle-migrate --namespace "$ns" --ignore-not-found --wait=true
kubectl apply -k "$overlay" --selector 'app.kubernetes.io/component!=api'

echo "rollout: waiting for job/passerelle-migrate"
deadline=$((SECONDS + timeout_s))
while :; do
  complete="$(kubectl get job passerelle-migrate --namespace "$ns" \
    -o jsonpath='{.status.conditions[?(@.type=="Complete")].status}')"
  failed="$(kubectl get job passerelle-migrate --namespace "$ns" \
    -o jsonpath='{.status.conditions[?(@.type=="Failed")].status}')"
  if [[ "$complete" == "True" ]]; then
    break
  fi
  if [[ "$failed" == "True" || $SECONDS -ge $deadline ]]; then
    echo "rollout: migration failed or timed out; the Deployment was not changed" >&2
    kubectl logs --namespace "$ns" job/passerelle-migrate --tail=100 >&2 || true
    exit 1
  fi
  sleep 5
done
kubectl logs --namespace "$ns" job/passerelle-migrate --tail=20 || true

kubectl apply -k "$overlay"
kubectl rollout status deployment/passerelle --namespace "$ns" --timeout=15m
