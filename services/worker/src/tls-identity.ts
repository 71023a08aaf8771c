/**
 * The worker's transfer identity: an ECDSA P-256 key pair and a self-signed certificate, made at
 * its first start and kept (0600, in a 0700 directory) under `<lxcpath>/.lxcq/tls/`. The
 * certificate (and its sha256 fingerprint) is published in the host registry with the heartbeat;
 * transfers between workers are mutual TLS in which each side accepts only the certificate the
 * registry holds for the other host (transfer.ts).
 */
import { X509Certificate, createHash, webcrypto } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TransferIdentity {
  /** PKCS#8 private key, PEM. */
  key: string;
  /** The self-signed certificate, PEM. */
  cert: string;
  /** sha256 of the certificate (DER), lowercase hex. */
  fingerprint: string;
}

/** sha256 of a certificate's DER bytes, lowercase hex (what the registry publishes). */
export function certFingerprint(cert: string | Buffer): string {
  const der = typeof cert === 'string' ? new X509Certificate(cert).raw : cert;
  return createHash('sha256').update(der).digest('hex');
}

export function identityDir(lxcpath: string): string {
  return join(lxcpath, '.lxcq', 'tls');
}

/** The identity kept in `dir`, or a new one written there (atomically) when there is none. */
export async function loadOrCreateIdentity(dir: string, hostId: string): Promise<TransferIdentity> {
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  if (existsSync(keyFile) && existsSync(certFile)) {
    const cert = readFileSync(certFile, 'utf8');
    return { key: readFileSync(keyFile, 'utf8'), cert, fingerprint: certFingerprint(cert) };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  // Loaded only to make a certificate (once per host): a worker restart does not pay for it.
  // @peculiar/x509 resolves its ASN.1 codecs through tsyringe, which needs the Reflect metadata API.
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const notBefore = new Date(Date.now() - 60_000);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex'),
      name: `CN=lxcq worker ${hostId.replace(/[,+="<>#;\\]/g, '_')}`,
      notBefore,
      // The pin is the fingerprint in the registry, not a validity period: the key lives as long
      // as the host's lxcpath (remove the directory to make a new one).
      notAfter: new Date(notBefore.getTime() + 100 * 365 * 24 * 3600 * 1000),
      keys,
      signingAlgorithm: alg,
      extensions: [
        // Its own trust anchor: the peer passes it as its only CA.
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign,
          true,
        ),
        new x509.ExtendedKeyUsageExtension([
          x509.ExtendedKeyUsage.serverAuth,
          x509.ExtendedKeyUsage.clientAuth,
        ]),
      ],
    },
    webcrypto,
  );
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n`;
  const cert = certificate.toString('pem') + '\n';
  for (const [file, text] of [
    [keyFile, key],
    [certFile, cert],
  ] as const) {
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, text, { mode: 0o600 });
    renameSync(tmp, file);
  }
  return { key, cert, fingerprint: certFingerprint(cert) };
}
