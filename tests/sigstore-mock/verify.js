#!/usr/bin/env node
// Verifies a Sigstore bundle with sigstore-js (@sigstore/verify), the verifier npm uses: the
// certificate chain and SCT against the trusted root, the identity policy, the tlog entry's
// inclusion proof/SET and its body against the bundle, and any RFC 3161 timestamp.
//
//   node verify.js --bundle B --trusted-root R (--identity I --issuer O | --key PUB.pem)
//
// Exit 0 and "verified" on success; exit 1 with the reason otherwise.
'use strict';

const fs = require('fs');
const crypto = require('crypto');
const { bundleFromJSON } = require('@sigstore/bundle');
const { TrustedRoot } = require('@sigstore/protobuf-specs');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

function args(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    if (!['bundle', 'trusted-root', 'identity', 'issuer', 'key'].includes(k)) {
      throw new Error(`unknown argument ${argv[i]}`);
    }
    out[k] = argv[i + 1];
  }
  if (!out.bundle || !out['trusted-root']) throw new Error('--bundle and --trusted-root are required');
  if (!out.key && !(out.identity && out.issuer)) throw new Error('--identity and --issuer, or --key');
  return out;
}

try {
  const a = args(process.argv.slice(2));
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(a.bundle, 'utf8')));
  const root = TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(a['trusted-root'], 'utf8')));
  let keys;
  if (a.key) {
    const key = crypto.createPublicKey(fs.readFileSync(a.key, 'utf8'));
    const hint = bundle.verificationMaterial.content.publicKey.hint;
    keys = { [hint]: { publicKey: key, validFor: () => true } };
  }
  const material = toTrustMaterial(root, keys ? (hint) => keys[hint] : undefined);
  const verifier = new Verifier(material, { tlogThreshold: 1, ctlogThreshold: a.key ? 0 : 1, timestampThreshold: 1 });
  const policy = a.key ? {} : { subjectAlternativeName: a.identity, extensions: { issuer: a.issuer } };
  verifier.verify(toSignedEntity(bundle), policy);
  process.stdout.write('verified\n');
} catch (e) {
  process.stderr.write(`@sigstore/verify: ${e && e.code ? e.code + ': ' : ''}${e && e.message}\n`);
  process.exit(1);
}
