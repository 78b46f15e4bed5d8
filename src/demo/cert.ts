// A throwaway self-signed certificate for the demo server, made with the `openssl` CLI.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A certificate and key in a private temporary directory, removed by `remove()`. */
export interface SelfSignedCert {
  /** The private (mode 0700) directory that holds both files. */
  dir: string;
  /** PEM certificate: CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1. */
  certPath: string;
  /** PEM private key (EC P-256, unencrypted). */
  keyPath: string;
  cert: Buffer;
  key: Buffer;
  /** Deletes the directory; safe to call more than once. */
  remove(): Promise<void>;
}

/** Thrown when the certificate cannot be made; `hint` says how to fix it. */
export class CertificateError extends Error {
  override readonly name = 'CertificateError';
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(`${message} (${hint})`);
  }
}

/** The subjectAltName every demo certificate carries. */
export const DEMO_SUBJECT_ALT_NAME = 'DNS:localhost,IP:127.0.0.1,IP:::1';

function runOpenssl(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { timeout: 30_000 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(
          new CertificateError(
            'the openssl command-line tool is not installed',
            'install it: apt-get install openssl',
          ),
        );
        return;
      }
      const detail = String(stderr).trim().split('\n').slice(-3).join('; ');
      reject(
        new CertificateError(
          `openssl req failed: ${detail || err.message}`,
          'openssl 1.1.1 or newer is needed for -addext; apt-get install openssl',
        ),
      );
    });
  });
}

/** Makes a fresh self-signed certificate for localhost, 127.0.0.1 and ::1, valid for one day. */
export async function createSelfSignedCert(): Promise<SelfSignedCert> {
  // mkdtemp already creates the directory 0700; chmod guards against an unusual umask handling.
  const dir = await mkdtemp(join(tmpdir(), 'tlstap-demo-'));
  await chmod(dir, 0o700);
  let removed = false;
  const remove = async (): Promise<void> => {
    if (removed) return;
    removed = true;
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const certPath = join(dir, 'cert.pem');
    const keyPath = join(dir, 'key.pem');
    await runOpenssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      `subjectAltName=${DEMO_SUBJECT_ALT_NAME}`,
      '-keyout',
      keyPath,
      '-out',
      certPath,
    ]);
    await chmod(keyPath, 0o600);
    const [cert, key] = await Promise.all([readFile(certPath), readFile(keyPath)]);
    return { dir, certPath, keyPath, cert, key, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}
