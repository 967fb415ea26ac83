#!/usr/bin/env node
// A local Sigstore stack for nodeimg's signing tests: Sigstore's own mock Fulcio (with its CT
// log), Rekor v1 and timestamp authority from npm `@sigstore/mock`, served over HTTP on
// 127.0.0.1. This file only routes requests to those handlers and writes the trusted root and
// signing config that describe the stack; the services' behaviour is the package's.
//
//   node server.js --out DIR [--ca-clock-offset SECONDS]
//
// Certificates are valid for ten minutes from the start (see the clocks below).
// Writes DIR/trusted_root.json, DIR/signing_config.json and DIR/url (the base URL), prints
// "listening <url>" on stdout and serves until SIGTERM/SIGINT or until stdin closes (so a test
// that dies never leaves the server behind). --ca-clock-offset shifts the Fulcio CA's clock (a
// negative value issues certificates that have expired by the time Rekor logs the entry).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');
const pkijs = require('pkijs');
const asn1js = require('asn1js');
const mock = require('@sigstore/mock');

const MAX_BODY = 1 << 20;

function args(argv) {
  const out = { caClockOffset: 0 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out') out.dir = argv[++i];
    else if (a === '--ca-clock-offset') out.caClockOffset = Number(argv[++i]);
    else throw new Error(`unknown argument ${a}`);
  }
  if (!out.dir) throw new Error('--out DIR is required');
  if (!Number.isFinite(out.caClockOffset)) throw new Error('--ca-clock-offset: not a number');
  return out;
}

const p256 = () => crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const b64 = (buf) => Buffer.from(buf).toString('base64');
const spki = (key) => key.export({ format: 'der', type: 'spki' });

// The mock TSA takes the JSON request of Sigstore's timestamp-authority; RFC 3161 clients
// (sigstore-rust, openssl ts) send a DER TimeStampReq. Read its fields for the mock.
function parseTimeStampReq(der) {
  const asn = asn1js.fromBER(new Uint8Array(der).buffer);
  if (asn.offset === -1) throw new Error('not a DER TimeStampReq');
  const req = new pkijs.TimeStampReq({ schema: asn.result });
  return {
    artifactHash: Buffer.from(req.messageImprint.hashedMessage.valueBlock.valueHexView),
    hashAlgorithmOID: req.messageImprint.hashAlgorithm.algorithmId,
    nonce: req.nonce ? Buffer.from(req.nonce.valueBlock.valueHexView) : undefined,
    policyOID: req.reqPolicy || '1.3.6.1.4.1.57264.2',
    certReq: req.certReq ?? false,
  };
}

