#!/usr/bin/env bash
# Runs the sigstore-conformance suite's bundle-verify cases through
# scripts/sigstore-conformance-client (the suite's own runner needs pytest, its TUF refresh and
# the network): each case with the artifact file and with its sha256: digest; a case whose
# directory ends in _fail must fail. Needs a checkout of github.com/sigstore/sigstore-conformance:
#   scripts/sigstore-conformance.sh PATH/TO/sigstore-conformance [NODEIMG]
set -uo pipefail
assets=${1:?usage: $0 SIGSTORE_CONFORMANCE_CHECKOUT [NODEIMG]}/test/assets
export NODEIMG=${2:-nodeimg}
client=$(cd "$(dirname "$0")" && pwd)/sigstore-conformance-client
id_default="https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
iss_default="https://token.actions.githubusercontent.com"
pass=0 fail=0
for d in "$assets"/bundle-verify/*/; do
  name=$(basename "$d")
  args=(--bundle "$d/bundle.sigstore.json")
  if [ -f "$d/key.pub" ]; then args+=(--key "$d/key.pub")
  else
    id=$id_default iss=$iss_default
    [ -f "$d/identity" ] && id=$(tr -d '\n' < "$d/identity")
    [ -f "$d/issuer" ] && iss=$(tr -d '\n' < "$d/issuer")
    args+=(--certificate-identity "$id" --certificate-oidc-issuer "$iss")
  fi
  [ -f "$d/trusted_root.json" ] && args+=(--trusted-root "$d/trusted_root.json")
  artifact="$assets/bundle-verify/a.txt"; [ -f "$d/artifact" ] && artifact="$d/artifact"
  digest="sha256:$(sha256sum "$artifact" | cut -d' ' -f1)"
  for input in "$artifact" "$digest"; do
    kind=file; [ "$input" = "$digest" ] && kind=digest
    if "$client" verify-bundle "${args[@]}" "$input" >/dev/null 2>/tmp/conformance.err; then got=ok; else got=fail; fi
    want=ok; [[ $name == *_fail ]] && want=fail
    if [ $got = $want ]; then pass=$((pass+1)); r=PASS; else fail=$((fail+1)); r=MISMATCH; fi
    printf '%-8s %-60s %-6s expected %-4s got %-4s %s\n' "$r" "$name" "$kind" "$want" "$got" \
      "$( [ $got = fail ] && head -c 160 /tmp/conformance.err | tr '\n' ' ')"
  done
done
echo "conformance bundle-verify: $pass as expected, $fail not"
