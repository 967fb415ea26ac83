#!/bin/sh
# Regenerates the SEV-SNP ID block fixtures (test keys only, never for real images):
#   idkey.pem      ECDSA P-384, PKCS#8      (openssl genpkey)
#   authorkey.pem  ECDSA P-384, SEC1        (openssl ecparam -genkey)
#   p256key.pem    ECDSA P-256, PKCS#8      (a key the ID block must refuse)
#   idblock-oracle.txt  sev-snp-measure 0.0.13 `snp-create-id-block` output for the
#                  EPYC-v4/QEMU/1-vCPU digest of ovmf_AmdSev_suffix.bin (its signatures are
#                  random; the tests verify them rather than compare them)
set -eu
cd "$(dirname "$0")"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out idkey.pem
openssl ecparam -name secp384r1 -genkey -noout -out authorkey.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out p256key.pem
ld=19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d
snp-create-id-block --measurement "$(printf %s "$ld" | xxd -r -p | base64 -w0)" \
  --idkey idkey.pem --authorkey authorkey.pem > idblock-oracle.txt