async function main() {
  const opt = args(process.argv.slice(2));
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;

  // The mock services take a fixed clock or none. A fixed one, in whole seconds (RFC 3161 and
  // DER want GeneralizedTime without a fraction), read once here: certificates are valid for
  // ten minutes from the start and timestamps carry the start time, so a test finishes
  // within ten minutes of starting its stack. Rekor's integrated time is the real one.
  const t0 = Math.floor(Date.now() / 1000) * 1000;
  const caClock = new Date(t0 + opt.caClockOffset * 1000);
  const tsaClock = new Date(t0);
  const ctKeys = p256();
  const ctlog = await mock.initializeCTLog(ctKeys, caClock);
  const ca = await mock.initializeCA(p256(), ctlog, caClock);
  const tlogKeys = p256();
  const tlog = await mock.initializeTLog(url, tlogKeys);
  const tsa = await mock.initializeTSA(p256(), tsaClock);
  // The mock writes the nonce as a JS number; RFC 3161 clients send 64-bit random nonces,
  // which a number cannot hold. Build the mock's TSTInfo, then set the request's nonce
  // bytes as they came (an ASN.1 INTEGER copied verbatim).
  const mockTstInfo = tsa.tstInfo.bind(tsa);
  tsa.tstInfo = (req) => {
    const info = mockTstInfo({ ...req, nonce: 0 });
    info.nonce = req.nonce === undefined ? undefined : new asn1js.Integer({ valueHex: req.nonce });
    return info;
  };

  const fulcio = mock.fulcioHandler(ca);
  const rekor = mock.rekorHandler(tlog);
  const tsaJson = mock.tsaHandler(tsa);

  const routes = {
    [fulcio.path]: (body) => fulcio.fn(body.toString()),
    [rekor.path]: (body) => rekor.fn(body.toString()),
    [tsaJson.path]: async (body, type) => {
      if (type === 'application/timestamp-query') {
        const response = await tsa.timestamp(parseTimeStampReq(body));
        return { statusCode: 201, response, contentType: 'application/timestamp-reply' };
      }
      return tsaJson.fn(body.toString());
    },
  };

  server.on('request', (req, res) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', async () => {
      const route = routes[req.url];
      if (req.method !== 'POST' || !route) {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end(`no mock service at ${req.method} ${req.url}`);
        return;
      }
      try {
        const type = (req.headers['content-type'] || '').split(';')[0].trim();
        const r = await route(Buffer.concat(chunks), type);
        res.writeHead(r.statusCode, { 'Content-Type': r.contentType || 'text/plain' });
        res.end(r.response);
      } catch (e) {
        res.writeHead(400, { 'Content-Type': 'text/plain' });
        res.end(String(e && e.message));
      }
    });
  });

  // Valid from a day before the earliest clock in use, for ever.
  const start = new Date(Math.min(Date.now(), caClock.getTime()) - 86400 * 1000).toISOString();
  const tlogSpki = spki(tlogKeys.publicKey);
  const trustedRoot = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [
      {
        baseUrl: url,
        hashAlgorithm: 'SHA2_256',
        publicKey: {
          rawBytes: b64(tlogSpki),
          keyDetails: 'PKIX_ECDSA_P256_SHA_256',
          validFor: { start },
        },
        logId: { keyId: b64(crypto.createHash('sha256').update(tlogSpki).digest()) },
      },
    ],
    certificateAuthorities: [
      {
        subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
        uri: url,
        certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] },
        validFor: { start },
      },
    ],
    ctlogs: [
      {
        baseUrl: url,
        hashAlgorithm: 'SHA2_256',
        publicKey: {
          rawBytes: b64(ctlog.publicKey),
          keyDetails: 'PKIX_ECDSA_P256_SHA_256',
          validFor: { start },
        },
        logId: { keyId: b64(ctlog.logID) },
      },
    ],
    timestampAuthorities: [
      {
        subject: { organization: 'sigstore.mock', commonName: 'tsa' },
        uri: url,
        certChain: {
          certificates: [{ rawBytes: b64(tsa.intCertificate) }, { rawBytes: b64(tsa.rootCertificate) }],
        },
        validFor: { start },
      },
    ],
  };
  const service = (u, major) => ({ url: u, majorApiVersion: major, validFor: { start }, operator: 'sigstore.mock' });
  const signingConfig = {
    mediaType: 'application/vnd.dev.sigstore.signingconfig.v0.2+json',
    caUrls: [service(url, 1)],
    oidcUrls: [],
    rekorTlogUrls: [service(url, 1)],
    rekorTlogConfig: { selector: 'ANY' },
    tsaUrls: [service(`${url}/api/v1/timestamp`, 1)],
    tsaConfig: { selector: 'ANY' },
  };
  fs.mkdirSync(opt.dir, { recursive: true });
  const write = (name, text) => {
    const tmp = path.join(opt.dir, `.${name}.tmp`);
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, path.join(opt.dir, name));
  };
  write('trusted_root.json', JSON.stringify(trustedRoot, null, 2) + '\n');
  write('signing_config.json', JSON.stringify(signingConfig, null, 2) + '\n');
  write('url', url + '\n');
  process.stdout.write(`listening ${url}\n`);

  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.resume();
}

main().catch((e) => {
  process.stderr.write(`sigstore mock stack: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
